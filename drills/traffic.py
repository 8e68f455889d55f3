"""Traffic for a drill: the project's generator, run as verify runs it, in rounds.

`traffic-gen/generate_traffic.py --url ... --rate R --duration S --json --quiet`:
an open loop at a modest fixed rate, both dice (its default risky share is half).
It prints its summary only when it ends, and the summary carries its chi-square
test of the rolled values, so the drill runs it in back-to-back rounds of `S`
seconds: each round that ends hands the probes a fresh verdict, and the service
sees steady traffic (a gap of well under a second between rounds).

Through the frontend (stage 2), the generator's users are visitors of its page, who
wait for each answer (`--target frontend`, no `--rate`): `VISITORS` of them, pausing
`VISITORS / R` seconds between rolls, send about `R` rolls a second while the answers
are quick.

The generator runs in a session of its own: a Ctrl-C in the terminal reaches the
drill, which stops it (SIGINT, then SIGKILL if it lingers) before putting the flags
back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FRONTEND", "Round", "Traffic"]

FRONTEND = "frontend"
"""The generator's `--target` for visitors of the frontend's page."""
VISITORS = 2
"""Visitors at a time, when the traffic goes through the frontend."""
STOP_GRACE = 10.0
"""Seconds the generator gets to print its summary after SIGINT before it is killed."""


@dataclass(frozen=True)
class Round:
    """One finished run of the generator."""

    exit_code: int
    summary: dict[str, Any] | None
    """Its `--json` summary, or None when it printed none (it could not start)."""
    last_words: str
    """The end of what it printed on stderr, for a message when something went wrong."""


@dataclass
class Traffic:
    """The generator in rounds, on a thread, until `stop()`."""

    script: Path
    service_url: str
    """Where the traffic goes: the dice-roller, or the frontend with `target` frontend."""
    rate: float
    round_seconds: float
    target: str = "dice-roller"
    """The generator's `--target`: `dice-roller` (its /roll) or `frontend` (its page)."""
    rounds: list[Round] = field(default_factory=list)
    cut_short: Round | None = None
    """The round `stop()` interrupted, if any: no verdict, but proof it ended cleanly."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _process: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None

    def pace(self) -> list[str]:
        if self.target == FRONTEND:
            think = f"{VISITORS / self.rate:g}"
            return ["--target", FRONTEND, "--users", str(VISITORS), "--think", think]
        return ["--rate", f"{self.rate:g}"]

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(self.script),
            "--url",
            self.service_url,
            *self.pace(),
            "--duration",
            f"{self.round_seconds:g}",
            "--json",
            "--quiet",
        ]

    def describe(self) -> str:
        where = "through the frontend's page, " if self.target == FRONTEND else ""
        return (
            f"{self.rate:g} requests/s, {where}both dice, in rounds of {self.round_seconds:g} s: "
            f"{Path(self.script).name} {' '.join(self.pace())} --duration {self.round_seconds:g}"
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="traffic-gen", daemon=True)
        self._thread.start()

    def finished_rounds(self) -> list[Round]:
        with self._lock:
            return list(self.rounds)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                if self._stopped.is_set():
                    return
                self._process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            out, err = self._process.communicate()
            finished = _round(self._process.returncode, out, err)
            with self._lock:
                self._process = None
                if self._stopped.is_set():  # cut short by stop(): its verdict says little
                    self.cut_short = finished
                else:
                    self.rounds.append(finished)
            if finished.summary is None and not self._stopped.is_set():
                self._stopped.wait(self.round_seconds)  # not reachable: don't spin

    def stop(self) -> None:
        """Stop the round in progress and start no other; wait for the thread."""
        with self._lock:
            self._stopped.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._thread is not None:
            self._thread.join(STOP_GRACE + 5)


def _round(code: int, out: str, err: str) -> Round:
    try:
        summary = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        summary = None
    if not isinstance(summary, dict):
        summary = None
    last_words = " ".join(err.strip().splitlines()[-2:])[-300:]
    return Round(code, summary, last_words)

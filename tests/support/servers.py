"""Run one of the project's servers as a process, the way users run it, and stop it again.

The dice-roller (tests/support/service.py), the frontend (tests/support/frontend.py) and
the die-service (tests/support/die_service.py) are each `python -m <package>` on a free
port of 127.0.0.1, ready once an HTTP path answers 200, their stdout captured for the
test to read: the same bytes a log pipeline and a scraper would see.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .processes import wait_until_ready

__all__ = ["RunningServer", "running_server"]


@dataclass
class RunningServer:
    """A server process listening on `url`, its stdout captured in `output_path`."""

    process: subprocess.Popen[bytes]
    port: int
    output_path: Path
    env: Mapping[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[str]:
        return [line for line in self.output().splitlines() if line.strip()]

    def log_records(self) -> list[dict[str, Any]]:
        """Every stdout line, parsed as JSON (fails loudly on a line that is not)."""
        return [json.loads(line) for line in self.log_lines()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` and wait for the exit code; kills the process if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode


@contextmanager
def running_server(
    package: str,
    port: int,
    arguments: Sequence[str],
    env: Mapping[str, str],
    *,
    ready_path: str,
    ready_timeout: float,
    graceful_stop: bool,
) -> Iterator[RunningServer]:
    """Run `python -m package ARGUMENTS`, listening on `port` (`free_port()`), with `env`
    on top of this process's environment, until the block ends; ready once GET
    `ready_path` answers 200. At the end it is killed, or with `graceful_stop` sent
    SIGTERM first."""
    full_env = {**os.environ, **env}
    with tempfile.TemporaryDirectory(prefix=f"{package}-") as tmp:
        output_path = Path(tmp) / "stdout.log"
        with output_path.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", package, *arguments],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        server = RunningServer(process, port, output_path, full_env)
        try:
            wait_until_ready(
                process,
                server.url + ready_path,
                name=package.replace("_", "-"),
                output=server.output,
                timeout=ready_timeout,
                interval=0.05,
            )
            yield server
        finally:
            _stop(process, graceful_stop)


def _stop(process: subprocess.Popen[bytes], graceful: bool) -> None:
    if process.poll() is not None:
        return
    if graceful:
        process.terminate()
        try:
            process.wait(10)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait()

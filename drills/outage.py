"""A drill's other action, besides switching flags: stop a service, and start it again.

Under compose that is `docker compose stop dice-roller`, then `docker compose start
dice-roller`, run from the repository (the compose project); for a stage-3 drill, with
stage 3's compose files (`docker compose -f docker-compose.yml -f stages/stage3.yml stop
die-service`: compose knows the die-service from the second file only), and for a
stage-5 drill stage 5's file after them. Elsewhere (a native stack, a remote one)
`--stop-command` and `--start-command` say what to run instead; `{service}` in them is
the compose service's name. Code that runs the stack itself
(the native stack's tests) passes its own `ServiceControl` to `run_drill`.

`stopped_service` starts the service again however its block ends: normally, on an
exception, on Ctrl-C or SIGTERM (turned into KeyboardInterrupt by the CLI). Like the
flag file's restore, the stop and the start run with those signals held back, and the
commands run in a session of their own, so a Ctrl-C in the terminal cannot cut either
short and leave the service half stopped. They are held back by a handler that notes
them and delivers them once the command is done, not by the signal mask, which every
process the command starts would inherit: a service started with SIGTERM blocked could
not be stopped the next time.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .flagfile import STOP_SIGNALS

__all__ = [
    "COMPOSE_FILES",
    "START_COMMAND",
    "STOP_COMMAND",
    "CommandControl",
    "Outage",
    "OutageError",
    "ServiceControl",
    "compose_command",
    "held_signals",
    "stopped_service",
]

COMPOSE_FILES: dict[int, tuple[str, ...]] = {
    3: ("docker-compose.yml", "stages/stage3.yml"),
    5: ("docker-compose.yml", "stages/stage3.yml", "stages/stage5.yml"),
}
"""The compose files of a stage that needs more than compose's default file
(docs/stages.md); stages 1 and 2 run from docker-compose.yml alone, stage 5 merges its
file over stage 3's."""


def compose_command(verb: str, stage: int = 1) -> str:
    """`docker compose [-f FILE ...] VERB {service}`, with the compose files of `stage`."""
    files = "".join(f" -f {name}" for name in COMPOSE_FILES.get(stage, ()))
    return f"docker compose{files} {verb} {{service}}"


STOP_COMMAND = compose_command("stop")
START_COMMAND = compose_command("start")
"""The defaults: compose stops only the service named (not the service that calls it),
and `start` brings back the same container, with its name, address and labels."""
COMMAND_TIMEOUT = 120.0
"""Seconds a stop or start command may take: compose waits 10 s before it kills."""


@contextmanager
def held_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP wait for the end of the block, then act as they would
    have (the first one that came). Only the main thread can hold them: elsewhere the
    block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def note(signum: int, frame: object) -> None:
        caught.append(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])


class OutageError(Exception):
    """A service could not be stopped or started; the message says what ran and what it said."""


class ServiceControl(Protocol):
    """Stops and starts a service of the stack, by its compose name."""

    def describe(self, verb: str, service: str) -> str:
        """How `verb` ("stop" or "start") is done to `service`, for the user."""
        ...

    def stop(self, service: str) -> None: ...

    def start(self, service: str) -> None: ...


@dataclass(frozen=True)
class CommandControl:
    """Runs a command to stop a service and another to start it, in `cwd`."""

    stop_command: str = STOP_COMMAND
    start_command: str = START_COMMAND
    cwd: Path | None = None

    def argv(self, verb: str, service: str) -> list[str]:
        template = self.stop_command if verb == "stop" else self.start_command
        return [part.replace("{service}", service) for part in shlex.split(template)]

    def describe(self, verb: str, service: str) -> str:
        return f"`{shlex.join(self.argv(verb, service))}`"

    def stop(self, service: str) -> None:
        self._run("stop", service)

    def start(self, service: str) -> None:
        self._run("start", service)

    def _run(self, verb: str, service: str) -> None:
        argv = self.argv(verb, service)
        shown = shlex.join(argv)
        try:
            result = subprocess.run(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is the drill's alone
                check=False,
            )
        except FileNotFoundError:
            raise OutageError(f"cannot {verb} the {service}: `{shown}`: no such command") from None
        except subprocess.TimeoutExpired:
            raise OutageError(
                f"cannot {verb} the {service}: `{shown}` took more than {COMMAND_TIMEOUT:g} s"
            ) from None
        if result.returncode != 0:
            said = " ".join((result.stderr or result.stdout).strip().splitlines()[-2:])[-300:]
            raise OutageError(
                f"cannot {verb} the {service}: `{shown}` exited with code {result.returncode}"
                + (f": {said}" if said else "")
            )


@dataclass
class Outage:
    """A stopped service, which `end()` starts again (once, however often it is called)."""

    control: ServiceControl
    service: str
    on_start: Callable[[], None] | None = None
    ended: bool = False

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        with held_signals():
            self.control.start(self.service)
            if self.on_start is not None:
                self.on_start()


@contextmanager
def stopped_service(
    control: ServiceControl, service: str, on_start: Callable[[], None] | None = None
) -> Iterator[Outage]:
    """Stop `service` for the block, and start it again when the block ends (or sooner,
    through the yielded `Outage`). `on_start()` is called once it is started."""
    outage = Outage(control, service, on_start)
    try:
        with held_signals():
            try:
                control.stop(service)
            except BaseException:
                # It may be stopped all the same (a command that stopped it, then
                # failed): start it, but report the stop's failure, not the start's.
                with suppress(OutageError):
                    outage.end()
                raise
        yield outage
    finally:
        outage.end()

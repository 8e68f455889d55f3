"""What the drill tests share: a copy of the shipped flag file, a drill run as a
user runs it, the options that point it at the native stack, the generators it
left running, and a way to stop a service of the native stack (the dice-roller, the
die-service, or PostgreSQL) and start it again."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from drills.settings import DrillSettings
from nativestack.docker_api import STDERR, STDOUT, Container
from nativestack.stack import Component, NativeStack
from nativestack.substitutions import NativeCommand, service_command
from tests.support.flags import SHIPPED_FLAGS, copy_shipped
from tests.support.paths import ROOT
from tests.support.processes import command_lines

__all__ = [
    "SHIPPED_FLAGS",
    "NativeControl",
    "copy_flags",
    "drill_command",
    "live_generators",
    "python_command",
    "run_drill_module",
    "signals_responded",
    "stack_options",
    "stack_settings",
]


def copy_flags(directory: Path) -> Path:
    """A byte-for-byte copy of the shipped flag file, alone in its own folder (a drill
    writes beside it): tests never edit the repository's file."""
    folder = directory / "flags"
    folder.mkdir(parents=True, exist_ok=True)
    copy = copy_shipped(folder)
    assert copy.read_bytes() == SHIPPED_FLAGS.read_bytes()
    return copy


def drill_command(*args: str) -> list[str]:
    """`python -m drills ARGS` with this environment's Python: `tasks.py drill` runs the
    same module through `uv run`."""
    return [sys.executable, "-m", "drills", *args]


def python_command(code: str, *args: str) -> str:
    """A shell command line that runs `code` with this environment's Python: what a test
    gives a drill as its "stop" or "start" command."""
    return shlex.join([sys.executable, "-c", code, *args])


def stack_settings(stack: NativeStack, **overrides: Any) -> DrillSettings:
    """A drill's settings that point it at the native stack's components (as
    `stack_options` does on the command line), with `overrides` on top."""
    return DrillSettings(
        service_url=stack.service_url,
        prometheus_url=stack.prometheus_url,
        loki_url=stack.loki_url,
        tempo_url=stack.tempo_url,
        alertmanager_url=stack.alertmanager_url,
        **overrides,
    )


def run_drill_module(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a drill to its end; its output and exit code."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFY_", "DRILL_"))}
    return subprocess.run(
        drill_command(*args),
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stack_options(native: NativeStack) -> list[str]:
    """A drill's options that point it at every component of the native stack."""
    return [
        "--service-url", native.service_url,
        "--prometheus-url", native.prometheus_url,
        "--loki-url", native.loki_url,
        "--tempo-url", native.tempo_url,
        "--alertmanager-url", native.alertmanager_url,
    ]  # fmt: skip


def signals_responded(stdout: str) -> list[str]:
    """The signals a drill printed as responded, in order."""
    return [
        line.split("  ", 2)[2].split(" (")[0]
        for line in stdout.splitlines()
        if line.startswith(("  ✓ ", "  + "))
    ]


def live_generators(url: str) -> list[str]:
    """The command lines of the traffic generators running against `url`."""
    return [
        command
        for command in command_lines().values()
        if "generate_traffic.py" in command and url in command
    ]


def _pump(pipe: IO[bytes], stream: int, container: Container, copy: IO[bytes]) -> None:
    for line in iter(pipe.readline, b""):
        container.log.append(stream, line)
        copy.write(line)
        copy.flush()


@dataclass
class NativeControl:
    """What `docker compose stop SERVICE` and `start` do, for the native stack: stop
    its process, then start a new one in its place, as `native_stack` started the first
    (same network namespace, environment and "container", so Alloy reads its lines on).
    The dice-roller (`service_env` added to its environment, as `native_stack` adds it),
    or from stage 3 the die-service (`die_service_env` likewise); `stage` is the
    stack's, whose compose environment the new process gets. From stage 5, PostgreSQL
    too: the same command line again (the server on the same data folder, which a fast
    shutdown leaves whole), its lines fed to its "container" (`stack.postgres`); it
    stops with compose's `stop_signal`, as the process it replaces did.

    The stack stops only the processes it started: `close()` stops those started here.
    """

    stack: NativeStack
    service_env: Mapping[str, str] = field(default_factory=dict)
    stage: int = 1
    die_service_env: Mapping[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _outputs: list[IO[bytes]] = field(default_factory=list)
    _started: set[str] = field(default_factory=set)

    def describe(self, verb: str, service: str) -> str:
        return f"the native stack's {service} process ({verb})"

    def container(self, service: str) -> Container:
        """The "container" whose log the service's output feeds."""
        containers = {
            "dice-roller": self.stack.container,
            "die-service": self.stack.die_service,
            "postgres": self.stack.postgres,
        }
        container = containers.get(service)
        assert container is not None, f"the native stack runs no {service} to restart"
        return container

    def stop(self, service: str) -> None:
        self.calls.append(f"stop {service}")
        self.stack.components[service].stop()

    def start(self, service: str) -> None:
        self.calls.append(f"start {service}")
        container = self.container(service)
        old = self.stack.components[service]
        if old.process.poll() is None:
            return
        if service == "postgres":
            command = NativeCommand(old.command, {})
        else:
            socket = self.stack.state_dir / "docker.sock"
            command = service_command(self.stack.state_dir, socket, service, self.stage)
        if service == "dice-roller":
            command.env.update(self.service_env)
        if service == "die-service":
            command.env.update(self.die_service_env)
        output = old.log_path.open("ab")
        self._outputs.append(output)
        process = subprocess.Popen(
            [*self.stack.network.exec_prefix(service), *command.argv],
            env={**os.environ, **command.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.stack.state_dir,
            start_new_session=True,
        )
        for pipe, stream in ((process.stdout, STDOUT), (process.stderr, STDERR)):
            assert pipe is not None
            threading.Thread(
                target=_pump, args=(pipe, stream, container, output), daemon=True
            ).start()
        self.stack.components[service] = Component(
            service, process, command.argv, old.log_path, old.stop_signal
        )
        self._started.add(service)

    def close(self) -> None:
        for service in sorted(self._started):
            self.stack.components[service].stop()
        for output in self._outputs:
            output.close()

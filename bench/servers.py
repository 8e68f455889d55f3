"""Start the builds under test as real processes on 127.0.0.1, read their memory, stop them.

Every build is a separate `python` process served by uvicorn exactly as users run the
service, so the bench measures what they would get, start-up and all. Most builds are
the real service, `python -m dice_roller`, with signals taken away from outside by
the switches users have too (`SERVICE_BUILDS`); the service has no parameter, branch or
module for the benchmark. Its metrics cannot be switched off, so each build adds one
signal to the one before:

- `metrics`: `OTEL_SDK_DISABLED=true` (no spans, so no ids in the header, exemplars or
  lines) and `DICE_LOG_LEVEL=WARNING` (no INFO roll lines): the metrics alone;
- `metrics+logs`: `OTEL_SDK_DISABLED=true` alone: one JSON line a request as well;
- `traces-unexported`: `OTEL_TRACES_EXPORTER=none`: the three signals, spans made and
  ended but sent nowhere, which splits what a span costs to make from its export;
- `full`: the service as it runs, exporting over OTLP wherever the caller says;
- `full-flags`, `full-drill`: the same with a flag file (`bench.flags`).

The two others, `bare` and `recipe`, are assembled by the bench and served by
`bench.serve`. The stage-2 frontend is started the same way, `python -m frontend`, in
front of a dice-roller (`FRONTEND_BUILDS`, for `bench.hop`); its roll is `/api/roll`.
The stage-3 die-service (`DIE_SERVICE_BUILDS`, for `bench.hop`) is served by
`bench.serve` too: its own app and command (`sandbox_telemetry.run_service`, as
`python -m die_service` runs it), over its shipped dice with every delay at 0. Its dice
are data with no setting, and a dice-roller asking it rolls with the die's delay, not
its own `DICE_MAX_DELAY_SECONDS`: with the shipped fair die a roll would wait up to 1 s
and the bench would measure the wait, not the hop. Its answer is `/dice/fair`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stackclient import free_port, wait_until_serving

from .receiver import BenchReceiver, bench_receiver

__all__ = [
    "DIE_SERVICE",
    "DIE_SERVICE_BUILDS",
    "DIE_SERVICE_UNTRACED",
    "FRONTEND",
    "FRONTEND_BUILDS",
    "FRONTEND_UNTRACED",
    "FULL",
    "FULL_DRILL",
    "FULL_FLAGS",
    "METRICS",
    "METRICS_LOGS",
    "SERVICE_BUILDS",
    "TRACES_UNEXPORTED",
    "Memory",
    "Server",
    "cpu_seconds",
    "read_memory",
    "start_full_service",
    "start_server",
    "start_servers",
]

METRICS = "metrics"
METRICS_LOGS = "metrics+logs"
TRACES_UNEXPORTED = "traces-unexported"
FULL = "full"
FULL_FLAGS = "full-flags"
"""The real service with the shipped flag file, as compose runs it (`bench.flags`)."""
FULL_DRILL = "full-drill"
"""The real service with a flag away from its default, as during a drill (`bench.flags`)."""
SERVICE_BUILDS: Mapping[str, Mapping[str, str]] = {
    METRICS: {"OTEL_SDK_DISABLED": "true", "DICE_LOG_LEVEL": "WARNING"},
    METRICS_LOGS: {"OTEL_SDK_DISABLED": "true"},
    TRACES_UNEXPORTED: {"OTEL_TRACES_EXPORTER": "none"},
    FULL: {},
    FULL_FLAGS: {},
    FULL_DRILL: {},
}
"""Each build of the real service, and its switches (see the module docstring)."""
FRONTEND = "frontend"
"""The frontend as it runs, exporting over OTLP wherever the caller says."""
FRONTEND_UNTRACED = "frontend-untraced"
"""The frontend with `OTEL_SDK_DISABLED=true`: no spans, no `traceparent` sent on."""
FRONTEND_BUILDS: Mapping[str, Mapping[str, str]] = {
    FRONTEND: {},
    FRONTEND_UNTRACED: {"OTEL_SDK_DISABLED": "true"},
}
"""Each build of the frontend, and its switches; its dice-roller is in the caller's
environment (`FRONTEND_DICE_ROLLER_URL`)."""
DIE_SERVICE = "die-service"
"""The die-service as it runs (its dice's delays at 0), exporting wherever the caller says."""
DIE_SERVICE_UNTRACED = "die-service-untraced"
"""The same with `OTEL_SDK_DISABLED=true`."""
DIE_SERVICE_BUILDS: Mapping[str, Mapping[str, str]] = {
    DIE_SERVICE: {},
    DIE_SERVICE_UNTRACED: {"OTEL_SDK_DISABLED": "true"},
}
"""Each build of the die-service, and its switches (`bench.serve` serves it)."""


@dataclass(frozen=True)
class Server:
    build: str
    port: int
    process: subprocess.Popen[bytes]
    output_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def roll_url(self) -> str:
        """What the bench loads: a roll of the fair die, or the die-service's answer
        about it."""
        if self.build in DIE_SERVICE_BUILDS:
            return f"{self.url}/dice/fair"
        route = "/api/roll" if self.build in FRONTEND_BUILDS else "/roll"
        return f"{self.url}{route}?die=fair"

    def count_in_output(self, text: bytes) -> int:
        """How many times `text` occurs in what the server wrote (its log lines)."""
        with self.output_path.open("rb") as output:
            return sum(chunk.count(text) for chunk in iter(lambda: output.read(1 << 20), b""))


@dataclass(frozen=True)
class Memory:
    rss_bytes: int  # resident set size now (VmRSS)
    peak_bytes: int  # highest resident set size so far (VmHWM)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process `pid` has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def read_memory(pid: int) -> Memory:
    """VmRSS and VmHWM of process `pid`, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024  # reported in kB
    return Memory(fields["VmRSS"], fields["VmHWM"])


@contextmanager
def start_server(
    build: str, env: Mapping[str, str], output_dir: Path, ready_timeout: float = 30.0
) -> Iterator[Server]:
    """Run `build` until the block ends (see `start_servers`)."""
    with start_servers([(build, env)], output_dir, ready_timeout) as servers:
        yield servers[0]


@contextmanager
def start_full_service(
    max_delay_seconds: float, output_dir: Path
) -> Iterator[tuple[Server, BenchReceiver]]:
    """The real service with roll delays up to `max_delay_seconds`, its spans all going
    to a bench receiver of its own, until the block ends."""
    with bench_receiver() as receiver:
        env = receiver.service_env(max_delay_seconds)
        with start_server(FULL, env, output_dir) as server:
            yield server, receiver


@contextmanager
def start_servers(
    builds: Sequence[tuple[str, Mapping[str, str]]], output_dir: Path, ready_timeout: float = 30.0
) -> Iterator[list[Server]]:
    """Start every (build, environment) at once, wait until all answer, stop all at the end.

    A build's own switches (`SERVICE_BUILDS`, `FRONTEND_BUILDS`, `DIE_SERVICE_BUILDS`)
    win over the environment given.

    Their stdout and stderr go to a file in `output_dir`, not /dev/null: a container's
    stdout ends up in a file that the log agent reads, so each line's write is part of
    what logging costs; and the lines can be counted afterwards, to check that every
    request was logged.
    """
    servers: list[Server] = []
    try:
        for build, env in builds:
            servers.append(_launch(build, env, output_dir))
        for server in servers:
            _wait_until_ready(server, ready_timeout)
        yield servers
    finally:
        for server in servers:
            _stop(server.process)


def _launch(build: str, env: Mapping[str, str], output_dir: Path) -> Server:
    port = free_port()
    output_path = output_dir / f"{build}-{port}.log"
    if build in SERVICE_BUILDS:
        command = [sys.executable, "-m", "dice_roller", "--host", "127.0.0.1", "--port", str(port)]
        env = {**env, **SERVICE_BUILDS[build]}
    elif build in FRONTEND_BUILDS:
        command = [sys.executable, "-m", "frontend", "--host", "127.0.0.1", "--port", str(port)]
        env = {**env, **FRONTEND_BUILDS[build]}
    else:
        command = [sys.executable, "-m", "bench.serve", build, "--port", str(port)]
        env = {**env, **DIE_SERVICE_BUILDS.get(build, {})}
    with output_path.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    return Server(build, port, process, output_path)


def _wait_until_ready(server: Server, timeout: float) -> None:
    why = wait_until_serving(server.process, server.roll_url, timeout, interval=0.05)
    if why == "exited":
        output = server.output_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the {server.build} build exited at start-up:\n{output}")
    if why == "timed out":
        raise RuntimeError(f"the {server.build} build was not ready after {timeout:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

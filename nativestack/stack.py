"""Start the stack as plain processes, wait until each part is ready, stop all of it.

The order is compose's `depends_on`: the alert-receiver, then Alertmanager (which
notifies it), Prometheus (which sends Alertmanager its alerts), then Loki and Tempo,
then Alloy (which ships to both), then the service (which sends spans to Alloy), and at
stage 2 the frontend in front of it; at stage 3 the die-service starts before the
service, which asks it what each die is, and at stage 5 PostgreSQL and its exporter
before the die-service, which keeps the dice in it, and node_exporter (docs/stages.md).
Every wait has a limit; a component that exits or is not ready in time stops the whole
start with one message naming it, its command and the last lines of its log. Whatever
started is stopped when the block ends, on failure and on Ctrl-C: compose's `stop_signal`
(SIGTERM unless it says otherwise) first, then SIGKILL for a process that does not
exit in time (Tempo's does not, within 40 s).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from stackclient import wait_until, wait_until_serving

from . import build, postgres
from .docker_api import STDERR, STDOUT, Container, DockerApi, serving_docker_api
from .network import Network, private_network
from .pins import pin
from .substitutions import (
    ROOT,
    NativeCommand,
    compose_project,
    compose_service,
    native_command,
    receiver_command,
    service_command,
)

__all__ = [
    "Component",
    "NativeStack",
    "NativeStackError",
    "build_all",
    "cached_binaries",
    "native_stack",
    "stop_on_sigterm",
]

HOSTS = ("alert-receiver", "alertmanager", "prometheus", "loki", "tempo", "alloy", "dice-roller")
"""Compose's service names, which are also the host names the configs use."""
STAGE_HOSTS = {
    1: HOSTS,
    2: (*HOSTS, "frontend"),
    3: (*HOSTS, "frontend", "die-service"),
    4: (*HOSTS, "frontend", "die-service"),
    5: (*HOSTS, "frontend", "die-service", "postgres", "postgres-exporter", "node-exporter"),
}
"""What each stage runs: stage 2 adds the frontend (compose's `stage2` profile), stage 3
the die-service (stages/stage3.yml); stage 4 runs stage 3's, its new part an endpoint;
stage 5 adds PostgreSQL, postgres_exporter and node_exporter (stages/stage5.yml; its
cAdvisor watches Docker's containers, and there are none here)."""
LOG_TAIL = 30
STOP_TIMEOUT = 15.0
POSTGRES_PORT = 5432
POSTGRES_EXPORTER_PORT = 9187
"""postgres_exporter's port, the one stages/stage5.yml's label names."""
NODE_EXPORTER_PORT = 9100
"""node_exporter's port (its default), the one stages/stage5.yml's label names."""
NOT_NATIVE = frozenset({"cadvisor"})
"""Stage 5's compose services the native stack does not run: cAdvisor reads Docker's
containers, and the native stack has none (docs/native-stack.md)."""


class NativeStackError(RuntimeError):
    """A component did not start; the message says which, how it was run and what it said."""


@dataclass
class Component:
    """One running process of the stack."""

    name: str
    process: subprocess.Popen[bytes]
    command: list[str]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(f"    {line}" for line in text[-lines:]) or "    (it printed nothing)"

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class NativeStack:
    """The running stack: where each part answers, and what stands in for what."""

    network: Network
    state_dir: Path
    docker: DockerApi
    container: Container
    """The service's "container": what it prints goes to Alloy through it."""
    receiver: Container
    """The alert-receiver's, likewise."""
    components: dict[str, Component] = field(default_factory=dict)
    tempo_standin: str | None = None
    """Why Tempo is the stand-in (the build's error), or None when the real one runs."""
    started: float = field(default_factory=time.time)
    """When the first component started (Unix seconds): nothing is older."""
    frontend: Container | None = None
    """The frontend's "container", from stage 2."""
    die_service: Container | None = None
    """The die-service's "container", from stage 3."""
    postgres: Container | None = None
    """PostgreSQL's "container" (its server log), from stage 5."""

    def url(self, host: str, port: int) -> str:
        return f"http://{self.network.addresses[host]}:{port}"

    @property
    def service_url(self) -> str:
        return self.url("dice-roller", 8000)

    @property
    def frontend_url(self) -> str:
        return self.url("frontend", 8000)

    @property
    def die_service_url(self) -> str:
        return self.url("die-service", 8000)

    @property
    def postgres_address(self) -> tuple[str, int]:
        """Where PostgreSQL listens (stage 5)."""
        return self.network.addresses["postgres"], POSTGRES_PORT

    @property
    def postgres_exporter_url(self) -> str:
        return self.url("postgres-exporter", POSTGRES_EXPORTER_PORT)

    @property
    def node_exporter_url(self) -> str:
        return self.url("node-exporter", NODE_EXPORTER_PORT)

    @property
    def prometheus_url(self) -> str:
        return self.url("prometheus", 9090)

    @property
    def loki_url(self) -> str:
        return self.url("loki", 3100)

    @property
    def tempo_url(self) -> str:
        return self.url("tempo", 3200)

    @property
    def alloy_url(self) -> str:
        return self.url("alloy", 12345)

    @property
    def alertmanager_url(self) -> str:
        return self.url("alertmanager", 9093)

    @property
    def receiver_url(self) -> str:
        return self.url("alert-receiver", 9099)

    def service_lines(self) -> list[str]:
        """What the service printed on stdout so far."""
        return [line.decode() for _, stream, line in self.container.log.written(0, {STDOUT})]

    def frontend_lines(self) -> list[str]:
        """What the frontend printed on stdout so far (none before stage 2)."""
        if self.frontend is None:
            return []
        return [line.decode() for _, stream, line in self.frontend.log.written(0, {STDOUT})]

    def die_service_lines(self) -> list[str]:
        """What the die-service printed on stdout so far (none before stage 3)."""
        if self.die_service is None:
            return []
        return [line.decode() for _, stream, line in self.die_service.log.written(0, {STDOUT})]

    def receiver_lines(self) -> list[dict[str, Any]]:
        """The alert lines the alert-receiver printed on stdout so far, one per alert and
        notification, oldest first (alert-receiver/README.md describes their fields)."""
        return [json.loads(line) for _, _, line in self.receiver.log.written(0, {STDOUT})]

    def describe(self) -> str:
        rows = [
            *([("frontend (the page)", self.frontend_url)] if self.frontend else []),
            ("dice-roller", self.service_url),
            *([("die-service", self.die_service_url)] if self.die_service else []),
            *(
                [
                    ("PostgreSQL 15 (Debian)", "postgresql://{}:{}".format(*self.postgres_address)),
                    ("postgres_exporter (Debian)", self.postgres_exporter_url),
                    (f"node_exporter {pin('node-exporter').tag}", self.node_exporter_url),
                ]
                if self.postgres
                else []
            ),
            (f"Prometheus {pin('prometheus').tag}", self.prometheus_url),
            (f"Loki {pin('loki').tag}", self.loki_url),
            (
                f"Tempo {pin('tempo').tag}" if self.tempo_standin is None else "Tempo (stand-in)",
                self.tempo_url,
            ),
            (f"Alloy {pin('alloy').tag}", self.alloy_url),
            (f"Alertmanager {pin('alertmanager').tag}", self.alertmanager_url),
            ("alert-receiver", self.receiver_url),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"  {name:<{width}}  {url}" for name, url in rows)


def build_all(log: Callable[[str], None]) -> tuple[dict[str, Path], str | None]:
    """The binaries of every component, and why Tempo's could not be built (if so)."""
    binaries = {}
    tempo_error = None
    for service in ("prometheus", "alertmanager", "loki", "alloy", "tempo", "node-exporter"):
        try:
            binaries[service] = build.build(service)
        except build.BuildError as error:
            if service != "tempo":
                raise
            tempo_error = str(error).splitlines()[0].removeprefix("building tempo failed: ")
            log(f"nativestack: Tempo cannot be built here, a stand-in runs: {tempo_error}")
    return binaries, tempo_error


def _wait_ready(component: Component, url: str, timeout: float, expect: int = 200) -> None:
    why = wait_until_serving(component.process, url, timeout, expect, interval=0.25)
    _fail_if(component, why, url, timeout)


def _wait_accepting(component: Component, host: str, port: int, timeout: float) -> None:
    """Like `_wait_ready`, for PostgreSQL, which speaks no HTTP."""

    def ready() -> bool | None:
        if component.process.poll() is not None:
            raise _Exited
        return postgres.accepts(host, port)

    try:
        why = None if wait_until(ready, timeout) else "timed out"
    except _Exited:
        why = "exited"
    _fail_if(component, why, f"{host}:{port}", timeout)


class _Exited(Exception):
    """The component being waited for ended."""


def _fail_if(component: Component, why: str | None, where: str, timeout: float) -> None:
    if why == "exited":
        raise NativeStackError(
            f"{component.name} exited with code {component.process.returncode} while "
            f"starting: `{' '.join(component.command)}`\n  last lines of "
            f"{component.log_path}:\n{component.log_tail()}"
        )
    if why == "timed out":
        raise NativeStackError(
            f"{component.name} was not ready within {timeout:.0f} s ({where}): "
            f"`{' '.join(component.command)}`\n  last lines of {component.log_path}:\n"
            f"{component.log_tail()}"
        )


@contextmanager
def native_stack(
    state_dir: Path | None = None,
    *,
    stage: int = 1,
    service_env: Mapping[str, str] | None = None,
    die_service_env: Mapping[str, str] | None = None,
    extra_containers: Sequence[Container] = (),
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Iterator[NativeStack]:
    """Build what is missing, start everything, yield it, and stop it all at the end.

    `service_env` adds to compose's environment of the service (tests: a seed, a
    failure rate), `die_service_env` to the die-service's (tests: a flag file of their
    own); `extra_containers` are listed by the Docker API stand-in besides
    the service (tests: a container of another project, which Alloy must ignore).
    `stage` 2 adds the frontend, 3 the die-service.
    """
    if stage not in STAGE_HOSTS:
        raise NativeStackError(f"stage {stage}: the native stack runs stages {list(STAGE_HOSTS)}")
    if stage >= 5:
        postgres.require_postgres()
    binaries, tempo_error = build_all(log)
    with ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="dice-sandbox-"))
            )
        logs = state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        network = stack.enter_context(private_network(STAGE_HOSTS[stage]))
        project = compose_project()
        docker = DockerApi(f"{project}_monitoring")
        socket = state_dir / "docker.sock"
        stack.enter_context(serving_docker_api(docker, socket))

        def compose_container(service: str, port: int) -> Container:
            """A container as compose names and labels it: `container_name`, else
            PROJECT-SERVICE-1."""
            spec, _ = compose_service(service, stage)
            name = spec.get("container_name") or f"{project}-{service}-1"
            return docker.add(
                Container(
                    id=os.urandom(32).hex(),
                    name=f"/{name}",
                    image=f"{project}-{service}",
                    labels={
                        **{str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
                        "com.docker.compose.project": project,
                        "com.docker.compose.service": service,
                        "com.docker.compose.container-number": "1",
                        "com.docker.compose.oneoff": "False",
                    },
                    network=docker.network,
                    address=network.addresses[service],
                    ports=(port,),
                )
            )

        container = compose_container("dice-roller", 8000)
        receiver_container = compose_container("alert-receiver", 9099)
        for extra in extra_containers:
            docker.add(extra)
        running = NativeStack(
            network, state_dir, docker, container, receiver_container, tempo_standin=tempo_error
        )

        def start(
            name: str, command: NativeCommand, feed: Container | None = None, stage: int = 1
        ) -> Component:
            for path, text in command.written.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            argv = [*network.exec_prefix(name), *command.argv]
            log_path = logs / f"{name}.log"
            output = log_path.open("wb")
            stack.callback(output.close)
            process = subprocess.Popen(
                argv,
                env={**os.environ, **command.env},
                stdout=subprocess.PIPE if feed else output,
                stderr=subprocess.PIPE if feed else subprocess.STDOUT,
                cwd=state_dir,
                start_new_session=True,  # Ctrl-C reaches us; we stop them in order
            )
            stop_signal = compose_service(name, stage)[0].get("stop_signal", "SIGTERM")
            component = Component(
                name, process, command.argv, log_path, signal.Signals[stop_signal]
            )
            running.components[name] = component
            stack.callback(component.stop)
            if feed is not None:
                for pipe, stream in ((process.stdout, STDOUT), (process.stderr, STDERR)):
                    assert pipe is not None
                    threading.Thread(
                        target=_pump, args=(pipe, stream, feed, output), daemon=True
                    ).start()
            return component

        def native(name: str) -> NativeCommand:
            return native_command(name, binaries[name], state_dir, socket)

        def start_postgres(feed: Container) -> None:
            """PostgreSQL as the image makes it: POSTGRES_USER's cluster, POSTGRES_DB in it,
            in a folder of its own that the postgres user owns (nativestack/postgres.py)."""
            env = compose_service("postgres", stage)[0]["environment"]
            home = Path(tempfile.mkdtemp(prefix="dice-sandbox-postgres-"))
            stack.callback(shutil.rmtree, home, ignore_errors=True)
            data = home / "data"
            user, password = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]
            postgres.init_cluster(data, user, password)
            host, port = running.postgres_address
            command = NativeCommand(postgres.server_argv(data, host, port), {})
            server = start("postgres", command, feed=feed, stage=stage)
            _wait_accepting(server, host, port, 30)
            postgres.create_database(host, port, user, password, env["POSTGRES_DB"])

        def exporter_command() -> NativeCommand:
            """Debian's postgres_exporter with compose's DATA_SOURCE_NAME, on its port."""
            spec, _ = compose_service("postgres-exporter", stage)
            env = {str(k): str(v) for k, v in spec["environment"].items()}
            listen = f"--web.listen-address=:{POSTGRES_EXPORTER_PORT}"
            return NativeCommand([postgres.EXPORTER, listen], env)

        receiver = start("alert-receiver", receiver_command(), feed=receiver_container)
        _wait_ready(receiver, f"{running.receiver_url}/ready", 30)
        alertmanager = start("alertmanager", native("alertmanager"))
        _wait_ready(alertmanager, f"{running.alertmanager_url}/-/ready", 60)
        prometheus = start("prometheus", native("prometheus"))
        _wait_ready(prometheus, f"{running.prometheus_url}/-/ready", 60)
        loki = start("loki", native("loki"))
        if "tempo" in binaries:
            tempo = start("tempo", native("tempo"))
        else:
            standin = NativeCommand(
                [sys.executable, "-m", "nativestack.tempo_standin"], {"PYTHONPATH": str(ROOT)}
            )
            tempo = start("tempo", standin)
        _wait_ready(loki, f"{running.loki_url}/ready", 90)
        _wait_ready(tempo, f"{running.tempo_url}/ready", 90)
        alloy = start("alloy", native("alloy"))
        _wait_ready(alloy, f"{running.alloy_url}/-/ready", 90)
        if stage >= 5:
            running.postgres = compose_container("postgres", POSTGRES_PORT)
            start_postgres(running.postgres)
            exporter = start(
                "postgres-exporter",
                exporter_command(),
                feed=compose_container("postgres-exporter", POSTGRES_EXPORTER_PORT),
                stage=stage,
            )
            _wait_ready(exporter, f"{running.postgres_exporter_url}/metrics", 30)
            node_exporter = start(
                "node-exporter",
                native_command(
                    "node-exporter", binaries["node-exporter"], state_dir, socket, stage
                ),
                feed=compose_container("node-exporter", NODE_EXPORTER_PORT),
                stage=stage,
            )
            _wait_ready(node_exporter, f"{running.node_exporter_url}/metrics", 30)
        if stage >= 3:
            running.die_service = compose_container("die-service", 8000)
            die_service_run = service_command(state_dir, socket, "die-service", stage)
            die_service_run.env.update(die_service_env or {})
            die_service = start(
                "die-service", die_service_run, feed=running.die_service, stage=stage
            )
            _wait_ready(die_service, f"{running.die_service_url}/", 60)
        service_run = service_command(state_dir, socket, stage=stage)
        service_run.env.update(service_env or {})
        service = start("dice-roller", service_run, feed=container, stage=stage)
        _wait_ready(service, f"{running.service_url}/", 60)
        if stage >= 2:
            running.frontend = compose_container("frontend", 8000)
            frontend_run = service_command(state_dir, socket, "frontend", stage)
            frontend = start("frontend", frontend_run, feed=running.frontend, stage=stage)
            _wait_ready(frontend, f"{running.frontend_url}/", 60)
        yield running


def _pump(pipe: IO[bytes], stream: int, container: Container, copy: IO[bytes]) -> None:
    """Feed one output stream of the service, line by line, to its "container" log."""
    for line in iter(pipe.readline, b""):
        container.log.append(stream, line)
        copy.write(line)
        copy.flush()


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so `with native_stack()` cleans up on both."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cached_binaries() -> dict[str, bool]:
    """Which components are built already (`nativestack --status`)."""
    return {service: build.binary_path(service).is_file() for service in build.PROGRAMS}

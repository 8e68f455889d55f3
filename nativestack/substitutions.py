"""Every change the native stack makes to run compose's services as plain processes.

Nothing here is written by hand per component: each command line, environment and
config file is compose's own (stack/compose.yml, docker-compose.yml), with the one
thing a container has and a process has not, its mounts, translated:

1. A container path in a command line (`--config.file=/etc/prometheus/prometheus.yml`)
   becomes the host path compose mounts there (`stack/prometheus/prometheus.yml`).
2. A named volume (`loki-data:/loki`) becomes a folder of this run's state directory.
3. The Docker socket (`/var/run/docker.sock`) becomes the socket of the stand-in
   Docker Engine API (nativestack/docker_api.py).
4. A mounted config file that names another mount (Loki's `path_prefix: /loki`,
   Alloy's `unix:///var/run/docker.sock`) is copied into the state directory with
   those paths translated the same way, and the copy is what the process reads.
5. Our services, which compose builds from their Dockerfiles (dice-roller/,
   frontend/, die-service/), run from this checkout's virtual environment with compose's
   `environment`, container paths translated as in 1 (`DICE_FLAGS_FILE` names the
   mounted stack/flags/ folder's file).
6. The alert-receiver, which compose builds from alert-receiver/Dockerfile, runs what
   that image runs: its `CMD` with this Python, its `ENV` (the port Alertmanager's
   config names), and its package folder on the import path.
7. Tempo: the stand-in of nativestack/tempo_standin.py, when its module cannot be had.
8. Stage 5's images, whose Go modules the proxy refuses or which are no Go program:
   PostgreSQL is Debian's postgresql-15, made as the `postgres` image makes it
   (nativestack/postgres.py), and postgres_exporter is Debian's
   prometheus-postgres-exporter (0.11.1 where compose pins v0.20.1; the `pg_*`
   families the dashboard and verify read are in both), with compose's
   DATA_SOURCE_NAME.
9. cAdvisor (stage 5) does not run: it reads Docker's containers, and there are none.
   node_exporter does, built from its module; compose's host mounts (`/proc:/host/proc`)
   translate as in 1 to the host's own /proc, /sys and /, so its CPU, memory, load and
   filesystems are the host's, and its network is its namespace's, as in compose, where
   it is the container's.

From stage 3 on, compose merges a stage's file over the root one (stages/stage3.yml);
`compose_service(name, stage)` does that merge, for what those files change: maps
merged key by key, and a `!reset` list (a service's profiles) replaced.

Host names and ports stay as they are: each service has a network namespace of its
own (nativestack/network.py).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COMPOSE_FILES",
    "SERVICE_MODULES",
    "STAGE_FILES",
    "Mount",
    "NativeCommand",
    "compose_service",
    "image_runtime",
    "mounts",
    "native_command",
    "receiver_command",
    "service_command",
    "translate_text",
]

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = (ROOT / "stack" / "compose.yml", ROOT / "docker-compose.yml")
STAGE_FILES = {3: ROOT / "stages" / "stage3.yml", 5: ROOT / "stages" / "stage5.yml"}
"""What compose merges over the root file at each stage, and every stage after it."""
DOCKER_SOCKET = "/var/run/docker.sock"


class _Reset(list[Any]):
    """A list compose's `!reset` tag replaces rather than merges."""


class _ComposeLoader(yaml.SafeLoader):
    """yaml's safe loader, knowing compose's `!reset`."""


_ComposeLoader.add_constructor(
    "!reset",
    lambda loader, node: _Reset(loader.construct_sequence(node)),  # type: ignore[arg-type]
)


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in override.items()}}
    return list(override) if isinstance(override, _Reset) else override


@dataclass(frozen=True)
class Mount:
    """A container path and what stands for it on the host."""

    target: str
    source: Path
    is_file_bind: bool


@dataclass
class NativeCommand:
    """A service's command line and environment, and the config copies it reads."""

    argv: list[str]
    env: dict[str, str]
    written: dict[Path, str] = field(default_factory=dict)


def compose_service(name: str, stage: int = 1) -> tuple[dict[str, Any], Path]:
    """The service's definition at `stage` and the file that defines it (relative paths
    start from its folder; the stage files' share the root file's, as in compose)."""
    spec: dict[str, Any] | None = None
    defined_in = ROOT / "docker-compose.yml"
    for path in COMPOSE_FILES:
        services = _load(path).get("services") or {}
        if name in services:
            spec, defined_in = services[name], path
            break
    for number, path in sorted(STAGE_FILES.items()):
        if number <= stage and name in (_load(path).get("services") or {}):
            spec = _merged(spec or {}, _load(path)["services"][name])
    if spec is None:
        raise KeyError(f"no service {name!r} in {', '.join(str(p) for p in COMPOSE_FILES)}")
    return spec, defined_in


def _load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), _ComposeLoader) or {}


def compose_project() -> str:
    """The compose project name (`name:`), which labels every container."""
    return str(yaml.safe_load(COMPOSE_FILES[1].read_text(encoding="utf-8"))["name"])


def mounts(service: str, state_dir: Path, docker_socket: Path, stage: int = 1) -> list[Mount]:
    """The service's volumes, each with its host side (substitutions 1 to 3)."""
    spec, compose_file = compose_service(service, stage)
    found = []
    for volume in spec.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        if source == DOCKER_SOCKET:
            host = docker_socket
        elif source.startswith((".", "/")):
            host = (compose_file.parent / source).resolve()
        else:
            host = state_dir / "volumes" / source
            host.mkdir(parents=True, exist_ok=True)
        found.append(Mount(target, host, host.is_file()))
    # Longest first, so /etc/prometheus/rules wins over /etc/prometheus.
    return sorted(found, key=lambda mount: len(mount.target), reverse=True)


def translate_text(text: str, table: list[Mount]) -> str:
    """Container paths in `text` replaced by their host side.

    A path counts where it starts a value (after a space, quote, `=` or `unix://`)
    and ends at a `/` or the end of the word, so `http://loki:3100/loki/api/v1/push`
    keeps its `/loki`.
    """
    for mount in table:
        pattern = rf"(?:(?<=unix://)|(?<![\w/.:-])){re.escape(mount.target)}(?![\w.-])"
        text = re.sub(pattern, str(mount.source).replace("\\", "/"), text)
    return text


def native_command(
    service: str, binary: Path, state_dir: Path, docker_socket: Path, stage: int = 1
) -> NativeCommand:
    """Compose's command for `service` at `stage`, run by `binary` on this machine."""
    spec, _ = compose_service(service, stage)
    table = mounts(service, state_dir, docker_socket, stage)
    directory_mounts = [m for m in table if not m.is_file_bind]
    written: dict[Path, str] = {}
    for mount in table:
        if not mount.is_file_bind:
            continue
        original = mount.source.read_text(encoding="utf-8")
        translated = translate_text(original, directory_mounts)
        if translated != original:  # substitution 4
            copy = state_dir / "config" / service / mount.source.name
            written[copy] = translated
            table = [Mount(m.target, copy, True) if m is mount else m for m in table]
    argv = [str(binary), *(translate_text(str(arg), table) for arg in spec.get("command") or [])]
    env = {str(k): str(v) for k, v in (spec.get("environment") or {}).items()}
    return NativeCommand(argv, env, written)


SERVICE_MODULES = {
    "dice-roller": "dice_roller",
    "frontend": "frontend",
    "die-service": "die_service",
}
"""The sandbox's own services, each with the module that runs it (`python -m`)."""


def service_command(
    state_dir: Path, docker_socket: Path, service: str = "dice-roller", stage: int = 1
) -> NativeCommand:
    """A service of ours as compose runs it at `stage`, from this checkout (substitution 5)."""
    spec, _ = compose_service(service, stage)
    table = mounts(service, state_dir, docker_socket, stage)
    env = {
        str(k): translate_text(str(v), table) for k, v in (spec.get("environment") or {}).items()
    }
    return NativeCommand([sys.executable, "-m", SERVICE_MODULES[service]], env)


def image_runtime(dockerfile: Path) -> tuple[dict[str, str], list[str]]:
    """The `ENV` and the exec-form `CMD` of a Dockerfile's final stage."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    stage = re.split(r"(?im)^FROM\s", text)[-1]
    env: dict[str, str] = {}
    for line in re.findall(r"(?im)^ENV\s+(.*)$", stage):
        for key, value in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line):
            env[key] = json.loads(value) if value.startswith('"') else value
    commands = re.findall(r"(?im)^CMD\s+(\[.*\])\s*$", stage)
    if len(commands) != 1:
        raise ValueError(f"{dockerfile}: expected one exec-form CMD in its final stage")
    command = json.loads(commands[0])
    return env, [str(part) for part in command]


def receiver_command() -> NativeCommand:
    """The alert-receiver as its image runs it, from this checkout (substitution 6)."""
    spec, compose_file = compose_service("alert-receiver")
    build = spec["build"]
    dockerfile = (compose_file.parent / build["context"]).resolve() / build["dockerfile"]
    env, command = image_runtime(dockerfile)
    if command[0] != "python":
        raise ValueError(f"{dockerfile}: its CMD runs {command[0]!r}, not python")
    env |= {str(k): str(v) for k, v in (spec.get("environment") or {}).items()}
    # The image copies the package folder next to its Dockerfile into its WORKDIR.
    env["PYTHONPATH"] = str(dockerfile.parent)
    return NativeCommand([sys.executable, *command[1:]], env)

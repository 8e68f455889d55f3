"""The compose files as one project, the way `docker compose` assembles them.

`docker compose up` at the root reads docker-compose.yml, whose `include:` pulls in
stack/compose.yml with its own directory as the base of relative paths. The checks
need that merged view: a service of the root file may depend on a service, or join a
network, that only the included file defines.

From stage 3 on, compose merges a stage's file over the root one
(`docker compose -f docker-compose.yml -f stages/stage3.yml ...`): `load_stage` gives
that project, with the native stack's own merge (nativestack/substitutions.py), so the
tests hold the same view of each service the native stack runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nativestack.substitutions import STAGE_FILES as STAGE_FILES  # re-exported
from nativestack.substitutions import _ComposeLoader, _merged, _Reset, compose_service
from tests.support.paths import ROOT as ROOT  # re-exported for the tests here

ROOT_COMPOSE = ROOT / "docker-compose.yml"
STACK_COMPOSE = ROOT / "stack" / "compose.yml"
COMPOSE_FILES = (ROOT_COMPOSE, STACK_COMPOSE)
STAGE_COMPOSE_FILES = tuple(path for _, path in sorted(STAGE_FILES.items()))

JSON = dict[str, Any]

# $$ (a literal $), ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}.
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate_defaults(text: str) -> str:
    """The value compose gives `text` when no variable is set: each `${NAME:-x}` becomes
    `x`, and `$$` a literal `$`. A variable without a default is an error here, because
    a user who sets nothing would get an empty string."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.groups()
        if op in (":-", "-"):
            return str(default)
        raise ValueError(f"${{{name}}} has no default: set one with ${{{name}:-value}}")

    return _VARIABLE.sub(replace, text)


@dataclass(frozen=True)
class Service:
    """One service, with the file that defines it (relative paths start from its folder)."""

    name: str
    spec: JSON
    file: Path

    @property
    def base(self) -> Path:
        return self.file.parent


@dataclass
class Project:
    """Services, networks and volumes of one compose file and everything it includes."""

    files: list[Path] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    networks: dict[str, JSON] = field(default_factory=dict)
    volumes: dict[str, JSON] = field(default_factory=dict)


def load_yaml(path: Path) -> JSON:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return document


def load_project(path: Path) -> Project:
    """Load `path` and, recursively, its `include:` entries into one project.

    Like compose, a resource defined twice (by the file and by an include) is an error.
    """
    project = Project()
    _load_into(project, path.resolve())
    return project


def _load_into(project: Project, path: Path) -> None:
    document = load_yaml(path)
    project.files.append(path)
    for entry in document.get("include", []):
        included = entry if isinstance(entry, str) else entry["path"]
        included_paths = included if isinstance(included, list) else [included]
        for item in included_paths:
            _load_into(project, (path.parent / item).resolve())
    for kind in ("services", "networks", "volumes"):
        for name, spec in (document.get(kind) or {}).items():
            target: dict[str, Any] = getattr(project, kind)
            if name in target:
                raise ValueError(f"{path}: {kind[:-1]} {name!r} is already defined by an include")
            if kind == "services":
                target[name] = Service(name, spec or {}, path)
            else:
                target[name] = spec or {}


def load_stage_file(path: Path) -> JSON:
    """A stage file as compose reads it: `!reset` known (a list that replaces, not merges)."""
    document = yaml.load(path.read_text(encoding="utf-8"), _ComposeLoader)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return document


def is_reset(value: object) -> bool:
    """Whether a stage file's value carries compose's `!reset` tag."""
    return isinstance(value, _Reset)


def load_stage(stage: int) -> Project:
    """The project `docker compose -f docker-compose.yml -f stages/stage3.yml ...` runs at
    `stage`: the root file, its include, and each stage file up to `stage` merged over them.

    Each service is `compose_service(name, stage)`, the native stack's merge; a service
    only a stage file defines has its paths relative to the root file, as in compose.
    Top-level volumes and networks are maps, merged the same way.
    """
    project = load_project(ROOT_COMPOSE)
    names = list(project.services)
    for number, path in sorted(STAGE_FILES.items()):
        if number > stage:
            continue
        document = load_stage_file(path)
        project.files.append(path.resolve())
        names += [name for name in document.get("services") or {} if name not in names]
        project.networks = _merged(project.networks, document.get("networks") or {})
        project.volumes = _merged(project.volumes, document.get("volumes") or {})
    for name in names:
        spec, defined_in = compose_service(name, stage)
        project.services[name] = Service(name, spec, defined_in.resolve())
    return project


def service_networks(service: Service) -> list[str]:
    networks = service.spec.get("networks", [])
    return list(networks) if isinstance(networks, (list, dict)) else []


def depends_on(service: Service) -> dict[str, str]:
    """Each dependency with its condition (`service_started` for the short list form)."""
    deps = service.spec.get("depends_on", {})
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


@dataclass(frozen=True)
class Mount:
    """One entry of a service's `volumes:`: a named volume or a bind mount."""

    source: str
    target: str
    read_only: bool
    bind: bool


def mounts(service: Service) -> list[Mount]:
    """The service's mounts; a source starting with `.`, `/` or `~` is a bind mount."""
    found = []
    for entry in service.spec.get("volumes", []):
        if isinstance(entry, str):
            parts = entry.split(":")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            bind = source.startswith((".", "/", "~"))
        else:
            source, target = entry.get("source", ""), entry["target"]
            read_only = bool(entry.get("read_only", False))
            bind = entry.get("type") == "bind"
        found.append(Mount(source, target, read_only, bind))
    return found


# [IP:]HOST:CONTAINER, where IP may be a ${VAR:-127.0.0.1} holding colons itself.
_PORT = re.compile(r"(?:(?P<ip>\$\{[^}]*\}|[^:]+):)?(?P<host>\d+):(?P<container>\d+)")


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    host_port: str
    container_port: str


def ports(service: Service) -> list[PortMapping]:
    """Published ports of the short `[IP:]HOST:CONTAINER` syntax, with variables as written."""
    found = []
    for entry in service.spec.get("ports", []):
        if not isinstance(entry, str):
            raise ValueError(f"service {service.name}: use the short port syntax, got {entry!r}")
        match = _PORT.fullmatch(entry)
        if match is None:
            raise ValueError(f"service {service.name}: unexpected port syntax {entry!r}")
        found.append(PortMapping(match["ip"] or "", match["host"], match["container"]))
    return found


def image_reference(service: Service) -> tuple[str, str] | None:
    """`(repository, tag)` of the service's image, or None for a service built here."""
    image = service.spec.get("image")
    if image is None:
        return None
    name = image.split("@")[0]
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:  # no tag at all: "grafana/loki" or "host:5000/loki"
        return name, ""
    return repository, tag

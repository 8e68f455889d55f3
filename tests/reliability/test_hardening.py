"""Static checks of what we ship: the images and the compose project, read as files.

No Docker engine runs here, so these read the Dockerfiles and compose files the way
Docker would and check the settings that keep a sandbox on a laptop harmless: the
service runs as a numeric non-root user, in an image without build tools, with a
read-only root filesystem, no capabilities and no privilege escalation; every port
is published on 127.0.0.1 unless the user says otherwise; Grafana's anonymous users
are never admins by default; and only Alloy sees the Docker socket, read-only.

SECURITY.md explains each default and how to change it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.compose import (
    ROOT_COMPOSE,
    Project,
    Service,
    interpolate_defaults,
    load_project,
    mounts,
    ports,
)
from tests.support.dockerfile import Instruction, instructions

REPO = Path(__file__).resolve().parents[2]
SERVICE_DOCKERFILE = REPO / "dice-roller" / "Dockerfile"
DOCKERFILES = [
    SERVICE_DOCKERFILE,
    REPO / "traffic-gen" / "Dockerfile",
    REPO / "alert-receiver" / "Dockerfile",
    REPO / "frontend" / "Dockerfile",
    REPO / "die-service" / "Dockerfile",
]
BUILT_HERE = ("dice-roller", "traffic-gen", "alert-receiver")
# Containers we configure fully: the images built here, and the one-shot that writes
# Grafana's admin password.
LOCKED_DOWN = (*BUILT_HERE, "grafana-init")

# Commands that install or build software: none belongs in a final stage.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|yum|dnf|pip|pip3|uv|poetry|gcc|g\+\+|cc|make|cmake|cargo|"
    r"build-essential|git|curl|wget)\b"
)


def final_stage(dockerfile: Path) -> list[Instruction]:
    """Instructions from the last FROM on: what the shipped image is made of."""
    steps = instructions(dockerfile)
    last_from = max(i for i, step in enumerate(steps) if step.keyword == "FROM")
    return steps[last_from:]


def require(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing: the image cannot be checked")


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(ROOT_COMPOSE)


# --- The images ---------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    """A numeric uid: Kubernetes' runAsNonRoot can only verify a number, not a name."""
    require(dockerfile)
    users = [step.arguments for step in final_stage(dockerfile) if step.keyword == "USER"]
    assert users, f"{dockerfile.parent.name}: no USER in the final stage: it runs as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: use a numeric uid, not 0"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {users[-1]}: numeric non-0 gid"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_stage_carries_no_build_tools(dockerfile: Path) -> None:
    require(dockerfile)
    stage = final_stage(dockerfile)
    base = stage[0].arguments.split()[0]
    assert "slim" in base or "distroless" in base or "alpine" in base, f"heavy base {base}"
    for step in stage:
        if step.keyword == "RUN":
            tool = BUILD_TOOLS.search(step.arguments)
            assert tool is None, f"RUN {step.arguments!r} uses {tool and tool.group(0)}"
        if step.keyword == "COPY" and "--from=" in step.arguments:
            # Only the built virtual environment crosses over from the build stage.
            assert "/.venv" in step.arguments, f"COPY {step.arguments}"


def test_service_image_has_a_healthcheck() -> None:
    require(SERVICE_DOCKERFILE)
    checks = [s.arguments for s in final_stage(SERVICE_DOCKERFILE) if s.keyword == "HEALTHCHECK"]
    assert checks and checks[-1].upper() != "NONE"
    assert "CMD" in checks[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_writes_nothing_to_its_root_filesystem(dockerfile: Path) -> None:
    """With `read_only: true`, Python must not try to write .pyc files next to the code."""
    require(dockerfile)
    env = " ".join(s.arguments for s in final_stage(dockerfile) if s.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env


# --- The compose project ------------------------------------------------------------


@pytest.mark.parametrize("name", LOCKED_DOWN)
def test_our_containers_drop_every_privilege(project: Project, name: str) -> None:
    spec = project.services[name].spec
    assert spec.get("cap_drop") == ["ALL"], f"{name}: set cap_drop: [ALL]"
    assert spec.get("cap_add") in (None, []), f"{name}: adds capabilities {spec.get('cap_add')}"
    assert spec.get("read_only") is True, f"{name}: set read_only: true"
    options = spec.get("security_opt", [])
    assert any(re.fullmatch(r"no-new-privileges(:true)?", o) for o in options), (
        f"{name}: set security_opt: [no-new-privileges:true]"
    )
    assert str(spec.get("user", "10001")).split(":")[0] not in ("0", "root")


def test_no_container_is_privileged_or_shares_the_host(project: Project) -> None:
    for service in project.services.values():
        spec = service.spec
        assert not spec.get("privileged"), f"{service.name} is privileged"
        for key in ("network_mode", "pid", "ipc", "userns_mode"):
            assert spec.get(key) != "host", f"{service.name}: {key}: host"


def test_published_ports_bind_to_loopback_by_default(project: Project) -> None:
    published = []
    for service in project.services.values():
        for mapping in ports(service):
            published.append(f"{service.name}:{mapping.host_port}")
            address = interpolate_defaults(mapping.host_ip) if mapping.host_ip else "0.0.0.0"
            assert address == "127.0.0.1", (
                f"{service.name} publishes port {mapping.host_port} on {address}"
            )
    assert "grafana:3000" in published and "dice-roller:8100" in published


def grafana_env(project: Project) -> dict[str, str]:
    environment = project.services["grafana"].spec.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate_defaults(str(value)) for key, value in environment.items()}


def test_grafana_anonymous_users_are_never_admins_by_default(project: Project) -> None:
    env = grafana_env(project)
    if env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true":
        role = env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer")
        assert role in ("Viewer", "Editor"), f"anonymous users get the {role} role"
    assert env.get("GF_USERS_ALLOW_SIGN_UP", "false").lower() != "true"


def test_grafana_admin_password_is_not_usable_from_outside_by_default(project: Project) -> None:
    """No default admin password at all: a value written in this repository is public,
    and binding to 0.0.0.0 would publish its login. Unset, Grafana's is `admin`."""
    env = grafana_env(project)
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env, (
        "Grafana's admin password comes from compose, where its default is readable by all"
    )
    path = env.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
    assert path, "Grafana gets no admin password, so it uses its built-in `admin`"
    # The file is written before Grafana starts, from the user's variable or at random.
    init = project.services["grafana-init"]
    assert path in init.spec["entrypoint"]
    init_env = {k: interpolate_defaults(str(v)) for k, v in init.spec["environment"].items()}
    assert init_env == {"GRAFANA_ADMIN_PASSWORD": ""}, "the variable must have no default"
    grafana_depends = project.services["grafana"].spec["depends_on"]
    assert grafana_depends["grafana-init"]["condition"] == "service_completed_successfully"
    # And still, by default, only this machine can reach the login.
    (grafana_port,) = [m for m in ports(project.services["grafana"]) if m.container_port == "3000"]
    assert interpolate_defaults(grafana_port.host_ip) == "127.0.0.1"


def test_grafana_init_is_tiny_and_offline(project: Project) -> None:
    spec = project.services["grafana-init"].spec
    assert spec.get("network_mode") == "none" and not spec.get("ports")
    assert spec["deploy"]["resources"]["limits"]["memory"] in ("8M", "16M", "32M")
    assert not spec.get("tmpfs"), "it writes to its volume only"


def test_only_alloy_sees_the_docker_socket_and_read_only(project: Project) -> None:
    holders: dict[str, bool] = {}
    for service in project.services.values():
        for mount in mounts(service):
            if "docker.sock" in mount.source or "docker.sock" in mount.target:
                holders[service.name] = mount.read_only
    assert holders == {"alloy": True}, f"Docker socket mounted by (name: read-only) {holders}"


def test_services_built_here_publish_nothing_but_their_api(project: Project) -> None:
    service: Service = project.services["dice-roller"]
    assert [m.container_port for m in ports(service)] == ["8000"]
    assert ports(project.services["traffic-gen"]) == []
    assert [m.container_port for m in ports(project.services["alert-receiver"])] == ["9099"]

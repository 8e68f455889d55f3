"""The compose files: valid by the compose specification, and consistent beyond it.

The specification's JSON schema checks the shape of each file. It can't see that a
`depends_on` names a service nobody defines, that a mounted config file is missing
from the repository, or that a healthcheck runs `curl` in an image that has none;
`docker compose up` finds those out on the user's machine. These tests find them here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from nativestack.substitutions import compose_service
from tests.support.compose import (
    COMPOSE_FILES,
    ROOT,
    ROOT_COMPOSE,
    STACK_COMPOSE,
    STAGE_COMPOSE_FILES,
    STAGE_FILES,
    Project,
    Service,
    depends_on,
    image_reference,
    interpolate_defaults,
    is_reset,
    load_project,
    load_stage,
    load_stage_file,
    load_yaml,
    mounts,
    ports,
    service_networks,
)
from tests.support.native import built
from tests.support.paths import ALLOY_CONFIG
from tests.support.prometheus import parse_duration


@cache
def stage(number: int) -> Project:
    """The project at stage `number`, loaded once for this module's read-only checks."""
    return load_stage(number)


PROJECTS: dict[str, Callable[[], Project]] = {
    "docker-compose.yml": partial(load_project, ROOT_COMPOSE),  # `docker compose up`
    "stack/compose.yml": partial(load_project, STACK_COMPOSE),  # `tasks.py compose stack`
    # `docker compose -f docker-compose.yml -f stages/stage3.yml up`, and stage 5's three.
    "stage 3": partial(stage, 3),
    "stage 5": partial(stage, 5),
}


@pytest.fixture(params=sorted(PROJECTS), scope="module")
def project(request: pytest.FixtureRequest) -> Project:
    return PROJECTS[request.param]()


@dataclass(frozen=True)
class ImageKind:
    """What a pinned image holds, read from its upstream Dockerfile at that version."""

    tag: str
    base: str
    executables: frozenset[str]


# The pinned image of each component (stack/README.md, "Versions") and the programs a
# healthcheck can call in it.
IMAGES = {
    # prometheus/prometheus Dockerfile (v3.14.0): FROM quay.io/prometheus/busybox.
    "prom/prometheus": ImageKind(
        "v3.14.0", "busybox", frozenset({"/bin/prometheus", "/bin/promtool", "sh", "wget"})
    ),
    # prometheus/alertmanager Dockerfile (v0.35.0): FROM quay.io/prometheus/busybox.
    "prom/alertmanager": ImageKind(
        "v0.35.0", "busybox", frozenset({"/bin/alertmanager", "/bin/amtool", "sh", "wget"})
    ),
    # grafana/loki cmd/loki/Dockerfile (v3.7.6): FROM gcr.io/distroless/static:nonroot.
    "grafana/loki": ImageKind("3.7.6", "distroless", frozenset({"/usr/bin/loki"})),
    # grafana/tempo cmd/tempo/Dockerfile (v3.0.3): FROM gcr.io/distroless/static-debian12.
    "grafana/tempo": ImageKind("3.0.3", "distroless", frozenset({"/tempo"})),
    # grafana/alloy Dockerfile (v1.18.1): ubuntu noble with ca-certificates, libsystemd0
    # and tzdata added: bash and coreutils, no curl, no wget.
    "grafana/alloy": ImageKind("v1.18.1", "ubuntu", frozenset({"/bin/alloy", "bash", "sh"})),
    # grafana/grafana: Alpine-based (busybox wget; curl added by grafana/grafana#65547).
    # Busybox also gives grafana-init's od, tr, mv and rm, and `compose grafana-password`'s cat.
    "grafana/grafana": ImageKind(
        "13.2.0",
        "alpine",
        frozenset({"sh", "wget", "curl", "cat", "od", "tr", "mv", "rm"}),
    ),
    # Stage 5. docker-library/postgres 15/bookworm/Dockerfile: FROM debian:bookworm-slim
    # (bash, dash as sh), postgresql-15 from apt.postgresql.org with its bin folder on
    # PATH (pg_isready, psql, postgres), ENTRYPOINT docker-entrypoint.sh (bash), run as
    # root and stepping down to `postgres` (999:999) with gosu; STOPSIGNAL SIGINT.
    "postgres": ImageKind(
        "15.18-bookworm",
        "debian",
        frozenset({"bash", "sh", "pg_isready", "psql", "postgres"}),
    ),
    # prometheus-community/postgres_exporter Dockerfile (v0.20.1): FROM
    # quay.io/prometheus/busybox, COPY postgres_exporter to /bin, USER nobody, EXPOSE 9187
    # (its --web.listen-address default, :9187); it reads DATA_SOURCE_NAME.
    "prometheuscommunity/postgres-exporter": ImageKind(
        "v0.20.1", "busybox", frozenset({"/bin/postgres_exporter", "sh", "wget"})
    ),
    # prometheus/node_exporter Dockerfile (v1.12.1): FROM quay.io/prometheus/busybox,
    # COPY node_exporter to /bin, EXPOSE 9100, USER nobody, ENTRYPOINT /bin/node_exporter.
    "prom/node-exporter": ImageKind(
        "v1.12.1", "busybox", frozenset({"/bin/node_exporter", "sh", "wget"})
    ),
    # google/cadvisor deploy/Dockerfile (v0.60.5): FROM alpine:3.23 (busybox wget), no
    # USER (root), EXPOSE 8080, ENTRYPOINT /usr/bin/entrypoint.sh (`cadvisor
    # -logtostderr "$@"`); its own HEALTHCHECK wgets /healthz. Published on ghcr.io from
    # v0.53.0 (gcr.io/cadvisor/cadvisor before).
    "ghcr.io/google/cadvisor": ImageKind(
        "v0.60.5",
        "alpine",
        frozenset({"/usr/bin/cadvisor", "/usr/bin/healthcheck.sh", "sh", "wget"}),
    ),
}
# The port each third-party image listens on unless told otherwise (its Dockerfile's EXPOSE).
IMAGE_PORTS = {
    "postgres": "5432",
    "prometheuscommunity/postgres-exporter": "9187",
    "prom/node-exporter": "9100",
    "ghcr.io/google/cadvisor": "8080",
}
# Images built from this repository: Python images.
BUILT_EXECUTABLES = frozenset({"python", "sh"})
HTTP_CLIENTS = ("curl", "wget")


def executables_of(service: Service) -> frozenset[str]:
    reference = image_reference(service)
    if reference is None:
        return BUILT_EXECUTABLES
    repository, _ = reference
    if repository not in IMAGES:
        pytest.fail(f"service {service.name}: image {repository} is missing from IMAGES")
    return IMAGES[repository].executables


def test_compose_files_match_the_compose_specification(tmp_path: Path) -> None:
    """check-jsonschema, from this virtual environment, with the vendored compose-spec schema.

    Its YAML reader knows no `!reset`, so each stage file goes in as JSON, read as compose
    reads it (a `!reset []` is the empty list it stands for)."""
    stage_files = []
    for path in STAGE_COMPOSE_FILES:
        stage_files.append(tmp_path / f"{path.name}.json")
        stage_files[-1].write_text(json.dumps(load_stage_file(path)), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            *map(str, COMPOSE_FILES),
            *map(str, stage_files),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_root_file_includes_the_stack() -> None:
    project = load_project(ROOT_COMPOSE)
    assert STACK_COMPOSE in project.files
    assert {"prometheus", "loki", "tempo", "alloy", "grafana", "dice-roller"} <= set(
        project.services
    )


def test_both_files_share_one_project_name() -> None:
    """`python3 tasks.py compose stack` then `docker compose up` at the root must reuse the
    stack's containers, not start a second stack fighting for the same ports."""
    declared = {str(path.relative_to(ROOT)): load_yaml(path).get("name") for path in COMPOSE_FILES}
    assert None not in declared.values(), f"a file without `name:` {declared}"
    assert len(set(declared.values())) == 1, declared


def test_depends_on_names_defined_services(project: Project) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for service in project.services.values():
        for target, condition in depends_on(service).items():
            assert target in project.services, f"{service.name} depends on undefined {target!r}"
            assert condition in conditions, (
                f"{service.name} -> {target}: unexpected condition {condition!r}"
            )
            if condition == "service_healthy":
                assert "healthcheck" in project.services[target].spec, (
                    f"{service.name} waits for {target} to be healthy, but {target} has no "
                    "healthcheck: it would never start"
                )
            if condition == "service_completed_successfully":
                # A restarted one-shot would run again and again, never "completed".
                restart = str(project.services[target].spec.get("restart", "no"))
                assert restart == "no" or restart.startswith("on-failure"), (
                    f"{service.name} waits for {target} to finish, but {target} has "
                    f"restart: {restart}"
                )


def test_no_dependency_cycle(project: Project) -> None:
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in done:
            return
        assert name not in visiting, f"dependency cycle: {' -> '.join([*path, name])}"
        visiting.add(name)
        for target in depends_on(project.services[name]):
            visit(target, [*path, name])
        visiting.discard(name)
        done.add(name)

    for name in project.services:
        visit(name, [])


def test_every_service_is_on_the_monitoring_network(project: Project) -> None:
    """Or on no network at all (`network_mode: none`), for a service that talks to nothing."""
    assert "monitoring" in project.networks
    for service in project.services.values():
        networks = service_networks(service)
        if service.spec.get("network_mode") == "none":
            assert networks == [], f"{service.name}: network_mode none and networks {networks}"
            assert not ports(service), f"{service.name}: no network, yet publishes ports"
            continue
        assert networks == ["monitoring"], f"{service.name}: networks {networks}"
        for network in networks:
            assert network in project.networks, f"{service.name} joins undefined {network!r}"


# The host's own paths a container may see, read-only, and why.
HOST_MOUNTS = {
    ("alloy", "/var/run/docker.sock"): "lists the containers and reads their logs",
    # node_exporter reads the host's kernel figures: --path.procfs, --path.sysfs and
    # --path.rootfs name where they are mounted.
    ("node-exporter", "/proc"): "CPU, memory, load: /proc/stat, /proc/meminfo, /proc/loadavg",
    ("node-exporter", "/sys"): "devices, thermal zones, the network's /sys/class/net",
    ("node-exporter", "/"): "filesystem sizes, by statfs on each mount point",
    # cAdvisor's documented mounts (its README's `docker run`), /var/run narrowed to
    # the Docker socket.
    ("cadvisor", "/"): "the host's root, for its filesystems and machine facts",
    ("cadvisor", "/var/run/docker.sock"): "each container's name and image",
    ("cadvisor", "/sys"): "every container's cgroup: CPU, memory, network",
    ("cadvisor", "/var/lib/docker"): "each container's layer and its config",
    ("cadvisor", "/dev/disk"): "disk names for the filesystem figures",
}


def test_host_mounts_are_each_used_by_their_service() -> None:
    """No reason in HOST_MOUNTS outlives its mount."""
    used = {
        (service.name, mount.source)
        for service in stage(5).services.values()
        for mount in mounts(service)
        if mount.bind and mount.source.startswith("/")
    }
    assert used == set(HOST_MOUNTS)


def test_named_volumes_are_defined_and_bind_mounts_exist(project: Project) -> None:
    for service in project.services.values():
        for mount in mounts(service):
            if not mount.bind:
                assert mount.source in project.volumes, (
                    f"{service.name} mounts undefined volume {mount.source!r}"
                )
            elif mount.source.startswith("/"):
                # A host path: only those HOST_MOUNTS names, each read-only.
                assert (service.name, mount.source) in HOST_MOUNTS, (
                    f"{service.name} mounts the host's {mount.source}"
                )
                assert mount.read_only, f"{service.name}: host path {mount.source} should be :ro"
            else:
                source = (service.base / mount.source).resolve()
                assert source.exists(), (
                    f"{service.name} mounts {mount.source} ({source}), which does not exist"
                )
                assert source.is_relative_to(ROOT), f"{service.name} mounts {source}, outside"
                assert mount.read_only, f"{service.name}: config mount {mount.source} should be :ro"


def test_grafana_home_dashboard_is_a_mounted_file(project: Project) -> None:
    grafana = project.services["grafana"]
    home = grafana.spec["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    for mount in mounts(grafana):
        if mount.bind and home.startswith(mount.target + "/"):
            path = (grafana.base / mount.source / home.removeprefix(mount.target + "/")).resolve()
            assert path.is_file(), f"home dashboard {home} is {path}, which does not exist"
            return
    pytest.fail(f"home dashboard {home} is in no mounted folder")


def test_images_are_pinned_to_the_stack_versions(project: Project) -> None:
    for service in project.services.values():
        reference = image_reference(service)
        if reference is None:
            assert "build" in service.spec, f"{service.name} has neither image nor build"
            continue
        repository, tag = reference
        assert tag, f"{service.name}: image {repository} has no tag"
        assert tag != "latest", f"{service.name}: image {repository}:latest is not pinned"
        assert repository in IMAGES, f"{service.name}: {repository} is not a stack component"
        assert tag == IMAGES[repository].tag, (
            f"{service.name}: {repository}:{tag}, expected {IMAGES[repository].tag}"
        )


def test_healthchecks_run_what_their_image_has(project: Project) -> None:
    for service in project.services.values():
        healthcheck = service.spec.get("healthcheck")
        if healthcheck is None:
            continue
        test = healthcheck["test"]
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"}, (
            f"{service.name}: healthcheck test should be a CMD or CMD-SHELL list"
        )
        available = executables_of(service)
        if test[0] == "CMD-SHELL":
            program, script = "sh", " ".join(test[1:])
        else:
            program = test[1]
            script = " ".join(test[2:]) if program in {"sh", "bash"} else ""
        assert program in available, (
            f"{service.name}: healthcheck runs {program!r}, but its image only has "
            f"{sorted(available)}"
        )
        for client in HTTP_CLIENTS:
            if re.search(rf"\b{client}\b", script):
                assert client in available, f"{service.name}: no {client} in its image"


def test_healthchecks_of_distroless_images_use_the_binary_itself() -> None:
    project = load_project(STACK_COMPOSE)
    assert project.services["loki"].spec["healthcheck"]["test"] == [
        "CMD",
        "/usr/bin/loki",
        "-health",
    ]
    assert project.services["tempo"].spec["healthcheck"]["test"] == ["CMD", "/tempo", "-health"]


def test_published_ports_listen_on_loopback_unless_told(project: Project) -> None:
    for service in project.services.values():
        for mapping in ports(service):
            where = mapping.host_ip or "all interfaces"
            assert mapping.host_ip == "${SANDBOX_BIND:-127.0.0.1}", (
                f"{service.name} publishes {mapping.host_port} on {where}"
            )
            assert interpolate_defaults(mapping.host_ip) == "127.0.0.1"


def test_published_host_ports_are_distinct(project: Project) -> None:
    seen: dict[str, str] = {}
    for service in project.services.values():
        for mapping in ports(service):
            assert mapping.host_port not in seen, (
                f"port {mapping.host_port}: {seen.get(mapping.host_port)} and {service.name}"
            )
            seen[mapping.host_port] = service.name


_SIZE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgG])?[bB]?")
_UNITS = {None: 1, "k": 2**10, "m": 2**20, "g": 2**30}


def memory_bytes(text: str) -> int:
    match = _SIZE.fullmatch(str(text))
    assert match, f"unreadable memory size {text!r}"
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower() if unit else None])


LAPTOP_BUDGET = 4 * 2**30
"""What the walkthrough's stages may take at most, every limit reached at once."""
STAGE5_BUDGET = LAPTOP_BUDGET + 256 * 2**20
"""Stage 5, the full stack, a little more: its node_exporter (64M) and cAdvisor (192M)
watch the machine rather than run the sandbox, and would take them from the services
otherwise. Limits are ceilings, not reservations: what stage 5 really holds is far
less, and its "Host and Containers" dashboard shows how much."""
BUDGETS = {"stage 5": STAGE5_BUDGET}


def test_every_service_has_a_memory_limit_and_all_fit_a_laptop(
    project: Project, request: pytest.FixtureRequest
) -> None:
    total = 0
    for service in project.services.values():
        limit = service.spec.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
        assert limit, f"{service.name} has no memory limit"
        total += memory_bytes(limit)
    budget = BUDGETS.get(request.node.callspec.params["project"], LAPTOP_BUDGET)
    assert total <= budget, f"the stack may take {total / 2**30:.2f} GiB"


def test_build_contexts_and_dockerfiles_exist(project: Project) -> None:
    for service in project.services.values():
        build = service.spec.get("build")
        if build is None:
            continue
        context = (service.base / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{service.name}: build context {context} missing"
        assert dockerfile.is_file(), f"{service.name}: {dockerfile.relative_to(ROOT)} missing"
        stages = re.findall(r"(?im)^FROM\s+(\S+)", dockerfile.read_text())
        assert stages and "python" in stages[-1], (
            f"{service.name}: the healthcheck expects a Python image, the final stage is "
            f"{stages[-1] if stages else 'missing'}"
        )


def test_dice_roller_service_is_wired_as_specified() -> None:
    service = load_project(ROOT_COMPOSE).services["dice-roller"]
    spec = service.spec
    assert spec["container_name"] == "dice-roller-stage1"
    assert spec["build"] == {"context": ".", "dockerfile": "dice-roller/Dockerfile"}
    assert [(p.host_port, p.container_port) for p in ports(service)] == [("8100", "8000")]
    environment = spec["environment"]
    assert environment["DICE_HOST"] == "0.0.0.0"
    assert environment["DICE_PORT"] == "8000"
    assert environment["OTEL_SERVICE_NAME"] == "dice-roller"
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://alloy:4318"
    assert environment["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert environment["OTEL_TRACES_EXPORTER"] == "otlp"
    # Hardened: nothing to write but /tmp, no capabilities, no privilege escalation.
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert spec["security_opt"] == ["no-new-privileges:true"]
    assert spec["tmpfs"] == ["/tmp"]
    assert depends_on(service) == {"alloy": "service_healthy"}


def test_traffic_generator_runs_only_with_its_profile() -> None:
    service = load_project(ROOT_COMPOSE).services["traffic-gen"]
    assert service.spec["profiles"] == ["traffic"]
    assert service.spec["build"] == {"context": ".", "dockerfile": "traffic-gen/Dockerfile"}
    assert service.spec["command"] == [
        "python",
        "generate_traffic.py",
        "--url",
        "http://dice-roller:8000",
    ]
    assert depends_on(service) == {"dice-roller": "service_healthy"}
    # Every other service but stage 2's starts with a plain `docker compose up`.
    others = load_project(ROOT_COMPOSE).services.values()
    assert [s.name for s in others if "profiles" in s.spec] == ["frontend", "traffic-gen"]


def test_the_frontend_runs_only_at_stage_2_in_front_of_the_dice_roller() -> None:
    service = load_project(ROOT_COMPOSE).services["frontend"]
    spec = service.spec
    assert spec["profiles"] == ["stage2"]
    assert spec["build"] == {"context": ".", "dockerfile": "frontend/Dockerfile"}
    assert spec["environment"]["FRONTEND_DICE_ROLLER_URL"] == "http://dice-roller:8000"
    assert spec["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://alloy:4318"
    assert spec["environment"]["FRONTEND_PORT"] == "8000"
    # Alloy scrapes it on the port it listens on (stack/alloy/config.alloy).
    assert spec["labels"]["sandbox.metrics.port"] == spec["environment"]["FRONTEND_PORT"]
    assert depends_on(service) == {"dice-roller": "service_healthy", "alloy": "service_healthy"}
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]


# --- The stages: files compose merges over the root one -------------------------------

HEALTHY = "service_healthy"
# What a stage file may change in a service an earlier file defines: maps, which compose
# merges key by key as `_merged` does. Compose appends to sequences (and merges ports and
# volumes by their keys), turns a list-form environment into a map before merging, and
# reads a later file's paths from the first file's folder; `_merged` does none of that.
MERGED_MAPS = frozenset({"environment", "labels", "depends_on"})


def test_stage_files_change_earlier_services_only_where_the_merge_is_composes() -> None:
    """Else the stage projects tested here would not be the ones compose runs."""
    defined = set(load_project(ROOT_COMPOSE).services)
    for number, path in sorted(STAGE_FILES.items()):
        document = load_stage_file(path)
        assert set(document) <= {"services", "volumes", "networks"}, f"{path.name}: {set(document)}"
        for name, override in document["services"].items():
            if name not in defined:
                defined.add(name)
                continue
            earlier, _ = compose_service(name, number - 1)
            for key, value in override.items():
                where = f"{path.name}: {name}.{key}"
                if is_reset(value):
                    # Compose ignores a reset's value: the attribute goes back to nothing.
                    assert value == [], f"{where}: !reset keeps nothing of {value}"
                    continue
                assert key in MERGED_MAPS, f"{where}: compose and `_merged` may differ here"
                assert isinstance(value, dict), f"{where}: write the map form"
                assert isinstance(earlier.get(key, {}), dict), f"{where}: the earlier is no map"


def test_each_stage_file_says_how_to_start_the_project_tested_here() -> None:
    """The command in each stage file's header names the files `load_stage` merges, in order."""
    for number, path in STAGE_FILES.items():
        (command,) = re.findall(r"(?m)^#\s+(docker compose (?:-f \S+ )+up\b.*)$", path.read_text())
        named = [ROOT / name for name in re.findall(r"-f (\S+)", command)]
        files = [file for file in stage(number).files if file != STACK_COMPOSE]
        assert files == named, f"{path.name}: {command}"


def test_a_stage_keeps_what_came_before_and_adds_to_it() -> None:
    """Maps merged key by key: the dice-roller keeps stage 1's environment and its wait
    for Alloy; stage 3's `profiles: !reset []` starts the frontend with a plain `up`."""
    stage1, stage3, stage5 = load_project(ROOT_COMPOSE), stage(3), stage(5)
    assert set(stage3.services) == set(stage1.services) | {"die-service"}
    assert set(stage5.services) == set(stage3.services) | {
        "postgres",
        "postgres-exporter",
        "node-exporter",
        "cadvisor",
    }
    assert set(stage5.volumes) == set(stage1.volumes) | {"postgres-data"}
    before, after = stage1.services["dice-roller"].spec, stage3.services["dice-roller"].spec
    assert after["environment"] == {
        **before["environment"],
        "DICE_DIE_SERVICE_URL": "http://die-service:8000",
    }
    assert depends_on(stage3.services["dice-roller"]) == {"alloy": HEALTHY, "die-service": HEALTHY}
    unchanged = set(before) - {"environment", "depends_on"}
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}
    assert stage1.services["frontend"].spec["profiles"] == ["stage2"]
    assert stage3.services["frontend"].spec["profiles"] == []
    assert depends_on(stage3.services["frontend"]) == {
        "dice-roller": HEALTHY,
        "alloy": HEALTHY,
        "die-service": HEALTHY,
    }
    # A service only a stage file defines builds from the root, as compose reads its paths.
    assert stage3.services["die-service"].base == ROOT


POSTGRES = "postgres"


def database_url(url: str, project: Project) -> dict[str, list[str]]:
    """The query of a URL that must name the postgres service's database, with the
    credentials its image is given to create (POSTGRES_USER, _PASSWORD, _DB)."""
    environment = project.services[POSTGRES].spec["environment"]
    parts = urlsplit(url)
    assert parts.scheme == "postgresql", url
    assert parts.username == environment["POSTGRES_USER"], url
    assert parts.password == environment["POSTGRES_PASSWORD"], url
    assert parts.hostname == POSTGRES, url
    assert str(parts.port) == IMAGE_PORTS[POSTGRES], url
    assert parts.path == f"/{environment['POSTGRES_DB']}", url
    return parse_qs(parts.query, keep_blank_values=True)


def test_stage_5_keeps_the_die_services_dice_in_postgres() -> None:
    die_service = stage(5).services["die-service"]
    url = die_service.spec["environment"]["DIE_SERVICE_DATABASE_URL"]
    assert database_url(url, stage(5)) == {}
    # It opens its pool at start: PostgreSQL must be accepting connections by then.
    assert depends_on(die_service) == {"alloy": HEALTHY, POSTGRES: HEALTHY}
    # Stage 3 keeps its dice in memory.
    assert "DIE_SERVICE_DATABASE_URL" not in stage(3).services["die-service"].spec["environment"]


def test_the_postgres_exporter_reads_the_same_database_and_alloy_scrapes_it() -> None:
    project = stage(5)
    exporter = project.services["postgres-exporter"]
    spec = exporter.spec
    # Inside the compose network, to a server with no certificate: no TLS.
    assert database_url(spec["environment"]["DATA_SOURCE_NAME"], project) == {
        "sslmode": ["disable"]
    }
    assert depends_on(exporter) == {POSTGRES: HEALTHY}
    # Alloy keeps containers labelled with a port and scrapes them there: the port the
    # image listens on, as nothing tells it another.
    label = "sandbox.metrics.port"
    alloy_label = "__meta_docker_container_label_" + re.sub(r"\W", "_", label)
    assert alloy_label in ALLOY_CONFIG.read_text(encoding="utf-8")
    reference = image_reference(exporter)
    assert reference is not None
    assert spec["labels"][label] == IMAGE_PORTS[reference[0]]
    assert "command" not in spec and "entrypoint" not in spec
    assert not ports(exporter), "Alloy reaches it on the compose network"


@pytest.mark.parametrize("name", ["node-exporter", "cadvisor"])
def test_the_host_watchers_are_scraped_by_alloy_where_their_images_listen(name: str) -> None:
    """Like the postgres-exporter: labelled with the port their image listens on, which
    no flag changes, and reached on the compose network only."""
    service = stage(5).services[name]
    reference = image_reference(service)
    assert reference is not None
    assert service.spec["labels"]["sandbox.metrics.port"] == IMAGE_PORTS[reference[0]]
    assert not any("listen" in str(arg) or "port" in str(arg) for arg in service.spec["command"])
    assert not ports(service) and "ports" not in service.spec
    assert name not in stage(3).services, "stage 5's alone"


def test_node_exporter_reads_the_host_where_compose_mounts_it() -> None:
    """Each --path flag names the target of the host path it stands for, mounted :ro."""
    service = stage(5).services["node-exporter"]
    flags = dict(str(arg).split("=", 1) for arg in service.spec["command"])
    host = {m.target: m.source for m in mounts(service) if m.bind and m.read_only}
    assert {flag: host.get(path) for flag, path in flags.items()} == {
        "--path.procfs": "/proc",
        "--path.sysfs": "/sys",
        "--path.rootfs": "/",
    }


def test_cadvisor_watches_dockers_containers_with_its_documented_mounts() -> None:
    """Its README's mounts at its own paths (/var/run narrowed to the socket), Docker's
    containers only, and metrics of the kinds the dashboard reads."""
    service = stage(5).services["cadvisor"]
    assert {(m.source, m.target) for m in mounts(service)} == {
        ("/", "/rootfs"),
        ("/var/run/docker.sock", "/var/run/docker.sock"),
        ("/sys", "/sys"),
        ("/var/lib/docker", "/var/lib/docker"),
        ("/dev/disk", "/dev/disk"),
    }
    flags = dict(str(arg).removeprefix("--").split("=", 1) for arg in service.spec["command"])
    assert flags["docker_only"] == "true"
    assert set(flags["enable_metrics"].split(",")) == {"cpu", "memory", "network"}
    assert flags["store_container_labels"] == "false", "a series per label: fewer series"
    assert "entrypoint" not in service.spec, "its entrypoint adds -logtostderr"


def test_postgres_is_reached_only_on_the_compose_network_and_stops_fast() -> None:
    project = stage(5)
    service = project.services[POSTGRES]
    spec = service.spec
    assert "ports" not in spec and not ports(service), "the sandbox's password, no host port"
    assert spec["networks"] == ["monitoring"]
    # Fast shutdown: sessions closed, then stop. SIGTERM would wait for the die-service's
    # pooled connections, until Docker's SIGKILL (a crash recovery at the next start).
    assert spec["stop_signal"] == "SIGINT"
    environment = spec["environment"]
    assert spec["healthcheck"]["test"] == [
        "CMD",
        "pg_isready",
        "-U",
        environment["POSTGRES_USER"],
        "-d",
        environment["POSTGRES_DB"],
    ]
    # The data folder of the image (its PGDATA) is a named volume: the dice survive `down`.
    assert "PGDATA" not in environment
    volumes = {m.target: m.source for m in mounts(service) if not m.bind}
    assert volumes == {"/var/lib/postgresql/data": "postgres-data"}


ALERTMANAGER_CONFIG = ROOT / "stack" / "alertmanager" / "alertmanager.yml"


def test_alertmanager_runs_the_repository_config_and_keeps_its_state() -> None:
    alertmanager = load_project(STACK_COMPOSE).services["alertmanager"]
    command = alertmanager.spec["command"]
    flags = dict(arg.split("=", 1) for arg in command)
    binds = {m.target: m for m in mounts(alertmanager) if m.bind}
    config = binds[flags["--config.file"]]
    assert config.read_only and (alertmanager.base / config.source).resolve() == ALERTMANAGER_CONFIG
    volumes = {m.target: m.source for m in mounts(alertmanager) if not m.bind}
    assert volumes[flags["--storage.path"]] == "alertmanager-data", "silences survive restarts"
    # One instance: no gossip port, no waiting for peers before notifying.
    assert flags["--cluster.listen-address"] == ""
    assert [(p.host_port, p.container_port) for p in ports(alertmanager)] == [("9093", "9093")]
    assert depends_on(alertmanager) == {"alert-receiver": "service_healthy"}


def test_alertmanager_notifies_the_alert_receiver_where_it_listens() -> None:
    project = load_project(STACK_COMPOSE)
    config = load_yaml(ALERTMANAGER_CONFIG)
    assert [r["name"] for r in config["receivers"]] == [config["route"]["receiver"]]
    [webhook] = config["receivers"][0]["webhook_configs"]
    assert webhook["send_resolved"] is True
    match = re.fullmatch(r"http://([\w-]+):(\d+)(/\S*)", webhook["url"])
    assert match, webhook["url"]
    host, port, path = match.groups()
    receiver = project.services[host]
    assert [(p.host_port, p.container_port) for p in ports(receiver)] == [(port, port)]
    dockerfile = (receiver.base / receiver.spec["build"]["context"]).resolve() / receiver.spec[
        "build"
    ]["dockerfile"]
    assert f"ALERT_RECEIVER_PORT={port}" in dockerfile.read_text(encoding="utf-8")
    assert path == "/alerts"


def test_notifications_come_within_half_a_minute() -> None:
    """A sandbox user who breaks the service looks for the notification right away."""
    route = load_yaml(ALERTMANAGER_CONFIG)["route"]
    assert parse_duration(route["group_wait"]) + parse_duration(route["group_interval"]) <= 30
    assert parse_duration(route["repeat_interval"]) >= 3600, "not a reminder every few minutes"


def test_the_alert_receiver_is_hardened_like_the_service() -> None:
    spec = load_project(STACK_COMPOSE).services["alert-receiver"].spec
    assert spec["build"] == {"context": "..", "dockerfile": "alert-receiver/Dockerfile"}
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert spec["security_opt"] == ["no-new-privileges:true"]
    assert "container_name" not in spec, "compose's own name: dice-sandbox-alert-receiver-1"


def compose_dry_run(action: str, **env: str) -> list[str]:
    """What `python3 tasks.py compose -n ACTION` would run, one command or request a line,
    on a machine with neither uv nor Docker (the command needs neither to say it)."""
    result = subprocess.run(
        [sys.executable, "tasks.py", "compose", "--dry-run", action],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_compose_stack_starts_the_stack_file_alone() -> None:
    """With --build: the stack file builds the alert-receiver's image."""
    assert compose_dry_run("stack") == ["docker compose -f stack/compose.yml up -d --build"]


def test_compose_up_builds_and_starts_everything() -> None:
    assert compose_dry_run("up") == ["docker compose up -d --build"]


def test_compose_commands_honour_compose() -> None:
    assert compose_dry_run("down", COMPOSE="podman compose") == [
        "podman compose --profile traffic down"
    ]


def test_compose_reload_reaches_each_reload_endpoint() -> None:
    lines = compose_dry_run("reload")
    for url in (
        "http://127.0.0.1:9090/-/reload",
        "http://127.0.0.1:12345/-/reload",
        "http://127.0.0.1:9093/-/reload",
        "http://127.0.0.1:3000/api/admin/provisioning/datasources/reload",
        "http://127.0.0.1:3000/api/admin/provisioning/dashboards/reload",
    ):
        assert any(line.startswith(f"POST {url}") for line in lines), (url, lines)
    # A specific bind address is where the ports are; 0.0.0.0 includes loopback.
    assert "POST http://10.1.2.3:9090/-/reload" in compose_dry_run(
        "reload", SANDBOX_BIND="10.1.2.3"
    )
    assert "POST http://127.0.0.1:9090/-/reload" in compose_dry_run(
        "reload", SANDBOX_BIND="0.0.0.0"
    )


MAKE_TARGET = re.compile(r"(?m)^([a-z][\w-]*):")


def compose_actions() -> set[str]:
    """The actions `python3 tasks.py compose` knows."""
    spec = importlib.util.spec_from_file_location("tasks_for_compose", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    return set(tasks.COMPOSE_ACTIONS)


def test_the_makefile_forwards_each_target_to_tasks_py() -> None:
    """`make X` still works for those used to it, and does nothing tasks.py does not."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (compose_targets,) = re.findall(r"(?m)^COMPOSE_TARGETS := (.*)$", makefile)
    assert set(compose_targets.split()) == compose_actions()
    assert "$(COMPOSE_TARGETS):\n\t@python3 tasks.py compose $@\n" in makefile
    recipes = re.findall(r"(?m)^\t(.*)$", makefile)
    assert all(recipe.startswith("@python3 tasks.py ") for recipe in recipes), recipes
    assert set(MAKE_TARGET.findall(makefile)) == {"help", "verify", "drill"}


GRAFANA_INIT = "grafana-init"
INIT_SCRIPT = ROOT / "stack" / "grafana" / "init-admin-password.sh"


def grafana_password_file() -> str:
    """Where Grafana reads its admin password: GF_SECURITY_ADMIN_PASSWORD__FILE."""
    environment = load_project(STACK_COMPOSE).services["grafana"].spec["environment"]
    path = environment.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
    assert path, "Grafana must read its admin password from a file (…__FILE)"
    return str(path)


def volume_holding(service: Service, path: str) -> str:
    """The named volume mounted in `service` that `path` lies in."""
    for mount in mounts(service):
        if not mount.bind and path.startswith(mount.target.rstrip("/") + "/"):
            return mount.source
    pytest.fail(f"{service.name}: {path} is in no named volume, so it would not survive")


def test_grafana_reads_its_admin_password_from_a_file_and_from_nowhere_else() -> None:
    grafana = load_project(STACK_COMPOSE).services["grafana"]
    environment = grafana.spec["environment"]
    # The image's run.sh refuses to start with both set; the plain one would be public.
    assert "GF_SECURITY_ADMIN_PASSWORD" not in environment
    assert environment["GF_SECURITY_ADMIN_USER"] == "admin"
    path = grafana_password_file()
    assert path.startswith("/")
    assert volume_holding(grafana, path) == "grafana-data"


def test_grafana_waits_for_its_password_file() -> None:
    """Started without the file, Grafana would read an empty password and use `admin`."""
    for load in PROJECTS.values():
        grafana = load().services["grafana"]
        assert depends_on(grafana).get(GRAFANA_INIT) == "service_completed_successfully"


def test_grafana_init_runs_the_repository_script_into_grafanas_volume() -> None:
    project = load_project(STACK_COMPOSE)
    init, grafana = project.services[GRAFANA_INIT], project.services["grafana"]
    assert image_reference(init) == image_reference(grafana)
    shell, script, target = init.spec["entrypoint"]
    assert shell == "sh"
    # The script is this repository's file, mounted read-only where the entrypoint runs it.
    (script_mount,) = [m for m in mounts(init) if m.bind]
    assert script_mount.target == script and script_mount.read_only
    assert (init.base / script_mount.source).resolve() == INIT_SCRIPT
    # It writes the very file Grafana reads, in the same volume at the same place.
    path = grafana_password_file()
    assert target == path
    assert volume_holding(init, target) == volume_holding(grafana, path)
    assert [m.target for m in mounts(init) if not m.bind] == [
        m.target for m in mounts(grafana) if m.source == "grafana-data"
    ]
    # Grafana's user owns the file (mode 0600), so init runs as that user.
    assert str(init.spec["user"]).split(":")[0] == "472"
    # GRAFANA_ADMIN_PASSWORD reaches the script, empty (so random) when unset.
    assert init.spec["environment"] == {"GRAFANA_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-}"}
    assert interpolate_defaults(init.spec["environment"]["GRAFANA_ADMIN_PASSWORD"]) == ""
    assert init.spec.get("restart") == "no"


_SHELL_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac"}
)
_SHELL_BUILTINS = frozenset(
    {"set", "exit", "echo", "printf", "[", "test", "umask", ":", "export", "unset", "read"}
)


def commands_of(script: str) -> set[str]:
    """The external commands a simple POSIX sh script runs: first words of each command,
    after dropping comments and quoted text, minus keywords, builtins and assignments."""
    text = re.sub(r"(?m)^\s*#.*$", "", script)
    text = re.sub(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"", "Q", text)
    text = text.replace("\\\n", " ")
    assert "$(" not in text and "`" not in text, "keep command substitutions out of the script"
    found = set()
    for part in re.split(r"\n|;|&&|\|\||\|", text):
        words = [w for w in part.split() if w not in _SHELL_KEYWORDS and w != "!"]
        if not words or re.fullmatch(r"\w+=.*", words[0]):
            continue
        found.add(words[0])
    return found - _SHELL_BUILTINS


def test_commands_of_finds_what_a_script_runs() -> None:
    script = 'set -eu\n# not run\nif [ -s "$f" ]; then\n    od -N 1 x | tr -d "a|b" >y\nfi\n'
    assert commands_of(script + "x=1\nmv a b && rm -f c\n") == {"od", "tr", "mv", "rm"}


def test_grafana_init_script_uses_only_what_its_image_has() -> None:
    init = load_project(STACK_COMPOSE).services[GRAFANA_INIT]
    available = executables_of(init)
    assert init.spec["entrypoint"][0] in available
    used = commands_of(INIT_SCRIPT.read_text(encoding="utf-8"))
    assert {"od", "tr", "mv"} <= used, f"unexpected parse of the script: {sorted(used)}"
    assert used <= available, f"not in {init.spec['image']}: {sorted(used - available)}"


def test_compose_grafana_password_prints_the_file_grafana_reads() -> None:
    (command,) = compose_dry_run("grafana-password")
    assert command == f"docker compose exec -T grafana cat {grafana_password_file()}"
    assert "cat" in IMAGES["grafana/grafana"].executables


def test_compose_reload_signs_in_with_the_stacks_password() -> None:
    """No password of its own: it asks Grafana's container for the one grafana-init wrote."""
    lines = compose_dry_run("reload", GRAFANA_ADMIN_PASSWORD="not-this-one")
    read = f"docker compose exec -T grafana cat {grafana_password_file()}"
    (asked,) = [i for i, line in enumerate(lines) if line.startswith(read)]
    grafana = [line for line in lines[asked + 1 :] if ":3000/" in line]
    assert len(grafana) == 2 and all(line.endswith("(user admin)") for line in grafana)
    tasks_py = (ROOT / "tasks.py").read_text(encoding="utf-8")
    assert not re.search(r"[\"']GRAFANA_ADMIN_PASSWORD[\"']", tasks_py), "never read"


# The admin password this project used to publish: it must not come back anywhere.
KNOWN_PASSWORDS = ("dice-sandbox-admin",)
DOCUMENTS = ("README.md", "SECURITY.md", "stack/README.md", "Makefile", "docs")


def test_no_known_admin_password_is_left_anywhere() -> None:
    files = [*COMPOSE_FILES, ROOT / ".github" / "workflows" / "stack.yml", INIT_SCRIPT]
    for name in DOCUMENTS:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.md")) if path.is_dir() else [path])
    for path in files:
        text = path.read_text(encoding="utf-8")
        for password in KNOWN_PASSWORDS:
            assert password not in text, f"{path.relative_to(ROOT)} still has {password!r}"
        # A compose default for the variable would be a published password again.
        assert not re.search(r"\$\{GRAFANA_ADMIN_PASSWORD:?-[^}]", text), (
            f"{path.relative_to(ROOT)} gives GRAFANA_ADMIN_PASSWORD a default"
        )


def test_amtool_accepts_the_alertmanager_config() -> None:
    """The pinned release's own checker, built with it (nativestack/build.py)."""
    result = subprocess.run(
        [built("alertmanager", "amtool"), "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 1 receivers" in result.stdout

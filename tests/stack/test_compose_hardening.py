"""Every container locked down, and SECURITY.md saying how, container by container.

Each container, of every stage, gets `no-new-privileges`, a process limit and a CPU
limit; each one drops every capability and has a read-only root filesystem; each
third-party image runs as the user its own Dockerfile sets, named in `user:`. The
exceptions, Alloy and stage 5's PostgreSQL, are listed with their reasons and checked for
them. What a container may then write is its volumes and tmpfs mounts: every path a
component is configured to write must be one of them, and its image's user must be able
to write there without capabilities. SECURITY.md's table is held to all of it. The stack
workflow checks what Docker made of stage 1's containers (tests/stack/container_hardening.py,
whose logic is tested here on canned answers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack import container_hardening
from tests.support.compose import (
    ROOT,
    ROOT_COMPOSE,
    Service,
    image_reference,
    load_project,
    load_stage,
    load_yaml,
    mounts,
)

# Every container of every stage: stage 5's project holds them all, and a stage file
# changes an earlier service's environment, labels and dependencies only
# (tests/stack/test_compose.py), none of what is checked here.
SERVICES = load_stage(5).services
THIRD_PARTY = sorted(name for name, s in SERVICES.items() if image_reference(s) is not None)
BUILT_HERE = sorted(name for name, s in SERVICES.items() if image_reference(s) is None)
SECURITY_MD = ROOT / "SECURITY.md"
WORKFLOW = ROOT / ".github" / "workflows" / "stack.yml"


@dataclass(frozen=True)
class ImageUser:
    """An image's USER and the data directory its Dockerfile prepares, with owner and mode
    (no data directory: an image that keeps nothing)."""

    user: str
    data_dir: str | None
    owner: tuple[int, int] = (0, 0)
    mode: int = 0


# From each image's Dockerfile at the pinned version.
IMAGE_USERS = {
    # prometheus/prometheus Dockerfile: WORKDIR /prometheus; chown -R nobody:nobody
    # /prometheus && chmod g+w /prometheus; USER nobody (65534:65534 in busybox).
    "prom/prometheus": ImageUser("65534:65534", "/prometheus", (65534, 65534), 0o775),
    # prometheus/alertmanager Dockerfile: mkdir -p /alertmanager; chown -R nobody:nobody;
    # chmod -R g+w /alertmanager; USER nobody.
    "prom/alertmanager": ImageUser("65534:65534", "/alertmanager", (65534, 65534), 0o775),
    # grafana/loki cmd/loki/Dockerfile: adduser --uid 10001 --gid 10001 loki;
    # COPY --chown=10001:10001 /loki; USER 10001.
    "grafana/loki": ImageUser("10001:10001", "/loki", (10001, 10001), 0o755),
    # grafana/tempo cmd/tempo/Dockerfile: COPY --chown=10001:10001 --chmod=0700 /var/tempo;
    # USER 10001:10001.
    "grafana/tempo": ImageUser("10001:10001", "/var/tempo", (10001, 10001), 0o700),
    # grafana/alloy Dockerfile: no USER (root); groupadd --gid 473 alloy; chown -R
    # alloy:alloy /var/lib/alloy && chmod -R 770 /var/lib/alloy.
    "grafana/alloy": ImageUser("0:0", "/var/lib/alloy/data", (473, 473), 0o770),
    # grafana/grafana Dockerfile: GF_UID 472, GF_GID 0; GF_PATHS_DATA /var/lib/grafana,
    # owned by grafana and group 0, chmod 777.
    "grafana/grafana": ImageUser("472:0", "/var/lib/grafana", (472, 0), 0o777),
    # docker-library/postgres 15/bookworm Dockerfile: no USER (root); useradd --uid 999
    # postgres (group 999); PGDATA /var/lib/postgresql/data made postgres:postgres, mode
    # 1777 ("replaced by 700 at runtime": the entrypoint chmods it).
    "postgres": ImageUser("0:0", "/var/lib/postgresql/data", (999, 999), 0o1777),
    # prometheus-community/postgres_exporter Dockerfile (v0.20.1): USER nobody; no data.
    "prometheuscommunity/postgres-exporter": ImageUser("65534:65534", None),
    # prometheus/node_exporter Dockerfile (v1.12.1): USER nobody; no data.
    "prom/node-exporter": ImageUser("65534:65534", None),
    # google/cadvisor deploy/Dockerfile (v0.60.5): no USER (root); no data (its history
    # is in memory, --storage_duration).
    "ghcr.io/google/cadvisor": ImageUser("0:0", None),
}

# Third-party services that do not run as their image's user, and why.
USER_EXCEPTIONS = {
    # The Docker socket belongs to root (and a `docker` group whose number differs from
    # host to host); group 473 owns the storage path; no capabilities (SECURITY.md).
    "alloy": "0:473",
    # cAdvisor asks Docker's socket for each container's name and reads /var/lib/docker
    # (mode 0710), both root's; root's uid without its capabilities, as Alloy is.
    "cadvisor": "0:0",
}


@dataclass(frozen=True)
class StepsDown:
    """A container whose image's entrypoint starts as root, does what only root may, and
    then becomes the image's own user for good."""

    user: str  # the name SECURITY.md gives it
    uid_gid: str
    cap_add: frozenset[str]


# Third-party services that start as root, with the capabilities that takes, and why.
STEPS_DOWN = {
    # docker-entrypoint.sh, as root: `find $PGDATA \! -user postgres -exec chown postgres`
    # on the volume (CHOWN; DAC_OVERRIDE and FOWNER for what root does not own), the same
    # for /var/run/postgresql, `chmod 00700 $PGDATA`, then `exec gosu postgres` (SETGID,
    # SETUID). Its root filesystem stays writable, as SECURITY.md's row says.
    "postgres": StepsDown(
        "postgres", "999:999", frozenset({"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"})
    ),
}

# Third-party services that keep nothing and write nowhere, and why.
WRITES_NOTHING = {
    "postgres-exporter": "answers each scrape with what it asks PostgreSQL; no data folder",
    "node-exporter": "answers each scrape with what it reads in the host's /proc and /sys",
    "cadvisor": "keeps a minute of history in memory; logs to stderr (-logtostderr)",
}


def spec_of(name: str) -> dict[str, Any]:
    return SERVICES[name].spec


def limits_of(spec: dict[str, Any]) -> dict[str, Any]:
    limits: dict[str, Any] = spec.get("deploy", {}).get("resources", {}).get("limits", {})
    return limits


def image_user(service: Service) -> ImageUser:
    reference = image_reference(service)
    assert reference is not None
    return IMAGE_USERS[reference[0]]


def data_dir(service: Service) -> str:
    directory = image_user(service).data_dir
    assert directory is not None, f"{service.name}: its image prepares no data directory"
    return directory


def dockerfile_user(service: Service) -> str:
    """The USER of the final stage of a service built here."""
    build = service.spec["build"]
    dockerfile = (service.base / build["context"]).resolve() / build["dockerfile"]
    final = re.split(r"(?im)^FROM\s", dockerfile.read_text(encoding="utf-8"))[-1]
    users = re.findall(r"(?im)^USER\s+(\S+)\s*$", final)
    assert users, f"{dockerfile} sets no USER in its final stage"
    return str(users[-1])


def effective_user(service: Service) -> str:
    """uid:gid the container runs as: compose's `user:`, else its image's USER."""
    if "user" in service.spec:
        return str(service.spec["user"])
    if image_reference(service) is None:
        return dockerfile_user(service)
    return image_user(service).user


def writable_paths(service: Service) -> dict[str, str]:
    """Each path the container may write, with what it is: a volume's name or "tmpfs"."""
    found = {m.target: m.source for m in mounts(service) if not m.read_only}
    for entry in service.spec.get("tmpfs", []):
        found[str(entry).split(":")[0]] = "tmpfs"
    return found


def under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


# --- Every container -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_container_has_no_new_privileges_and_cpu_and_process_limits(name: str) -> None:
    spec = spec_of(name)
    assert "no-new-privileges:true" in spec.get("security_opt", []), f"{name}: no-new-privileges"
    pids = spec.get("pids_limit")
    assert isinstance(pids, int) and 0 < pids <= 1024, f"{name}: pids_limit {pids!r}"
    cpus = limits_of(spec).get("cpus")
    assert cpus is not None and 0 < float(cpus) <= 2, f"{name}: cpus {cpus!r}"
    assert "cpus" not in spec, f"{name}: the CPU limit goes with memory, in deploy.resources"
    assert "pids" not in limits_of(spec), f"{name}: one process limit, pids_limit"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_container_drops_every_capability_and_has_a_read_only_root(name: str) -> None:
    spec = spec_of(name)
    assert spec.get("cap_drop") == ["ALL"], f"{name}: cap_drop: [ALL]"
    assert not spec.get("privileged"), f"{name}: privileged"
    if name in STEPS_DOWN:
        # Exactly what its entrypoint needs before it steps down, nothing more.
        assert set(spec.get("cap_add", [])) == STEPS_DOWN[name].cap_add, f"{name}: cap_add"
        return
    assert not spec.get("cap_add"), f"{name}: adds capabilities back"
    assert spec.get("read_only") is True, f"{name}: read_only: true"


# The tmpfs mounts beyond /tmp, and why.
MORE_TMPFS = {
    # The server's Unix socket and lock file (Debian's unix_socket_directories).
    "postgres": ["/tmp", "/var/run/postgresql"],
}


def test_only_services_that_talk_to_nothing_go_without_tmpfs() -> None:
    """A tmpfs /tmp for every long-running container; grafana-init writes only its file,
    the alert-receiver only its stdout, the three exporters (postgres-exporter,
    node-exporter, cadvisor) nothing at all."""
    without = sorted(name for name in SERVICES if not spec_of(name).get("tmpfs"))
    assert without == [
        "alert-receiver",
        "cadvisor",
        "grafana-init",
        "node-exporter",
        "postgres-exporter",
    ]
    for name in SERVICES:
        tmpfs = [str(t) for t in spec_of(name).get("tmpfs", [])]
        assert tmpfs in ([], ["/tmp"], MORE_TMPFS.get(name)), name


# --- Third-party images ----------------------------------------------------------------


def test_the_stack_has_the_third_party_images_it_should() -> None:
    assert THIRD_PARTY == [
        "alertmanager",
        "alloy",
        "cadvisor",
        "grafana",
        "grafana-init",
        "loki",
        "node-exporter",
        "postgres",
        "postgres-exporter",
        "prometheus",
        "tempo",
    ]
    assert set(BUILT_HERE) == {
        "alert-receiver",
        "dice-roller",
        "die-service",
        "frontend",
        "traffic-gen",
    }


@pytest.mark.parametrize("name", THIRD_PARTY)
def test_third_party_images_run_as_their_own_user_named_in_compose(name: str) -> None:
    service = SERVICES[name]
    user = service.spec.get("user")
    if name in STEPS_DOWN:
        # A `user:` would skip the entrypoint's root part: it starts as its image's root.
        assert user is None, f"{name}: user {user!r}, its entrypoint starts as root"
        assert image_user(service).user == "0:0"
        return
    assert isinstance(user, str) and re.fullmatch(r"\d+:\d+", user), (
        f"{name}: user: should be a numeric uid:gid, got {user!r}"
    )
    expected = USER_EXCEPTIONS.get(name, image_user(service).user)
    assert user == expected, f"{name}: user {user}, its image's is {image_user(service).user}"


def test_alloy_is_root_only_for_the_docker_socket_and_without_capabilities() -> None:
    alloy = SERVICES["alloy"]
    assert [m for m in mounts(alloy) if m.source == "/var/run/docker.sock" and m.read_only]
    uid, gid = alloy.spec["user"].split(":")
    assert uid == "0" and alloy.spec["cap_drop"] == ["ALL"]
    # Its group is the one that owns its storage path (checked for writing below).
    assert int(gid) == image_user(alloy).owner[1]
    # Every other service is someone other than root, at the latest once started.
    for name, service in SERVICES.items():
        if name in STEPS_DOWN:
            assert STEPS_DOWN[name].uid_gid.split(":")[0] != "0", name
        elif name not in USER_EXCEPTIONS:
            assert effective_user(service).split(":")[0] != "0", name


def test_the_host_watchers_read_the_host_read_only_and_without_capabilities() -> None:
    """node_exporter and cAdvisor see the host's /proc, /sys and / (and cAdvisor Docker's
    socket and state), all read-only, with no capability, no `privileged`, no device and
    none of the host's namespaces: cAdvisor's README runs it `--privileged` with
    /dev/kmsg, which would give it every capability and the kernel's log; without them
    it goes without out-of-memory events, which the dashboard does not read."""
    for name in ("node-exporter", "cadvisor"):
        service = SERVICES[name]
        spec = service.spec
        host = [m for m in mounts(service) if m.bind and m.source.startswith("/")]
        assert host and all(m.read_only for m in host), name
        assert spec["cap_drop"] == ["ALL"] and not spec.get("cap_add"), name
        assert not spec.get("privileged") and not spec.get("devices"), name
        for namespace in ("pid", "network_mode", "ipc", "userns_mode", "cgroup"):
            assert namespace not in spec, f"{name}: {namespace}: {spec[namespace]}"
    # node_exporter is `nobody`; cAdvisor root's uid only (USER_EXCEPTIONS).
    assert effective_user(SERVICES["node-exporter"]) == "65534:65534"
    assert [m.source for m in mounts(SERVICES["cadvisor"])].count("/var/run/docker.sock") == 1


def can_write(user: str, owner: tuple[int, int], mode: int) -> bool:
    """Without capabilities (no CAP_DAC_OVERRIDE, root included), by the mode bits alone."""
    uid, gid = (int(part) for part in user.split(":"))
    if uid == owner[0]:
        return bool(mode & 0o200)
    if gid == owner[1]:
        return bool(mode & 0o020)
    return bool(mode & 0o002)


def test_can_write_knows_root_without_capabilities_is_just_a_uid() -> None:
    assert not can_write("0:0", (473, 473), 0o770)
    assert can_write("0:473", (473, 473), 0o770)
    assert not can_write("10001:0", (10001, 10001), 0o500)
    assert can_write("1:1", (2, 2), 0o777)


@pytest.mark.parametrize("name", THIRD_PARTY)
def test_each_image_user_can_write_the_volume_on_its_data_directory(name: str) -> None:
    """A named volume starts as a copy of the image's directory: its owner and mode."""
    service = SERVICES[name]
    image = image_user(service)
    volumes = {m.target: m for m in mounts(service) if not m.bind}
    if name in WRITES_NOTHING:
        assert image.data_dir is None and not volumes, f"{name}: {sorted(volumes)}"
        return
    directory = data_dir(service)
    assert directory in volumes, f"{name}: no volume on {directory}"
    assert not volumes[directory].read_only
    # One that steps down writes it as the user it becomes.
    user = STEPS_DOWN[name].uid_gid if name in STEPS_DOWN else effective_user(service)
    assert can_write(user, image.owner, image.mode), (
        f"{name}: {user} cannot write {directory} (owner {image.owner}, mode {image.mode:o})"
    )


def flag(service: Service, name: str) -> str:
    for arg in service.spec.get("command", []):
        if str(arg).startswith(f"{name}="):
            return str(arg).split("=", 1)[1]
    pytest.fail(f"{service.name}: no {name} in its command")


def config_file(service: Service, target: str) -> dict[str, Any]:
    for mount in mounts(service):
        if mount.bind and mount.target == target:
            return load_yaml((service.base / mount.source).resolve())
    pytest.fail(f"{service.name}: nothing mounted at {target}")


def configured_write_paths(name: str) -> list[str]:
    """Where each component is told to write, read from its command and config."""
    service = SERVICES[name]
    if name == "prometheus":
        return [flag(service, "--storage.tsdb.path")]
    if name in ("alertmanager", "alloy"):
        return [flag(service, "--storage.path")]
    if name == "loki":
        config = config_file(service, flag(service, "-config.file"))
        common = config["common"]
        filesystem = common["storage"]["filesystem"]
        return [
            common["path_prefix"],
            filesystem["chunks_directory"],
            filesystem["rules_directory"],
            config["compactor"]["working_directory"],
        ]
    if name == "tempo":
        config = config_file(service, flag(service, "-config.file"))
        trace = config["storage"]["trace"]
        generator = config["metrics_generator"]["storage"]["path"]
        return [trace["wal"]["path"], trace["local"]["path"], generator]
    if name == "grafana":
        environment = service.spec["environment"]
        return [data_dir(service), environment["GF_SECURITY_ADMIN_PASSWORD__FILE"]]
    if name == "grafana-init":
        return [service.spec["entrypoint"][-1]]
    if name == "postgres":
        # PGDATA, the image's unless compose sets it; the socket folder; psql's and the
        # entrypoint's here-documents in /tmp.
        pgdata = service.spec["environment"].get("PGDATA", data_dir(service))
        return [pgdata, "/var/run/postgresql", "/tmp"]
    return []


@pytest.mark.parametrize("name", THIRD_PARTY)
def test_every_path_a_component_writes_is_a_volume_or_tmpfs(name: str) -> None:
    paths = configured_write_paths(name)
    if name in WRITES_NOTHING:
        assert paths == [] and writable_paths(SERVICES[name]) == {}, name
        return
    assert paths, f"{name}: where does it write?"
    writable = list(writable_paths(SERVICES[name]))
    for path in paths:
        assert under(path, writable), f"{name} writes {path}, which is read-only ({writable})"


def test_grafana_keeps_its_bundled_plugins_on_a_read_only_root() -> None:
    """Grafana 13's auto-update of bundled data source plugins stops the running plugin,
    then fails to replace it under the read-only /usr/share/grafana (grafana/grafana#132528)."""
    grafana = spec_of("grafana")
    assert grafana["read_only"] is True
    assert grafana["environment"]["GF_PLUGINS_PREINSTALL_AUTO_UPDATE"] == "false"
    # Plugin downloads are staged in /tmp, then unpacked into the volume.
    assert "/tmp" in grafana["tmpfs"]


# --- SECURITY.md -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    runs_as: str
    root_filesystem: str
    may_write: str
    limits: str
    why: str


def security_table() -> dict[str, Row]:
    lines = SECURITY_MD.read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Container | Runs as |"))
    columns = [cell.strip() for cell in lines[header].strip("|").split("|")]
    assert columns == ["Container", "Runs as", "Root filesystem", "May write", "Limits", "Why"]
    rows = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == len(columns), line
        name = re.findall(r"`([^`]+)`", cells[0])[0]
        rows[name] = Row(*cells[1:])
    return rows


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def test_security_md_has_a_row_for_every_container() -> None:
    assert sorted(security_table()) == sorted(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_security_md_row_matches_compose(name: str) -> None:
    row = security_table()[name]
    service = SERVICES[name]
    spec = service.spec
    if name in STEPS_DOWN:
        assert row.runs_as.startswith("root at start"), row.runs_as
        assert backticked(row.runs_as)[0] == STEPS_DOWN[name].user, row.runs_as
        for capability in sorted(STEPS_DOWN[name].cap_add):
            assert f"`{capability}`" in row.why, f"{name}: say why it needs {capability}"
    else:
        assert backticked(row.runs_as)[0] == effective_user(service), row.runs_as
    expected_root = "read-only" if spec.get("read_only") else "writable"
    assert row.root_filesystem == expected_root
    writable = writable_paths(service)
    documented = [token for token in backticked(row.may_write) if token.startswith("/")]
    assert sorted(documented) == sorted(writable), f"{name}: SECURITY.md says {row.may_write}"
    if not writable:
        assert row.may_write == "nothing"
    for path, source in writable.items():
        kind = "(tmpfs)" if source == "tmpfs" else f"(volume `{source}`)"
        assert f"`{path}` {kind}" in row.may_write, f"{name}: say what {path} is: {kind}"
    limits = limits_of(spec)
    assert row.limits == f"{limits['memory']}, {limits['cpus']} CPU, {spec['pids_limit']} processes"
    assert row.why, f"{name}: say why"


def test_security_md_says_why_alloy_is_root_and_why_grafana_keeps_its_plugins() -> None:
    text = " ".join(SECURITY_MD.read_text(encoding="utf-8").split())
    assert "**Alloy runs as uid 0, with no capabilities.**" in text
    assert "**cAdvisor runs as uid 0, with no capabilities, not privileged.**" in text
    assert '`GF_PLUGINS_PREINSTALL_AUTO_UPDATE: "false"`' in text
    assert "grafana/grafana#132528" in text


# --- The workflow's check of the running containers ---------------------------------


def compose_config_form(name: str) -> dict[str, Any]:
    """A service as `docker compose config --format json` prints it (numbers as numbers)."""
    spec = yaml.safe_load(yaml.safe_dump(spec_of(name)))
    limits = spec["deploy"]["resources"]["limits"]
    limits["cpus"] = float(limits["cpus"])
    assert isinstance(spec, dict)
    return spec


def inspected_as_docker_would(name: str) -> dict[str, Any]:
    """What `docker inspect` shows for a container created from the service."""
    spec = spec_of(name)
    return {
        "Config": {"User": spec.get("user", "")},
        "HostConfig": {
            "ReadonlyRootfs": spec["read_only"],
            "CapAdd": None,
            "CapDrop": spec["cap_drop"],
            "SecurityOpt": spec["security_opt"],
            "PidsLimit": spec["pids_limit"],
            "NanoCpus": round(float(limits_of(spec)["cpus"]) * 1e9),
            "Tmpfs": {str(path): "" for path in spec.get("tmpfs", [])},
        },
    }


# The workflow starts stage 1 (`docker compose up`), and its check knows no exception
# but Alloy's user: it would report postgres's writable root and added capabilities.
WORKFLOW_SERVICES = sorted(load_project(ROOT_COMPOSE).services)


@pytest.mark.parametrize("name", WORKFLOW_SERVICES)
def test_the_workflow_check_accepts_a_container_made_as_compose_says(name: str) -> None:
    problems = container_hardening.container_problems(
        compose_config_form(name), inspected_as_docker_would(name)
    )
    assert problems == []


def test_the_workflow_check_reports_each_difference() -> None:
    spec = compose_config_form("loki")
    inspected = inspected_as_docker_would("loki")
    host = inspected["HostConfig"]
    host |= {"ReadonlyRootfs": False, "CapDrop": ["NET_RAW"], "CapAdd": ["CHOWN"]}
    host |= {"SecurityOpt": [], "PidsLimit": 0, "NanoCpus": 0, "Tmpfs": None}
    inspected["Config"]["User"] = ""
    problems = " ".join(container_hardening.container_problems(spec, inspected))
    for words in ("root filesystem", "CapDrop", "CapAdd", "no-new-privileges", "process"):
        assert words in problems
    for words in ("CPU limit", "user ''", "tmpfs"):
        assert words in problems


def proc_status(uid: int, gid: int, capabilities: str = "0" * 16, nnp: str = "1") -> str:
    return (
        f"Name:\tloki\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\n"
        f"CapInh:\t{'0' * 16}\nCapPrm:\t{capabilities}\nCapEff:\t{capabilities}\n"
        f"CapBnd:\t{capabilities}\nCapAmb:\t{'0' * 16}\nNoNewPrivs:\t{nnp}\n"
    )


def test_the_workflow_check_reads_the_process_as_the_kernel_sees_it() -> None:
    check = container_hardening.process_problems
    parse = container_hardening.parse_status
    loki, alloy = compose_config_form("loki"), compose_config_form("alloy")
    assert check(loki, parse(proc_status(10001, 10001))) == []
    assert check(alloy, parse(proc_status(0, 473))) == []
    assert check(loki, parse(proc_status(0, 0))) == ["runs as 0:0, compose says 10001:10001"]
    # Root with Docker's default capabilities, and without no_new_privs.
    problems = check(alloy, parse(proc_status(0, 473, "00000000a80425fb", "0")))
    assert [p.split()[0] for p in problems] == ["CapPrm", "CapEff", "CapBnd", "NoNewPrivs"]
    # A service without `user:` (ours: the image's USER) may be anyone but root.
    dice = compose_config_form("dice-roller")
    assert check(dice, parse(proc_status(10001, 10001))) == []
    assert check(dice, parse(proc_status(0, 0))) == ["runs as root, and compose names no user"]


def test_the_workflow_check_reads_both_forms_of_compose_ps() -> None:
    lines = '{"ID": "a", "Service": "loki"}\n{"ID": "b", "Service": "tempo"}'
    array = '[{"ID": "a", "Service": "loki"}]'
    assert [c["ID"] for c in container_hardening.parse_ps(lines)] == ["a", "b"]
    assert [c["Service"] for c in container_hardening.parse_ps(array)] == ["loki"]
    assert container_hardening.parse_ps("\n") == []


def workflow_commands() -> list[str]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    (job,) = document["jobs"].values()
    return [str(step.get("run", "")) for step in job["steps"]]


def test_the_stack_workflow_checks_the_running_containers_and_their_logs() -> None:
    commands = workflow_commands()
    up = next(i for i, c in enumerate(commands) if "docker compose up" in c)
    check = commands.index("python3 -m tests.stack.container_hardening")
    assert check == up + 1, "right after the stack is up, before anything else runs in it"
    # The module runs on the runner's Python: the standard library only.
    source = Path(container_hardening.__file__).read_text(encoding="utf-8")
    imports = set(re.findall(r"(?m)^(?:from|import) (\w+)", source))
    standard = {"__future__", "collections", "json", "pathlib", "subprocess", "sys", "typing"}
    assert imports <= standard
    # Once everything has run: nothing was refused a write to its root filesystem.
    (logs,) = [c for c in commands if "read-only file system" in c]
    assert "docker compose logs" in logs and commands.index(logs) > commands.index(
        "python3 tasks.py compose reload"
    )
    # Grafana's data sources work with their plugins on a read-only root.
    (grafana,) = [c for c in commands if "/api/datasources/uid/" in c]
    for uid in ("prometheus", "loki", "tempo"):
        assert uid in grafana

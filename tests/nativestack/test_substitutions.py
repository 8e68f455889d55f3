"""The native run changes compose's services only as docs/native-stack.md lists."""

from __future__ import annotations

import difflib
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from die_service.settings import load_settings

from nativestack.stack import NOT_NATIVE, STAGE_HOSTS
from nativestack.substitutions import (
    ROOT,
    compose_service,
    image_runtime,
    mounts,
    native_command,
    receiver_command,
    service_command,
    translate_text,
)
from tests.support.compose import load_stage

STACK = ROOT / "stack"


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old line, new line) for each line that differs."""
    pairs: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines())
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            assert tag == "replace" and i2 - i1 == j2 - j1, "lines were added or removed"
            pairs += zip(before.splitlines()[i1:i2], after.splitlines()[j1:j2], strict=True)
    return pairs


def test_prometheus_runs_compose_command_on_the_shipped_config_itself(tmp_path: Path) -> None:
    command = native_command("prometheus", Path("/bin/prometheus"), tmp_path, tmp_path / "d.sock")
    compose_args = compose_service("prometheus")[0]["command"]
    assert command.written == {}, "prometheus.yml names no container path: used as it is"
    assert command.argv[1:] == [
        arg.replace(
            "/etc/prometheus/prometheus.yml", str(STACK / "prometheus" / "prometheus.yml")
        ).replace("=/prometheus", f"={tmp_path / 'volumes' / 'prometheus-data'}")
        for arg in compose_args
    ]


def test_loki_config_changes_only_in_its_storage_paths(tmp_path: Path) -> None:
    command = native_command("loki", Path("/bin/loki"), tmp_path, tmp_path / "d.sock")
    [(copy, text)] = command.written.items()
    assert command.argv == ["/bin/loki", f"-config.file={copy}"]
    volume = tmp_path / "volumes" / "loki-data"
    original = (STACK / "loki" / "config.yaml").read_text(encoding="utf-8")
    for old, new in changed_lines(original, text):
        assert new == old.replace("/loki", str(volume)), (old, new)
    assert len(changed_lines(original, text)) == original.count(" /loki")


def test_alloy_config_changes_only_in_the_docker_socket(tmp_path: Path) -> None:
    socket = tmp_path / "docker.sock"
    command = native_command("alloy", Path("/bin/alloy"), tmp_path, socket)
    [(copy, text)] = command.written.items()
    original = (STACK / "alloy" / "config.alloy").read_text(encoding="utf-8")
    changes = changed_lines(original, text)
    assert changes and all(
        new == old.replace("unix:///var/run/docker.sock", f"unix://{socket}")
        for old, new in changes
    )
    assert "http://loki:3100/loki/api/v1/push" in text, "URLs keep their paths"
    assert str(copy) in command.argv
    assert f"--storage.path={tmp_path / 'volumes' / 'alloy-data'}" in command.argv


def test_a_path_counts_only_where_it_starts_a_value(tmp_path: Path) -> None:
    table = mounts("loki", tmp_path, tmp_path / "d.sock")
    volume = str(tmp_path / "volumes" / "loki-data")
    assert translate_text("path_prefix: /loki", table) == f"path_prefix: {volume}"
    assert translate_text('dir: "/loki/chunks"', table) == f'dir: "{volume}/chunks"'
    for untouched in ("http://loki:3100/loki/api", "/lokinet", "/var/loki", "x/loki"):
        assert translate_text(untouched, table) == untouched


def test_the_service_runs_with_composes_environment(tmp_path: Path) -> None:
    command = service_command(tmp_path, tmp_path / "d.sock")
    environment = compose_service("dice-roller")[0]["environment"]
    flags_file = str(STACK / "flags" / "flags.json")
    assert command.env == {
        k: flags_file if k == "DICE_FLAGS_FILE" else str(v) for k, v in environment.items()
    }
    assert command.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://alloy:4318"
    assert re.search(r"python", command.argv[0]) and command.argv[1:] == ["-m", "dice_roller"]


def test_alertmanager_runs_compose_command_on_the_shipped_config_itself(tmp_path: Path) -> None:
    command = native_command("alertmanager", Path("/bin/am"), tmp_path, tmp_path / "d.sock")
    compose_args = compose_service("alertmanager")[0]["command"]
    assert command.written == {}, "alertmanager.yml names no container path: used as it is"
    config = STACK / "alertmanager" / "alertmanager.yml"
    assert command.argv[1:] == [
        arg.replace("/etc/alertmanager/alertmanager.yml", str(config)).replace(
            "=/alertmanager", f"={tmp_path / 'volumes' / 'alertmanager-data'}"
        )
        for arg in compose_args
    ]
    assert "--cluster.listen-address=" in command.argv, "an empty value stays empty"


def test_the_alert_receiver_runs_what_its_image_runs() -> None:
    command = receiver_command()
    env, cmd = image_runtime(ROOT / "alert-receiver" / "Dockerfile")
    assert cmd == ["python", "-m", "alert_receiver"]
    assert command.argv == [sys.executable, "-m", "alert_receiver"]
    assert {k: command.env[k] for k in env} == env
    assert command.env["ALERT_RECEIVER_HOST"] == "0.0.0.0"
    # Where Alertmanager's shipped config sends its notifications.
    config = yaml.safe_load((STACK / "alertmanager" / "alertmanager.yml").read_text())
    [webhook] = config["receivers"][0]["webhook_configs"]
    assert webhook["url"] == f"http://alert-receiver:{command.env['ALERT_RECEIVER_PORT']}/alerts"
    found = subprocess.run(
        [*command.argv[:1], "-c", "import alert_receiver; print(alert_receiver.__file__)"],
        env={"PYTHONPATH": command.env["PYTHONPATH"]},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.stdout.strip() == str(ROOT / "alert-receiver" / "alert_receiver" / "__init__.py")


def test_image_runtime_reads_the_final_stage(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'FROM python:3 AS build\nENV STAGE=build\nCMD ["python", "build.py"]\n'
        "FROM python:3\n"
        'ENV A=1 \\\n    B="two words" \\\n    C=3\n'
        'HEALTHCHECK --interval=10s \\\n    CMD ["python", "-c", "check"]\n'
        'CMD ["python", "-m", "app"]\n',
        encoding="utf-8",
    )
    assert image_runtime(dockerfile) == (
        {"A": "1", "B": "two words", "C": "3"},
        ["python", "-m", "app"],
    )


def test_the_service_reads_the_repositorys_flag_folder_where_compose_mounts_it(
    tmp_path: Path,
) -> None:
    """Compose mounts the folder (an atomic replace of the file stays visible); the
    native service reads the same folder, so an edit there changes it live too."""
    [flags] = mounts("dice-roller", tmp_path, tmp_path / "d.sock")
    assert (flags.target, flags.source, flags.is_file_bind) == (
        "/etc/dice-roller/flags",
        STACK / "flags",
        False,
    )
    container_path = compose_service("dice-roller")[0]["environment"]["DICE_FLAGS_FILE"]
    assert container_path.startswith(flags.target + "/")
    native_path = Path(service_command(tmp_path, tmp_path / "d.sock").env["DICE_FLAGS_FILE"])
    assert native_path == STACK / "flags" / "flags.json" and native_path.is_file()


def test_stage_5_adds_postgresql_stopped_by_sigint_as_compose_stops_it() -> None:
    spec, _ = compose_service("postgres", 5)
    assert signal.Signals[spec["stop_signal"]] == signal.SIGINT, "PostgreSQL's fast shutdown"
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(spec["environment"])
    with pytest.raises(KeyError):
        compose_service("postgres", 3)
    with pytest.raises(KeyError):
        compose_service("postgres-exporter", 3)


def test_stage_5s_die_service_is_stage_3s_with_the_database_postgres_has() -> None:
    stage3, _ = compose_service("die-service", 3)
    stage5, _ = compose_service("die-service", 5)
    assert "DIE_SERVICE_DATABASE_URL" not in stage3["environment"]
    url = stage5["environment"].pop("DIE_SERVICE_DATABASE_URL")
    assert stage5["environment"] == stage3["environment"], "stage 3's settings kept"
    assert {k: v for k, v in stage5.items() if k not in ("environment", "depends_on")} == {
        k: v for k, v in stage3.items() if k not in ("environment", "depends_on")
    }
    assert set(stage5["depends_on"]) == {*stage3["depends_on"], "postgres"}

    postgres = compose_service("postgres", 5)[0]["environment"]
    user, password, database = (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert url == f"postgresql://{user}:{password}@postgres:5432/{database}"
    assert load_settings({"DIE_SERVICE_DATABASE_URL": url}).database_url == url


def test_the_native_die_service_of_stage_5_gets_the_database_url(tmp_path: Path) -> None:
    env = service_command(tmp_path, tmp_path / "d.sock", "die-service", 5).env
    assert env["DIE_SERVICE_DATABASE_URL"].startswith("postgresql://")
    stage3 = service_command(tmp_path, tmp_path / "d.sock", "die-service", 3).env
    assert "DIE_SERVICE_DATABASE_URL" not in stage3
    assert {k: env[k] for k in stage3} == stage3


def test_stage_5s_node_exporter_reads_the_hosts_own_proc_sys_and_root(tmp_path: Path) -> None:
    """Compose's host mounts translate to the host paths themselves: natively, as in
    compose, node_exporter reads the host's /proc, /sys and /."""
    command = native_command(
        "node-exporter", Path("/bin/node_exporter"), tmp_path, tmp_path / "d.sock", stage=5
    )
    assert command.argv == [
        "/bin/node_exporter",
        "--path.procfs=/proc",
        "--path.sysfs=/sys",
        "--path.rootfs=/",
    ]
    with pytest.raises(KeyError):
        compose_service("node-exporter", 3)


def test_the_native_stage_5_runs_every_compose_service_but_cadvisor() -> None:
    """What it leaves out is named, with why (nativestack/stack.py), and it is only
    cAdvisor: Grafana aside, which no stage runs natively."""
    compose = set(load_stage(5).services) - {"grafana", "grafana-init", "traffic-gen"}
    assert {"cadvisor"} == NOT_NATIVE
    assert set(STAGE_HOSTS[5]) == compose - NOT_NATIVE

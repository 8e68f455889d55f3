"""Alloy: the config as the real Alloy reads it, and its addresses against the rest of the stack.

`alloy validate` and `alloy fmt`, from the Alloy that compose pins (built from its Go
module, nativestack/build.py), check the syntax, that every component exists and
that every reference names a real export. What the pipeline does at run time (the
containers it keeps, the labels it writes, where lines and spans arrive) is
tests/nativestack/live's to show. The tests here tie the config's addresses to the other
containers' settings.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.compose import (
    ROOT,
    ROOT_COMPOSE,
    STACK_COMPOSE,
    load_project,
    load_yaml,
    mounts,
    ports,
)
from tests.support.native import built
from tests.support.paths import ALLOY_CONFIG


def alloy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [built("alloy"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def config() -> str:
    return ALLOY_CONFIG.read_text(encoding="utf-8")


def attribute(name: str, text: str | None = None) -> list[str]:
    """Every string value of attribute `name` (`name = "value"`) in the config."""
    return re.findall(rf'^\s*{name}\s*=\s*"([^"]*)"', text or config(), flags=re.M)


def test_alloy_validates_the_config() -> None:
    result = alloy("validate", str(ALLOY_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_catches_a_reference_to_a_missing_component(tmp_path: Path) -> None:
    """The check above can fail: a typo in a reference is refused, naming the line."""
    broken = tmp_path / "config.alloy"
    broken.write_text(config().replace("loki.write.loki.receiver", "loki.write.lokii.receiver"))
    result = alloy("validate", str(broken))
    assert result.returncode != 0
    assert "loki.write.lokii.receiver" in result.stderr


def test_the_config_is_formatted_as_alloy_fmt_writes_it() -> None:
    result = alloy("fmt", str(ALLOY_CONFIG))
    assert result.returncode == 0, result.stderr
    assert result.stdout == config(), "run `alloy fmt -w stack/alloy/config.alloy`"


def test_alloy_reads_the_docker_socket_compose_mounts() -> None:
    service = load_project(STACK_COMPOSE).services["alloy"]
    socket = next(m for m in mounts(service) if m.source == "/var/run/docker.sock")
    hosts = attribute("host")
    assert hosts and set(hosts) == {f"unix://{socket.target}"}


def test_discovery_keeps_to_this_compose_project() -> None:
    project = load_yaml(ROOT_COMPOSE)["name"]
    assert re.search(
        r'filter\s*\{\s*name\s*=\s*"label"\s*values\s*=\s*\["com\.docker\.compose\.project='
        + re.escape(project)
        + r'"\]',
        config(),
    )


def test_logs_go_to_lokis_push_api_and_traces_to_tempos_grpc_port() -> None:
    loki = load_yaml(ROOT / "stack" / "loki" / "config.yaml")
    prometheus = load_project(STACK_COMPOSE).services["prometheus"]
    assert "--web.enable-remote-write-receiver" in prometheus.spec["command"]
    assert attribute("url") == [
        f"http://loki:{loki['server']['http_listen_port']}/loki/api/v1/push",
        # The service graph and the scrapes of later stages' services (remote write).
        "http://prometheus:9090/api/v1/write",
    ]
    tempo = load_yaml(ROOT / "stack" / "tempo" / "config.yaml")
    tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert f"tempo:{tempo_grpc.rsplit(':', 1)[1]}" in attribute("endpoint")


def test_otlp_receiver_listens_where_the_service_and_the_host_send() -> None:
    endpoints = attribute("endpoint")
    assert {"0.0.0.0:4317", "0.0.0.0:4318"} <= set(endpoints)
    environment = load_project(ROOT_COMPOSE).services["dice-roller"].spec["environment"]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://alloy:4318"
    service = load_project(STACK_COMPOSE).services["alloy"]
    published = {p.container_port for p in ports(service)}
    assert {"4317", "4318", "12345"} <= published


def test_the_ui_listens_beyond_localhost_on_its_published_port() -> None:
    command = load_project(STACK_COMPOSE).services["alloy"].spec["command"]
    assert command[0] == "run"
    assert "--server.http.listen-addr=0.0.0.0:12345" in command
    assert command[-1] == "/etc/alloy/config.alloy"
    service = load_project(STACK_COMPOSE).services["alloy"]
    assert any(m.target == command[-1] and m.read_only for m in mounts(service))

"""Alloy: its components connected to each other, and to the rest of the stack.

Every reference between components must name one that exists, with an export it
really has; every component must be used; and the addresses Alloy reads from and
writes to must be the ones the other containers listen on.
"""

from __future__ import annotations

import pytest

from tests.stack.alloy_syntax import AlloySyntaxError, Block, parse, relabel, relabel_rules
from tests.stack.compose import (
    ROOT,
    ROOT_COMPOSE,
    STACK_COMPOSE,
    load_project,
    load_yaml,
    mounts,
    ports,
)
from tests.support.paths import ALLOY_CONFIG

# Components this config may use and what each exports, from the component reference
# of Alloy v1.18.1 (docs/sources/reference/components/<group>/<name>.md, "Exported fields").
EXPORTS = {
    "discovery.docker": {"targets"},
    "discovery.relabel": {"output", "rules"},
    "loki.source.docker": set(),
    "loki.process": {"receiver"},
    "loki.write": {"receiver"},
    "otelcol.receiver.otlp": set(),
    "otelcol.processor.batch": {"input"},
    "otelcol.exporter.otlp": {"input"},
}
# Components that start a pipeline: nothing has to refer to them.
SOURCES = {"loki.source.docker", "otelcol.receiver.otlp"}


def components() -> dict[str, Block]:
    """Top-level blocks by `name.label`, e.g. `loki.write.loki`."""
    found: dict[str, Block] = {}
    for block in parse(ALLOY_CONFIG.read_text(encoding="utf-8")):
        assert block.label is not None, f"line {block.line}: {block.name} without a label"
        key = f"{block.name}.{block.label}"
        assert key not in found, f"line {block.line}: {key} defined twice"
        found[key] = block
    return found


def one(name: str) -> Block:
    matching = [block for key, block in components().items() if block.name == name]
    assert len(matching) == 1, f"expected one {name}, found {len(matching)}"
    return matching[0]


def test_parser_reads_blocks_attributes_and_references() -> None:
    """The reader itself, on a known snippet (strings with // are not comments)."""
    (write, source) = parse(
        'loki.write "a" {\n  endpoint {\n    url = "http://x:1/y" // comment\n  }\n}\n'
        'loki.source.docker "b" {\n  forward_to = [\n    loki.write.a.receiver,\n  ]\n}\n'
    )
    assert (write.name, write.label) == ("loki.write", "a")
    assert write.nested("endpoint")[0].attribute("url") == "http://x:1/y"
    assert [t.text for t in source.references()] == ["loki.write.a.receiver"]
    with pytest.raises(AlloySyntaxError, match="missing }"):
        parse('loki.write "a" {\n')


def test_only_known_components() -> None:
    for key, block in components().items():
        assert block.name in EXPORTS, f"{key}: not a component this test knows"


def test_every_reference_names_an_existing_component_export() -> None:
    defined = components()
    for key, block in defined.items():
        for reference in block.references():
            parts = reference.text.split(".")
            target, export = ".".join(parts[:-1]), parts[-1]
            assert target in defined, f"{key} line {reference.line}: no component {target}"
            exports = EXPORTS[defined[target].name]
            assert export in exports, (
                f"{key} line {reference.line}: {defined[target].name} exports {sorted(exports)}, "
                f"not {export!r}"
            )


def test_every_component_is_used() -> None:
    defined = components()
    used = {
        ".".join(reference.text.split(".")[:-1])
        for block in defined.values()
        for reference in block.references()
    }
    for key, block in defined.items():
        if block.name not in SOURCES:
            assert key in used, f"{key} is defined but nothing refers to it"


def test_logs_flow_from_docker_through_the_relabel_rules_to_loki() -> None:
    source = one("loki.source.docker")
    refs = {t.text for t in source.references()}
    relabel = one("discovery.relabel")
    write = one("loki.write")
    assert f"discovery.relabel.{relabel.label}.rules" in refs
    assert f"loki.write.{write.label}.receiver" in refs
    assert f"discovery.docker.{one('discovery.docker').label}.targets" in refs
    (endpoint,) = write.nested("endpoint")
    assert endpoint.attribute("url") == "http://loki:3100/loki/api/v1/push"


def test_alloy_reads_the_docker_socket_compose_mounts() -> None:
    alloy = load_project(STACK_COMPOSE).services["alloy"]
    socket = next(m for m in mounts(alloy) if m.source == "/var/run/docker.sock")
    for name in ("discovery.docker", "loki.source.docker"):
        assert one(name).attribute("host") == f"unix://{socket.target}"


def test_discovery_keeps_to_this_compose_project() -> None:
    (label_filter,) = one("discovery.docker").nested("filter")
    assert label_filter.attribute("name") == "label"
    project = load_yaml(ROOT_COMPOSE)["name"]
    assert [t.value for t in label_filter.attributes["values"] if t.kind == "string"] == [
        f"com.docker.compose.project={project}"
    ]


RELABEL_SAMPLE = """
// rule { target_label = "commented_out" }
discovery.relabel "containers" {
  targets = discovery.docker.local.targets
  rule {
    source_labels = ["__meta_docker_container_name"]
    regex         = "/(.*)"
    target_label  = "container_name"
  }
  rule {
    source_labels = ["a", "b"]
    regex         = "(.*);(.*)"
    replacement   = "${2}-$1"
    target_label  = "swapped"
  }
}
"""


def test_relabel_reads_rules_as_prometheus_applies_them() -> None:
    first, second = relabel_rules(RELABEL_SAMPLE)  # the commented-out rule is no rule
    assert first.attribute("target_label") == "container_name"
    assert relabel(first, {"__meta_docker_container_name": "/dice"}) == "dice"
    assert relabel(first, {"__meta_docker_container_name": "dice"}) is None  # anchored
    assert relabel(second, {"a": "x", "b": "y"}) == "y-x"


def test_relabel_rules_give_the_labels_queries_use() -> None:
    """container_name without Docker's leading slash, the compose service, the stream."""
    dice_roller = load_project(ROOT_COMPOSE).services["dice-roller"]
    container = dice_roller.spec["container_name"]
    meta = {
        "__meta_docker_container_name": f"/{container}",
        "__meta_docker_container_label_com_docker_compose_service": dice_roller.name,
        "__meta_docker_container_log_stream": "stdout",
    }
    written = {
        rule.attribute("target_label"): relabel(rule, meta)
        for rule in relabel_rules(ALLOY_CONFIG.read_text(encoding="utf-8"))
    }
    assert written == {
        "container_name": container,
        "compose_service": "dice-roller",
        "stream": "stdout",
    }


def test_traces_flow_from_the_otlp_receiver_through_batching_to_tempo() -> None:
    receiver = one("otelcol.receiver.otlp")
    batch = one("otelcol.processor.batch")
    exporter = one("otelcol.exporter.otlp")
    (receiver_output,) = receiver.nested("output")
    assert [t.text for t in receiver_output.attributes["traces"] if t.kind == "name"] == [
        f"otelcol.processor.batch.{batch.label}.input"
    ]
    (batch_output,) = batch.nested("output")
    assert [t.text for t in batch_output.attributes["traces"] if t.kind == "name"] == [
        f"otelcol.exporter.otlp.{exporter.label}.input"
    ]
    (client,) = exporter.nested("client")
    tempo = load_yaml(ROOT / "stack" / "tempo" / "config.yaml")
    tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert client.attribute("endpoint") == f"tempo:{tempo_grpc.rsplit(':', 1)[1]}"
    (tls,) = client.nested("tls")
    assert tls.attribute("insecure") == "true"


def test_otlp_receiver_listens_where_the_service_and_the_host_send() -> None:
    receiver = one("otelcol.receiver.otlp")
    grpc = receiver.nested("grpc")[0].attribute("endpoint")
    http = receiver.nested("http")[0].attribute("endpoint")
    assert (grpc, http) == ("0.0.0.0:4317", "0.0.0.0:4318")
    endpoint = load_project(ROOT_COMPOSE).services["dice-roller"].spec["environment"]
    assert endpoint["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://alloy:{http.rsplit(':', 1)[1]}"
    alloy = load_project(STACK_COMPOSE).services["alloy"]
    published = {p.container_port for p in ports(alloy)}
    assert {"4317", "4318", "12345"} <= published


def test_the_ui_listens_beyond_localhost_on_its_published_port() -> None:
    command = load_project(STACK_COMPOSE).services["alloy"].spec["command"]
    assert command[0] == "run"
    assert "--server.http.listen-addr=0.0.0.0:12345" in command
    assert command[-1] == "/etc/alloy/config.alloy"
    alloy = load_project(STACK_COMPOSE).services["alloy"]
    assert any(m.target == command[-1] and m.read_only for m in mounts(alloy))

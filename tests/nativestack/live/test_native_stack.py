"""The whole path, for real: service -> Alloy -> Loki and Tempo, service <- Prometheus.

Each test names one thing a user's `docker compose up` must get right, and checks it
against the real components at the pinned versions, on the shipped configs (see
tests/nativestack/live/conftest.py and docs/native-stack.md for what stands in for Docker
and for Tempo).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from nativestack.build import binary_path
from nativestack.pins import pin
from nativestack.substitutions import compose_service
from tests.support.dashboard_model import DATASOURCES_DIR, load_dashboard, queries
from tests.support.grafana_macros import QueryContext, substitute
from tests.support.live_stack import CONTAINER, WAIT, LiveStack
from tests.support.native import DECOY, NATIVE_FLAGS
from tests.support.processes import eventually
from tests.support.tools import free_port
from verify.cli import run_checks
from verify.context import Settings

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]

SELECTOR = f'{{container_name="{CONTAINER}"}}'


def test_each_component_runs_the_release_compose_pins(live: LiveStack) -> None:
    native = live.native
    prometheus = httpx.get(f"{native.prometheus_url}/api/v1/status/buildinfo", timeout=10)
    assert prometheus.json()["data"]["version"] == pin("prometheus").tag.removeprefix("v")
    loki = httpx.get(f"{native.loki_url}/loki/api/v1/status/buildinfo", timeout=10)
    assert loki.json()["version"] == pin("loki").tag
    alloy = httpx.get(f"{native.alloy_url}/metrics", timeout=10).text
    assert re.search(rf'alloy_build_info{{[^}}]*version="{re.escape(pin("alloy").tag)}"', alloy)
    alertmanager = live.alertmanager.status()
    assert alertmanager["versionInfo"]["version"] == pin("alertmanager").tag.removeprefix("v")


def test_components_start_in_composes_dependency_order(live: LiveStack) -> None:
    """Each process starts after every service compose makes it wait for."""
    started = list(live.native.components)
    for name in started:
        spec, _ = compose_service(name)
        for dependency in spec.get("depends_on") or {}:
            if dependency in started:  # grafana-init and grafana do not run here
                assert started.index(dependency) < started.index(name), (name, dependency)
    assert started[:2] == ["alert-receiver", "alertmanager"], "before Prometheus sends alerts"


@pytest.mark.parametrize("service", ["loki", "alloy"])
def test_the_compose_healthcheck_turns_healthy(live: LiveStack, service: str) -> None:
    """Compose's own healthcheck command, run where the component runs."""
    test = compose_service(service)[0]["healthcheck"]["test"]
    assert test[0] == "CMD"
    command = [
        str(binary_path(service)) if part.endswith(f"/{service}") else part for part in test[1:]
    ]
    command = [part.replace("$$", "$") for part in command]  # compose's escape for `$`
    result = subprocess.run(
        [*live.native.network.exec_prefix(service), *command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"


def _discovered(live: LiveStack) -> list[dict[str, str]]:
    url = f"{live.native.alloy_url}/api/v0/web/components/discovery.docker.containers"
    detail = httpx.get(url, timeout=10).json()
    [targets] = [export for export in detail["exports"] if export["name"] == "targets"]
    return [
        {pair["key"]: pair["value"]["value"] for pair in target["value"]}
        for target in targets["value"]["value"]
    ]


def test_alloy_discovers_the_projects_containers_and_not_other_projects(live: LiveStack) -> None:
    names = eventually(
        lambda: {t["__meta_docker_container_name"] for t in _discovered(live)},
        "Alloy's docker discovery found no container",
        WAIT,
    )
    assert names == {f"/{CONTAINER}", "/dice-sandbox-alert-receiver-1"}, (
        f"{DECOY.name} belongs to another project"
    )


def test_the_service_logs_reach_loki_with_the_labels_of_the_alloy_config(live: LiveStack) -> None:
    streams = eventually(lambda: live.loki(SELECTOR), "no line of the service in Loki", WAIT)
    labels = streams[0]["stream"]
    assert labels["container_name"] == CONTAINER
    assert labels["compose_service"] == "dice-roller"
    assert labels["stream"] == "stdout"


def test_every_line_the_service_printed_is_in_loki_unchanged(live: LiveStack) -> None:
    printed = {line.rstrip("\n") for line in live.native.service_lines()}
    assert printed
    # The shared stack has served every test before this one: from its first line on.
    first = min(datetime.fromisoformat(json.loads(line)["timestamp"]) for line in printed)

    def arrived() -> bool:
        return printed <= live.loki_lines(SELECTOR, since=first.timestamp() - 5)

    eventually(arrived, "some lines the service printed never reached Loki", WAIT)


def test_no_line_of_another_project_reaches_loki(live: LiveStack) -> None:
    eventually(lambda: live.loki(SELECTOR), "no line of the service in Loki", WAIT)
    other = DECOY.name.lstrip("/")
    assert live.loki(f'{{container_name="{other}"}}') == []
    assert live.loki('{compose_service="web"}') == []


def _trace_to_logs_query(trace_id: str) -> str:
    """The provisioned Tempo data source's trace-to-logs query, for one trace."""
    document = yaml.safe_load((DATASOURCES_DIR / "datasources.yaml").read_text(encoding="utf-8"))
    [tempo] = [d for d in document["datasources"] if d["type"] == "tempo"]
    query: str = tempo["jsonData"]["tracesToLogsV2"]["query"]
    return query.replace("$${__trace.traceId}", trace_id)


def test_the_trace_to_logs_query_finds_each_rolls_lines_in_loki(live: LiveStack) -> None:
    for roll in live.rolls:
        query = _trace_to_logs_query(roll.trace_id)
        streams = eventually(
            lambda query=query: live.loki(query),  # type: ignore[misc]
            f"the trace-to-logs query found no line of trace {roll.trace_id}",
            WAIT,
        )
        records = [json.loads(line) for s in streams for _, line in s["values"]]
        assert {r["trace_id"] for r in records} == {roll.trace_id}
        assert any(r.get("die_type") == roll.die for r in records), records


def test_a_rolls_flags_are_fields_that_logql_can_filter_on(live: LiveStack) -> None:
    """The failed risky rolls carry the flag that made them fail half the time; after
    `| json`, Loki names the nested field `feature_flags_risky_failure_rate`."""
    [(key, variant)] = NATIVE_FLAGS.items()
    field = "feature_flags_" + key.replace("-", "_")
    query = f'{SELECTOR} | json | {field}="{variant}"'
    failed = {roll.trace_id for roll in live.rolls if roll.die == "risky" and roll.status == 500}
    assert failed, "half the risky rolls fail: some of the 15 did"

    def rolls_found() -> list[dict[str, str]]:
        labels = [s["stream"] for s in live.loki(query) if "die_type" in s["stream"]]
        return labels if {label["trace_id"] for label in labels} >= failed else []

    labels = eventually(rolls_found, f"{query} found the failed risky rolls", WAIT)
    assert {label["die_type"] for label in labels} == {"risky"}, "fair rolls: no such flag"


def test_prometheus_scrapes_the_service_by_its_compose_name(live: LiveStack) -> None:
    up = eventually(
        lambda: live.prometheus('up{job="dice-roller-stage1", instance="dice-roller:8000"} == 1')[
            "result"
        ],
        "Prometheus never scraped dice-roller:8000",
        WAIT,
    )
    assert len(up) == 1


def test_exemplars_reach_prometheus_with_the_rolls_trace_ids(live: LiveStack) -> None:
    ours = {roll.trace_id for roll in live.rolls}

    def exemplar_ids() -> set[str]:
        data = live.prometheus(
            "dice_roll_duration_seconds_bucket",
            "/api/v1/query_exemplars",
            start=str(live.started),
            end=str(time.time() + 5),
        )
        return {e["labels"]["trace_id"] for series in data for e in series["exemplars"]} & ours

    eventually(exemplar_ids, "no exemplar with a trace id of our rolls", WAIT)


def test_spans_reach_tempo_through_alloy(live: LiveStack) -> None:
    for roll in live.rolls[:5]:

        def spans(trace_id: str = roll.trace_id) -> list[dict[str, Any]]:
            body = live.tempo.trace(trace_id)
            return [
                span
                for resource in body["trace"].get("resourceSpans", [])
                for scope in resource["scopeSpans"]
                for span in scope["spans"]
            ]

        found = eventually(spans, f"trace {roll.trace_id} never reached Tempo", WAIT)
        assert any(span["kind"] == "SPAN_KIND_SERVER" for span in found)


def test_every_logql_query_of_the_dashboard_returns_lines_from_loki(live: LiveStack) -> None:
    eventually(lambda: live.loki(f'{SELECTOR} |= "ERROR"'), "no error line in Loki", WAIT)
    context = QueryContext(interval=timedelta(seconds=15), time_range=timedelta(hours=1))
    logql = [q for q in queries(load_dashboard()) if q.language == "logql"]
    assert logql
    for query in logql:
        text = substitute(query.text, context)
        assert live.loki(text), f"{query.panel} ({query.source}): no line for {text}"


def test_every_promql_panel_returns_data_from_prometheus(live: LiveStack) -> None:
    """Each Prometheus panel over the run, as Grafana would ask (a range query).

    Trace Count reads Tempo's span metrics; with the Tempo stand-in nothing writes
    them (docs/native-stack.md), so it is the one panel expected empty then."""
    end = live.later_samples('timestamp(dice_rolls_total{die_type="risky"})')
    empty = live.empty_panels(load_dashboard(), end, kinds=("prometheus",))
    expected = {"Trace Count"} if live.native.tempo_standin else set()
    assert set(empty) == expected


def test_verify_ticks_every_box_that_needs_no_grafana(live: LiveStack) -> None:
    native = live.native
    settings = Settings(
        service_url=native.service_url,
        prometheus_url=native.prometheus_url,
        loki_url=native.loki_url,
        tempo_url=native.tempo_url,
        alloy_url=native.alloy_url,
        grafana_url=f"http://127.0.0.1:{free_port()}",
        timeout=10.0,  # the checks' default: Loki's `| json` queries can take seconds here
        wait=60.0,
        poll_interval=0.5,
    )
    run = run_checks(settings)
    failed = [(r.group, r.title, r.detail) for r in run.results if not r.passed]
    not_grafana = [f for f in failed if "Grafana" not in f[2] and f[0] != "Dashboard"]
    assert not_grafana == []
    assert len(run.results) - len(failed) >= 20

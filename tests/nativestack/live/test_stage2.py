"""Stage 2 for real: a click in a real browser is one trace over three services, every
signal of the stack shows the hop, and the upstream-down drill sees the dice-roller go
and come back.

A stage-2 native stack of this module's own (the frontend in front of the service,
nativestack/), Debian's chromium clicking Roll on the frontend's page, and the real
Prometheus, Loki and Alloy; Tempo is the stand-in (docs/native-stack.md). The drill
runs last, in this process as `python3 tasks.py drill upstream-down` runs it, with a
`NativeControl` that stops the native dice-roller's process and starts a new one in
its place (what `docker compose stop` and `start` do under compose); the stack must be
as usable after it as before.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import expect

from drills.catalogue import DRILLS
from drills.runner import EXIT_OK, run_drill
from nativestack.stack import native_stack
from tests.support.browser import chromium
from tests.support.dashboard_model import (
    DATASOURCES_DIR,
    STAGE2_DASHBOARD_PATH,
    load_dashboard,
)
from tests.support.drills import (
    NativeControl,
    drill_command,
    live_generators,
    python_command,
    signals_responded,
    stack_options,
    stack_settings,
)
from tests.support.live_stack import WAIT, LiveStack, roll
from tests.support.native import native_service_env
from tests.support.paths import ROOT
from tests.support.processes import eventually
from verify.cli import run_checks
from verify.stage2 import GROUP, chain_of

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]

BROWSER = "frontend-web"
OUTAGE = [
    "The frontend answers 503",
    "Upstream errors up",
    "The dice-roller's scrape fails",
    "Failed rolls logged",
    "A trace ends at the frontend",
    "Calls to a virtual node",
]
RETURN = ["The dice-roller answers again", "Rolls succeed again"]


@dataclass
class Stage2:
    live: LiveStack
    clicked: list[str]
    """The trace ids of the rolls the browser clicked, as the page's link names them."""
    control: NativeControl
    """Stops and starts the dice-roller, for the drill."""

    @property
    def frontend_url(self) -> str:
        return self.live.native.frontend_url

    def trace(self, trace_id: str) -> Any:
        return self.live.tempo.trace(trace_id)["trace"]


@pytest.fixture(scope="module")
def stage2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage2]:
    """A stage-2 stack, three rolls clicked in the browser and some through the API, at
    least one of them failed (the risky die fails half the time, `NATIVE_FLAGS`)."""
    service_env = native_service_env(tmp_path_factory.mktemp("stage2-flags"))
    with native_stack(stage=2, service_env=service_env) as native, chromium() as browser:
        live = LiveStack(native, [], native.started)
        page = browser.new_page()
        page.goto(native.frontend_url)
        clicked: list[str] = []
        link = page.locator("#trace-link")
        for _ in range(3):
            page.click("#roll")
            # A new roll's link names a trace none of the earlier ones did.
            expect(link).to_have_attribute(
                "data-trace-id", re.compile("^(?!" + "|".join([*clicked, "$"]) + ")[0-9a-f]{32}$")
            )
            clicked.append(str(link.get_attribute("data-trace-id")))
        # The page exports its spans a second after they end: keep it open until the
        # last click's fetch span has reached Tempo.
        eventually(
            lambda: BROWSER in json.dumps(live.tempo.trace(clicked[-1])["trace"]),
            "the browser's spans never reached Tempo",
            WAIT,
        )
        page.close()
        rolls = roll(f"{native.frontend_url}/api", ["fair", "risky"] * 5)
        # The dashboard's failed-calls queries need a failed call: roll on until one is.
        while not any(r.status == 502 for r in rolls) and len(rolls) < 100:
            rolls += roll(f"{native.frontend_url}/api", ["risky"] * 5)
        live.rolls = rolls
        control = NativeControl(native, service_env)
        try:
            yield Stage2(live, clicked, control)
        finally:
            control.close()  # the dice-roller it started, which the stack does not know
            live.api.close()


def test_a_click_is_one_trace_from_the_browser_to_the_die_in_tempo(stage2: Stage2) -> None:
    for trace_id in stage2.clicked:

        def complete(trace_id: str = trace_id) -> Any:
            trace = stage2.trace(trace_id)
            services = {
                attribute["value"]["stringValue"]
                for resource in trace.get("resourceSpans", [])
                for attribute in resource["resource"]["attributes"]
                if attribute["key"] == "service.name"
            }
            return trace if {BROWSER, "frontend", "dice-roller"} <= services else None

        trace = eventually(complete, f"trace {trace_id} never had the three services' spans", WAIT)
        top, _, served = chain_of(trace)
        fetch = [
            span
            for resource in trace["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
            if span["kind"] == "SPAN_KIND_CLIENT" and span.get("parentSpanId") in (None, "")
        ]
        assert len(fetch) == 1, "the click's fetch is the trace's one root"
        assert _hex(fetch[0]["spanId"]) == top["parent_id"], "the frontend's span is its child"
        assert served["service"] == "dice-roller"


def test_the_service_graph_has_both_edges_in_prometheus(stage2: Stage2) -> None:
    for client, server in ((BROWSER, "frontend"), ("frontend", "dice-roller")):
        query = f'traces_service_graph_request_total{{client="{client}", server="{server}"}} > 0'
        eventually(
            lambda query=query: stage2.live.prometheus(query)["result"],  # type: ignore[misc]
            f"no service-graph edge {client} -> {server}",
            WAIT,
        )


def test_trace_to_logs_finds_both_services_lines(stage2: Stage2) -> None:
    datasources = yaml.safe_load((DATASOURCES_DIR / "datasources.yaml").read_text())
    [tempo] = [d for d in datasources["datasources"] if d["type"] == "tempo"]
    template: str = tempo["jsonData"]["tracesToLogsV2"]["query"]
    for trace_id in stage2.clicked:
        query = template.replace("$${__trace.traceId}", trace_id)

        def containers(query: str = query) -> set[str] | None:
            found = {s["stream"]["container_name"] for s in stage2.live.loki(query)}
            return found if {"frontend", "dice-roller-stage1"} <= found else None

        eventually(containers, f"{query} did not find both services' lines", WAIT)


def test_every_line_of_the_frontend_is_json_with_its_trace(stage2: Stage2) -> None:
    lines = [json.loads(line) for line in stage2.live.native.frontend_lines()]
    rolls = [line for line in lines if line.get("route") == "/api/roll"]
    assert len(rolls) >= 13, "3 clicks and 10 API rolls, a line each"
    assert all(re.fullmatch("[0-9a-f]{32}", line["trace_id"]) for line in rolls)
    assert not [line for line in lines if line["logger"] == "httpx"]


def test_every_query_of_the_stage2_dashboard_returns_data(stage2: Stage2) -> None:
    """Each Prometheus and Loki panel over the run, as Grafana would ask."""
    # After the rolls: two later scrapes (Alloy scrapes every 5 s, remote-writes in batches).
    sample = 'timestamp(frontend_upstream_request_duration_seconds_count{outcome="success"})'
    end = stage2.live.later_samples(sample, count=2)
    empty = stage2.live.empty_panels(load_dashboard(STAGE2_DASHBOARD_PATH), end, stage2.clicked[0])
    assert empty == []


def test_verify_ticks_every_stage2_box(stage2: Stage2) -> None:
    settings = stage2.live.verify_settings(stage=2)
    results = [r for r in run_checks(settings).results if r.group == GROUP]
    assert len(results) == 5
    assert [(r.title, r.detail) for r in results if not r.passed] == []


@pytest.mark.timeout(900)
def test_the_upstream_down_drill_sees_the_outage_in_the_frontend_s_signals_and_the_return(
    stage2: Stage2,
) -> None:
    stack, control = stage2.live.native, stage2.control
    settings = stack_settings(
        stack, frontend_url=stack.frontend_url, rate=5, round_seconds=20, poll=1
    )
    out = io.StringIO()
    code = run_drill(DRILLS["upstream-down"], settings, out, control)
    text = out.getvalue()
    print(text)
    assert code == EXIT_OK, text
    assert control.calls == ["stop dice-roller", "start dice-roller"]
    order = signals_responded(text)
    assert sorted(order[: len(OUTAGE)]) == sorted(OUTAGE), order
    assert sorted(order[len(OUTAGE) :]) == sorted(RETURN), order
    assert '"Upstream Errors by Reason"' in text and 'dashboard "Dice Roller - Stage 2"' in text
    assert "HTTP 503 in" in text and "reason=unreachable:" in text
    assert "no dice-roller span" in text and "ConnectError" in text
    assert text.index("Started the dice-roller again") < text.index("The dice-roller answers")
    assert live_generators(stack.frontend_url) == []

    # The stack is as it was: the dice-roller answers, and so do rolls through the frontend.
    assert httpx.get(f"{stack.service_url}/", timeout=10).status_code == 200
    rolled = httpx.get(f"{stack.frontend_url}/api/roll", params={"die": "fair"}, timeout=10)
    assert rolled.status_code == 200, rolled.text


@pytest.mark.timeout(300)
def test_ctrl_c_runs_the_start_command_and_stops_the_traffic(
    stage2: Stage2, tmp_path: Path
) -> None:
    """The drill as users run it, with commands of its options: the stop command ends
    the dice-roller's process, Ctrl-C runs the start command (here it only leaves a
    mark: the test starts the process again itself, as compose would have)."""
    stack, control = stage2.live.native, stage2.control
    stopped = stack.components["dice-roller"].process
    pid = str(stopped.pid)
    started = tmp_path / "started"
    stop = python_command("import os, signal, sys; os.kill(int(sys.argv[1]), signal.SIGTERM)", pid)
    start = python_command("import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])")
    start += f" {shlex.quote(str(started))} {{service}}"
    command = drill_command(
        "upstream-down",
        *stack_options(stack),
        "--frontend-url",
        stack.frontend_url,
        "--stop-command",
        stop,
        "--start-command",
        start,
        "--give-up",
        "600",
    )
    drill = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:

        def sending() -> bool | None:
            assert drill.poll() is None, drill.communicate()
            return bool(live_generators(stack.frontend_url)) or None

        eventually(sending, "no traffic", 120, interval=0.1)
        drill.send_signal(signal.SIGINT)
        out, err = drill.communicate(timeout=60)
    finally:
        if drill.poll() is None:
            drill.kill()
        stopped.wait(30)  # uvicorn lets the requests in flight finish first
        control.start("dice-roller")  # what `docker compose start` would have done
    assert drill.returncode == 130, out + err
    assert stack.components["dice-roller"].process.pid != stopped.pid
    assert started.read_text() == "dice-roller"
    assert "Stopping the dice-roller: `" in out and "Started the dice-roller again" in out
    assert err.strip().endswith("interrupted; the dice-roller is started again"), err
    assert "Traceback" not in err
    assert live_generators(stack.frontend_url) == []


def _hex(value: str) -> str:
    """Tempo's JSON writes ids in base64."""
    return base64.b64decode(value).hex()

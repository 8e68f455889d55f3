"""Stages 3 and 4 for real: a roll through the frontend is one trace over three
services, the service graph gains the dice-roller → die-service edge, a batch's rolls
are child spans side by side, and the die-service down is a prompt 503 that says so.

A stage-3 native stack of this module's own (stages/stage3.yml merged over compose,
nativestack/), with the real Prometheus, Loki and Alloy; Tempo is the stand-in
(docs/native-stack.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from nativestack.stack import native_stack
from tests.support.dashboard_model import STAGE3_DASHBOARD_PATH, load_dashboard
from tests.support.live_stack import WAIT, LiveStack, roll
from tests.support.processes import eventually
from verify import stage3, stage4
from verify.cli import run_checks

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]

DICE = ["d4", "d20", "fair", "d6"]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with native_stack(stage=3) as native:
        live = LiveStack(native, [], native.started)
        live.rolls = roll(f"{native.frontend_url}/api", DICE * 2)
        yield live
        live.api.close()


def test_the_page_offers_the_die_services_dice(live: LiveStack) -> None:
    page = httpx.get(live.native.frontend_url + "/", timeout=10).text
    for die in ("fair", "risky", "d4", "d6", "d8", "d10", "d12", "d20"):
        assert f'value="{die}"' in page


def test_rolls_of_the_die_services_dice_show_their_faces(live: LiveStack) -> None:
    for rolled in live.rolls:
        assert rolled.status in (200, 502), rolled  # a d20 or d6 may fail, as specified
    faces = {"d4": range(1, 5), "d6": range(1, 7), "d20": range(1, 21), "fair": range(1, 7)}
    for rolled in live.rolls:
        if rolled.status == 200:
            assert rolled.value in faces[rolled.die], rolled


def test_verify_ticks_every_stage3_and_stage4_box(live: LiveStack) -> None:
    """One run at stage 4 checks stage 3's boxes too: stage 4 is stage 3's stack, plus an
    endpoint."""
    results = run_checks(live.verify_settings(stage=4)).results
    three = [r for r in results if r.group == stage3.GROUP]
    four = [r for r in results if r.group == stage4.GROUP]
    assert (len(three), len(four)) == (5, 4)
    assert [(r.title, r.detail) for r in three + four if not r.passed] == []


def test_every_line_of_the_die_service_is_json_with_its_trace(live: LiveStack) -> None:
    lines = [json.loads(line) for line in live.native.die_service_lines()]
    lookups = [line for line in lines if line.get("message") in ("Die found", "Die unknown")]
    assert len(lookups) >= len(live.rolls), "one lookup per roll, at least"
    assert all(len(line["trace_id"]) == 32 for line in lookups)


def test_every_query_of_the_stage3_dashboard_returns_data(live: LiveStack) -> None:
    """Each Prometheus and Loki panel over the run, as Grafana would ask.

    The service graph counts failed calls from the first one that fails, and the
    fixture's rolls rarely fail (the d20 one in twenty, the d6 one in two hundred):
    roll the d20 through the page until one has. The die-service failures panel needs
    none: the dice-roller exports every reason at zero."""

    rolls = list(live.rolls)
    while not any(r.status >= 500 for r in rolls) and len(rolls) < 400:
        rolls += roll(f"{live.native.frontend_url}/api", ["d20"] * 10)
    failed = "traces_service_graph_request_failed_total"  # Alloy pairs the spans first
    eventually(lambda: live.prometheus(failed)["result"], "no failed call counted", WAIT)
    # Then two later samples of each: the dice-roller's, scraped by Prometheus, the
    # die-service's and the service graph's, remote-written by Alloy in batches. The
    # oldest of their newest samples must move on twice.
    sample = (
        'min(timestamp(dice_roll_duration_seconds_count{die_type="d4"}) or timestamp('
        'http_request_duration_seconds_count{job="die-service", handler="/dice/{name}"})'
        f" or timestamp({failed}))"
    )
    end = live.later_samples(sample, count=2)
    dashboard = load_dashboard(STAGE3_DASHBOARD_PATH)
    assert live.empty_panels(dashboard, end, live.rolls[0].trace_id) == []


def test_the_die_service_down_is_a_prompt_503_that_says_so(live: LiveStack) -> None:
    """Last in the module: it stops the die-service."""
    live.native.components["die-service"].stop()
    answer = httpx.get(live.native.service_url + "/roll", params={"die": "d4"}, timeout=10)
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("The die-service is unreachable at ")
    trace_id = answer.headers["traceresponse"].split("-")[1]

    def error_span() -> bool:
        trace = json.dumps(live.tempo.trace(trace_id)["trace"])
        return "upstream.failure" in trace and "STATUS_CODE_ERROR" in trace

    eventually(error_span, f"trace {trace_id} never showed the failed call", WAIT)

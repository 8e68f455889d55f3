"""Stage 3 for real: a roll through the frontend is one trace over three services, the
service graph gains the dice-roller → die-service edge, and the die-service down is a
prompt 503 that says so.

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
from tests.support.live_stack import WAIT, LiveStack, roll
from tests.support.processes import eventually
from tests.support.tools import free_port
from verify.cli import run_checks
from verify.context import Settings
from verify.stage3 import GROUP

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


def test_verify_ticks_every_stage3_box(live: LiveStack) -> None:
    native = live.native
    settings = Settings(
        service_url=native.service_url,
        frontend_url=native.frontend_url,
        stage=3,
        prometheus_url=native.prometheus_url,
        loki_url=native.loki_url,
        tempo_url=native.tempo_url,
        alloy_url=native.alloy_url,
        grafana_url=f"http://127.0.0.1:{free_port()}",
        wait=60.0,
        poll_interval=0.5,
    )
    results = [r for r in run_checks(settings).results if r.group == GROUP]
    assert len(results) == 5
    assert [(r.title, r.detail) for r in results if not r.passed] == []


def test_every_line_of_the_die_service_is_json_with_its_trace(live: LiveStack) -> None:
    lines = [json.loads(line) for line in live.native.die_service_lines()]
    lookups = [line for line in lines if line.get("message") in ("Die found", "Die unknown")]
    assert len(lookups) >= len(live.rolls), "one lookup per roll, at least"
    assert all(len(line["trace_id"]) == 32 for line in lookups)


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

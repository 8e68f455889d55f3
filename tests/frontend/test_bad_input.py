"""A bad `die` is refused at the frontend: 422 naming the allowed dice, nothing sent on
to the dice-roller, and the offending value never echoed back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from frontend.settings import Settings
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.support.frontend import in_process_frontend
from tests.support.http_server import serving
from tests.support.metrics import OPENMETRICS
from tests.support.stand_in_dice_roller import StandInDiceRoller

ALLOWED = ["fair", "risky"]
HOSTILE = '<script>alert("rolled")</script>'


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInDiceRoller]:
    with serving(StandInDiceRoller()) as stand_in:
        yield stand_in


def ask(stand_in: StandInDiceRoller, *paths: str) -> tuple[list[httpx.Response], str]:
    """The frontend's answers to GET `paths`, then its metrics (OpenMetrics)."""

    async def scenario() -> tuple[list[httpx.Response], str]:
        settings = Settings(dice_roller_url=stand_in.url)  # type: ignore[arg-type]
        async with in_process_frontend(settings) as frontend:
            answers = [await frontend.client.get(path) for path in paths]
            metrics = await frontend.client.get("/metrics", headers={"Accept": OPENMETRICS})
            return answers, metrics.text

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?die=",
        "?die=loaded",
        "?die=FAIR",
        "?dice=fair",
        "?die=" + HOSTILE,
        "?die=" + "q" * 20_000,
    ],
    ids=["missing", "empty", "unknown", "upper-case", "misspelt-name", "hostile", "huge"],
)
def test_a_bad_die_is_a_422_naming_the_allowed_values_and_never_sent_on(
    stand_in: StandInDiceRoller, query: str
) -> None:
    asked = len(stand_in.received())
    [answer], metrics = ask(stand_in, "/api/roll" + query)
    assert answer.status_code == 422
    body = answer.json()
    assert body["allowed"] == ALLOWED
    assert "fair, risky" in body["detail"]
    assert "'die'" in body["detail"]
    assert len(stand_in.received()) == asked  # nothing reached the dice-roller

    name, _, given = query.removeprefix("?").partition("=")
    if name == "die" and given:  # not echoed, in the body or anywhere in the answer
        assert given not in answer.text
        assert given not in str(answer.headers)
    assert "&lt;script" not in answer.text and "script" not in answer.text

    calls = [
        sample
        for family in text_string_to_metric_families(metrics)
        if family.name.startswith("frontend_upstream")
        for sample in family.samples
        if sample.name.endswith(("_count", "_total"))
    ]
    assert calls and all(sample.value == 0 for sample in calls), calls


def test_a_bad_die_beside_good_rolls_changes_nothing_upstream(
    stand_in: StandInDiceRoller,
) -> None:
    asked = len(stand_in.received())
    answers, _ = ask(stand_in, "/api/roll?die=fair", "/api/roll?die=six", "/api/roll?die=risky")
    assert [a.status_code for a in answers] == [200, 422, 200]
    sent = [r.path for r in stand_in.received()[asked:]]
    assert sent == ["/roll?die=fair", "/roll?die=risky"]

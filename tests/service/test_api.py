"""The HTTP contract of the running service, over real HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.service import RunningService, running_service

TRACERESPONSE = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$"


def test_root_describes_the_service(dice_service: RunningService) -> None:
    response = httpx.get(dice_service.url + "/")
    assert response.status_code == 200
    body = response.json()
    assert body["service"] == "dice-roller"
    assert body["version"]
    assert {"/roll?die=fair", "/roll?die=risky", "/metrics"} <= set(body["endpoints"])


def test_fair_roll_returns_a_value_from_1_to_6(dice_service: RunningService) -> None:
    values = set()
    for _ in range(60):
        response = httpx.get(dice_service.url + "/roll", params={"die": "fair"})
        assert response.status_code == 200
        assert set(response.json()) == {"roll"}
        values.add(response.json()["roll"])
    assert values <= set(range(1, 7))
    assert len(values) >= 4


def test_risky_roll_returns_2_to_7_or_a_json_500() -> None:
    with running_service({"DICE_RISKY_FAILURE_RATE": "0.5", "DICE_SEED": "11"}) as service:
        statuses = []
        for _ in range(40):
            response = httpx.get(service.url + "/roll", params={"die": "risky"})
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert 2 <= response.json()["roll"] <= 7
            else:
                assert response.status_code == 500
                assert "risky" in response.json()["detail"]
        assert {200, 500} <= set(statuses)


def test_every_response_names_its_trace(dice_service: RunningService) -> None:
    for path in ("/", "/roll?die=fair", "/roll?die=nope", "/missing"):
        response = httpx.get(dice_service.url + path)
        assert response.headers.get("traceresponse") is not None, path
        assert re.match(TRACERESPONSE, response.headers["traceresponse"])


BAD_DICE = [
    "",
    "FAIR",
    "Risky",
    "loaded",
    "fair ",
    "x" * 5000,
    "dé",
    "🎲",
    "fair\nINFO injected",
    '"}{"level":"ERROR"',
]


@pytest.mark.parametrize("die", BAD_DICE, ids=range(len(BAD_DICE)))
def test_bad_die_gets_422_naming_the_allowed_values(dice_service: RunningService, die: str) -> None:
    response = httpx.get(dice_service.url + "/roll", params={"die": die})
    assert response.status_code == 422
    body = response.json()
    assert body["allowed"] == ["fair", "risky"]
    assert "fair" in body["detail"] and "risky" in body["detail"]
    if len(die) > 10:
        assert die not in response.text  # hostile or huge input is not echoed back


def test_missing_die_gets_422(dice_service: RunningService) -> None:
    response = httpx.get(dice_service.url + "/roll")
    assert response.status_code == 422
    assert response.json()["allowed"] == ["fair", "risky"]


def test_unknown_path_gets_404(dice_service: RunningService) -> None:
    response = httpx.get(dice_service.url + "/no/such/path")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_metrics_are_left_out_of_the_openapi_document(dice_service: RunningService) -> None:
    paths = httpx.get(dice_service.url + "/openapi.json").json()["paths"]
    assert set(paths) == {"/", "/roll"}
    documented = paths["/roll"]["get"]["responses"]
    assert {"200", "422", "500"} <= set(documented)

"""Stage 4 through the frontend: `GET /api/roll-async` relays a batch to the dice-roller's
`/roll-async`, and the page (from stage 3 on) has a control to ask for one.

As in test_roll.py and test_upstream_failures.py, the services are processes, as users
run them: the die-service, a dice-roller at stage 3 in front of it (every fair roll
failing by its flag file), and a frontend at stage 3 in front of both, all exporting
their spans to one OTLP receiver; a second frontend stands in front of a stand-in
dice-roller that misbehaves on demand. As in test_page.py and test_bad_input.py, the
page and the refusals are checked in-process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from frontend.settings import Settings

from tests.support.die_service import RunningDieService, running_die_service
from tests.support.flags import copy_shipped
from tests.support.frontend import RunningFrontend, in_process_frontend, running_frontend
from tests.support.http_server import serving
from tests.support.metrics import Metrics, scrape
from tests.support.otlp import OtlpReceiver, ReceivedSpan, only, otlp_receiver, spans_of
from tests.support.processes import eventually
from tests.support.service import RunningService, running_service, trace_of
from tests.support.stand_in_dice_roller import StandInDiceRoller
from tests.support.tools import closed_url

SERVER_KIND, CLIENT_KIND = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # spans leave within 0.2 s
TIMEOUT_SECONDS = "1"
"""The misled frontend's FRONTEND_UPSTREAM_TIMEOUT_SECONDS: short, yet ample for the
die-service's list on a busy machine (it asks for it with the same timeout)."""
CEILING_SECONDS = 10.0
"""How long a test waits for the frontend's answer: far past its timeout and any batch."""
BATCH = 5
TIMES_DETAIL = "Query parameter 'times' is required and must be a whole number from 1 to 20"
SHIPPED_NAMES = ["fair", "risky", "d4", "d6", "d8", "d10", "d12", "d20"]
REASONS = ("timeout", "unreachable", "error_status", "bad_answer")
ERRORS = "frontend_upstream_errors_total"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def die_service(receiver: OtlpReceiver) -> Iterator[RunningDieService]:
    with running_die_service(receiver.service_env(**FAST_EXPORT)) as service:
        yield service


@pytest.fixture(scope="module")
def dice_roller(
    receiver: OtlpReceiver,
    die_service: RunningDieService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    """The dice-roller at stage 3; every fair roll fails (its flag), no d4 ever does."""
    flags = copy_shipped(tmp_path_factory.mktemp("batch-flags"), {"fair-failure-rate": "always"})
    env = receiver.service_env(
        DICE_DIE_SERVICE_URL=die_service.url,
        DICE_DIE_SERVICE_TIMEOUT_SECONDS="10",
        DICE_FLAGS_FILE=str(flags),
        **FAST_EXPORT,
    )
    with running_service(env) as service:
        yield service


@pytest.fixture(scope="module")
def frontend(
    receiver: OtlpReceiver, dice_roller: RunningService, die_service: RunningDieService
) -> Iterator[RunningFrontend]:
    env = receiver.service_env(FRONTEND_DIE_SERVICE_URL=die_service.url, **FAST_EXPORT)
    with running_frontend(dice_roller.url, env) as frontend:
        yield frontend


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInDiceRoller]:
    with serving(StandInDiceRoller()) as stand_in:
        yield stand_in


def misled_env(receiver: OtlpReceiver, die_service: RunningDieService) -> dict[str, str]:
    return receiver.service_env(
        FRONTEND_DIE_SERVICE_URL=die_service.url,
        FRONTEND_UPSTREAM_TIMEOUT_SECONDS=TIMEOUT_SECONDS,
        **FAST_EXPORT,
    )


@pytest.fixture(scope="module")
def misled_frontend(
    receiver: OtlpReceiver, stand_in: StandInDiceRoller, die_service: RunningDieService
) -> Iterator[RunningFrontend]:
    """The frontend at stage 3 in front of the stand-in dice-roller."""
    with running_frontend(stand_in.url, misled_env(receiver, die_service)) as frontend:
        yield frontend


def roll_batch(frontend: RunningFrontend, die: str, times: int) -> httpx.Response:
    params = {"die": die, "times": str(times)}
    return httpx.get(frontend.url + "/api/roll-async", params=params, timeout=CEILING_SECONDS)


def lines_of(frontend: RunningFrontend, trace_id: str) -> list[dict[str, Any]]:
    return [r for r in frontend.log_records() if r.get("trace_id") == trace_id]


def grew(before: Metrics, after: Metrics, name: str, **labels: str) -> float:
    return after.count(name, **labels) - before.count(name, **labels)


# A batch through the three services


@dataclass(frozen=True)
class Relayed:
    response: httpx.Response
    trace_id: str
    span_id: str
    spans: list[ReceivedSpan]


@pytest.fixture(scope="module")
def relayed(frontend: RunningFrontend, receiver: OtlpReceiver) -> Relayed:
    # The page fills the frontend's list of dice (kept 10 s): the batch's trace has no
    # call for it.
    assert httpx.get(frontend.url + "/", timeout=CEILING_SECONDS).status_code == 200
    response = roll_batch(frontend, "d4", BATCH)
    assert response.status_code == 200, response.text
    trace_id, span_id = trace_of(response.headers)
    # The frontend's server and client spans, the dice-roller's server and client spans,
    # the die-service's server span, and one span per roll.
    spans = spans_of(receiver, trace_id, 5 + BATCH)
    return Relayed(response, trace_id, span_id, spans)


def test_a_batch_answers_the_die_its_values_and_its_trace(relayed: Relayed) -> None:
    body = relayed.response.json()
    assert set(body) == {"die", "rolls", "failed", "trace_id"}
    assert body["die"] == "d4"
    assert body["failed"] == 0
    assert len(body["rolls"]) == BATCH
    assert all(v in {1, 2, 3, 4} for v in body["rolls"]), body
    assert body["trace_id"] == relayed.trace_id


def test_a_batch_is_one_trace_from_the_frontend_through_the_dice_roller_to_the_die_service(
    relayed: Relayed,
) -> None:
    spans = relayed.spans
    assert {s.trace_id for s in spans} == {relayed.trace_id}
    assert {s.resource["service.name"] for s in spans} == {"frontend", "dice-roller", "die-service"}

    server = only(spans, "frontend", SERVER_KIND)
    assert server.name == "GET /api/roll-async"
    assert server.span_id == relayed.span_id
    assert server.parent_span_id == ""
    assert server.status_code != STATUS_ERROR
    assert server.attributes["die.type"] == "d4"
    assert server.attributes["batch.size"] == BATCH

    roller = only(spans, "dice-roller", SERVER_KIND)
    assert roller.name == "GET /roll-async"
    [call] = [s for s in spans if s.span_id == roller.parent_span_id]  # the frontend's call
    assert (call.resource["service.name"], call.kind) == ("frontend", CLIENT_KIND)
    assert call.parent_span_id == server.span_id
    assert roller.attributes["batch.size"] == BATCH

    rolls = [s for s in spans if s.name == "roll d4"]
    assert len(rolls) == BATCH
    assert all(s.parent_span_id == roller.span_id for s in rolls)
    values = relayed.response.json()["rolls"]
    assert sorted(s.attributes["die.value"] for s in rolls) == sorted(values)

    looked_up = only(spans, "die-service", SERVER_KIND)
    assert looked_up.name == "GET /dice/{name}"
    assert looked_up.parent_span_id == only(spans, "dice-roller", CLIENT_KIND).span_id


def test_a_batch_writes_one_line_batch_served(relayed: Relayed, frontend: RunningFrontend) -> None:
    lines = lines_of(frontend, relayed.trace_id)
    assert len(lines) == 1, lines
    line = lines[0]
    assert (line["message"], line["level"], line["logger"]) == ("Batch served", "INFO", "frontend")
    assert line["span_id"] == relayed.span_id
    assert (line["die_type"], line["times"], line["failed"]) == ("d4", BATCH, 0)
    assert (line["route"], line["status"]) == ("/api/roll-async", 200)
    assert isinstance(line["upstream_seconds"], float) and line["upstream_seconds"] >= 0


def test_a_batch_where_every_roll_fails_is_a_502_quoting_the_dice_roller(
    frontend: RunningFrontend,
) -> None:
    response = roll_batch(frontend, "fair", 3)
    assert response.status_code == 502, response.text
    trace_id, _ = trace_of(response.headers)
    assert response.json() == {
        "detail": "The dice-roller answered 500: Every roll of the fair die failed.",
        "reason": "error_status",
        "trace_id": trace_id,
    }


# The dice-roller failing


@dataclass(frozen=True)
class Failure:
    """A batch that did not come back: what the page got, and what the frontend recorded."""

    status: int
    body: dict[str, Any]
    trace_id: str
    span: ReceivedSpan
    line: dict[str, Any]
    before: Metrics
    after: Metrics


def failed_batch(frontend: RunningFrontend, receiver: OtlpReceiver) -> Failure:
    before = scrape(frontend.url)
    response = roll_batch(frontend, "d4", 2)
    trace_id, span_id = trace_of(response.headers)
    after = scrape(frontend.url)  # a later request: the batch's is over by its end
    lines = lines_of(frontend, trace_id)
    assert len(lines) == 1, lines

    def server_span() -> ReceivedSpan | None:
        spans = [s for s in list(receiver.spans) if s.trace_id == trace_id]
        ours = [s for s in spans if s.resource.get("service.name") == "frontend"]
        return next((s for s in ours if s.kind == SERVER_KIND), None)  # not the die-service's

    span = eventually(server_span, f"the server span of {trace_id} arrived", timeout=15)
    assert span.span_id == span_id
    return Failure(response.status_code, response.json(), trace_id, span, lines[0], before, after)


def assert_recorded(failure: Failure, reason: str, status: int) -> None:
    assert failure.status == status, failure.body
    assert set(failure.body) == {"detail", "reason", "trace_id"}
    assert failure.body["reason"] == reason
    assert failure.body["trace_id"] == failure.trace_id
    assert failure.body["detail"].startswith("The dice-roller ")

    span = failure.span
    assert span.name == "GET /api/roll-async"
    assert span.status_code == STATUS_ERROR
    assert span.attributes["upstream.name"] == "dice-roller"
    assert span.attributes["upstream.failure"] == reason

    for other in REASONS:
        counted = grew(failure.before, failure.after, ERRORS, upstream="dice-roller", reason=other)
        assert counted == (1 if other == reason else 0), other

    line = failure.line
    assert (line["level"], line["message"]) == ("ERROR", "Roll failed upstream")
    assert (line["reason"], line["upstream"], line["die_type"]) == (reason, "dice-roller", "d4")
    assert (line["route"], line["status"]) == ("/api/roll-async", status)
    assert line["error"] == failure.body["detail"]


def test_the_batch_is_asked_of_the_dice_roller_with_the_trace(
    misled_frontend: RunningFrontend, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour = "answer"
    stand_in.body = json.dumps({"rolls": [3, 1], "failed": 1}).encode()
    asked = len(stand_in.received())
    response = roll_batch(misled_frontend, "d4", 3)
    assert response.status_code == 200, response.text
    trace_id, _ = trace_of(response.headers)
    assert response.json() == {"die": "d4", "rolls": [3, 1], "failed": 1, "trace_id": trace_id}
    [call] = stand_in.received()[asked:]
    assert call.path == "/roll-async?die=d4&times=3"
    assert call.headers["traceparent"].startswith(f"00-{trace_id}-")


def test_a_dice_roller_too_slow_is_a_504(
    misled_frontend: RunningFrontend, receiver: OtlpReceiver, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour = "slow"  # holds the request far past the ceiling
    failure = failed_batch(misled_frontend, receiver)
    assert_recorded(failure, "timeout", 504)
    assert failure.body["detail"] == f"The dice-roller did not answer within {TIMEOUT_SECONDS} s."


def test_a_dice_roller_error_is_a_502_quoting_it(
    misled_frontend: RunningFrontend, receiver: OtlpReceiver, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour, stand_in.status = "error", 500
    stand_in.detail = "Every roll of the d4 die failed."
    failure = failed_batch(misled_frontend, receiver)
    assert_recorded(failure, "error_status", 502)
    assert failure.body["detail"] == (
        "The dice-roller answered 500: Every roll of the d4 die failed."
    )


@pytest.mark.parametrize(
    "body",
    [
        {"rolls": [1], "failed": 0},  # one roll short of the two asked
        {"rolls": [1, 2]},  # no count of the failed
        {"rolls": [1, True], "failed": 0},  # JSON's true is no roll
        {"roll": 4},  # /roll's answer
    ],
    ids=["too-few", "no-failed", "bool-roll", "one-roll"],
)
def test_a_200_without_the_batch_is_a_502_bad_answer(
    misled_frontend: RunningFrontend,
    receiver: OtlpReceiver,
    stand_in: StandInDiceRoller,
    body: dict[str, Any],
) -> None:
    stand_in.behaviour = "answer"
    stand_in.body = json.dumps(body).encode()
    failure = failed_batch(misled_frontend, receiver)
    assert_recorded(failure, "bad_answer", 502)
    assert failure.body["detail"] == "The dice-roller answered without 2 rolls."


def test_an_unreachable_dice_roller_is_a_503(
    receiver: OtlpReceiver, die_service: RunningDieService
) -> None:
    nowhere = closed_url()  # nothing listens there
    with running_frontend(nowhere, misled_env(receiver, die_service)) as frontend:
        failure = failed_batch(frontend, receiver)
    assert_recorded(failure, "unreachable", 503)
    assert "unreachable" in failure.body["detail"]


# Refused at the frontend, in-process


def ask(
    settings: Settings, *paths: str, stand_in: StandInDiceRoller | None = None
) -> list[httpx.Response]:
    """The in-process frontend's answers to GET `paths`."""

    async def scenario() -> list[httpx.Response]:
        async with in_process_frontend(settings) as frontend:
            return [await frontend.client.get(path) for path in paths]

    return asyncio.run(scenario())


def stage3(stand_in: StandInDiceRoller, die_service: RunningDieService) -> Settings:
    return Settings(dice_roller_url=stand_in.url, die_service_url=die_service.url)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    ["die=d4&times=0", "die=d4&times=21", "die=d4&times=2.5", "die=d4&times=two", "die=d4"],
    ids=["0", "21", "2.5", "word", "missing"],
)
def test_times_outside_1_to_20_is_a_422_naming_the_range_and_never_sent_on(
    stand_in: StandInDiceRoller, die_service: RunningDieService, query: str
) -> None:
    asked = len(stand_in.received())
    [answer] = ask(stage3(stand_in, die_service), "/api/roll-async?" + query)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"detail": TIMES_DETAIL}
    assert len(stand_in.received()) == asked


def test_a_die_not_offered_is_a_422_like_a_roll_and_never_sent_on(
    stand_in: StandInDiceRoller, die_service: RunningDieService
) -> None:
    asked = len(stand_in.received())
    batch, roll = ask(
        stage3(stand_in, die_service), "/api/roll-async?die=d7&times=2", "/api/roll?die=d7"
    )
    assert batch.status_code == 422, batch.text
    assert batch.json() == roll.json()
    assert batch.json()["allowed"] == SHIPPED_NAMES
    assert len(stand_in.received()) == asked


def test_stage2_has_no_batch_route(stand_in: StandInDiceRoller) -> None:
    settings = Settings(dice_roller_url=stand_in.url)  # type: ignore[arg-type]
    asked = len(stand_in.received())
    [answer] = ask(settings, "/api/roll-async?die=fair&times=2")
    assert answer.status_code == 404, answer.text
    assert len(stand_in.received()) == asked


# The page


class Controls(HTMLParser):
    """The attributes of every element of the page that has an id, by id."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.tags: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.by_id[values["id"] or ""] = values
            self.tags[values["id"] or ""] = tag


def controls(settings: Settings) -> tuple[str, Controls]:
    [page] = ask(settings, "/")
    assert page.status_code == 200, page.text
    parsed = Controls()
    parsed.feed(page.text)
    return page.text, parsed


def test_the_page_has_the_batch_control_from_stage_3(
    stand_in: StandInDiceRoller, die_service: RunningDieService
) -> None:
    text, page = controls(stage3(stand_in, die_service))
    assert "{{" not in text
    assert page.tags["times"] == "input"
    times = page.by_id["times"]
    assert (times["type"], times["min"], times["max"]) == ("number", "1", "20")
    assert page.tags["roll-batch"] == "button"
    assert page.by_id["roll-batch"]["type"] == "button"  # not a second submit of the form
    assert page.tags["roll"] == "button"  # stage 2's Roll is still there


def test_the_stage2_page_has_no_batch_control(stand_in: StandInDiceRoller) -> None:
    settings = Settings(dice_roller_url=stand_in.url)  # type: ignore[arg-type]
    text, page = controls(settings)
    assert "{{" not in text
    assert "times" not in page.by_id and "roll-batch" not in page.by_id
    assert page.tags["roll"] == "button"


def test_the_page_script_asks_for_batches(stand_in: StandInDiceRoller) -> None:
    settings = Settings(dice_roller_url=stand_in.url)  # type: ignore[arg-type]
    [script] = ask(settings, "/static/page.js")
    assert script.status_code == 200
    assert "/api/roll-async?" in script.text
    assert 'getElementById("roll-batch")' in script.text

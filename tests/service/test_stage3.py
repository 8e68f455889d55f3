"""Stage 3: the dice-roller asks the die-service what each die is, before every roll.

Every process is real, as users run them: the die-service, and dice-rollers with
`DICE_DIE_SERVICE_URL` pointing at it, at a stand-in die-service that misbehaves on
demand, or at a port where nothing listens; all export their spans to one OTLP
receiver. A roll is checked end to end: its answer, its one trace across the two
services, its log lines and its metrics with exemplars. Each way the die-service can
fail is checked the same way: the status and words the client gets, the server span
in ERROR naming the failure, `dice_die_service_errors_total{reason}` counted with the
trace as exemplar, and the request's one ERROR line "Die unavailable". Stage 1 (no
die-service) is unchanged, and a seeded fair die rolls the same at both stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from dice_roller.settings import SettingsError, load_settings

from tests.support.die_service import RunningDieService, running_die_service
from tests.support.flags import copy_shipped
from tests.support.http_server import serving
from tests.support.metrics import Metrics, scrape
from tests.support.otlp import OtlpReceiver, ReceivedSpan, only, otlp_receiver, spans_of
from tests.support.processes import eventually
from tests.support.service import RunningService, running_service, trace_of
from tests.support.stand_in_dice_roller import Behaviour, StandInDiceRoller
from tests.support.tools import closed_url

SERVER_KIND, CLIENT_KIND = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # spans leave within 0.2 s
TIMEOUT_SECONDS = "1"
"""How long the misled roller waits for the stand-in (DICE_DIE_SERVICE_TIMEOUT_SECONDS):
short, yet ample for the stand-in's quick answers on a busy machine."""
PATIENT = "10"
"""The others' (its highest): a busy machine never turns their rolls into 504s."""
CEILING_SECONDS = 10.0
"""How long a test waits for the dice-roller's answer: far past the die-service
timeout, so an answer that never comes fails the test rather than hanging it."""
SHIPPED_NAMES = ["fair", "risky", "d4", "d6", "d8", "d10", "d12", "d20"]
"""The die-service's dice, in the order it lists them (die_service/dice.py)."""
ALLOWED_DETAIL = "Query parameter 'die' is required and must be one of: "
ERRORS = "dice_die_service_errors_total"
ROLLS = "dice_rolls_total"
LOOKUPS = "die_service_lookups_total"
REASONS = ("timeout", "unreachable", "error_status", "bad_answer")
SEED = "31337"


def spec(name: str, faces: list[int], failure_rate: float) -> bytes:
    """A die's specification as the die-service answers it, taking no time to roll."""
    body = {"name": name, "faces": faces, "failure_rate": failure_rate, "max_delay_seconds": 0}
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def die_service(receiver: OtlpReceiver) -> Iterator[RunningDieService]:
    with running_die_service(receiver.service_env(**FAST_EXPORT)) as service:
        yield service


@pytest.fixture(scope="module")
def roller(receiver: OtlpReceiver, die_service: RunningDieService) -> Iterator[RunningService]:
    """The dice-roller at stage 3 in front of the real die-service. The risky die never
    fails here (its flag's default, from DICE_RISKY_FAILURE_RATE): the die-service's
    0.1 must not apply to it."""
    env = receiver.service_env(
        DICE_DIE_SERVICE_URL=die_service.url,
        DICE_DIE_SERVICE_TIMEOUT_SECONDS=PATIENT,
        DICE_RISKY_FAILURE_RATE="0",
        **FAST_EXPORT,
    )
    with running_service(env) as service:
        yield service


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInDiceRoller]:
    """A die-service that answers as a test says: slow, an error, any body."""
    with serving(StandInDiceRoller()) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def misled_roller(
    receiver: OtlpReceiver, stand_in: StandInDiceRoller, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The dice-roller at stage 3 in front of the stand-in, with a short timeout and a
    flag file that makes every fair roll fail and no risky roll fail."""
    flags = copy_shipped(
        tmp_path_factory.mktemp("stage3-flags"),
        {"fair-failure-rate": "always", "risky-failure-rate": "never"},
    )
    env = receiver.service_env(
        DICE_DIE_SERVICE_URL=stand_in.url,
        DICE_DIE_SERVICE_TIMEOUT_SECONDS=TIMEOUT_SECONDS,
        DICE_FLAGS_FILE=str(flags),
        **FAST_EXPORT,
    )
    with running_service(env) as service:
        yield service


@pytest.fixture(scope="module")
def stage1_seeded() -> Iterator[RunningService]:
    """Stage 1, seeded: nothing but the seed test rolls on it (a roll draws from the seed)."""
    with running_service({"DICE_SEED": SEED}) as service:
        yield service


def roll(service: RunningService, die: str | None) -> httpx.Response:
    params = {} if die is None else {"die": die}
    return httpx.get(service.url + "/roll", params=params, timeout=CEILING_SECONDS)


def lines_of(service: RunningService | RunningDieService, trace_id: str) -> list[dict[str, Any]]:
    return [r for r in service.log_records() if r.get("trace_id") == trace_id]


def grew(before: Metrics, after: Metrics, name: str, **labels: str) -> float:
    return after.count(name, **labels) - before.count(name, **labels)


# A roll of a die the die-service has


@dataclass(frozen=True)
class Roll:
    """One d4 roll through the real die-service, and what both services recorded."""

    response: httpx.Response
    trace_id: str
    span_id: str
    spans: list[ReceivedSpan]
    before: Metrics
    after: Metrics
    die_before: Metrics
    die_after: Metrics


@pytest.fixture(scope="module")
def d4_roll(roller: RunningService, die_service: RunningDieService, receiver: OtlpReceiver) -> Roll:
    before, die_before = scrape(roller.url), scrape(die_service.url)
    response = roll(roller, "d4")
    assert response.status_code == 200, response.text
    trace_id, span_id = trace_of(response.headers)
    after, die_after = scrape(roller.url), scrape(die_service.url)
    spans = spans_of(receiver, trace_id, 3)
    return Roll(response, trace_id, span_id, spans, before, after, die_before, die_after)


def test_a_d4_roll_answers_a_value_among_its_faces(d4_roll: Roll) -> None:
    body = d4_roll.response.json()
    assert set(body) == {"roll"}
    assert body["roll"] in {1, 2, 3, 4}


def test_a_roll_is_one_trace_from_the_roller_through_its_call_to_the_die_service(
    d4_roll: Roll,
) -> None:
    spans = d4_roll.spans
    assert len(spans) == 3, spans

    server = only(spans, "dice-roller", SERVER_KIND)
    assert server.name == "GET /roll"
    assert server.span_id == d4_roll.span_id  # the span the `traceresponse` header names
    assert server.parent_span_id == ""  # no traceparent came in: the trace starts here
    assert server.status_code != STATUS_ERROR
    assert server.attributes["die.type"] == "d4"
    assert server.attributes["die.value"] == d4_roll.response.json()["roll"]
    assert "upstream.failure" not in server.attributes

    client = only(spans, "dice-roller", CLIENT_KIND)  # httpx's, around the question
    assert client.name == "GET"
    assert client.parent_span_id == server.span_id
    assert client.status_code != STATUS_ERROR

    # The die-service continued the trace the client span's `traceparent` sent.
    looked_up = only(spans, "die-service", SERVER_KIND)
    assert looked_up.name == "GET /dice/{name}"
    assert looked_up.parent_span_id == client.span_id
    assert looked_up.attributes["die.name"] == "d4"
    assert looked_up.attributes["die.lookup"] == "found"
    assert looked_up.attributes["die.faces"] == 4
    assert {s.trace_id for s in spans} == {d4_roll.trace_id}


def test_a_roll_writes_one_line_in_each_service_with_the_trace(
    d4_roll: Roll, roller: RunningService, die_service: RunningDieService
) -> None:
    value = d4_roll.response.json()["roll"]
    lines = lines_of(roller, d4_roll.trace_id)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["message"] == "Roll completed"
    assert line["level"] == "INFO"
    assert line["span_id"] == d4_roll.span_id
    assert line["die_type"] == "d4"
    assert line["roll_value"] == value
    assert line["status"] == 200
    # httpx's "HTTP Request: GET ..." would repeat the client span: it is not written.
    records = roller.log_records()
    assert not [r for r in records if r["logger"].startswith("httpx")]
    assert not [r for r in records if "HTTP Request" in r["message"]]

    looked_up = only(d4_roll.spans, "die-service", SERVER_KIND)
    lines = lines_of(die_service, d4_roll.trace_id)
    assert len(lines) == 1, lines
    assert lines[0]["message"] == "Die found"
    assert lines[0]["die_name"] == "d4"
    assert lines[0]["span_id"] == looked_up.span_id


def test_a_roll_is_counted_in_both_services_with_its_trace_as_exemplar(d4_roll: Roll) -> None:
    before, after = d4_roll.before, d4_roll.after
    assert grew(before, after, ROLLS, die_type="d4", result="success") == 1
    assert grew(before, after, ROLLS, die_type="d4", result="error") == 0
    assert after.exemplar_trace_ids(ROLLS, die_type="d4", result="success") == {d4_roll.trace_id}
    for reason in REASONS:  # exported from the start, at zero; a roll is no error
        assert after.value(ERRORS, reason=reason) == before.value(ERRORS, reason=reason)

    die_before, die_after = d4_roll.die_before, d4_roll.die_after
    assert grew(die_before, die_after, LOOKUPS, die="d4", outcome="found") == 1
    trace_ids = die_after.exemplar_trace_ids(LOOKUPS, die="d4", outcome="found")
    assert trace_ids == {d4_roll.trace_id}


def test_every_die_of_the_die_service_rolls_among_its_own_faces(
    roller: RunningService, die_service: RunningDieService
) -> None:
    listed = httpx.get(die_service.url + "/dice", timeout=10).json()["dice"]
    assert [die["name"] for die in listed] == SHIPPED_NAMES
    asked = [die for die in listed for _ in range(4)]
    with ThreadPoolExecutor(len(asked)) as pool:  # at once: a d20 takes up to 1.4 s
        responses = list(pool.map(lambda die: roll(roller, die["name"]), asked))

    for die, response in zip(asked, responses, strict=True):
        name = die["name"]
        if response.status_code == 500:  # as often as the die-service's failure_rate says
            assert die["failure_rate"] > 0 and name not in ("fair", "risky"), response.text
            slipped = f"The {name} die failed: the {name} die slipped off the table"
            assert response.json() == {"detail": slipped}
            continue
        assert response.status_code == 200, (name, response.text)
        assert response.json()["roll"] in die["faces"], (name, response.text)


def test_the_faces_and_failure_rate_are_the_die_services_own(
    misled_roller: RunningService, stand_in: StandInDiceRoller
) -> None:
    """A die of the die-service's rolls what it says: faces, and failure rate."""
    stand_in.behaviour = "answer"
    stand_in.body = spec("d4", [42], 0.0)
    for _ in range(3):
        response = roll(misled_roller, "d4")
        assert response.status_code == 200, response.text
        assert response.json() == {"roll": 42}

    stand_in.body = spec("d4", [42], 1.0)
    before = scrape(misled_roller.url)
    response = roll(misled_roller, "d4")
    assert response.status_code == 500, response.text
    slipped = "The d4 die failed: the d4 die slipped off the table"
    assert response.json() == {"detail": slipped}
    trace_id, _ = trace_of(response.headers)
    lines = lines_of(misled_roller, trace_id)
    assert [line["message"] for line in lines] == ["Roll failed"]
    after = scrape(misled_roller.url)
    assert grew(before, after, ROLLS, die_type="d4", result="error") == 1
    for reason in REASONS:  # the die failed, not the die-service
        assert grew(before, after, ERRORS, reason=reason) == 0


@pytest.mark.parametrize(
    ("die", "spec_failure_rate", "status"),
    [("fair", 0.0, 500), ("risky", 1.0, 200)],
    ids=["fair-fails-by-its-flag", "risky-holds-by-its-flag"],
)
def test_fair_and_risky_fail_as_their_flags_say_not_as_the_die_service_says(
    misled_roller: RunningService,
    stand_in: StandInDiceRoller,
    die: str,
    spec_failure_rate: float,
    status: int,
) -> None:
    stand_in.behaviour = "answer"
    stand_in.body = spec(die, [42], spec_failure_rate)
    for _ in range(3):
        response = roll(misled_roller, die)
        assert response.status_code == status, response.text
        if status == 200:
            assert response.json() == {"roll": 42}
        else:
            failed = f"The {die} die failed: the {die} die slipped off the table"
            assert response.json() == {"detail": failed}


# A die the die-service does not have, or a name that is no die


@pytest.mark.parametrize(
    "die", ["d7", "D4", "", None], ids=["unknown", "malformed", "empty", "missing"]
)
def test_a_die_the_die_service_does_not_have_is_a_422_listing_its_dice(
    roller: RunningService, die_service: RunningDieService, die: str | None
) -> None:
    before, die_before = scrape(roller.url), scrape(die_service.url)
    response = roll(roller, die)
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": ALLOWED_DETAIL + ", ".join(SHIPPED_NAMES),
        "allowed": SHIPPED_NAMES,
    }
    after, die_after = scrape(roller.url), scrape(die_service.url)
    for reason in REASONS:  # the die-service answered: no error of its
        assert grew(before, after, ERRORS, reason=reason) == 0
    assert not [s for s in after.samples if s.name == ROLLS and s.labels["die_type"] == die]
    # Only a well-formed name is asked for; the die-service counts it as `other`.
    asked = 1 if die == "d7" else 0
    assert grew(die_before, die_after, LOOKUPS, die="other", outcome="unknown") == asked


# Each way the die-service can fail


@dataclass(frozen=True)
class Failure:
    """A roll that got no die: what the client got, and what the roller recorded of it."""

    status: int
    body: dict[str, Any]
    seconds: float
    trace_id: str
    spans: list[ReceivedSpan]
    line: dict[str, Any]
    before: Metrics
    after: Metrics

    @property
    def server(self) -> ReceivedSpan:
        return only(self.spans, "dice-roller", SERVER_KIND)


def failed_roll(service: RunningService, receiver: OtlpReceiver, die: str = "d4") -> Failure:
    before = scrape(service.url)
    started = time.monotonic()
    response = roll(service, die)
    seconds = time.monotonic() - started
    trace_id, span_id = trace_of(response.headers)
    after = scrape(service.url)  # a later request: the roll's is over by its end

    lines = lines_of(service, trace_id)
    assert len(lines) == 1, lines  # the roll's own line, no "Request failed" beside it

    def arrived() -> list[ReceivedSpan] | None:
        spans = [s for s in list(receiver.spans) if s.trace_id == trace_id]
        return spans if any(s.kind == SERVER_KIND for s in spans) else None

    spans = eventually(arrived, f"the server span of {trace_id} arrived", timeout=15)
    assert only(spans, "dice-roller", SERVER_KIND).span_id == span_id
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    return Failure(response.status_code, body, seconds, trace_id, spans, lines[0], before, after)


def assert_recorded(failure: Failure, reason: str, status: int, die: str = "d4") -> None:
    """What every failure of the die-service must leave: the answer, the span, the
    metrics, the line."""
    assert failure.status == status, failure.body
    assert set(failure.body) == {"detail"}
    detail = failure.body["detail"]
    assert detail.startswith("The die-service ")

    server = failure.server
    assert server.name == "GET /roll"
    assert server.status_code == STATUS_ERROR
    assert server.attributes["upstream.name"] == "die-service"
    assert server.attributes["upstream.failure"] == reason
    assert server.attributes["die.type"] == die
    assert server.attributes["http.response.status_code"] == status
    assert "die.value" not in server.attributes and "die.result" not in server.attributes
    # The call was made: its client span is a child of the roll's.
    client = only(failure.spans, "dice-roller", CLIENT_KIND)
    assert client.parent_span_id == server.span_id

    before, after = failure.before, failure.after
    for other in REASONS:
        assert grew(before, after, ERRORS, reason=other) == (1 if other == reason else 0), other
    assert after.exemplar_trace_ids(ERRORS, reason=reason) == {failure.trace_id}
    for result in ("success", "error"):  # no die, no roll
        assert grew(before, after, ROLLS, die_type=die, result=result) == 0

    line = failure.line
    assert line["level"] == "ERROR"
    assert line["message"] == "Die unavailable"
    assert line["logger"] == "dice_roller"
    assert line["span_id"] == server.span_id
    assert line["die_type"] == die
    assert line["upstream"] == "die-service"
    assert line["reason"] == reason
    assert line["error"] == detail
    assert line["status"] == status
    assert line["route"] == "/roll"


def test_an_unreachable_die_service_is_a_503(receiver: OtlpReceiver) -> None:
    nowhere = closed_url()  # nothing listens there
    env = receiver.service_env(DICE_DIE_SERVICE_URL=nowhere, **FAST_EXPORT)
    with running_service(env) as service:
        failure = failed_roll(service, receiver)
    assert_recorded(failure, "unreachable", 503)
    assert failure.body["detail"].startswith(f"The die-service is unreachable at {nowhere}/ (")


def test_a_die_service_too_slow_is_a_504_that_does_not_hang(
    misled_roller: RunningService, receiver: OtlpReceiver, stand_in: StandInDiceRoller
) -> None:
    stand_in.behaviour = "slow"  # holds the request far past the ceiling
    asked = len(stand_in.received())
    failure = failed_roll(misled_roller, receiver)
    assert_recorded(failure, "timeout", 504)
    assert failure.body["detail"] == f"The die-service did not answer within {TIMEOUT_SECONDS} s."
    assert len(stand_in.received()) == asked + 1  # it was asked, then given up on
    # httpx's own timeout ended the call, inside its span: the client span says so too.
    assert only(failure.spans, "dice-roller", CLIENT_KIND).status_code == STATUS_ERROR
    # It waited its timeout, and gave up by itself long before the client's ceiling.
    assert float(TIMEOUT_SECONDS) <= failure.seconds < CEILING_SECONDS / 2


@pytest.mark.parametrize(
    ("behaviour", "status", "said"),
    [("error", 500, "Roll failed"), ("error_text", 503, "Service Unavailable")],
    ids=["json-detail", "no-json-detail"],
)
def test_a_die_service_error_is_a_502_quoting_it(
    misled_roller: RunningService,
    receiver: OtlpReceiver,
    stand_in: StandInDiceRoller,
    behaviour: Behaviour,
    status: int,
    said: str,
) -> None:
    stand_in.behaviour, stand_in.status, stand_in.detail = behaviour, status, "Roll failed"
    failure = failed_roll(misled_roller, receiver)
    assert_recorded(failure, "error_status", 502)
    assert failure.body["detail"] == f"The die-service answered {status}: {said}"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "d4"},  # no faces
        {"name": "d4", "faces": [], "failure_rate": 0, "max_delay_seconds": 0},
        {"name": "d4", "faces": [1, 2], "failure_rate": 2, "max_delay_seconds": 0},
        {"name": "d4", "faces": [1, 2], "failure_rate": 0, "max_delay_seconds": 3600},
        {"name": "d20", "faces": [1, 2], "failure_rate": 0, "max_delay_seconds": 0},
        [1, 2, 3, 4],
        "<html>a proxy's page</html>",  # not JSON at all
    ],
    ids=["no-faces", "no-face", "rate-over-1", "an-hour-long", "another-die", "list", "not-json"],
)
def test_a_200_without_a_die_is_a_502_bad_answer(
    misled_roller: RunningService, receiver: OtlpReceiver, stand_in: StandInDiceRoller, body: Any
) -> None:
    stand_in.behaviour = "answer"
    stand_in.body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    failure = failed_roll(misled_roller, receiver)
    assert_recorded(failure, "bad_answer", 502)
    assert failure.body["detail"] == "The die-service answered without the d4 die's specification."


def test_the_die_service_timeout_is_at_least_a_tenth_of_a_second() -> None:
    assert load_settings({"DICE_DIE_SERVICE_TIMEOUT_SECONDS": "0.1"}).die_service_timeout_seconds
    with pytest.raises(SettingsError) as raised:
        load_settings({"DICE_DIE_SERVICE_TIMEOUT_SECONDS": "0.05"})
    assert "DICE_DIE_SERVICE_TIMEOUT_SECONDS" in str(raised.value)


# Stage 1, without a die-service


def test_stage1_knows_fair_and_risky_only_and_exports_no_die_service_errors(
    stage1_seeded: RunningService,
) -> None:
    response = roll(stage1_seeded, "d4")  # rejected before any draw from the seed
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": ALLOWED_DETAIL + "fair, risky",
        "allowed": ["fair", "risky"],
    }
    metrics = scrape(stage1_seeded.url)
    assert metrics.samples  # the scrape itself worked
    assert not [s for s in metrics.samples if s.name.startswith("dice_die_service_errors")]
    assert "dice_die_service_errors" not in httpx.get(stage1_seeded.url + "/metrics").text


def test_a_seeded_fair_die_rolls_the_same_at_stage1_and_at_stage3(
    stage1_seeded: RunningService, die_service: RunningDieService
) -> None:
    """The same seed, the same fair rolls through /roll: the die-service's fair die is
    stage 1's, and asking for it draws nothing from the seed. One at a time, since the
    order of the draws is the order of the rolls."""
    rolls = 6  # a fair die at stage 3 takes up to 1 s (its spec's delay)

    def values(service: RunningService) -> list[int]:
        responses = [roll(service, "fair") for _ in range(rolls)]
        assert [r.status_code for r in responses] == [200] * rolls, [r.text for r in responses]
        return [r.json()["roll"] for r in responses]

    env = {
        "DICE_SEED": SEED,
        "DICE_DIE_SERVICE_URL": die_service.url,
        "DICE_DIE_SERVICE_TIMEOUT_SECONDS": PATIENT,
    }
    with running_service(env) as stage3_seeded:
        at_stage3 = values(stage3_seeded)
    assert values(stage1_seeded) == at_stage3


def test_a_die_service_failing_while_a_bad_die_is_refused_is_recorded_too(
    misled_roller: RunningService, stand_in: StandInDiceRoller
) -> None:
    """The 422 names the die-service's dice; without them, the failure is the answer, and
    it is counted and logged like any other."""
    stand_in.behaviour, stand_in.status, stand_in.detail = "error", 500, "broken"
    before = scrape(misled_roller.url)
    response = httpx.get(misled_roller.url + "/roll", params={"die": "D4"}, timeout=CEILING_SECONDS)
    after = scrape(misled_roller.url)
    assert response.status_code == 502
    assert response.json() == {"detail": "The die-service answered 500: broken"}
    assert grew(before, after, ERRORS, reason="error_status") == 1
    trace_id, _ = trace_of(response.headers)
    [line] = lines_of(misled_roller, trace_id)
    assert (line["message"], line["reason"], line["status"]) == (
        "Die unavailable",
        "error_status",
        502,
    )

"""Stage 4: `GET /roll-async` rolls one die several times at once.

Every process is real, as users run them: the die-service, and a dice-roller at stage 3
in front of it (`DICE_DIE_SERVICE_URL`), with a copy of the shipped flag file in which
every fair roll fails and a risky roll fails one time in two; both export their spans
to one OTLP receiver. A batch asks the die-service once, then rolls the die N times
concurrently, each roll a child span of the request's server span: the spans overlap.
Checked for a batch: its answer, its trace, its one log line "Batch rolled" and its
metrics (`dice_batch_size`, `dice_rolls_in_flight`, and every roll counted as a roll);
a batch where some rolls fail, one where all fail; the bounds of `times`; and stage 1,
which has no `/roll-async`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.die_service import RunningDieService, running_die_service
from tests.support.flags import copy_shipped
from tests.support.metrics import Metrics, scrape
from tests.support.otlp import OtlpReceiver, ReceivedSpan, only, otlp_receiver, spans_of
from tests.support.processes import eventually
from tests.support.service import RunningService, running_service, trace_of
from tests.support.tools import closed_url

INTERNAL_KIND, SERVER_KIND, CLIENT_KIND = 1, 2, 3  # opentelemetry.proto...Span.SpanKind
STATUS_ERROR = 2
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # spans leave within 0.2 s
PATIENT = "10"
"""DICE_DIE_SERVICE_TIMEOUT_SECONDS: a busy machine never turns a lookup into a 504."""
CEILING_SECONDS = 15.0
"""How long a test waits for an answer: far past any batch (the slowest die takes
1.4 s), so an answer that never comes fails the test rather than hanging it."""
BATCH = 10
"""The d4 batch's size: between two buckets of `dice_batch_size` (5 and 10)."""
MAX_BATCH = 20
TIMES_DETAIL = "Query parameter 'times' is required and must be a whole number from 1 to 20"
SHIPPED_NAMES = ["fair", "risky", "d4", "d6", "d8", "d10", "d12", "d20"]
ALLOWED_DETAIL = "Query parameter 'die' is required and must be one of: "
ROLLS = "dice_rolls_total"
BATCH_SIZE = "dice_batch_size"
IN_FLIGHT = "dice_rolls_in_flight"
DURATION_COUNT = "dice_roll_duration_seconds_count"
VALUE_COUNT = "dice_roll_value_count"
LOOKUPS = "die_service_lookups_total"
FAIR_SLIPPED = "the fair die slipped off the table"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def die_service(receiver: OtlpReceiver) -> Iterator[RunningDieService]:
    with running_die_service(receiver.service_env(**FAST_EXPORT)) as service:
        yield service


@pytest.fixture(scope="module")
def roller(
    receiver: OtlpReceiver,
    die_service: RunningDieService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    """The dice-roller at stage 3 in front of the real die-service: every fair roll
    fails, a risky roll one time in two; the d4 never fails (the die-service's rate)."""
    flags = copy_shipped(
        tmp_path_factory.mktemp("stage4-flags"),
        {"fair-failure-rate": "always", "risky-failure-rate": "half"},
    )
    env = receiver.service_env(
        DICE_DIE_SERVICE_URL=die_service.url,
        DICE_DIE_SERVICE_TIMEOUT_SECONDS=PATIENT,
        DICE_FLAGS_FILE=str(flags),
        **FAST_EXPORT,
    )
    with running_service(env) as service:
        yield service


def roll_batch(service: RunningService, die: str | None, times: str | int | None) -> httpx.Response:
    params = {"die": die, "times": None if times is None else str(times)}
    given = {name: value for name, value in params.items() if value is not None}
    return httpx.get(service.url + "/roll-async", params=given, timeout=CEILING_SECONDS)


def lines_of(service: RunningService, trace_id: str) -> list[dict[str, Any]]:
    return [r for r in service.log_records() if r.get("trace_id") == trace_id]


def grew(before: Metrics, after: Metrics, name: str, **labels: str) -> float:
    return after.count(name, **labels) - before.count(name, **labels)


def total(metrics: Metrics, name: str) -> float:
    """Every series of `name` added up: 0 when none exists."""
    return sum(float(s.value) for s in metrics.samples if s.name == name)


def rolls_of(spans: list[ReceivedSpan], die: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == f"roll {die}"]


def overlapping_pairs(spans: list[ReceivedSpan]) -> list[tuple[ReceivedSpan, ReceivedSpan]]:
    """The pairs of spans under way at the same time: each began before the other ended."""
    return [
        (a, b)
        for a, b in itertools.combinations(spans, 2)
        if a.start_ns < b.end_ns and b.start_ns < a.end_ns
    ]


@dataclass(frozen=True)
class Batch:
    """One `/roll-async` through the real die-service, and what both services recorded."""

    response: httpx.Response
    trace_id: str
    span_id: str
    spans: list[ReceivedSpan]
    before: Metrics
    after: Metrics
    die_before: Metrics
    die_after: Metrics

    @property
    def server(self) -> ReceivedSpan:
        return only(self.spans, "dice-roller", SERVER_KIND)


def batch_of(
    roller: RunningService,
    die_service: RunningDieService,
    receiver: OtlpReceiver,
    die: str,
    times: int,
) -> Batch:
    before, die_before = scrape(roller.url), scrape(die_service.url)
    response = roll_batch(roller, die, times)
    trace_id, span_id = trace_of(response.headers)
    after, die_after = scrape(roller.url), scrape(die_service.url)
    # The server span, the call to the die-service and its server span, and each roll.
    spans = spans_of(receiver, trace_id, 3 + times)
    return Batch(response, trace_id, span_id, spans, before, after, die_before, die_after)


@pytest.fixture(scope="module")
def d4_batch(
    roller: RunningService, die_service: RunningDieService, receiver: OtlpReceiver
) -> Batch:
    batch = batch_of(roller, die_service, receiver, "d4", BATCH)
    assert batch.response.status_code == 200, batch.response.text
    return batch


@pytest.fixture(scope="module")
def fair_batch(
    roller: RunningService, die_service: RunningDieService, receiver: OtlpReceiver
) -> Batch:
    """Five fair rolls, every one failing by the flag file."""
    return batch_of(roller, die_service, receiver, "fair", 5)


@pytest.fixture(scope="module")
def risky_batch(
    roller: RunningService, die_service: RunningDieService, receiver: OtlpReceiver
) -> Batch:
    """Twenty risky rolls failing one time in two: all alike once in half a million."""
    batch = batch_of(roller, die_service, receiver, "risky", MAX_BATCH)
    assert batch.response.status_code == 200, batch.response.text
    return batch


# A batch of d4s


def test_a_batch_answers_as_many_values_as_asked_each_among_the_faces(d4_batch: Batch) -> None:
    body = d4_batch.response.json()
    assert set(body) == {"rolls", "failed"}
    assert body["failed"] == 0
    assert len(body["rolls"]) == BATCH
    assert all(isinstance(v, int) and v in {1, 2, 3, 4} for v in body["rolls"]), body


def test_each_roll_is_a_child_span_of_the_request_and_they_run_at_once(d4_batch: Batch) -> None:
    server = d4_batch.server
    assert server.name == "GET /roll-async"
    assert server.span_id == d4_batch.span_id  # the span the `traceresponse` header names
    assert server.parent_span_id == ""
    assert server.status_code != STATUS_ERROR
    assert server.attributes["die.type"] == "d4"
    assert server.attributes["batch.size"] == BATCH
    assert server.attributes["batch.failed"] == 0

    rolls = rolls_of(d4_batch.spans, "d4")
    assert len(rolls) == BATCH, [s.name for s in d4_batch.spans]
    values = d4_batch.response.json()["rolls"]
    assert sorted(s.attributes["die.value"] for s in rolls) == sorted(values)
    for span in rolls:
        assert span.trace_id == d4_batch.trace_id
        assert span.parent_span_id == server.span_id
        assert span.kind == INTERNAL_KIND
        assert span.resource["service.name"] == "dice-roller"
        assert span.status_code != STATUS_ERROR
        assert span.attributes["die.result"] == "success"
        assert "die.error" not in span.attributes
        assert server.start_ns <= span.start_ns <= span.end_ns <= server.end_ns
    # Concurrent, not one after the other: a roll began before another had ended.
    assert overlapping_pairs(rolls), [(s.start_ns, s.end_ns) for s in rolls]


def test_the_die_service_is_asked_once_for_the_whole_batch(d4_batch: Batch) -> None:
    client = only(d4_batch.spans, "dice-roller", CLIENT_KIND)
    assert client.parent_span_id == d4_batch.server.span_id
    looked_up = only(d4_batch.spans, "die-service", SERVER_KIND)
    assert looked_up.parent_span_id == client.span_id
    assert looked_up.attributes["die.name"] == "d4"
    lookups = grew(d4_batch.die_before, d4_batch.die_after, LOOKUPS, die="d4", outcome="found")
    assert lookups == 1


def test_a_batch_writes_one_line_batch_rolled(d4_batch: Batch, roller: RunningService) -> None:
    lines = lines_of(roller, d4_batch.trace_id)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["message"] == "Batch rolled"
    assert line["level"] == "INFO"
    assert line["logger"] == "dice_roller"
    assert line["span_id"] == d4_batch.span_id
    assert line["die_type"] == "d4"
    assert line["times"] == BATCH
    assert line["failed"] == 0
    assert line["roll_values"] == d4_batch.response.json()["rolls"]
    assert line["status"] == 200
    assert line["route"] == "/roll-async"
    assert line["method"] == "GET"


def test_a_batch_is_counted_once_as_a_batch_and_once_per_roll(d4_batch: Batch) -> None:
    before, after = d4_batch.before, d4_batch.after
    assert grew(before, after, f"{BATCH_SIZE}_count") == 1
    assert grew(before, after, f"{BATCH_SIZE}_sum") == BATCH
    assert grew(before, after, f"{BATCH_SIZE}_bucket", le="5.0") == 0
    assert grew(before, after, f"{BATCH_SIZE}_bucket", le="10.0") == 1
    assert d4_batch.trace_id in after.exemplar_trace_ids(f"{BATCH_SIZE}_bucket")

    assert grew(before, after, ROLLS, die_type="d4", result="success") == BATCH
    assert grew(before, after, ROLLS, die_type="d4", result="error") == 0
    assert after.exemplar_trace_ids(ROLLS, die_type="d4", result="success") == {d4_batch.trace_id}
    assert grew(before, after, DURATION_COUNT, die_type="d4") == BATCH
    assert grew(before, after, VALUE_COUNT, die_type="d4") == BATCH
    # Every roll is over once the answer is in: none is left in flight.
    assert before.value(IN_FLIGHT) == 0
    assert after.value(IN_FLIGHT) == 0
    requests = {"handler": "/roll-async", "method": "GET", "status": "2xx"}
    assert grew(before, after, "http_requests_total", **requests) == 1


def test_the_rolls_in_flight_rise_during_a_batch_and_fall_back_to_zero(
    roller: RunningService,
) -> None:
    """A batch of twenty d20s takes up to 1.4 s: long enough to scrape it under way."""
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(roll_batch, roller, "d20", MAX_BATCH)

        def in_flight() -> float | None:
            under_way = scrape(roller.url).value(IN_FLIGHT)
            if under_way > 0:
                return under_way
            if answer.done():
                pytest.fail("the batch ended before a scrape saw a roll in flight")
            return None

        seen = eventually(in_flight, "a roll in flight", timeout=CEILING_SECONDS, interval=0.02)
        response = answer.result(CEILING_SECONDS)
    assert 0 < seen <= MAX_BATCH
    assert response.status_code == 200, response.text
    assert scrape(roller.url).value(IN_FLIGHT) == 0


# Some rolls fail, or all of them


def test_a_batch_where_some_rolls_fail_answers_the_others_and_counts_the_failed(
    risky_batch: Batch, roller: RunningService
) -> None:
    body = risky_batch.response.json()
    failed, values = body["failed"], body["rolls"]
    assert 0 < failed < MAX_BATCH, body
    assert len(values) + failed == MAX_BATCH
    assert all(v in range(2, 8) for v in values), values

    assert risky_batch.server.attributes["batch.failed"] == failed
    assert risky_batch.server.status_code != STATUS_ERROR  # some rolls came back
    rolls = rolls_of(risky_batch.spans, "risky")
    assert len(rolls) == MAX_BATCH
    broken = [s for s in rolls if s.status_code == STATUS_ERROR]
    assert len(broken) == failed
    for span in broken:
        assert span.attributes["die.result"] == "error"
        assert span.attributes["die.error"] == "the risky die slipped off the table"
        assert "die.value" not in span.attributes
    held = [s for s in rolls if s.status_code != STATUS_ERROR]
    assert sorted(s.attributes["die.value"] for s in held) == sorted(values)

    before, after = risky_batch.before, risky_batch.after
    assert grew(before, after, ROLLS, die_type="risky", result="success") == len(values)
    assert grew(before, after, ROLLS, die_type="risky", result="error") == failed
    assert grew(before, after, DURATION_COUNT, die_type="risky") == MAX_BATCH
    assert grew(before, after, VALUE_COUNT, die_type="risky") == len(values)

    [line] = lines_of(roller, risky_batch.trace_id)
    assert (line["message"], line["level"]) == ("Batch rolled", "INFO")
    assert (line["failed"], line["roll_values"], line["status"]) == (failed, values, 200)


def test_a_batch_where_every_roll_fails_is_a_500(fair_batch: Batch, roller: RunningService) -> None:
    assert fair_batch.response.status_code == 500, fair_batch.response.text
    assert fair_batch.response.json() == {"detail": "Every roll of the fair die failed."}

    server = fair_batch.server
    assert server.status_code == STATUS_ERROR
    assert server.attributes["batch.size"] == 5
    assert server.attributes["batch.failed"] == 5
    assert server.attributes["http.response.status_code"] == 500
    rolls = rolls_of(fair_batch.spans, "fair")
    assert len(rolls) == 5
    for span in rolls:
        assert span.parent_span_id == server.span_id
        assert span.status_code == STATUS_ERROR
        assert span.attributes["die.result"] == "error"
        assert span.attributes["die.error"] == FAIR_SLIPPED
        assert "die.value" not in span.attributes

    before, after = fair_batch.before, fair_batch.after
    assert grew(before, after, ROLLS, die_type="fair", result="error") == 5
    assert grew(before, after, ROLLS, die_type="fair", result="success") == 0
    assert grew(before, after, f"{BATCH_SIZE}_count") == 1
    assert after.value(IN_FLIGHT) == 0

    [line] = lines_of(roller, fair_batch.trace_id)
    assert (line["message"], line["level"]) == ("Batch rolled", "ERROR")
    assert (line["die_type"], line["times"], line["failed"]) == ("fair", 5, 5)
    assert (line["roll_values"], line["status"]) == ([], 500)
    # The flag that broke them, as on a single roll's line: the drills' queries find it.
    assert line["feature_flags"] == {"fair-failure-rate": "always"}


# What is no batch


@pytest.mark.parametrize(
    "times", ["0", "21", "2.5", "two", "", None], ids=["0", "21", "2.5", "word", "empty", "missing"]
)
def test_times_outside_1_to_20_is_a_422_and_nothing_is_rolled(
    roller: RunningService, die_service: RunningDieService, times: str | None
) -> None:
    before, die_before = scrape(roller.url), scrape(die_service.url)
    response = roll_batch(roller, "d4", times)
    after, die_after = scrape(roller.url), scrape(die_service.url)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": TIMES_DETAIL}
    assert total(after, ROLLS) == total(before, ROLLS)
    assert grew(before, after, f"{BATCH_SIZE}_count") == 0
    assert total(die_after, LOOKUPS) == total(die_before, LOOKUPS)  # not even asked


def test_a_die_the_die_service_does_not_have_is_a_422_listing_its_dice(
    roller: RunningService,
) -> None:
    before = scrape(roller.url)
    response = roll_batch(roller, "d7", 3)
    after = scrape(roller.url)
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": ALLOWED_DETAIL + ", ".join(SHIPPED_NAMES),
        "allowed": SHIPPED_NAMES,
    }
    assert total(after, ROLLS) == total(before, ROLLS)
    assert grew(before, after, f"{BATCH_SIZE}_count") == 0


def test_an_unreachable_die_service_is_a_503_and_nothing_is_rolled() -> None:
    nowhere = closed_url()  # nothing listens there
    with running_service({"DICE_DIE_SERVICE_URL": nowhere}) as service:
        response = roll_batch(service, "d4", 3)
        trace_id, _ = trace_of(response.headers)
        metrics = scrape(service.url)
        lines = lines_of(service, trace_id)
    assert response.status_code == 503, response.text
    assert response.json()["detail"].startswith(f"The die-service is unreachable at {nowhere}/ (")
    assert total(metrics, ROLLS) == 0
    assert metrics.value(f"{BATCH_SIZE}_count") == 0
    assert metrics.value("dice_die_service_errors_total", reason="unreachable") == 1
    [line] = lines
    assert (line["message"], line["level"], line["reason"]) == (
        "Die unavailable",
        "ERROR",
        "unreachable",
    )
    assert (line["route"], line["status"], line["die_type"]) == ("/roll-async", 503, "d4")


# Stage 1


def test_stage1_has_no_roll_async_and_exports_no_batch_metrics() -> None:
    with running_service() as stage1:
        response = roll_batch(stage1, "fair", 3)
        text = httpx.get(stage1.url + "/metrics", timeout=10).text
        metrics = scrape(stage1.url)
    assert response.status_code == 404, response.text
    assert total(metrics, ROLLS) == 0
    assert metrics.samples  # the scrape itself worked
    assert BATCH_SIZE not in text and IN_FLIGHT not in text
    assert not [s for s in metrics.samples if s.name.startswith((BATCH_SIZE, IN_FLIGHT))]

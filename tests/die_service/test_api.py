"""The die-service as users run it, a real process exporting to an OTLP receiver: each
die's answer, the 404 and 422 bodies (a hostile name never said back), the one log
line of a lookup with its ids, the lookup counter with labels a client cannot multiply,
and the server span with the die's attributes, in the trace of whoever asked."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.support.die_service import RunningDieService, running_die_service
from tests.support.metrics import scrape
from tests.support.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.processes import eventually
from tests.support.service import trace_of

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind
DICE = {
    "fair": ([1, 2, 3, 4, 5, 6], 0.0, 1.0),
    "risky": ([2, 3, 4, 5, 6, 7], 0.1, 1.0),
    "d4": ([1, 2, 3, 4], 0.0, 0.2),
    "d6": (list(range(1, 7)), 0.005, 0.5),
    "d8": (list(range(1, 9)), 0.01, 0.6),
    "d10": (list(range(1, 11)), 0.02, 0.8),
    "d12": (list(range(1, 13)), 0.03, 1.0),
    "d20": (list(range(1, 21)), 0.05, 1.4),
}
"""Every die the service answers, as the issue and dice.py's table say: faces, failure
rate, longest delay."""
ALLOWED = list(DICE)
HOSTILE = '<img src=x onerror="alert(1)">'
"""Markup a page might render; no `/` in it, or no route would take it."""
LOOKUPS = "die_service_lookups_total"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def service(receiver: OtlpReceiver) -> Iterator[RunningDieService]:
    env = receiver.service_env(OTEL_BSP_SCHEDULE_DELAY="200")  # spans leave within 0.2 s
    with running_die_service(env) as service:
        yield service


def get(service: RunningDieService, path: str, **headers: str) -> httpx.Response:
    return httpx.get(service.url + path, headers=headers, timeout=10)


def span_of(receiver: OtlpReceiver, trace_id: str) -> ReceivedSpan:
    """The die-service's server span of `trace_id`, once it has arrived."""

    def arrived() -> ReceivedSpan | None:
        found = [s for s in list(receiver.spans) if s.trace_id == trace_id]
        return found[0] if found else None

    span = eventually(arrived, f"the span of trace {trace_id} arrived", timeout=15)
    assert [s for s in receiver.spans if s.trace_id == trace_id] == [span]
    return span


def test_root_describes_the_service(service: RunningDieService) -> None:
    body = get(service, "/").json()
    assert body["service"] == "die-service"
    assert {"/dice", "/dice/{name}", "/metrics", "/docs"} <= set(body["endpoints"])


@pytest.mark.parametrize("name", ALLOWED)
def test_each_die_answers_its_faces_failure_rate_and_delay(
    service: RunningDieService, name: str
) -> None:
    response = get(service, f"/dice/{name}")
    assert response.status_code == 200, response.text
    faces, failure_rate, max_delay = DICE[name]
    assert response.json() == {
        "name": name,
        "faces": faces,
        "failure_rate": failure_rate,
        "max_delay_seconds": max_delay,
    }
    trace_of(response.headers)  # it names its trace, as every answer does


def test_the_list_has_every_die_in_order(service: RunningDieService) -> None:
    response = get(service, "/dice")
    assert response.status_code == 200
    dice = response.json()["dice"]
    assert [die["name"] for die in dice] == ALLOWED
    assert dice[-1] == get(service, "/dice/d20").json()


def test_an_unknown_die_is_a_404_naming_the_dice_there_are(service: RunningDieService) -> None:
    response = get(service, "/dice/d7")
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no die 'd7'.", "allowed": ALLOWED}


@pytest.mark.parametrize(
    "name",
    ["D20", "d" * 33, "d_20", "dé", "d20 ", HOSTILE, "q" * 20_000],
    ids=["upper-case", "too-long", "underscore", "accent", "space", "hostile", "huge"],
)
def test_a_name_that_cannot_be_a_die_is_a_422_saying_what_is_allowed_never_echoed(
    service: RunningDieService, name: str
) -> None:
    before = scrape(service.url)
    response = get(service, "/dice/" + name)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == (
        "Path parameter 'name' must be 1 to 32 characters, each a lower-case letter, "
        "a digit or '-'."
    )
    assert body["pattern"] == "^[a-z0-9-]{1,32}$"
    assert body["allowed"] == ALLOWED
    assert name not in response.text and name not in str(response.headers)
    assert "onerror" not in response.text
    # No lookup happened: nothing was counted, of any die.
    after = scrape(service.url)
    for die in [*ALLOWED, "other"]:
        for outcome in ("found", "unknown"):
            labels = {"die": die, "outcome": outcome}
            assert after.count(LOOKUPS, **labels) == before.count(LOOKUPS, **labels)


@pytest.mark.parametrize(("name", "status"), [("d12", 200), ("d13", 404)])
def test_a_lookup_writes_one_line_with_its_ids_and_http_fields(
    service: RunningDieService, name: str, status: int
) -> None:
    response = get(service, f"/dice/{name}")
    assert response.status_code == status
    trace_id, span_id = trace_of(response.headers)
    scrape(service.url)  # a later request: the lookup's request is over by its end

    lines = [r for r in service.log_records() if r.get("trace_id") == trace_id]
    assert len(lines) == 1, lines
    [line] = lines
    assert line["span_id"] == span_id
    assert line["logger"] == "die_service"
    assert line["level"] == "INFO"
    assert line["message"] == ("Die found" if status == 200 else "Die unknown")
    assert line["die_name"] == name
    assert line["outcome"] == ("found" if status == 200 else "unknown")
    assert line.get("die_faces") == (12 if status == 200 else None)
    assert (line["method"], line["route"], line["path"]) == ("GET", "/dice/{name}", f"/dice/{name}")
    assert line["status"] == status
    assert isinstance(line["duration_seconds"], float) and line["duration_seconds"] >= 0
    assert line["client"].startswith("127.0.0.1:")


def test_lookups_are_counted_by_known_die_or_other_with_their_trace_as_exemplar(
    service: RunningDieService,
) -> None:
    before = scrape(service.url)
    found = get(service, "/dice/d20")
    trace_id, _ = trace_of(found.headers)
    unknown = [f"d{secrets.randbelow(10**9)}" for _ in range(40)]  # a scanner's guesses
    for name in unknown:
        assert get(service, f"/dice/{name}").status_code == 404
    after = scrape(service.url)

    d20 = {"die": "d20", "outcome": "found"}
    other = {"die": "other", "outcome": "unknown"}
    assert after.count(LOOKUPS, **d20) - before.count(LOOKUPS, **d20) == 1
    assert after.count(LOOKUPS, **other) - before.count(LOOKUPS, **other) == 40
    assert trace_id in after.exemplar_trace_ids(LOOKUPS, **d20)
    # Forty names a client made up, and not one series of their own.
    series = {(s.labels["die"], s.labels["outcome"]) for s in after.samples if s.name == LOOKUPS}
    assert series == {*((die, "found") for die in ALLOWED), ("other", "unknown")}


def test_the_lookup_span_carries_the_die_and_continues_the_callers_trace(
    service: RunningDieService, receiver: OtlpReceiver
) -> None:
    """What the dice-roller will send: a `traceparent` naming its client span, whose
    child this server span becomes."""
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    response = get(service, "/dice/d8", traceparent=f"00-{caller_trace}-{caller_span}-01")
    assert response.status_code == 200
    trace_id, span_id = trace_of(response.headers)
    assert trace_id == caller_trace

    span = span_of(receiver, caller_trace)
    assert span.span_id == span_id and span.parent_span_id == caller_span
    assert span.kind == SERVER_KIND
    assert span.name == "GET /dice/{name}"
    assert span.resource["service.name"] == "die-service"
    assert span.attributes["die.name"] == "d8"
    assert span.attributes["die.faces"] == 8
    assert span.attributes["die.lookup"] == "found"


def test_an_unknown_die_is_on_its_span_without_faces(
    service: RunningDieService, receiver: OtlpReceiver
) -> None:
    response = get(service, "/dice/d100")
    assert response.status_code == 404
    trace_id, _ = trace_of(response.headers)

    span = span_of(receiver, trace_id)
    assert span.attributes["die.name"] == "d100"
    assert span.attributes["die.lookup"] == "unknown"
    assert "die.faces" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404

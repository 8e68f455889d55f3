"""Properties of the query string, whatever a client puts in it.

For any `die` value, repeated or extra parameters, huge URLs and bytes that are not
UTF-8, the service answers, with a 4xx unless the request is a valid roll; never a
5xx other than the risky die's documented failure; never a new metric series; and
every line it prints stays one JSON object. Hypothesis generates the requests and
shrinks any counter-example; one service serves the whole module.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.figures import SeriesKey, broken_log_lines, metric_series, report
from tests.support.raw_http import RawResponse, exchange, request_bytes, run_load, warm_up_requests
from tests.support.service import RunningService, running_service

DICE = ("fair", "risky")
DELIBERATE_FAILURE = {"detail": "The risky die failed: the risky die slipped off the table"}
INVALID_DIE = {
    "detail": "Query parameter 'die' is required and must be one of: fair, risky",
    "allowed": ["fair", "risky"],
}
EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Service:
    """The module's service, the series it had after the warm-up, and a tally of answers."""

    def __init__(self, running: RunningService, baseline: dict[str, set[SeriesKey]]) -> None:
        self.running = running
        self.baseline = baseline

    def send(self, target: bytes) -> RawResponse:
        response = asyncio.run(exchange(self.running.port, request_bytes(target, close=True)))
        assert response is not None, f"no answer to {target[:200]!r}"
        return response

    def new_series(self) -> dict[str, set[SeriesKey]]:
        now = metric_series(self.running)
        return {
            name: s - self.baseline.get(name, set())
            for name, s in now.items()
            if s - self.baseline.get(name, set())
        }


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    env = {"DICE_MAX_DELAY_SECONDS": "0", "DICE_RISKY_FAILURE_RATE": "0.5"}
    with running_service(env) as running:
        assert run_load(running.port, warm_up_requests()).unanswered == 0
        yield Service(running, metric_series(running))


def assert_roll_answer(response: RawResponse, valid_die: str | None) -> None:
    """A roll of `valid_die` succeeds (or fails on purpose); anything else is a clear 422."""
    if valid_die is None:
        assert response.status == 422, response
        assert response.json() == INVALID_DIE
    elif response.status == 500:
        assert valid_die == "risky"
        assert response.json() == DELIBERATE_FAILURE
    else:
        assert response.status == 200, response
        roll = response.json()
        assert isinstance(roll, dict) and set(roll) == {"roll"}


DOCKER_LINE_LIMIT = 16 * 1024
"""Docker splits a longer stdout line into pieces, and Loki gets each piece as a line
of its own: broken JSON (grafana/loki#2920). A line must stay under it to arrive whole."""


def finish(service: Service, name: str, tally: Counter[int]) -> None:
    """After all examples: report, and check series and log lines."""
    new = service.new_series()
    lines, broken = broken_log_lines(service.running)
    longest = max(map(len, service.running.output_path.read_bytes().split(b"\n")))
    report(name, examples=sum(tally.values()), statuses=dict(sorted(tally.items())),
           new_series=sum(map(len, new.values())), log_lines=lines, broken_lines=len(broken),
           longest_line=longest)  # fmt: skip
    assert new == {}
    assert broken == [], broken[:3]
    assert longest < DOCKER_LINE_LIMIT


def encode(text: str) -> bytes:
    # Lone surrogates become bytes that are not UTF-8 at all.
    return quote(text, safe="", errors="surrogatepass").encode()


def test_any_die_value(service: Service) -> None:
    tally: Counter[int] = Counter()

    @EXAMPLES
    @given(
        st.one_of(
            st.text(),
            st.sampled_from(DICE),
            st.sampled_from(["FAIR", "fair ", " risky", "fair\x00"]),
        )
    )
    def probe(value: str) -> None:
        response = service.send(b"/roll?die=" + encode(value))
        tally[response.status] += 1
        assert_roll_answer(response, value if value in DICE else None)

    probe()
    finish(service, "any die value", tally)


def test_bytes_that_are_not_utf8(service: Service) -> None:
    """Percent-encoded bytes, and raw bytes above 0x7f straight in the request line."""
    tally: Counter[int] = Counter()

    @EXAMPLES
    @given(st.binary(min_size=1, max_size=64), st.booleans())
    def probe(value: bytes, raw: bool) -> None:
        if raw:
            # Bytes that would end the request line or the target are encoded; the
            # rest, 0x80-0xff included, go on the wire as they are.
            target = b"/roll?die=" + b"".join(
                bytes([b]) if b >= 0x21 and b not in b"#%&+" else b"%%%02X" % b for b in value
            )
        else:
            target = b"/roll?die=" + quote_from_bytes(value, safe="").encode()
        response = service.send(target)
        tally[response.status] += 1
        if response.status == 400:  # refused by the HTTP parser itself
            assert response.body == b"Invalid HTTP request received."
            return
        decoded = value.decode("utf-8", "replace")
        assert_roll_answer(response, decoded if decoded in DICE else None)

    probe()
    finish(service, "non-UTF-8 bytes", tally)


def test_repeated_and_extra_parameters(service: Service) -> None:
    """The last `die` wins (Starlette's rule); other parameters are ignored; only "&"
    separates parameters."""
    tally: Counter[int] = Counter()
    names = st.one_of(st.just("die"), st.just("Die"), st.text(max_size=8))
    values = st.one_of(st.sampled_from(DICE), st.text(max_size=16))

    @EXAMPLES
    @given(st.lists(st.tuples(names, values), max_size=12), st.sampled_from(["&", ";", "&&"]))
    def probe(pairs: list[tuple[str, str]], separator: str) -> None:
        query = separator.join(f"{encode(n).decode()}={encode(v).decode()}" for n, v in pairs)
        response = service.send(b"/roll?" + query.encode())
        tally[response.status] += 1
        dies = [v for n, v in pairs if n == "die"]
        valid = dies[-1] if dies and dies[-1] in DICE else None
        if separator == ";" and len(pairs) > 1:
            valid = None  # ";" separates nothing: one parameter whose value holds a ";"
        assert_roll_answer(response, valid)

    probe()
    finish(service, "repeated and extra parameters", tally)


def test_huge_urls(service: Service) -> None:
    """From a kilobyte to two megabytes: refused with a 4xx, nothing else."""
    tally: Counter[int] = Counter()

    @settings(EXAMPLES, max_examples=40)
    @given(st.integers(1_000, 2_000_000), st.sampled_from([b"/roll?die=", b"/", b"/roll?x="]))
    def probe(size: int, prefix: bytes) -> None:
        response = service.send(prefix + b"a" * size)
        tally[response.status] += 1
        assert 400 <= response.status < 500, response.status

    probe()
    finish(service, "huge URLs", tally)


def test_any_request_target(service: Service) -> None:
    """Arbitrary bytes as the whole target: a 4xx or an ordinary answer, never a 5xx."""
    tally: Counter[int] = Counter()

    @EXAMPLES
    @given(st.binary(max_size=200).filter(lambda b: not any(c in b for c in b" \r\n")))
    def probe(target: bytes) -> None:
        response = service.send(b"/" + target)
        tally[response.status] += 1
        if response.status == 500:
            assert response.json() == DELIBERATE_FAILURE
        else:
            assert response.status < 500

    probe()
    finish(service, "arbitrary request targets", tally)

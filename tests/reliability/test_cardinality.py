"""No request, however strange, may mint a new metric series.

Every label value of every series must come from a finite set the service chose:
route templates, a fixed list of methods, status classes, die types. A label fed
straight from a request (a raw path, a `die` value, a method token) lets any client
grow Prometheus without bound. The guard: after one request of each legitimate kind
the series are counted; tens of thousands of random requests later, no family may
have a single series more.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.support.figures import broken_log_lines, metric_series, report
from tests.support.otlp import otlp_receiver
from tests.support.raw_http import (
    LEGITIMATE_TARGETS,
    STANDARD_METHODS,
    LoadResult,
    request_bytes,
    run_load,
    warm_up_requests,
)
from tests.support.service import RunningService, running_service

# Tokens that uvicorn's HTTP parser (llhttp, via httptools) accepts as methods besides
# the standard ones: WebDAV, RTSP and other registries. They reach the application.
PARSER_KNOWN_METHODS = (
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
    "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE",
    "UNSUBSCRIBE", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY", "BIND",
    "REBIND", "UNBIND", "ACL",
)  # fmt: skip
RANDOM_REQUESTS = 20_000


def random_requests(rng: random.Random, count: int) -> Iterator[bytes]:
    """Random methods (standard, parser-known, invented), paths and `die` values."""
    alphabet = string.ascii_letters + string.digits + "-._~%/!$&'()*+,;=:@"

    def word(low: int = 1, high: int = 40) -> str:
        return "".join(rng.choices(alphabet, k=rng.randint(low, high)))

    def die_value() -> str:
        choice = rng.random()
        if choice < 0.3:
            text = "".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(1, 12)))
            return quote(text, errors="surrogatepass")  # lone surrogates: invalid UTF-8
        if choice < 0.5:
            return "".join(f"%{rng.randint(0, 255):02X}" for _ in range(rng.randint(1, 8)))
        if choice < 0.6:
            return rng.choice(["fair", "risky", "FAIR", "Fair", "fair ", "risky%00", ""])
        return quote(word(), safe="")

    def target() -> str:
        kind = rng.randrange(6)
        if kind == 0:
            return "/roll?die=" + die_value()
        if kind == 1:
            extra = "&".join(f"{quote(word(1, 8))}={die_value()}" for _ in range(rng.randint(1, 5)))
            return f"/roll?die={die_value()}&{extra}&die={die_value()}"
        if kind == 2:
            return "/" + "/".join(quote(word()) for _ in range(rng.randint(1, 4)))
        if kind == 3:
            return rng.choice(["/roll", "/docs", "/metrics", "/openapi.json", "/"]) + "/" + word()
        if kind == 4:
            return "/" + quote(word()) + "?die=" + die_value()
        return rng.choice(LEGITIMATE_TARGETS)

    def method() -> str:
        kind = rng.random()
        if kind < 0.6:
            return rng.choice(STANDARD_METHODS)
        if kind < 0.85:
            return rng.choice(PARSER_KNOWN_METHODS)
        return "".join(rng.choices(string.ascii_uppercase, k=rng.randint(1, 12)))

    for _ in range(count):
        yield request_bytes(target(), method())


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    env = {"DICE_MAX_DELAY_SECONDS": "0", "DICE_RISKY_FAILURE_RATE": "0.5"}
    with running_service(env) as running:
        yield running


def family_sizes(service: RunningService) -> dict[str, int]:
    return {name: len(series) for name, series in metric_series(service).items()}


def test_unusual_methods_share_one_method_label(service: RunningService) -> None:
    """A method token the parser lets through is recorded under one fixed value."""
    run_load(service.port, [request_bytes("/roll?die=fair", "PROPFIND")])
    before = metric_series(service)
    result = run_load(
        service.port, [request_bytes("/roll?die=fair", m) for m in PARSER_KNOWN_METHODS]
    )
    after = metric_series(service)
    methods = {
        dict(labels)["method"] for _, labels in after["http_requests"] if "method" in dict(labels)
    }
    report(
        "unusual methods",
        sent=result.sent,
        statuses=dict(result.statuses()),
        method_labels=sorted(methods),
    )
    assert after["http_requests"] == before["http_requests"], methods
    assert methods <= {*STANDARD_METHODS, "_OTHER"}


def test_redirected_paths_are_not_handler_labels(service: RunningService) -> None:
    """A trailing-slash redirect ("/roll/" to "/roll", "//" to "/") counts as handler none."""
    targets = ["/roll/", "//", "/docs/", "/openapi.json/", "/redoc/", "/roll//"]
    result = run_load(service.port, [request_bytes(t) for t in targets])
    handlers = {
        dict(labels)["handler"]
        for _, labels in metric_series(service)["http_requests"]
        if "handler" in dict(labels)
    }
    report("redirected paths", sent=result.sent, statuses=dict(result.statuses()))
    assert result.statuses()[307] >= 4
    assert handlers <= {
        "/",
        "/roll",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "none",
    }


@pytest.mark.slow
def test_random_requests_leave_every_family_as_it_was(service: RunningService) -> None:
    warm_up = run_load(service.port, warm_up_requests())
    assert warm_up.unanswered == 0
    before = metric_series(service)

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    started = time.monotonic()
    result: LoadResult = run_load(
        service.port, list(random_requests(rng, RANDOM_REQUESTS)), concurrency=64
    )
    seconds = time.monotonic() - started
    after = metric_series(service)
    lines, broken = broken_log_lines(service)

    grown = {
        name: sorted(after[name] - before.get(name, set()))[:5]
        for name in after
        if not after[name] <= before.get(name, set())
    }
    statuses = result.statuses()
    report(
        "cardinality guard",
        seed=seed,
        random_requests=result.sent,
        unanswered=result.unanswered,
        statuses=dict(sorted(statuses.items())),
        families=len(after),
        series=sum(len(s) for s in after.values()),
        new_series=sum(len(after[n] - before.get(n, set())) for n in after),
        log_lines=lines,
        seconds=round(seconds, 1),
    )
    assert grown == {}, f"seed {seed}: new series {grown}"
    assert {name: len(s) for name, s in after.items()} == {n: len(s) for n, s in before.items()}
    assert result.unanswered == 0, f"seed {seed}"
    assert broken == [], broken[:3]
    # The only 5xx is the risky die's deliberate failure.
    for response in result.responses:
        if response is not None and response.status >= 500:
            assert response.status == 500
            assert response.json() == {
                "detail": "The risky die failed: the risky die slipped off the table"
            }


def test_span_names_stay_bounded_too() -> None:
    """Tempo turns span names into series (`traces_spanmetrics_*{span_name}`): they must
    come from a fixed set as well, a method (or "HTTP" for an unusual one) and a route."""
    routes = {"/", "/roll", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    # OpenTelemetry keeps these method names; any other becomes "HTTP" in the span name.
    methods = {*STANDARD_METHODS, "CONNECT", "QUERY", "HTTP"}
    with otlp_receiver() as receiver:
        env = receiver.service_env(
            DICE_MAX_DELAY_SECONDS="0",
        )
        with running_service(env) as service:
            requests = list(random_requests(random.Random(7), 2000))
            result = run_load(service.port, requests, concurrency=32)
            service.stop()
        names = {span.name for span in receiver.spans}
    unexpected = {
        name
        for name in names
        if name.partition(" ")[0] not in methods or name.partition(" ")[2] not in routes | {""}
    }
    report("span names", requests=result.sent, spans=len(receiver.spans), names=len(names))
    assert unexpected == set()
    assert len(receiver.spans) > 1000

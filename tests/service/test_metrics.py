"""Metric names, labels, buckets and exemplars, as a Prometheus scraper sees them."""

from __future__ import annotations

import itertools

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.support.metrics import OPENMETRICS
from tests.support.service import RunningService, running_service, trace_of


def scrape(service: RunningService, accept: str | None = None) -> str:
    headers = {"Accept": accept} if accept else {}
    response = httpx.get(service.url + "/metrics", headers=headers)
    assert response.status_code == 200
    return response.text


def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every sample of the exposition as (name, sorted labels): the set Prometheus would store."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in parse_text(text)
        for sample in family.samples
    }


def roll_some(service: RunningService) -> None:
    for die in ("fair", "risky"):
        for _ in range(20):
            httpx.get(service.url + "/roll", params={"die": die})


def test_families_labels_and_types() -> None:
    with running_service({"DICE_RISKY_FAILURE_RATE": "0.5"}) as service:
        roll_some(service)
        families = {family.name: family for family in parse_text(scrape(service))}

    assert families["http_requests"].type == "counter"
    labels = {tuple(sorted(s.labels)) for s in families["http_requests"].samples}
    assert labels == {("handler", "method", "status")}
    statuses = {s.labels["status"] for s in families["http_requests"].samples}
    assert statuses == {"2xx", "5xx"}

    assert families["http_request_duration_seconds"].type == "histogram"
    assert families["dice_rolls"].type == "counter"
    rolls = {
        (s.labels["die_type"], s.labels["result"]): s.value
        for s in families["dice_rolls"].samples
        if s.name == "dice_rolls_total"
    }
    assert set(rolls) == {(d, r) for d in ("fair", "risky") for r in ("success", "error")}
    assert rolls["fair", "error"] == 0
    assert rolls["fair", "success"] == 20
    assert rolls["risky", "success"] + rolls["risky", "error"] == 20
    assert rolls["risky", "error"] > 0

    assert families["dice_roll_value"].type == "histogram"
    assert families["dice_roll_duration_seconds"].type == "histogram"


def test_roll_value_buckets_are_1_to_8_and_hold_the_rolls() -> None:
    with running_service() as service:
        roll_some(service)
        text = scrape(service)
    buckets = {
        (s.labels["die_type"], s.labels["le"]): s.value
        for family in parse_text(text)
        if family.name == "dice_roll_value"
        for s in family.samples
        if s.name == "dice_roll_value_bucket"
    }
    les = sorted({le for _, le in buckets}, key=float)
    assert les == ["1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0", "8.0", "+Inf"]
    assert buckets["fair", "6.0"] == buckets["fair", "+Inf"] == 20  # fair never above 6
    assert buckets["risky", "1.0"] == 0  # risky never below 2


def test_latency_buckets_resolve_a_one_second_delay(dice_service: RunningService) -> None:
    httpx.get(dice_service.url + "/roll", params={"die": "fair"})
    les = {
        float(s.labels["le"])
        for family in parse_text(scrape(dice_service))
        if family.name == "http_request_duration_seconds"
        for s in family.samples
        if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    }
    inside_one_second = sorted(le for le in les if 0 < le <= 1.0)
    assert len(inside_one_second) >= 20
    gaps = [b - a for a, b in itertools.pairwise(inside_one_second)]
    assert max(gaps) <= 0.05 + 1e-9


def test_openmetrics_carries_trace_id_exemplars_of_real_requests() -> None:
    with running_service() as service:
        trace_ids = set()
        for die in ("fair", "risky"):
            response = httpx.get(service.url + "/roll", params={"die": die})
            trace_ids.add(trace_of(response.headers)[0])
        text = scrape(service, OPENMETRICS)
        plain = scrape(service)

    exemplars: dict[str, set[str]] = {}
    for family in parse_om(text):
        for sample in family.samples:
            # The start-up probe of "/" left exemplars of its own; look at rolls only.
            if sample.exemplar is not None and sample.labels.get("handler", "/roll") == "/roll":
                exemplars.setdefault(family.name, set()).add(sample.exemplar.labels["trace_id"])
    for name in (
        "http_requests",
        "http_request_duration_seconds",
        "dice_rolls",
        "dice_roll_value",
        "dice_roll_duration_seconds",
    ):
        assert exemplars.get(name), f"no exemplar on {name}"
        assert exemplars[name] <= trace_ids, name
    assert " # {" not in plain  # the classic text format has no exemplars


def test_bad_input_creates_no_new_series() -> None:
    with running_service() as service:
        # One request of each legitimate kind, so every legitimate series exists.
        for path in ("/", "/roll?die=fair", "/roll?die=risky", "/roll?die=bad", "/nowhere"):
            httpx.get(service.url + path)
        before = series(scrape(service))
        hostile = ["FAIR", "x" * 3000, "🎲", "fair\n", "a" * 10, "risky%00"]
        for die in hostile:
            httpx.get(service.url + "/roll", params={"die": die})
        for path in ("/roll/fair", "/admin", "/" + "p" * 2000, "/metrics/x", "/%F0%9F%8E%B2"):
            httpx.get(service.url + path)
        after = series(scrape(service))
    process_series = ("process_", "python_")
    new = {s for s in after - before if not s[0].startswith(process_series)}
    assert new == set()

"""A server's own `/metrics`, read as a scraper reads it: in OpenMetrics with its
exemplars, or as counts by label in the plain text format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample

__all__ = ["OPENMETRICS", "Metrics", "dice_rolls_total", "http_requests_total", "scrape"]

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
"""What Prometheus asks for: the only exposition format that carries exemplars."""


@dataclass(frozen=True)
class Metrics:
    """One scrape of `/metrics` in OpenMetrics."""

    samples: list[Sample]

    def find(self, name: str, **labels: str) -> Sample:
        """The one sample `name` whose labels include `labels`; fails if not exactly one."""
        found = [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, f"{len(found)} samples {name}{labels}"
        return found[0]

    def value(self, name: str, **labels: str) -> float:
        return float(self.find(name, **labels).value)

    def count(self, name: str, **labels: str) -> float:
        """A counter's value, 0 while its series does not exist yet (none was counted)."""
        found = [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, f"{len(found)} samples {name}{labels}"
        return float(found[0].value) if found else 0.0

    def exemplar_trace_ids(self, name: str, **labels: str) -> set[str]:
        """The trace ids of the exemplars on every sample `name` with `labels`."""
        return {
            s.exemplar.labels["trace_id"]
            for s in self.samples
            if s.name == name
            and all(s.labels.get(k) == v for k, v in labels.items())
            and s.exemplar is not None
        }


def scrape(base_url: str) -> Metrics:
    """`/metrics` of the server at `base_url`, in OpenMetrics."""
    response = httpx.get(base_url + "/metrics", headers={"Accept": OPENMETRICS}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = text_string_to_metric_families(response.text)
    return Metrics([sample for family in families for sample in family.samples])


def http_requests_total(url: str) -> Counter[tuple[str, str]]:
    """A service's own ``http_requests_total`` by (handler, status class), from ``/metrics``."""
    text = httpx.get(url + "/metrics").text
    counts: Counter[tuple[str, str]] = Counter()
    for family in parse_text(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                counts[(sample.labels["handler"], sample.labels["status"])] += int(sample.value)
    return counts


def dice_rolls_total(url: str) -> dict[tuple[str, str], float]:
    """The service's own ``dice_rolls_total`` by (die_type, result), from ``/metrics``."""
    text = httpx.get(url + "/metrics").text
    return {
        (sample.labels["die_type"], sample.labels["result"]): sample.value
        for family in parse_text(text)
        for sample in family.samples
        if sample.name == "dice_rolls_total"
    }

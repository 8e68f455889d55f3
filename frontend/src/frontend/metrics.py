"""The frontend's own metric families: its view of the dice-roller, chosen once, here.

The HTTP families (`http_requests_total`, `http_request_duration_seconds`: the
frontend's RED metrics) come with the shared set-up (`sandbox_telemetry.http`); these
say how the service behind it behaved, as the frontend saw it:

- `frontend_upstream_request_duration_seconds{upstream, outcome}`: every call to the
  dice-roller, `outcome` being `success` or the reason it failed;
- `frontend_upstream_errors_total{upstream, reason}`: the calls that gave no roll, by
  reason: `timeout`, `unreachable`, `error_status` (the dice-roller answered an
  error) or `bad_answer` (it answered 200 without a roll).

The roll handler observes them with the trace id as exemplar.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from sandbox_telemetry import LATENCY_BUCKETS
from sandbox_telemetry.upstream import FAILURE_REASONS

__all__ = ["UPSTREAM", "FrontendMetrics"]

UPSTREAM = "dice-roller"
"""The `upstream` label: the one service the frontend calls (stage 3 adds none here)."""


class FrontendMetrics:
    """The upstream families, registered on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.upstream_duration = Histogram(
            "frontend_upstream_request_duration_seconds",
            "Time a call to an upstream service took, by upstream and outcome.",
            ("upstream", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "frontend_upstream_errors",
            "Calls to an upstream service that gave no answer to use, by upstream and reason.",
            ("upstream", "reason"),
            registry=registry,
        )
        # Every series exists at zero from the start, so rate() sees the first error.
        self.upstream_duration.labels(UPSTREAM, "success")
        for reason in FAILURE_REASONS:
            self.upstream_errors.labels(UPSTREAM, reason)
            self.upstream_duration.labels(UPSTREAM, reason)

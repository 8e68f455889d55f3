"""The session's native stack as the tests of tests/nativestack/live see it, and rolls.

Prometheus 3.14, Alertmanager 0.35, Loki 3.7.6 and Alloy 1.18.1 built from their Go
modules, the Tempo stand-in, the alert-receiver and the service, each in its own
network namespace, on the shipped configs (nativestack/). The tests reach them at
their namespace addresses.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from nativestack.stack import NativeStack
from stackclient import Alertmanager, Api, Loki, Prometheus, Tempo
from tests.support.dashboard_model import panels
from tests.support.grafana_macros import QueryContext, substitute
from tests.support.processes import eventually
from tests.support.tools import free_port
from verify.context import CONTAINER, Settings
from verify.service import parse_traceresponse

__all__ = ["CONTAINER", "WAIT", "LiveStack", "Roll", "roll"]

WAIT = 90.0
"""Seconds any test waits for data to travel through the stack."""


@dataclass
class Roll:
    """One request the fixture made, and the trace it started."""

    die: str
    status: int
    trace_id: str
    value: int | None = None
    """The value rolled, when it succeeded."""


@dataclass
class LiveStack:
    native: NativeStack
    rolls: list[Roll]
    started: float
    api: Api = field(default_factory=lambda: Api(timeout=30))

    def loki(
        self, query: str, since: float | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Streams of a LogQL log query over Loki's HTTP API."""
        since = since or self.started - 60
        return self._loki.streams(query, since, time.time() + 5, limit)

    @property
    def _loki(self) -> Loki:
        return Loki(self.api, self.native.loki_url)

    def loki_lines(self, query: str, since: float) -> set[str]:
        """Every line of a log query since `since`: the session's stack prints more
        than one query answers."""
        return Loki(self.api, self.native.loki_url).all_lines(query, since, time.time() + 5)

    @property
    def tempo(self) -> Tempo:
        return Tempo(self.api, self.native.tempo_url)

    @property
    def alertmanager(self) -> Alertmanager:
        return Alertmanager(self.api, self.native.alertmanager_url)

    def prometheus(self, expr: str, path: str = "/api/v1/query", **params: str) -> Any:
        """`data` of Prometheus' answer to `path`, asked with `expr` and `params`."""
        prometheus = Prometheus(self.api, self.native.prometheus_url)
        return prometheus.data(path, {"query": expr, **params})

    def verify_settings(self, stage: int) -> Settings:
        """verify's settings for this stack at `stage`; no Grafana runs here (a closed port)."""
        native = self.native
        return Settings(
            service_url=native.service_url,
            frontend_url=native.frontend_url,
            stage=stage,
            prometheus_url=native.prometheus_url,
            loki_url=native.loki_url,
            tempo_url=native.tempo_url,
            alloy_url=native.alloy_url,
            grafana_url=f"http://127.0.0.1:{free_port()}",
            wait=60.0,
            poll_interval=0.5,
        )

    def later_samples(self, sample: str, count: int = 1) -> float:
        """Wait until Prometheus has `count` samples of `sample` (a `timestamp(...)`
        query) newer than the first it had: rate() and increase() need two, and a
        fixed sleep could end before a busy machine's late scrape. Returns the time."""
        first = eventually(lambda: self.prometheus(sample)["result"], f"no {sample}", WAIT)
        seen = max(float(point["value"][1]) for point in first)
        for _ in range(count):
            later = eventually(
                lambda seen=seen: self.prometheus(f"{sample} > {seen}")["result"],  # type: ignore[misc]
                f"no {sample} after {seen}",
                WAIT,
            )
            seen = max(float(point["value"][1]) for point in later)
        return time.time()

    def empty_panels(
        self,
        dashboard: dict[str, Any],
        end: float,
        trace_id: str | None = None,
        kinds: tuple[str, ...] = ("prometheus", "loki"),
    ) -> list[str]:
        """The titles of `dashboard`'s panels with a query of `kinds` (data source types)
        that returns nothing over the run, asked as Grafana would: a range query at a
        5 s step (a logs panel's LogQL: its lines), `$trace_id` (if the dashboard has
        one) set to `trace_id`."""
        context = QueryContext(
            interval=timedelta(seconds=5),
            time_range=timedelta(seconds=end - self.started + 60),
            scrape_interval=timedelta(seconds=5),
        )
        # Steps run from `start`: end on `end` itself, or the last step could fall
        # before the newest sample, which a fresh stack's rates need.
        start = end - 5 * math.ceil((end - self.started + 60) / 5)
        empty = []
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                kind = (target.get("datasource") or panel["datasource"])["type"]
                if kind not in kinds:
                    continue
                if kind == "prometheus":
                    expr = substitute(target["expr"], context)
                    window = {"start": str(start), "end": str(end), "step": "5"}
                    if not self.prometheus(expr, "/api/v1/query_range", **window)["result"]:
                        empty.append(panel["title"])
                elif kind == "loki":
                    expr = substitute(target["expr"].replace("$trace_id", str(trace_id)), context)
                    if panel["type"] == "logs":
                        found = self.loki(expr)
                    else:  # a metric query (`sum(...)`): a matrix, as a graph asks it
                        window = {"start": f"{start * 1e9:.0f}", "end": f"{end * 1e9:.0f}"}
                        path = "/loki/api/v1/query_range"
                        answer = self._loki.get_json(path, {"query": expr, **window, "step": "5"})
                        found = answer["data"]["result"]
                    if not found:
                        empty.append(panel["title"])
        return empty


def roll(url: str, dice: list[str]) -> list[Roll]:
    """Roll `dice` concurrently; every roll with the trace its answer names."""

    def one(die: str) -> Roll:
        response = httpx.get(f"{url}/roll", params={"die": die}, timeout=30)
        ids = parse_traceresponse(response.headers.get("traceresponse"))
        assert ids is not None, f"no trace named in {dict(response.headers)}"
        value = response.json().get("roll") if response.status_code == 200 else None
        return Roll(die, response.status_code, ids[0], value)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, dice))

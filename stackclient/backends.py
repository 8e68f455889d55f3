"""One client per component of the stack, for the calls the project's tools make.

verify's checks, the drills' probes and the tests read Prometheus, Loki, Tempo,
Alertmanager and Grafana through these, so an answer is read, and a bad one reported,
the same way everywhere: as an `ApiError` that names the component. The clients
check only what an API promises in every answer (Prometheus' `status`, Loki's
`data.result`); what a caller expects of the data is the caller's to check.

The calls, as the versions the stack pins answer them:

- Prometheus HTTP API v1 (stable since 2.0): `{"status": "success"|"error", "data",
  "errorType", "error"}`; a bad query answers 400 or 422, a starting server 503, each
  with that body.
- Loki HTTP API v1 (2.0 and later): `/loki/api/v1/query_range` answers
  `{"data": {"resultType": "streams", "result": [{"stream", "values": [[ns, line]]}]}}`,
  at most `limit` lines (5,000 unless the server allows more).
- Tempo 3.0.3: `/api/v2/traces/<id>` and `/api/search` (see verify/tempo.py for what
  their answers mean).
- Alertmanager API v2 (`/api/v2/...`); Grafana's HTTP API (`/api/...`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .http import Api, ApiError, Component

__all__ = ["LOKI_PAGE", "Alertmanager", "Backend", "Grafana", "Loki", "Prometheus", "Tempo"]

LOKI_PAGE = 5000
"""Loki's default `max_entries_limit_per_query`: the most lines one query returns."""


class Backend:
    """A component at `url`, called through `api` (whose timeout and memory of
    unreachable components it shares)."""

    name: ClassVar[str]

    def __init__(self, api: Api, url: str) -> None:
        self.api = api
        self.component = Component(self.name, url)

    @property
    def url(self) -> str:
        return self.component.url

    def get_json(
        self, path: str, params: dict[str, str] | None = None, ok: tuple[int, ...] = (200,)
    ) -> Any:
        return self.api.get_json(self.component, path, params, ok=ok)


class Prometheus(Backend):
    name = "Prometheus"

    def data(self, path: str, params: dict[str, str] | None = None) -> Any:
        """`data` of an API answer; an `ApiError` with Prometheus' `error` when it has one."""
        body = self.get_json(path, params, ok=(200, 400, 422, 503))
        if not isinstance(body, dict) or "status" not in body:
            raise ApiError(f"Prometheus answered {path} without a status: {body!r:.120}")
        if body["status"] != "success":
            raise ApiError(
                f"Prometheus: {body.get('errorType', 'error')}: {body.get('error', '?')}"
            )
        return body.get("data")

    def _result(self, path: str, params: dict[str, str]) -> list[Any]:
        data = self.data(path, params)
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise ApiError(f"Prometheus answered {path} without a result list: {data!r:.120}")
        return result

    def query(self, expr: str, at: float | None = None) -> list[Any]:
        """The vector (or matrix, for a range selector) `expr` evaluates to at `at`
        (Unix seconds; now when None)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._result("/api/v1/query", params)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._result("/api/v1/query_range", params)

    def exemplars(self, expr: str, start: float, end: float) -> list[Any]:
        """The series of `expr` with their exemplars between `start` and `end`."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        data = self.data("/api/v1/query_exemplars", params)
        if not isinstance(data, list):
            raise ApiError(f"Prometheus answered without a list of exemplars: {data!r:.120}")
        return data

    def rule_groups(self, kind: str | None = None) -> list[Any]:
        """The rule groups, with their rules' state; `kind` "alert" or "record" keeps one kind."""
        data = self.data("/api/v1/rules", {"type": kind} if kind else {})
        groups = data.get("groups") if isinstance(data, dict) else None
        if not isinstance(groups, list):
            raise ApiError(f"Prometheus answered /api/v1/rules without groups: {data!r:.120}")
        return groups

    def alerts(self) -> list[Any]:
        """The alerts its rules hold now, pending or firing."""
        data = self.data("/api/v1/alerts")
        alerts = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(alerts, list):
            raise ApiError(
                f"Prometheus answered /api/v1/alerts without an alerts list: {data!r:.120}"
            )
        return alerts

    def targets(self, state: str = "active") -> Any:
        return self.data("/api/v1/targets", {"state": state})

    def alertmanagers(self) -> Any:
        return self.data("/api/v1/alertmanagers")


class Loki(Backend):
    name = "Loki"

    def streams(
        self, query: str, start: float, end: float, limit: int, direction: str = "backward"
    ) -> list[Any]:
        """The streams `query` selects between `start` and `end` (Unix seconds), at most
        `limit` lines, the newest first unless `direction` is "forward"."""
        return self._streams(query, int(start * 1e9), int(end * 1e9), limit, direction)

    def _streams(self, query: str, start: int, end: int, limit: int, direction: str) -> list[Any]:
        params = {
            "query": query,
            "start": str(start),
            "end": str(end),
            "limit": str(limit),
            "direction": direction,
        }
        body = self.get_json("/loki/api/v1/query_range", params)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise ApiError(f"Loki answered without data.result: {body!r:.160}")
        result: list[Any] = data["result"]
        if data.get("resultType") != "streams":
            raise ApiError(f"expected log streams, Loki answered {data.get('resultType')!r}")
        return result

    def all_lines(self, query: str, start: float, end: float) -> set[str]:
        """Every line of `query` between `start` and `end`, page by page: one query
        answers at most `LOKI_PAGE` lines."""
        first, last = int(start * 1e9), int(end * 1e9)
        lines: set[str] = set()
        while True:
            page = sorted(
                (int(stamp), line)
                for stream in self._streams(query, first, last, LOKI_PAGE, "forward")
                for stamp, line in stream["values"]
            )
            lines.update(line for _, line in page)
            # The next page starts at the last line's nanosecond (inclusive: lines
            # sharing it are read twice, and the set keeps them once).
            if len(page) < LOKI_PAGE or page[-1][0] == first:
                return lines
            first = page[-1][0]


class Tempo(Backend):
    name = "Tempo"

    def trace(self, trace_id: str) -> Any:
        """Tempo's answer for `trace_id`, as it is (an unknown id answers 200 too)."""
        return self.get_json(f"/api/v2/traces/{trace_id}")

    def search(self, traceql: str, start: int, end: int, limit: int) -> list[Any]:
        """The traces matching `traceql` between `start` and `end` (Unix seconds)."""
        params = {"q": traceql, "start": str(start), "end": str(end), "limit": str(limit)}
        body = self.get_json("/api/search", params)
        traces = body.get("traces", []) if isinstance(body, dict) else None
        if not isinstance(traces, list):
            raise ApiError(f"expected {{'traces': [...]}} from /api/search, got {body!r:.120}")
        return traces


class Alertmanager(Backend):
    name = "Alertmanager"

    def alerts(self, alertname: str | None = None) -> list[Any]:
        """The alerts it holds (named `alertname`, when given), silenced ones too."""
        params = {"filter": f'alertname="{alertname}"'} if alertname else None
        body = self.get_json("/api/v2/alerts", params)
        if not isinstance(body, list):
            raise ApiError(f"Alertmanager answered /api/v2/alerts with {body!r:.120}, not a list")
        return body

    def status(self) -> Any:
        return self.get_json("/api/v2/status")


class Grafana(Backend):
    name = "Grafana"

    def post_json(self, path: str, body: Any, ok: tuple[int, ...] = (200,)) -> Any:
        return self.api.post_json(self.component, path, body, ok=ok)

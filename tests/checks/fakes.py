"""Stand-ins for Loki, Tempo, Alloy and Grafana, which cannot run here.

Each is a small HTTP server on 127.0.0.1 answering in the documented format of the
component's API, from real data wherever there is some:

- `FakeLoki` (Loki HTTP API v1, `/loki/api/v1/query_range`, as in Loki 3.x) serves
  the lines the real service printed, as Alloy would ship them, and evaluates the
  small part of LogQL the checks and the dashboard use: one stream selector, line
  filters `|= "text"`, the `| json` parser (with Loki's `__error__` label on lines
  that are not JSON) and label filters `| name="value"`. Errors are plain text, as
  Loki answers them.
- `FakeTempo` (Tempo HTTP API: "Query V2" `/api/v2/traces/<id>` and "Search"
  `/api/search`, as documented for Tempo 2.x/3.x) serves the spans the real service
  exported to an OTLP receiver, in OpenTelemetry JSON with base64 ids, as Tempo's
  protobuf JSON writes them (grafana/tempo#5437; OTLP/JSON itself says hex).
  It does not imitate `query_end_cutoff`: every received trace is searchable.
- `FakeAlloy` (Alloy 1.x: `/-/ready` and the UI's `/api/v0/web/components` API)
  reports a `discovery.docker` component whose `targets` export lists containers.
- `FakeGrafana` (Grafana HTTP API: `/api/search`, `/api/dashboards/uid/<uid>`,
  `/api/datasources/uid/<uid>/health`, `/api/ds/query`) serves the repository's
  dashboard and runs panel queries the way Grafana's backend does: Prometheus
  queries against the real Prometheus, with macros substituted by
  `tests.support.grafana_macros`; Loki queries against `FakeLoki`. A failed query is
  answered with HTTP 400 and the error under its refId, as Grafana does without the
  `datasourceQueryMultiStatus` feature.

Every fake can also misbehave, per path prefix: `fail["/path"] = mode` with mode one
of "500", "404", "malformed" (200 with broken JSON), "empty" (a valid answer with no
data) and "hang" (never answers, until the server stops).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from tests.support.grafana_macros import QueryContext, substitute
from tests.support.http_server import LocalHTTPServer, QuietHandler
from tests.support.otlp import OtlpReceiver, ReceivedSpan

JSONValue = Any
Answer = tuple[int, str, bytes]  # status, content type, body

MODES = ("500", "404", "malformed", "empty", "hang")


def json_answer(body: JSONValue, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(body).encode()


def text_answer(text: str, status: int = 200) -> Answer:
    return status, "text/plain; charset=utf-8", text.encode()


class FakeServer(LocalHTTPServer):
    """A threaded HTTP server whose `answer` method each fake implements."""

    name = "fake"

    def __init__(self) -> None:
        self.fail: dict[str, str] = {}
        self.requests: list[str] = []
        self.current_headers: dict[str, str] = {}
        super().__init__(self._handler_class())

    def reset(self) -> None:
        self.fail.clear()
        self.requests.clear()

    def mode_for(self, path: str) -> str | None:
        for prefix, mode in self.fail.items():
            if path.startswith(prefix):
                return mode
        return None

    def answer(
        self, method: str, path: str, params: dict[str, str], body: bytes, mode: str | None
    ) -> Answer:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append(f"{method} {path}")
                fake.current_headers = {k.lower(): v for k, v in self.headers.items()}
                mode = fake.mode_for(path)
                if mode == "hang":
                    fake.release.wait(120)
                    return
                if mode == "500":
                    answer = text_answer("internal server error: something broke", 500)
                elif mode == "404":
                    answer = text_answer("404 page not found\n", 404)
                elif mode == "malformed":
                    answer = 200, "application/json", b'{"status": "success", "data": {'
                else:
                    try:
                        answer = fake.answer(method, path, params, body, mode)
                    except Exception as error:  # a bug in a fake shows up as a 500
                        answer = text_answer(f"fake {fake.name} failed: {error!r}", 500)
                status, content_type, payload = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


# ------------------------------------------------------------------ Loki


class LogQLError(ValueError):
    pass


_SELECTOR = re.compile(r'^\s*\{\s*(\w+)\s*=\s*"([^"]*)"\s*\}')
_STAGE = re.compile(
    r'\s*(?:\|=\s*"(?P<contains>(?:[^"\\]|\\.)*)"'
    r"|\|\s*(?P<json>json)\b"
    r'|\|\s*(?P<label>\w+)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)")'
)


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Loki's `| json` without arguments: nested keys joined with `_`, values as text."""
    labels: dict[str, str] = {}
    for key, value in record.items():
        name = re.sub(r"\W", "_", f"{prefix}{key}")
        if isinstance(value, dict):
            labels.update(_flatten(value, name + "_"))
        elif value is not None:
            labels[name] = value if isinstance(value, str) else json.dumps(value)
    return labels


class FakeLoki(FakeServer):
    """Loki HTTP API v1 over the lines `lines()` returns (one stream, as Alloy labels it)."""

    name = "Loki"

    def __init__(self, lines: Callable[[], list[str]], labels: dict[str, str]) -> None:
        super().__init__()
        self.lines = lines
        self.labels = labels
        self.extra_lines: list[tuple[int, str]] = []

    def reset(self) -> None:
        super().reset()
        self.extra_lines.clear()

    def add_line(self, line: str) -> None:
        """A line from another writer in the same container, received now."""
        self.extra_lines.append((time.time_ns(), line))

    def _timed_lines(self) -> list[tuple[int, str]]:
        timed = list(self.extra_lines)
        for line in self.lines():
            try:
                stamp = json.loads(line)["timestamp"]
                ns = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1e9)
            except (ValueError, KeyError, TypeError):
                ns = time.time_ns()
            timed.append((ns, line))
        return timed

    def evaluate(self, query: str, start: int, end: int, limit: int) -> list[dict[str, Any]]:
        match = _SELECTOR.match(query)
        if match is None:
            raise LogQLError(f"parse error : syntax error: unexpected input in {query!r}")
        if self.labels.get(match.group(1)) != match.group(2):
            return []
        rest, stages = query[match.end() :], []
        while rest.strip():
            stage = _STAGE.match(rest)
            if stage is None:
                raise LogQLError(f"parse error : unexpected {rest.strip()[:20]!r}")
            stages.append(stage)
            rest = rest[stage.end() :]
        streams: dict[str, dict[str, Any]] = {}
        chosen = [(ns, line) for ns, line in self._timed_lines() if start <= ns <= end]
        for ns, line in sorted(chosen, reverse=True):
            labels: dict[str, str] | None = dict(self.labels)
            for stage in stages:
                assert labels is not None
                if stage.group("contains") is not None:
                    if json.loads(f'"{stage.group("contains")}"') not in line:
                        labels = None
                elif stage.group("json"):
                    try:
                        record = json.loads(line)
                        if not isinstance(record, dict):
                            raise ValueError("not an object")
                        labels.update(_flatten(record))
                    except ValueError as error:
                        labels["__error__"] = "JSONParserErr"
                        labels["__error_details__"] = str(error)
                else:
                    wanted = json.loads(f'"{stage.group("value")}"')
                    if labels.get(stage.group("label")) != wanted:
                        labels = None
                if labels is None:
                    break
            if labels is None:
                continue
            key = json.dumps(labels, sort_keys=True)
            streams.setdefault(key, {"stream": labels, "values": []})["values"].append(
                [str(ns), line]
            )
            if sum(len(s["values"]) for s in streams.values()) >= limit:
                break
        return list(streams.values())

    def answer(
        self, method: str, path: str, params: dict[str, str], body: bytes, mode: str | None
    ) -> Answer:
        if path == "/ready":
            return text_answer("ready\n")
        if path != "/loki/api/v1/query_range":
            return text_answer("404 page not found\n", 404)
        now = time.time_ns()
        try:
            result = self.evaluate(
                params.get("query", ""),
                int(params.get("start", now - 3600 * 10**9)),
                int(params.get("end", now)),
                int(params.get("limit", 100)),
            )
        except LogQLError as error:
            return text_answer(str(error), 400)
        if mode == "empty":
            result = []
        return json_answer(
            {
                "status": "success",
                "data": {"resultType": "streams", "result": result, "stats": {}},
            }
        )


# ----------------------------------------------------------------- Tempo

_KINDS = {
    0: "SPAN_KIND_UNSPECIFIED",
    1: "SPAN_KIND_INTERNAL",
    2: "SPAN_KIND_SERVER",
    3: "SPAN_KIND_CLIENT",
    4: "SPAN_KIND_PRODUCER",
    5: "SPAN_KIND_CONSUMER",
}


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


class FakeTempo(FakeServer):
    """Tempo's trace-by-id (v2) and search APIs over the spans an OTLP receiver got."""

    name = "Tempo"

    def __init__(self, receiver: OtlpReceiver) -> None:
        super().__init__()
        self.receiver = receiver
        self.drop_attributes: set[str] = set()
        self.stretch_seconds = 0.0

    def reset(self) -> None:
        super().reset()
        self.drop_attributes.clear()
        self.stretch_seconds = 0.0

    def _spans(self) -> list[ReceivedSpan]:
        return list(self.receiver.spans)

    def _otlp_span(self, span: ReceivedSpan) -> dict[str, Any]:
        attributes = {k: v for k, v in span.attributes.items() if k not in self.drop_attributes}
        return {
            "traceId": _b64(span.trace_id),
            "spanId": _b64(span.span_id),
            "name": span.name,
            "kind": _KINDS.get(span.kind, "SPAN_KIND_UNSPECIFIED"),
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.end_ns + int(self.stretch_seconds * 1e9)),
            "attributes": [{"key": k, "value": _any_value(v)} for k, v in attributes.items()],
            "status": {"code": "STATUS_CODE_ERROR"} if span.status_code == 2 else {},
        }

    def answer(
        self, method: str, path: str, params: dict[str, str], body: bytes, mode: str | None
    ) -> Answer:
        if path.startswith("/api/v2/traces/"):
            trace_id = path.rsplit("/", 1)[1].lower()
            spans = [s for s in self._spans() if s.trace_id == trace_id]
            if not spans or mode == "empty":
                return text_answer("trace not found\n", 404)
            resource = spans[0].resource
            return json_answer(
                {
                    "trace": {
                        "resourceSpans": [
                            {
                                "resource": {
                                    "attributes": [
                                        {"key": k, "value": _any_value(v)}
                                        for k, v in resource.items()
                                    ]
                                },
                                "scopeSpans": [
                                    {
                                        "scope": {"name": "opentelemetry.instrumentation"},
                                        "spans": [self._otlp_span(s) for s in spans],
                                    }
                                ],
                            }
                        ]
                    }
                }
            )
        if path == "/api/search":
            match = re.fullmatch(
                r'\{\s*resource\.service\.name\s*=\s*"([^"]*)"\s*\}', params.get("q", "")
            )
            if match is None:
                return text_answer("invalid TraceQL query: unsupported by this fake", 400)
            start = int(params.get("start", 0)) * 10**9
            end = int(params.get("end", 2**40)) * 10**9
            traces: dict[str, list[ReceivedSpan]] = {}
            for span in self._spans():
                service = span.resource.get("service.name")
                if service == match.group(1) and start <= span.start_ns <= end:
                    traces.setdefault(span.trace_id, []).append(span)
            if mode == "empty":
                # Tempo writes protobuf JSON, which leaves out an empty list entirely.
                return json_answer({"metrics": {"inspectedBytes": "0", "totalBlocks": 0}})
            found = list(traces.items())
            limit = int(params.get("limit", 20))
            return json_answer(
                {
                    "traces": [
                        {
                            "traceID": trace_id,
                            "rootServiceName": match.group(1),
                            "rootTraceName": spans[0].name,
                            "startTimeUnixNano": str(min(s.start_ns for s in spans)),
                            "durationMs": int(
                                (max(s.end_ns for s in spans) - min(s.start_ns for s in spans))
                                / 1e6
                            ),
                        }
                        for trace_id, spans in found[:limit]
                    ],
                    "metrics": {"inspectedBytes": "0", "totalBlocks": 0},
                }
            )
        if path == "/ready":
            return text_answer("ready\n")
        return text_answer("404 page not found\n", 404)


# ----------------------------------------------------------------- Alloy


class FakeAlloy(FakeServer):
    """Alloy's readiness probe and its UI's component API, with docker discovery."""

    name = "Alloy"
    COMPONENT = "discovery.docker.containers"

    def __init__(self, containers: list[str]) -> None:
        super().__init__()
        self.default_containers = list(containers)
        self.containers = list(containers)

    def reset(self) -> None:
        super().reset()
        self.containers = list(self.default_containers)

    def _info(self, local_id: str) -> dict[str, Any]:
        name, _, label = local_id.rpartition(".")
        return {
            "moduleID": "",
            "localID": local_id,
            "name": name,
            "label": label,
            "health": {"state": "healthy", "message": "started component"},
            "referencedBy": [],
            "referencesTo": [],
            "dataFlowEdgesTo": [],
            "liveDebuggingEnabled": False,
        }

    def _target(self, container: str) -> dict[str, Any]:
        labels = {
            "__address__": "172.18.0.5:8000",
            "__meta_docker_container_name": container,
            "__meta_docker_container_label_com_docker_compose_project": "dice-sandbox",
        }
        return {
            "type": "object",
            "value": [
                {"key": k, "value": {"type": "string", "value": v}} for k, v in labels.items()
            ],
        }

    def answer(
        self, method: str, path: str, params: dict[str, str], body: bytes, mode: str | None
    ) -> Answer:
        ids = [self.COMPONENT, "discovery.relabel.containers", "loki.source.docker.containers"]
        if path == "/-/ready":
            return text_answer("Alloy is ready.\n")
        if path == "/api/v0/web/components":
            return json_answer([self._info(i) for i in ids])
        if path == f"/api/v0/web/components/{self.COMPONENT}":
            containers = [] if mode == "empty" else self.containers
            detail = self._info(self.COMPONENT)
            detail["arguments"] = [
                {
                    "type": "attr",
                    "name": "host",
                    "value": {"type": "string", "value": "unix:///var/run/docker.sock"},
                }
            ]
            detail["exports"] = [
                {
                    "type": "attr",
                    "name": "targets",
                    "value": {"type": "array", "value": [self._target(c) for c in containers]},
                }
            ]
            return json_answer(detail)
        return text_answer("404 page not found\n", 404)


# --------------------------------------------------------------- Grafana


def _grafana_time(text: str, now: float) -> float:
    match = re.fullmatch(r"now(?:-(\d+)([smhd]))?", text)
    if match is None:
        return float(text) / 1000
    if match.group(1) is None:
        return now
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return now - int(match.group(1)) * scale


class FakeGrafana(FakeServer):
    """Grafana's search, dashboard, data source health and query APIs."""

    name = "Grafana"

    def __init__(
        self,
        dashboard: dict[str, Any],
        datasources: list[dict[str, Any]],
        prometheus_url: str,
        loki: FakeLoki,
    ) -> None:
        super().__init__()
        self.dashboard = dashboard
        self.datasources = datasources
        self.prometheus_url = prometheus_url
        self.loki = loki
        self.unhealthy: set[str] = set()
        self.failing_panels: set[str] = set()
        self.with_dashboard = True
        self.credentials: tuple[str, str] | None = None

    def reset(self) -> None:
        super().reset()
        self.unhealthy.clear()
        self.failing_panels.clear()
        self.with_dashboard = True
        self.credentials = None

    def answer(
        self, method: str, path: str, params: dict[str, str], body: bytes, mode: str | None
    ) -> Answer:
        uid, title = self.dashboard["uid"], self.dashboard["title"]
        if self.credentials is not None:
            user, password = self.credentials
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.current_headers.get("authorization") != f"Basic {token}":
                return json_answer({"message": "Unauthorized"}, 401)
        if path == "/api/search":
            hits = (
                []
                if not self.with_dashboard or mode == "empty"
                else [
                    {
                        "id": 1,
                        "uid": uid,
                        "title": title,
                        "uri": f"db/{uid}",
                        "url": f"/d/{uid}/dice-roller-stage-1",
                        "type": "dash-db",
                        "tags": [],
                        "isStarred": False,
                    }
                ]
            )
            query = params.get("query", "").lower()
            return json_answer([h for h in hits if query in h["title"].lower()])
        if path == f"/api/dashboards/uid/{uid}" and self.with_dashboard:
            return json_answer(
                {"dashboard": self.dashboard, "meta": {"type": "db", "provisioned": True}}
            )
        if path.startswith("/api/dashboards/uid/"):
            return json_answer({"message": "Dashboard not found"}, 404)
        match = re.fullmatch(r"/api/datasources/uid/([^/]+)/health", path)
        if match:
            if match.group(1) not in {d["uid"] for d in self.datasources}:
                return json_answer({"message": "Data source not found"}, 404)
            if match.group(1) in self.unhealthy:
                return json_answer({"status": "ERROR", "message": "connection refused"}, 400)
            return json_answer({"status": "OK", "message": "Data source is working"})
        if path == "/api/ds/query" and method == "POST":
            return self._query(json.loads(body))
        return json_answer({"message": "Not found"}, 404)

    def _query(self, request: dict[str, Any]) -> Answer:
        now = time.time()
        start = _grafana_time(str(request["from"]), now)
        end = _grafana_time(str(request["to"]), now)
        results: dict[str, Any] = {}
        failed = False
        failing_exprs = {
            target.get("expr")
            for panel in self.dashboard.get("panels", [])
            if panel.get("title") in self.failing_panels
            for target in panel.get("targets", [])
        }
        for query in request["queries"]:
            ref = query["refId"]
            try:
                if query.get("expr") in failing_exprs:
                    raise ValueError("bad_data: 1:1: parse error: unexpected character")
                kind = (query.get("datasource") or {}).get("type")
                if kind == "prometheus":
                    frames = self._prometheus(query, start, end)
                elif kind == "loki":
                    frames = self._loki(query, start, end)
                else:
                    raise ValueError(f"this fake has no data source of type {kind!r}")
                results[ref] = {"status": 200, "frames": frames}
            except ValueError as error:
                failed = True
                results[ref] = {"error": str(error), "errorSource": "downstream", "status": 400}
        return json_answer({"results": results}, 400 if failed else 200)

    def _prometheus(self, query: dict[str, Any], start: float, end: float) -> list[Any]:
        context = QueryContext(
            interval=timedelta(milliseconds=query["intervalMs"]),
            time_range=timedelta(seconds=end - start),
            scrape_interval=timedelta(seconds=5),  # the data source's timeInterval
            instant=bool(query.get("instant")),
        )
        expr = substitute(query["expr"], context)
        if query.get("instant"):
            params = {"query": expr, "time": f"{end:.3f}"}
            path = "/api/v1/query"
        else:
            step = max(query["intervalMs"] / 1000, 5)
            params = {
                "query": expr,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": str(step),
            }
            path = "/api/v1/query_range"
        body = httpx.get(self.prometheus_url + path, params=params, timeout=10).json()
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        frames = []
        for series in body["data"]["result"]:
            points = series.get("values") or [series["value"]]
            frames.append(
                {
                    "schema": {
                        "refId": query["refId"],
                        "fields": [
                            {"name": "Time", "type": "time"},
                            {"name": "Value", "type": "number", "labels": series["metric"]},
                        ],
                    },
                    "data": {
                        "values": [
                            [int(float(t) * 1000) for t, _ in points],
                            [float(v) for _, v in points],
                        ]
                    },
                }
            )
        return frames

    def _loki(self, query: dict[str, Any], start: float, end: float) -> list[Any]:
        # Through Loki's HTTP API, as Grafana's backend goes, so Loki's failures show here too.
        response = httpx.get(
            self.loki.url + "/loki/api/v1/query_range",
            params={
                "query": query["expr"],
                "start": str(int(start * 1e9)),
                "end": str(int(end * 1e9)),
                "limit": "1000",
            },
            timeout=10,
        )
        if response.status_code != 200:
            raise ValueError(f"Loki: {response.status_code} {response.text[:100]}")
        try:
            streams = response.json()["data"]["result"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"Loki: malformed answer {response.text[:60]!r}") from None
        values = [(ns, line, s["stream"]) for s in streams for ns, line in s["values"]]
        return [
            {
                "schema": {
                    "refId": query["refId"],
                    "fields": [
                        {"name": "labels", "type": "other"},
                        {"name": "Time", "type": "time"},
                        {"name": "Line", "type": "string"},
                        {"name": "tsNs", "type": "string"},
                    ],
                },
                "data": {
                    "values": [
                        [labels for _, _, labels in values],
                        [int(int(ns) / 1e6) for ns, _, _ in values],
                        [line for _, line, _ in values],
                        [ns for ns, _, _ in values],
                    ]
                },
            }
        ]

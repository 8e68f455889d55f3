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
  `/api/search`) serves the spans the real service exported to an OTLP receiver, in
  OpenTelemetry JSON with base64 ids, as Tempo's protobuf JSON writes them
  (grafana/tempo#5437; OTLP/JSON itself says hex). Trace by id answers exactly as a
  real Tempo 3.0.3 did, a trace not yet ingested included (see its docstring), and
  can hold a trace back for a while as the real one does. It does not imitate
  `query_end_cutoff`: every received trace is searchable.
- `FakeAlloy` (Alloy 1.x: `/-/ready` and the UI's `/api/v0/web/components` API)
  reports a `discovery.docker` component whose `targets` export lists containers.
- `FakeGrafana` (Grafana HTTP API: `/api/search`, `/api/dashboards/uid/<uid>`,
  `/api/datasources/uid/<uid>/health`, `/api/ds/query`) serves the repository's
  dashboard and runs panel queries the way Grafana's backend does: Prometheus
  queries against the real Prometheus, with macros substituted by
  `tests.support.grafana_macros`; Loki queries against `FakeLoki`. Its answers, errors
  included, were compared with Grafana's source (see its docstring for the files).

Every fake can also misbehave, per path prefix: `fail["/path"] = mode` with mode one
of "500", "404", "malformed" (200 with broken JSON), "empty" (a valid answer with no
data) and "hang" (never answers, until the server stops).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import yaml

from checks.context import DASHBOARD_FILE, ROOT
from tests.support.grafana_macros import QueryContext, substitute
from tests.support.http_server import LocalHTTPServer, QuietHandler
from tests.support.otlp import OtlpReceiver, ReceivedSpan

JSONValue = Any

DASHBOARD_PROVISIONING = ROOT / "stack" / "grafana" / "provisioning" / "dashboards"
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
    """Tempo's trace-by-id (v2) and search APIs over the spans an OTLP receiver got.

    Trace by id answers as a real Tempo 3.0.3 did (built from source and run on
    stack/tempo/config.yaml; /work/shared/notes/stack-facts.md, "Tempo 3.0", "Seen with
    a real 3.0.3"): `{"trace": {"resourceSpans": [...]}}` for a trace it has, and HTTP
    200 with `{"trace": {}, "metrics": {}}` for one it has not ingested yet, never 404.
    A real Tempo makes a fresh trace readable 0.2 to 1.1 s after its request (issue 16);
    `withhold_seconds` imitates that: a trace is answered as not yet ingested until that
    long after this fake first found it among the received spans, and `withheld` counts
    those answers per trace id.
    """

    name = "Tempo"
    NOT_YET: ClassVar[dict[str, Any]] = {"trace": {}, "metrics": {}}

    def __init__(self, receiver: OtlpReceiver) -> None:
        super().__init__()
        self.receiver = receiver
        self.drop_attributes: set[str] = set()
        self.stretch_seconds = 0.0
        self.withhold_seconds = 0.0
        self.withheld: Counter[str] = Counter()
        self._first_found: dict[str, float] = {}

    def reset(self) -> None:
        super().reset()
        self.drop_attributes.clear()
        self.stretch_seconds = 0.0
        self.withhold_seconds = 0.0
        self.withheld.clear()
        self._first_found.clear()

    def _spans(self) -> list[ReceivedSpan]:
        return list(self.receiver.spans)

    def _ingested(self, trace_id: str, spans: list[ReceivedSpan]) -> bool:
        """Whether the trace is readable yet: found, and withheld long enough."""
        if not spans:
            return False
        found = self._first_found.setdefault(trace_id, time.monotonic())
        if time.monotonic() - found < self.withhold_seconds:
            self.withheld[trace_id] += 1
            return False
        return True

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
            if mode == "empty" or not self._ingested(trace_id, spans):
                return json_answer(self.NOT_YET)
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


def grafana_slug(title: str) -> str:
    """Grafana's slug of a title, for ASCII titles (pkg/infra/slugify): "Dice Roller - Stage 1"
    becomes "dice-roller-stage-1"."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _provisioned_folder() -> str:
    """The folder the repository's dashboard provider puts the dashboard in."""
    [path] = sorted(DASHBOARD_PROVISIONING.glob("*.y*ml"))
    providers = yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
    return str(providers[0].get("folder") or "General")


def _grafana_error(message: str, status: int) -> Answer:
    """`response.Error(status, message, err)` with an err, as Grafana writes it in production:
    no `error` field, and the `traceID` (empty without tracing) added on the way out."""
    return json_answer({"message": message, "traceID": ""}, status)


class FakeGrafana(FakeServer):
    """Grafana's search, dashboard, data source health and query APIs, answering as 13.x does.

    Compared with Grafana's source (github.com/grafana/grafana): the newest versions of
    the files below in the public code index, 12.x or later. A snapshot of the whole
    repository was over the size that can be fetched here, so the v13.2.0 tag itself
    was not read; compare again once a real Grafana 13.2.0 runs in the suite.

    - `GET /api/search` (pkg/api/search.go; pkg/services/search/model/model.go `Hit`;
      pkg/services/dashboards/service/dashboard_service.go `makeQueryResult`): a list of
      hits with `orgId`, `uri` "db/<slug>", `url` "/d/<uid>/<slug>", an empty `slug`,
      `sortMeta` 0, `isDeleted` false and the folder's uid, title and url.
    - `GET /api/dashboards/uid/<uid>` (pkg/api/dashboard.go `GetDashboard`,
      pkg/api/dtos/dashboard.go `DashboardMeta`): `{"dashboard", "meta"}`, the dashboard
      with its `id` and `version` set; meta as for the anonymous Editor of
      stack/compose.yml, provisioned with `allowUiUpdates: false`. An unknown uid is
      `getDashboardHelper`'s 404 `{"message": "Dashboard not found", "traceID": ""}`
      (pkg/api/response/response.go adds `traceID` to every error with a cause).
    - `GET /api/datasources/uid/<uid>/health` (pkg/api/datasources.go
      `CheckDatasourceHealthWithUID`, `checkDatasourceHealth`): 200 `{"status": "OK",
      "message"}`, or 400 with `"status": "ERROR"` when the plugin says so; the messages
      are the plugins' own (pkg/promlib/healthcheck.go, pkg/tsdb/loki/healthcheck.go;
      for Tempo, the message a user's real 13.2.0 reported). An unknown uid is a 500
      "Unable to load datasource metadata", not a 404; a malformed uid a 400 "UID is
      invalid".
    - `POST /api/ds/query` (pkg/api/ds_query.go `QueryMetricsV2`,
      `toJsonStreamingResponse`; grafana-plugin-sdk-go backend/json.go): HTTP 400 as soon
      as one query failed, each result `{"error", "errorSource", "status"}` or
      `{"status": 200, "frames"}`; a data source that does not exist is a 404 "Data source
      not found" for the whole request.
    """

    name = "Grafana"
    ORG_ID = 1
    DASHBOARD_ID = 1
    FOLDER_ID = 1
    FOLDER_UID = "dice-sandbox-folder"
    """A stand-in: Grafana makes up the uid of a folder a provider creates."""
    HEALTHY: ClassVar[dict[str, str]] = {
        "prometheus": "Successfully queried the Prometheus API.",
        "loki": "Data source successfully connected.",
        "tempo": "Data source is working",
    }
    UNHEALTHY: ClassVar[dict[str, str]] = {
        "prometheus": (
            'Post "http://prometheus:9090/api/v1/query": dial tcp: connect: connection '
            "refused - There was an error returned querying the Prometheus API."
        ),
        "loki": "Unable to connect with Loki. Please check the server logs for more details.",
    }

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
        self.folder = _provisioned_folder()
        self.unhealthy: set[str] = set()
        self.missing_datasources: set[str] = set()
        """uids of provisioned data sources this Grafana does not have (never loaded)."""
        self.failing_panels: set[str] = set()
        self.with_dashboard = True
        self.credentials: tuple[str, str] | None = None

    def reset(self) -> None:
        super().reset()
        self.unhealthy.clear()
        self.missing_datasources.clear()
        self.failing_panels.clear()
        self.with_dashboard = True
        self.credentials = None

    @property
    def _slug(self) -> str:
        return grafana_slug(str(self.dashboard["title"]))

    @property
    def _folder_url(self) -> str:
        return f"/dashboards/f/{self.FOLDER_UID}/{grafana_slug(self.folder)}"

    def _search_hit(self) -> dict[str, Any]:
        uid = self.dashboard["uid"]
        return {
            "id": self.DASHBOARD_ID,
            "uid": uid,
            "orgId": self.ORG_ID,
            "title": self.dashboard["title"],
            "uri": f"db/{self._slug}",
            "url": f"/d/{uid}/{self._slug}",
            "slug": "",
            "type": "dash-db",
            "tags": list(self.dashboard.get("tags") or []),
            "isStarred": False,
            "folderUid": self.FOLDER_UID,
            "folderTitle": self.folder,
            "folderUrl": self._folder_url,
            "sortMeta": 0,
            "isDeleted": False,
        }

    def _dashboard_with_meta(self) -> dict[str, Any]:
        version = int(self.dashboard.get("version") or 1)
        uid = self.dashboard["uid"]
        stamp = "2026-01-01T00:00:00Z"
        return {
            "dashboard": {**self.dashboard, "id": self.DASHBOARD_ID, "version": version},
            "meta": {
                "type": "db",
                "canSave": True,
                "canEdit": True,
                "canAdmin": False,
                "canStar": False,  # c.IsSignedIn: anonymous users cannot star
                "canDelete": True,
                "slug": self._slug,
                "url": f"/d/{uid}/{self._slug}",
                "expires": "0001-01-01T00:00:00Z",
                "created": stamp,
                "updated": stamp,
                "updatedBy": "Anonymous",
                "createdBy": "Anonymous",
                "version": version,
                "hasAcl": False,
                "isFolder": False,
                "folderId": self.FOLDER_ID,
                "folderUid": self.FOLDER_UID,
                "folderTitle": self.folder,
                "folderUrl": self._folder_url,
                "provisioned": True,
                "provisionedExternalId": DASHBOARD_FILE.name,
                "annotationsPermissions": {
                    "dashboard": {"canAdd": True, "canEdit": True, "canDelete": True},
                    "organization": {"canAdd": False, "canEdit": False, "canDelete": False},
                },
                "publicDashboardAccessToken": "",
                "publicDashboardEnabled": False,
            },
        }

    def _datasources(self) -> list[dict[str, Any]]:
        return [d for d in self.datasources if d.get("uid") not in self.missing_datasources]

    def _health(self, uid: str) -> Answer:
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid):
            return json_answer({"message": "UID is invalid"}, 400)
        source = next((d for d in self._datasources() if d.get("uid") == uid), None)
        if source is None:
            return _grafana_error("Unable to load datasource metadata", 500)
        kind = str(source.get("type"))
        if uid in self.unhealthy:
            return json_answer({"status": "ERROR", "message": self.UNHEALTHY[kind]}, 400)
        return json_answer({"status": "OK", "message": self.HEALTHY[kind]})

    def answer(
        self, method: str, path: str, params: dict[str, str], body: bytes, mode: str | None
    ) -> Answer:
        uid = self.dashboard["uid"]
        if self.credentials is not None:
            user, password = self.credentials
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.current_headers.get("authorization") != f"Basic {token}":
                return json_answer({"message": "Unauthorized"}, 401)
        if path == "/api/search":
            hits = [] if not self.with_dashboard or mode == "empty" else [self._search_hit()]
            query = params.get("query", "").lower()
            kind = params.get("type")
            return json_answer(
                [
                    hit
                    for hit in hits
                    if query in hit["title"].lower() and kind in (None, "", hit["type"])
                ]
            )
        if path == f"/api/dashboards/uid/{uid}" and self.with_dashboard:
            return json_answer(self._dashboard_with_meta())
        if path.startswith("/api/dashboards/uid/"):
            return _grafana_error("Dashboard not found", 404)
        match = re.fullmatch(r"/api/datasources/uid/([^/]+)/health", path)
        if match:
            return self._health(match.group(1))
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
        known = {source.get("uid") for source in self._datasources()}
        for query in request["queries"]:
            if (query.get("datasource") or {}).get("uid") not in known:
                return _grafana_error("Data source not found", 404)
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

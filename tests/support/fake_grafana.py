"""A stand-in for Grafana, which cannot run here.

Grafana's Go module is refused by the module proxy (github.com/grafana/grafana), so
the Dashboard boxes are checked against `FakeGrafana`: a small HTTP server on
127.0.0.1 answering Grafana's HTTP API in its documented format (`/api/search`,
`/api/dashboards/uid/<uid>`, `/api/datasources/uid/<uid>/health`, `/api/ds/query`,
`/api/datasources/proxy/uid/<uid>/...` for the Alertmanager data source).
It serves the repository's dashboard and data sources and runs panel queries the
way Grafana's backend does: Prometheus queries against a real Prometheus, with
macros substituted by `tests.support.grafana_macros`, and Loki queries against the
real Loki (through the scenarios' proxy, so Loki's misbehaviour reaches the log panels). Its
answers, errors included, were compared with Grafana's source (see its docstring for
the files). Like the proxies, it misbehaves on demand: tests/support/misbehaving.py.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import timedelta
from typing import Any, ClassVar

import httpx
import yaml

from tests.support.grafana_macros import QueryContext, substitute
from tests.support.misbehaving import Answer, MisbehavingServer, Request, json_answer
from verify.context import DASHBOARD_FILE, ROOT

__all__ = ["FakeGrafana", "grafana_slug"]

DASHBOARD_PROVISIONING = ROOT / "stack" / "grafana" / "provisioning" / "dashboards"


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


class FakeGrafana(MisbehavingServer):
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
    - `GET /api/datasources/proxy/uid/<uid>/<path>` (pkg/services/datasourceproxy,
      `ProxyDatasourceRequestWithUID`): the data source's own answer to `<path>`, passed
      on; this fake proxies the Alertmanager data source only, to a real Alertmanager.
      An upstream that does not answer is pkg/util/proxyutil's 502 with an empty body.
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
        loki_url: str,
        alertmanager_url: str,
    ) -> None:
        super().__init__()
        self.dashboard = dashboard
        self.datasources = datasources
        self.prometheus_url = prometheus_url
        self.loki_url = loki_url
        self.alertmanager_url = alertmanager_url
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

    def _proxy(self, uid: str, path: str, params: dict[str, str]) -> Answer:
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid):
            return json_answer({"message": "UID is invalid"}, 400)
        source = next((d for d in self._datasources() if d.get("uid") == uid), None)
        if source is None:
            return _grafana_error("Unable to load datasource meta data", 500)
        if source.get("type") != "alertmanager":
            raise NotImplementedError(f"this fake proxies the Alertmanager only, not {uid}")
        if uid in self.unhealthy:
            return 502, "text/plain", b""
        response = httpx.get(self.alertmanager_url + path, params=params, timeout=10)
        kind = response.headers.get("content-type", "application/json")
        return response.status_code, kind, response.content

    def answer(self, request: Request, mode: str | None) -> Answer:
        path, params = request.path, request.params
        uid = self.dashboard["uid"]
        if self.credentials is not None:
            user, password = self.credentials
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {token}":
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
        match = re.fullmatch(r"/api/datasources/proxy/uid/([^/]+)(/.*)", path)
        if match and request.method == "GET":
            return self._proxy(match.group(1), match.group(2), params)
        if path == "/api/ds/query" and request.method == "POST":
            return self._query(json.loads(request.body))
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
            self.loki_url + "/loki/api/v1/query_range",
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

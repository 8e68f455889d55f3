"""Dashboard: Grafana serves the dashboard, its data sources are healthy, its panels have data.

Each panel's queries are sent through Grafana's own query API, as the dashboard would
send them, so "no data" here means "no data" on the screen.

Grafana HTTP API followed (documented under grafana.com/docs/grafana/latest/
developers/http_api/, served unchanged by Grafana 9 to 13):

- `GET /api/search?type=dash-db&query=` → `[{"uid", "title", "url", ...}]`;
- `GET /api/dashboards/uid/<uid>` → `{"dashboard": {...}, "meta": {...}}`;
- `GET /api/datasources/uid/<uid>/health` → `{"status": "OK"|"ERROR", "message"}`;
  Grafana's backend answers it for data sources whose plugin has a backend. The
  Alertmanager plugin has none (its plugin.json), so Grafana's own "Save & test" asks
  Alertmanager through the data source proxy instead, and so does this check:
  `GET /api/datasources/proxy/uid/<uid>/api/v2/status` → Alertmanager's status;
- `POST /api/ds/query` with `{"queries": [...], "from", "to"}` →
  `{"results": {"<refId>": {"status", "frames": [{"schema", "data": {"values"}}],
  "error"}}}`. Grafana's backend fills in `$__rate_interval`, `$__interval` and
  `$__range` itself from each query's `intervalMs` and the time range; dashboard
  variables are the browser's job, so they are filled in here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from stackclient import ApiError

from .context import Context, poll
from .model import Failed, Run
from .provisioning import provisioned_datasources

__all__ = ["load_dashboard", "panels_of", "run_dashboard_checks"]

GROUP = "Dashboard"
EXPECTED_PANELS = 12
MAX_DATA_POINTS = 1000
INTERVAL_MS = 15_000
"""The step Grafana would send for a panel about 1000 pixels wide over an hour or less."""

HINT_DASHBOARD = (
    "Grafana loads grafana-dashboards/stage1-dashboard.json through "
    "stack/grafana/provisioning/dashboards/. After changing either, `python3 tasks.py compose "
    "reload`; "
    "`docker compose logs grafana` names provisioning errors. Without Docker, "
    "docs/native-stack.md says whether `python3 tasks.py nativestack` runs Grafana; any Grafana "
    "provisioned from stack/grafana/provisioning/ will do (--grafana-url)."
)
HINT_DATASOURCE = (
    "Grafana cannot reach this data source from where it runs: is the component up "
    "(`docker compose ps`, or the summary at the top)? Data sources are in "
    "stack/grafana/provisioning/datasources/; `python3 tasks.py compose reload` applies changes "
    "(without Docker, "
    "restart the Grafana that `python3 tasks.py nativestack` or you started)."
)
HINT_PANEL = (
    "No data in the dashboard's time range: generate traffic (`python3 tasks.py compose traffic`, "
    "`.venv/bin/python traffic-gen/generate_traffic.py`, or rerun with --with-traffic) and "
    "wait a scrape (5 s). An error names the query's problem; open the panel → Explore to "
    "try it. Log panels need the Log Collection boxes ticked first."
)

PANEL_EXPECTATIONS: dict[str, tuple[str, Callable[[list[float]], bool]]] = {
    "Trace Count": ("a count above 0", lambda values: any(v > 0 for v in values)),
}
"""Panels whose box asks more than "shows data" (docs/checklist.md: a trace count above 0)."""


def load_dashboard(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return dashboard


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that is not a row, including those inside collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            found.extend(p for p in panel.get("panels") or [] if p.get("type") != "row")
        else:
            found.append(panel)
    return found


def _auth(ctx: Context) -> None:
    user, password = ctx.settings.grafana_user, ctx.settings.grafana_password
    if user is not None:
        ctx.api.auth[ctx.settings.grafana_url] = httpx.BasicAuth(user, password or "")


def run_dashboard_checks(ctx: Context, run: Run) -> None:
    _auth(ctx)
    try:
        local: dict[str, Any] | None = load_dashboard(ctx.settings.dashboard_file)
    except (OSError, ValueError) as error:
        local = None
        run.check(GROUP, "Dashboard file readable", HINT_DASHBOARD, partial(_raise, str(error)))
    if local is not None:
        uid, title = str(local.get("uid")), str(local.get("title"))
        run.check(
            GROUP,
            f'Dashboard appears in Grafana: "{title}" (uid {uid})',
            HINT_DASHBOARD,
            partial(_dashboard_listed, ctx, uid, title),
        )
        run.check(
            GROUP,
            f"All {EXPECTED_PANELS} panels are there",
            HINT_DASHBOARD,
            partial(_panel_count, ctx, uid),
        )
    try:
        sources = provisioned_datasources(ctx.settings.datasources_dir)
    except Failed as error:
        sources = []
        run.check(GROUP, "Data sources provisioned", HINT_DATASOURCE, partial(_raise, str(error)))
    for source in sources:
        name, source_uid = source.get("name", "?"), str(source.get("uid"))
        run.check(
            GROUP,
            f"Data source {name} (uid {source_uid}) reports healthy",
            HINT_DATASOURCE,
            partial(_datasource_health, ctx, source_uid, str(source.get("type"))),
        )
    if local is not None:
        _panel_checks(ctx, run, local)


def _panel_checks(ctx: Context, run: Run, dashboard: dict[str, Any]) -> None:
    """One box per panel: its queries return data through Grafana, or its text is there."""
    time_range = dashboard.get("time") or {"from": "now-1h", "to": "now"}
    for panel in panels_of(dashboard):
        panel_title = str(panel.get("title", "?"))
        if panel.get("targets"):
            what = PANEL_EXPECTATIONS.get(panel_title, ("data", None))[0]
            run.check(
                GROUP,
                f'Panel "{panel_title}" shows {what} ({time_range["from"]} to {time_range["to"]})',
                HINT_PANEL,
                partial(_panel_data, ctx, panel_title, time_range),
            )
        elif panel.get("type") == "text":
            run.check(
                GROUP,
                f'Panel "{panel_title}" shows its text',
                HINT_DASHBOARD,
                partial(_panel_text, ctx, panel_title),
            )


def _raise(message: str) -> str:
    raise Failed(message)


def _dashboard_listed(ctx: Context, uid: str, title: str) -> str:
    found = ctx.grafana.get_json("/api/search", {"type": "dash-db", "query": title})
    if not isinstance(found, list):
        raise Failed(f"expected a list from /api/search, got {found!r:.120}")
    hits = [hit for hit in found if isinstance(hit, dict) and hit.get("uid") == uid]
    if not hits:
        titles = ", ".join(repr(hit.get("title")) for hit in found if isinstance(hit, dict))
        raise Failed(f"no dashboard with uid {uid!r} (search found: {titles or 'nothing'})")
    if hits[0].get("title") != title:
        raise Failed(f"uid {uid!r} is titled {hits[0].get('title')!r}, not {title!r}")
    return f"{ctx.settings.grafana_url.rstrip('/')}{hits[0].get('url', '')}"


def _served_dashboard(ctx: Context, uid: str) -> dict[str, Any]:
    if ctx.grafana_dashboard is None:
        body = ctx.grafana.get_json(f"/api/dashboards/uid/{uid}")
        dashboard = body.get("dashboard") if isinstance(body, dict) else None
        if not isinstance(dashboard, dict):
            raise Failed(f"expected {{'dashboard': {{...}}}}, got {body!r:.120}")
        ctx.grafana_dashboard = dashboard
    return ctx.grafana_dashboard


def _panel_count(ctx: Context, uid: str) -> str:
    panels = panels_of(_served_dashboard(ctx, uid))
    if len(panels) != EXPECTED_PANELS:
        raise Failed(f"Grafana serves {len(panels)} panels, the dashboard has {EXPECTED_PANELS}")
    return f"{len(panels)} panels"


def _datasource_health(ctx: Context, uid: str, kind: str) -> str:
    if kind == "alertmanager":
        return _alertmanager_through_grafana(ctx, uid)
    # 400 is how Grafana reports a failed health check; its body still says why.
    body = ctx.grafana.get_json(f"/api/datasources/uid/{uid}/health", ok=(200, 400))
    if not isinstance(body, dict) or "status" not in body:
        raise Failed(f"expected {{'status', 'message'}}, got {body!r:.120}")
    if body["status"] != "OK":
        raise Failed(f"{body['status']}: {body.get('message', '')}")
    return str(body.get("message", "OK"))


def _alertmanager_through_grafana(ctx: Context, uid: str) -> str:
    """What Grafana's "Save & test" does for a Prometheus Alertmanager: its status,
    through the data source proxy."""
    body = ctx.grafana.get_json(f"/api/datasources/proxy/uid/{uid}/api/v2/status")
    version = body.get("versionInfo", {}).get("version") if isinstance(body, dict) else None
    if not isinstance(version, str):
        raise Failed(f"expected Alertmanager's status with versionInfo, got {body!r:.120}")
    return f"Alertmanager {version} answers through Grafana"


def _served_panel(ctx: Context, title: str) -> dict[str, Any]:
    if ctx.grafana_dashboard is None:
        raise Failed("the dashboard is not in Grafana (see above)")
    for panel in panels_of(ctx.grafana_dashboard):
        if panel.get("title") == title:
            return panel
    raise Failed(f"Grafana's copy of the dashboard has no panel {title!r}")


def _panel_text(ctx: Context, title: str) -> str:
    content = str((_served_panel(ctx, title).get("options") or {}).get("content", ""))
    if not content.strip():
        raise Failed("the text panel is empty")
    return f"{len(content)} characters"


_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


def interpolate(query: str, variables: dict[str, str]) -> str:
    """Fill in dashboard variables, as the browser does before sending a query.

    Grafana's own `$__...` macros are left for its backend.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return variables.get(name, match.group(0))

    return _VARIABLE.sub(replace, query)


def _variables(dashboard: dict[str, Any]) -> dict[str, str]:
    values = {}
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        current = (variable.get("current") or {}).get("value")
        if isinstance(current, str):
            values[str(variable.get("name"))] = current
    return values


def _queries(panel: dict[str, Any], variables: dict[str, str]) -> list[dict[str, Any]]:
    queries = []
    for target in panel.get("targets") or []:
        if target.get("hide"):
            continue
        query = dict(target)
        query.setdefault("datasource", panel.get("datasource"))
        for key in ("expr", "query"):
            if isinstance(query.get(key), str):
                query[key] = interpolate(query[key], variables)
        query.update(intervalMs=INTERVAL_MS, maxDataPoints=MAX_DATA_POINTS)
        queries.append(query)
    return queries


def _panel_data(ctx: Context, title: str, time_range: dict[str, str]) -> str:
    """The panel's queries return data (waiting, within the run's budget, for a scrape)."""
    panel = _served_panel(ctx, title)
    assert ctx.grafana_dashboard is not None
    queries = _queries(panel, _variables(ctx.grafana_dashboard))
    if not queries:
        raise Failed("the panel has no queries")
    body = {"queries": queries, "from": str(time_range["from"]), "to": str(time_range["to"])}
    expectation = PANEL_EXPECTATIONS.get(title)
    seen: list[tuple[int, list[float]]] = []

    def attempt() -> tuple[int, list[float]] | None:
        count, numbers = _query_panel(ctx, queries, body)
        seen.append((count, numbers))
        enough = count > 0 and (expectation is None or expectation[1](numbers))
        return (count, numbers) if enough else None

    found = poll(ctx, attempt)
    if found is None:
        count, numbers = seen[-1]
        if count == 0:
            raise Failed("the queries returned no data")
        assert expectation is not None
        raise Failed(f"expected {expectation[0]}, got {numbers[:5]}")
    plural = "y" if len(queries) == 1 else "ies"
    return f"{found[0]} value(s) from {len(queries)} quer{plural}"


def _query_panel(
    ctx: Context, queries: list[dict[str, Any]], body: dict[str, Any]
) -> tuple[int, list[float]]:
    """Send the panel's queries through Grafana; how many values came back, and the numbers."""
    try:
        answer = ctx.grafana.post_json("/api/ds/query", body, ok=(200, 207))
    except ApiError as error:
        raise Failed(_query_error(error)) from None
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, dict):
        raise Failed(f"expected {{'results': {{...}}}}, got {answer!r:.120}")
    numbers: list[float] = []
    count = 0
    for query in queries:
        result = results.get(query.get("refId"))
        if not isinstance(result, dict):
            raise Failed(f"no result for query {query.get('refId')}")
        if result.get("error"):
            raise Failed(f"query {query.get('refId')}: {result['error']}")
        found, found_numbers = _values(result.get("frames") or [])
        count += found
        numbers.extend(found_numbers)
    return count, numbers


def _query_error(error: ApiError) -> str:
    """Grafana's own words when it refuses a query (`{"message": ...}` or per-query errors)."""
    try:
        body = json.loads(error.body)
    except ValueError:
        return str(error)
    if isinstance(body, dict):
        for result in (body.get("results") or {}).values():
            if isinstance(result, dict) and result.get("error"):
                return f"HTTP {error.status}: {result['error']}"
        if body.get("message"):
            return f"HTTP {error.status}: {body['message']}"
    return str(error)


def _values(frames: list[Any]) -> tuple[int, list[float]]:
    """How many values (not null, not NaN) the frames hold outside time fields, and the numbers."""
    count, numbers = 0, []
    for frame in frames:
        if not isinstance(frame, dict):
            continue
        fields = (frame.get("schema") or {}).get("fields") or []
        columns = (frame.get("data") or {}).get("values") or []
        for index, column in enumerate(columns):
            field = fields[index] if index < len(fields) and isinstance(fields[index], dict) else {}
            if field.get("type") == "time" or not isinstance(column, list):
                continue
            for value in column:
                # A gauge of 0/0 shows "NaN": no data, as far as a person can tell.
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                count += 1
                if isinstance(value, int | float) and not isinstance(value, bool):
                    numbers.append(float(value))
    return count, numbers

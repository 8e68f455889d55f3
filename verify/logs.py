"""Log Collection: Alloy finds the container, Loki stores its JSON lines with trace ids.

APIs followed:

- Alloy `/-/ready` (documented, stable) and `/api/v0/web/components[/<id>]`, the API
  behind Alloy's own UI (Alloy 1.x, `internal/web/api`). Alloy's source calls it
  internal and not stable; it is the only way to see what `discovery.docker` found,
  so the check says which answer it expected when the shape changes.
- Loki HTTP API v1 (`/loki/api/v1/query_range`, Loki 2.0 and later): answers
  `{"status": "success", "data": {"resultType": "streams", "result": [{"stream":
  {labels}, "values": [["<unix ns>", "<line>"], ...]}]}}`; errors are plain text.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from stackclient import ApiError

from .context import CONTAINER, Context, poll
from .model import Failed, Run

__all__ = ["json_object", "lines_of", "run_log_checks"]

GROUP = "Log Collection"
SELECTOR = f'{{container_name="{CONTAINER}"}}'

HINT_ALLOY = (
    "Alloy collects the logs: `docker compose ps alloy` should say healthy and "
    "`docker compose logs alloy` shows config errors; without Docker, the terminal of "
    "`python3 tasks.py nativestack` shows Alloy's. Edited stack/alloy/config.alloy? "
    "`python3 tasks.py compose reload` applies it without a restart."
)
HINT_DISCOVERY = (
    "Open http://localhost:12345 → discovery.docker.containers: dice-roller-stage1 should be "
    "among its targets. It only lists running containers of the compose project dice-sandbox "
    "(the filter in stack/alloy/config.alloy) and needs /var/run/docker.sock mounted; start "
    "the service with `docker compose up -d` at the repository root. Without Docker, "
    "`python3 tasks.py nativestack` gives Alloy a stand-in Docker API that lists the service."
)
HINT_LOKI = (
    "Lines reach Loki through Alloy: check the two Alloy boxes above, then the logs of Loki "
    "and Alloy (`docker compose logs loki alloy`, or the terminal of "
    "`python3 tasks.py nativestack`). Loki says 503 for a few seconds after it starts. Roll some "
    "dice (`python3 tasks.py compose traffic`, or `.venv/bin/python "
    "traffic-gen/generate_traffic.py`) to write "
    "fresh lines."
)
HINT_IDS = (
    "Each roll's log line should carry the ids of its span: see dice-roller/src/dice_roller/"
    "logs.py (TraceContextFilter) and the service's last lines (`docker compose logs "
    "dice-roller | tail`, or the terminal of `python3 tasks.py run`). All-zero or missing ids "
    "mean no span was active (tracing disabled?)."
)
HINT_JSON = (
    "`| json` failed on some lines (label __error__): every stdout line must be one JSON "
    "object. Look for a line that is not in `docker compose logs dice-roller` (without "
    "Docker: the terminal of `python3 tasks.py run`)."
)

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def lines_of(streams: list[Any]) -> list[str]:
    return [
        str(value[1])
        for stream in streams
        if isinstance(stream, dict)
        for value in stream.get("values") or []
        if isinstance(value, list) and len(value) == 2
    ]


def json_object(line: str) -> dict[str, Any] | None:
    """A log line's JSON object; None for a line that is not one (a traceback, text)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def run_log_checks(ctx: Context, run: Run) -> None:
    run.check(GROUP, "Alloy is ready: /-/ready", HINT_ALLOY, lambda: _alloy_ready(ctx))
    run.check(
        GROUP,
        f"Alloy discovering container: {CONTAINER} among discovery.docker targets",
        HINT_DISCOVERY,
        lambda: _alloy_discovers(ctx),
    )
    run.check(GROUP, f"Logs in Loki: {SELECTOR}", HINT_LOKI, lambda: _lines_in_loki(ctx))
    run.check(
        GROUP,
        "Logs include trace_id (32 hex digits, not zero)",
        HINT_IDS,
        lambda: _ids(ctx, "trace_id", _HEX32),
    )
    run.check(
        GROUP,
        "Logs include span_id (16 hex digits, not zero)",
        HINT_IDS,
        lambda: _ids(ctx, "span_id", _HEX16),
    )
    run.check(GROUP, f"JSON parsing works: {SELECTOR} | json", HINT_JSON, lambda: _json_parses(ctx))


def _alloy_ready(ctx: Context) -> str:
    response = ctx.api.request(ctx.alloy, "GET", "/-/ready")
    return response.text.strip()[:60] or "ready"


def _alloy_discovers(ctx: Context) -> str:
    components = ctx.api.get_json(ctx.alloy, "/api/v0/web/components")
    if not isinstance(components, list):
        raise Failed(f"expected a list from /api/v0/web/components, got {components!r:.120}")
    discoveries = [
        c for c in components if isinstance(c, dict) and c.get("name") == "discovery.docker"
    ]
    if not discoveries:
        raise Failed("Alloy runs no discovery.docker component")
    seen: list[str] = []
    for component in discoveries:
        local_id = str(component.get("localID", ""))
        detail = ctx.api.get_json(ctx.alloy, f"/api/v0/web/components/{local_id}")
        names = _container_names(detail)
        if f"/{CONTAINER}" in names or CONTAINER in names:
            health = (component.get("health") or {}).get("state", "?")
            return f"{local_id} ({health}) lists {CONTAINER} among {len(names)} container(s)"
        seen.extend(names)
    found = ", ".join(sorted({name.lstrip("/") for name in seen})) or "none"
    raise Failed(f"{CONTAINER} is not among discovery.docker targets (found: {found})")


def _container_names(detail: Any) -> list[str]:
    """`__meta_docker_container_name` of each target in a component's `targets` export.

    Alloy encodes values as `{"type": ..., "value": ...}`: the export is an attr
    statement whose value is an array of objects of `{"key", "value"}` fields.
    """
    if not isinstance(detail, dict):
        raise Failed(f"expected a component object, got {detail!r:.120}")
    names: list[str] = []
    for statement in detail.get("exports") or []:
        if not isinstance(statement, dict) or statement.get("name") != "targets":
            continue
        for target in (statement.get("value") or {}).get("value") or []:
            for item in (target or {}).get("value") or []:
                if isinstance(item, dict) and item.get("key") == "__meta_docker_container_name":
                    names.append(str((item.get("value") or {}).get("value", "")))
    return names


def _recent_lines(ctx: Context) -> list[str]:
    """Lines of the service in the last hour, waiting a little for the checks' own rolls."""
    if "loki_lines" not in ctx.facts:

        def attempt() -> list[str] | None:
            now = time.time()
            return lines_of(ctx.loki.streams(SELECTOR, now - 3600, now, 500)) or None

        ctx.facts["loki_lines"] = poll(ctx, attempt) or []
    lines: list[str] = ctx.facts["loki_lines"]
    return lines


def _lines_in_loki(ctx: Context) -> str:
    lines = _recent_lines(ctx)
    if not lines:
        raise Failed(f"no lines for {SELECTOR} in the last hour")
    return f"{len(lines)} recent lines (at most 500 read)"


def _roll_records(ctx: Context) -> list[dict[str, Any]]:
    try:
        lines = _recent_lines(ctx)
    except ApiError as error:
        raise Failed(str(error)) from None
    records = [record for line in lines if (record := json_object(line)) and "die_type" in record]
    if not records:
        raise Failed(f"no roll events (lines with die_type) among {len(lines)} recent lines")
    return records


def _ids(ctx: Context, field: str, pattern: re.Pattern[str]) -> str:
    records = _roll_records(ctx)
    bad = [
        r
        for r in records
        if not pattern.match(str(r.get(field, ""))) or set(str(r.get(field))) == {"0"}
    ]
    if bad:
        raise Failed(
            f"{len(bad)} of {len(records)} roll events lack a valid {field}, "
            f"e.g. {json.dumps(bad[0])[:160]}"
        )
    return f"all {len(records)} roll events, e.g. {records[0][field]}"


def _json_parses(ctx: Context) -> str:
    now = time.time()
    streams = ctx.loki.streams(f"{SELECTOR} | json", now - 3600, now, 500)
    if not streams:
        raise Failed(f"no lines for {SELECTOR} | json in the last hour")
    failed = [s for s in streams if "__error__" in (s.get("stream") or {})]
    if failed:
        labels = failed[0].get("stream") or {}
        count = len(lines_of(failed))
        raise Failed(
            f"{count} line(s) did not parse: __error__={labels.get('__error__')!r} "
            f"{labels.get('__error_details__', '')}".rstrip()
        )
    fields = sorted({key for s in streams for key in (s.get("stream") or {})})
    return f"{len(lines_of(streams))} lines parsed; fields include {', '.join(fields[:8])}"

"""Grafana's "Logs for this span" link, worked out the way Grafana works it out.

The Tempo data source's `jsonData.tracesToLogsV2` (read from the repository's
provisioning files) names a Loki data source, a LogQL query with `${__trace.traceId}`
and `${__span.spanId}` in it, and time shifts around the span. The checks fill those
in for one span and run the result against Loki, so a link that would find nothing in
Grafana finds nothing here either.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .model import Failed
from .provisioning import provisioned_datasources

__all__ = ["link_query", "span_link", "tempo_link_settings", "time_shift"]


def tempo_link_settings(datasources_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Tempo's tracesToLogsV2 settings, the Loki data source it points to), from provisioning."""
    sources = provisioned_datasources(datasources_dir)
    tempo = [s for s in sources if s.get("type") == "tempo"]
    if not tempo:
        raise Failed(f"no Tempo data source provisioned in {datasources_dir}")
    link = (tempo[0].get("jsonData") or {}).get("tracesToLogsV2")
    if not isinstance(link, dict):
        raise Failed("the Tempo data source has no jsonData.tracesToLogsV2")
    target = [s for s in sources if s.get("uid") == link.get("datasourceUid")]
    if not target or target[0].get("type") != "loki":
        raise Failed(
            f"tracesToLogsV2 points at {link.get('datasourceUid')!r}, not a Loki data source"
        )
    return link, target[0]


def link_query(link: dict[str, Any], trace_id: str, span_id: str) -> str:
    """The LogQL Grafana runs for "Logs for this span", with this span's ids in it.

    Provisioning files escape `$` as `$$` (Grafana expands environment variables in
    them); the link's own variables are then filled in as Grafana does.
    """
    if not link.get("customQuery") or not link.get("query"):
        raise Failed("tracesToLogsV2 has no custom query (customQuery: true, query: ...)")
    query = str(link["query"]).replace("$$", "$")
    for name, value in (("__trace.traceId", trace_id), ("__span.spanId", span_id)):
        query = query.replace("${" + name + "}", value).replace("$" + name, value)
    leftover = re.search(r"\$\{?[\w.]+", query)
    if leftover:
        raise Failed(f"the link's query uses {leftover.group(0)}, which these checks cannot fill")
    return query


def time_shift(text: Any) -> float:
    """Seconds in a Grafana time shift such as `-1m`, `30s`, `1h`."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text or "0"))
    if match is None:
        raise Failed(f"cannot read the time shift {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def span_link(
    link: dict[str, Any], trace_id: str, span: dict[str, Any]
) -> tuple[str, float, float]:
    """The link's query for `span` (as `otlp_json.spans_of` reads it) and its time range."""
    query = link_query(link, trace_id, span["span_id"])
    start = span["start"] + time_shift(link.get("spanStartTimeShift"))
    end = span["end"] + time_shift(link.get("spanEndTimeShift"))
    return query, start, end

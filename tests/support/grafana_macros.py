"""Grafana's query macros, substituted the way Grafana substitutes them.

A dashboard query such as ``rate(x[$__rate_interval])`` is not PromQL until Grafana
has replaced its macros with durations. Both the syntax checks (which need *some*
valid value) and the integration test (which needs the *right* value, because it
evaluates the query against a real Prometheus) go through this one module, so the
two can never disagree about what a macro means.

The rules follow Grafana's backend (``pkg/promlib/models/query.go`` for Prometheus,
``pkg/tsdb/loki`` for Loki):

- ``$__interval`` is the step of the query: time range / max data points, but never
  below the data source's scrape interval.
- ``$__rate_interval`` is ``max($__interval + scrape interval, 4 * scrape interval)``:
  long enough that ``rate()`` always sees at least two samples, even when a scrape
  fails or is late.
- ``$__range`` is the dashboard's time range in whole seconds (``3600s``).
- ``$__auto`` (Loki) is the step for range queries and the whole range for instant ones.
- Dashboard variables: ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

# Grafana's default when a Prometheus data source has no "scrape interval" set.
DEFAULT_SCRAPE_INTERVAL = timedelta(seconds=15)


@dataclass(frozen=True)
class QueryContext:
    """What Grafana knows when it sends one query: its step, its range, the scrape interval."""

    interval: timedelta = timedelta(seconds=15)
    time_range: timedelta = timedelta(hours=1)
    scrape_interval: timedelta = DEFAULT_SCRAPE_INTERVAL
    instant: bool = False
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def rate_interval(self) -> timedelta:
        """``$__rate_interval``: at least four scrapes, and at least one step plus one scrape."""
        return max(self.interval + self.scrape_interval, 4 * self.scrape_interval)


def format_interval(duration: timedelta) -> str:
    """Format like Grafana's ``gtime.FormatInterval``: the largest whole unit, truncated."""
    millis = int(duration / timedelta(milliseconds=1))
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000)):
        if millis >= size:
            return f"{millis // size}{unit}"
    if millis >= 60_000:
        return f"{millis // 60_000}m"
    if millis >= 1000:
        return f"{millis // 1000}s"
    return f"{max(millis, 1)}ms"


def format_go_duration(duration: timedelta) -> str:
    """Format like Go's ``time.Duration.String()`` (``1m0s``), which Grafana uses for
    ``$__rate_interval``. Sub-second parts are written in ``ms`` so that older
    Prometheus versions, which reject fractional durations, still accept them."""
    millis = int(duration / timedelta(milliseconds=1))
    if millis % 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis // 1000, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _builtin_values(context: QueryContext) -> dict[str, str]:
    """The built-in macros and their text for this query."""
    range_ms = int(context.time_range / timedelta(milliseconds=1))
    range_s = round(range_ms / 1000)
    rate = context.rate_interval
    return {
        "__interval_ms": str(int(context.interval / timedelta(milliseconds=1))),
        "__interval": format_interval(context.interval),
        "__range_ms": str(range_ms),
        "__range_s": str(range_s),
        "__range": f"{range_s}s",
        "__rate_interval_ms": str(int(rate / timedelta(milliseconds=1))),
        "__rate_interval": format_go_duration(rate),
        "__auto": f"{range_s}s" if context.instant else format_interval(context.interval),
    }


# ${name}, ${name:format}, [[name]] and $name; a name is a word (letters, digits, _).
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


class UnknownVariableError(ValueError):
    """A query uses a ``$name`` that is neither a Grafana macro nor a dashboard variable."""


def substitute(query: str, context: QueryContext | None = None) -> str:
    """Return ``query`` with every macro and dashboard variable replaced by its value.

    An unknown ``$name`` raises ``UnknownVariableError``: a dashboard that refers to a
    variable it doesn't define shows an error panel in Grafana, so it is a bug here too.
    """
    context = context or QueryContext()
    values = {**_builtin_values(context), **context.variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name[0].isdigit():
            return match.group(0)  # "$1" in label_replace() is a regex group, not a variable
        if name not in values:
            raise UnknownVariableError(f"unknown variable ${name} in query: {query}")
        return values[name]

    return _VARIABLE.sub(replace, query)


def dashboard_variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Each dashboard template variable with the text Grafana puts in a query for its
    current selection (``allValue`` when "All" is selected, else the current value)."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value", "")
        selected = current if isinstance(current, list) else [current]
        if "$__all" in selected and variable.get("allValue"):
            values[variable["name"]] = str(variable["allValue"])
        elif len(selected) == 1:
            values[variable["name"]] = str(selected[0])
        else:
            # Multi-value: Grafana's Prometheus and Loki data sources write a regex alternation.
            values[variable["name"]] = "(" + "|".join(re.escape(str(v)) for v in selected) + ")"
    return values

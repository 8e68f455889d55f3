"""The builds the overhead bench compares: the service's own app, with fewer signals.

Every build is `dice_roller.app.create_app`, so the `/roll` route, its span attributes
and its log lines are the service's own and cannot drift from what the bench claims
to measure:

- `bare`: no telemetry at all (no access log either, see `bench.serve`);
- `metrics`, `logs`, `traces`: one signal, wired exactly as the service wires it;
- `traces-unexported`: the same spans as `traces`, made and ended but sent nowhere,
  which splits what a span costs to make from what it costs to export;
- `full` is not built here: it is the real service, started as `python -m dice_roller`.

Each signal alone shows which one the full build's cost comes from.
"""

from __future__ import annotations

from collections.abc import Mapping

from dice_roller.app import Signal, create_app
from dice_roller.settings import Settings
from dice_roller.tracing import create_tracer_provider
from fastapi import FastAPI

__all__ = ["UNEXPORTED_TRACES", "VARIANTS", "build_app"]

UNEXPORTED_TRACES = "traces-unexported"
BUILD_SIGNALS: Mapping[str, tuple[Signal, ...]] = {
    "bare": (),
    "metrics": ("metrics",),
    "logs": ("logs",),
    "traces": ("traces",),
    UNEXPORTED_TRACES: ("traces",),
}
VARIANTS = tuple(BUILD_SIGNALS)


def build_app(variant: str, settings: Settings) -> FastAPI:
    """The service with the telemetry of `variant` (see the module docstring)."""
    if variant not in BUILD_SIGNALS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    provider = None
    if variant == UNEXPORTED_TRACES:
        provider = create_tracer_provider({"OTEL_TRACES_EXPORTER": "none"})  # no processor
    return create_app(settings, provider, signals=BUILD_SIGNALS[variant])

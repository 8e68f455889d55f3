"""Every setting of the frontend, read from `FRONTEND_*` variables in one place.

OpenTelemetry keeps its standard `OTEL_*` variables, read by the SDK itself; the
browser's spans go to the same collector as the frontend's own
(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sandbox_telemetry.settings import LogLevel, SettingsError, read_settings

__all__ = ["Settings", "SettingsError", "browser_traces_url", "load_settings"]

DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"
"""The OpenTelemetry SDK's own default for OTLP over HTTP."""


class Settings(BaseModel):
    """Frontend settings; `load_settings` reads each field from `FRONTEND_<FIELD NAME>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(default=8200, ge=1, le=65535, description="TCP port to listen on.")
    dice_roller_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8100"), description="Where the dice-roller answers."
    )
    upstream_timeout_seconds: float = Field(
        default=3.0,
        ge=0.1,
        le=30.0,
        description="Longest wait for the dice-roller, connection included; a roll takes "
        "up to 1 s.",
    )
    die_service_url: HttpUrl | None = Field(
        default=None,
        description="Stage 3: the die-service, whose dice the page offers; unset: fair and risky.",
    )
    grafana_url: HttpUrl = Field(
        default=HttpUrl("http://localhost:3000"),
        description="Grafana as the browser reaches it, for the page's trace links.",
    )
    log_level: LogLevel = Field(default="INFO", description="Lowest level written to stdout.")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate every setting, reporting all bad values at once.

    `overrides` come from the command line and win over the environment.
    """
    env = os.environ if environ is None else environ
    return read_settings(Settings, "FRONTEND_", env, overrides)


def browser_traces_url(environ: Mapping[str, str] | None = None) -> str:
    """Where the browser's spans are forwarded: the frontend's own OTLP traces endpoint."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_OTLP_ENDPOINT
    return base.rstrip("/") + "/v1/traces"

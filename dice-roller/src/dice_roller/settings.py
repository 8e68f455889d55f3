"""Every setting of the service, read from the environment in one place.

Service settings carry the `DICE_` prefix. OpenTelemetry keeps its own standard
`OTEL_*` variables, read by the SDK itself; the few that a typo would silently break
are checked here too, so that every bad value is reported at once, at start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, FilePath, HttpUrl, field_validator
from sandbox_telemetry.settings import LogLevel, SettingsError, read_settings

__all__ = ["Settings", "SettingsError", "load_settings"]


class Settings(BaseModel):
    """Service settings; `load_settings` reads each field from `DICE_<FIELD NAME>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(default=8100, ge=1, le=65535, description="TCP port to listen on.")
    max_delay_seconds: float = Field(
        default=1.0, ge=0.0, le=60.0, description="Upper bound of the random delay of a roll."
    )
    risky_failure_rate: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Probability that a risky roll fails, when no DICE_FLAGS_FILE is set "
        "(with one, its flag risky-failure-rate decides).",
    )
    flags_file: FilePath | None = Field(
        default=None,
        description="A flagd flag file of faults, watched and applied live, see "
        "stack/flags/README.md; unset: no flags, the spec's behaviour.",
    )
    die_service_url: HttpUrl | None = Field(
        default=None,
        description="Stage 3: the die-service that says what each die is, asked on every "
        "roll; unset: stage 1's fair and risky dice, known by heart.",
    )
    die_service_timeout_seconds: float = Field(
        default=1.0, ge=0.1, le=10.0, description="Longest wait for the die-service."
    )
    seed: int | None = Field(
        default=None, description="Seed of the random generator, for reproducible runs."
    )
    log_level: LogLevel = Field(default="INFO", description="Lowest level written to stdout.")

    @field_validator("max_delay_seconds", "risky_failure_rate")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate every setting, reporting all bad values at once.

    `overrides` come from the command line and win over the environment.
    """
    return read_settings(Settings, "DICE_", os.environ if environ is None else environ, overrides)

"""Every setting of the service, read from the environment in one place.

Service settings carry the `DICE_` prefix. OpenTelemetry keeps its own standard
`OTEL_*` variables, read by the SDK itself; the few that a typo would silently break
are checked here too, so that every bad value is reported at once, at start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, ValidationError, field_validator
from sandbox_telemetry.tracing import otel_problems

__all__ = ["Settings", "SettingsError", "load_settings"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(Exception):
    """A setting has a value the service cannot run with; the message says which and why."""


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
    seed: int | None = Field(
        default=None, description="Seed of the random generator, for reproducible runs."
    )
    log_level: LogLevel = Field(default="INFO", description="Lowest level written to stdout.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

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
    env = os.environ if environ is None else environ
    problems = otel_problems(env)
    settings: Settings | None = None
    try:
        settings = _read(env, overrides)
    except ValidationError as error:
        problems.extend(_describe(error, env, overrides))
    if problems or settings is None:
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
    return settings


def _read(env: Mapping[str, str], overrides: Mapping[str, object]) -> Settings:
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        key = f"DICE_{name.upper()}"
        if env.get(key, "") != "":
            values[name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    # Read from the mapping given, never from os.environ behind its back, so a test's
    # environment of its own is the whole environment.
    return Settings.model_validate(values)


def _describe(
    error: ValidationError, env: Mapping[str, str], overrides: Mapping[str, object]
) -> list[str]:
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        field = Settings.model_fields.get(name)
        # The command line passes every flag, set or not: an unset one arrives as None
        # and must not hide the environment's value, the one that was actually read.
        flag_value = overrides.get(name)
        if flag_value is not None:
            source, given = f"--{name.replace('_', '-')}", flag_value
        else:
            source = f"DICE_{name.upper()}"
            given = env.get(source)
        hint = f" ({field.description})" if field is not None and field.description else ""
        lines.append(f"{source}={given!r}: {item['msg']}{hint}")
    return lines

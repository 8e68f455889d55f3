"""Every setting of the die-service, read from `DIE_SERVICE_*` variables in one place.

Few on purpose: the dice themselves are data (dice.py, PostgreSQL from stage 5), not
settings. Without `DIE_SERVICE_DATABASE_URL` the dice are kept in memory (stage 3);
with it, in PostgreSQL (stage 5, database.py). `DIE_SERVICE_FLAGS_FILE` names the flag
file of faults (flags.py). OpenTelemetry keeps its standard `OTEL_*` variables, read by
the SDK itself; the ones a typo would silently break are checked with these, at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, FilePath
from sandbox_telemetry.settings import LogLevel, SettingsError, read_settings

__all__ = ["DATABASE_URL_PATTERN", "Settings", "SettingsError", "load_settings"]

DATABASE_URL_PATTERN = r"^$|^postgres(ql)?://[^\s]+/[A-Za-z0-9_-]+$"
"""Empty, or a PostgreSQL URL naming its database: what asyncpg accepts, in short."""


class Settings(BaseModel):
    """Die-service settings; `load_settings` reads each field from `DIE_SERVICE_<FIELD NAME>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(default=8300, ge=1, le=65535, description="TCP port to listen on.")
    log_level: LogLevel = Field(default="INFO", description="Lowest level written to stdout.")
    database_url: str = Field(
        default="",
        max_length=512,
        pattern=DATABASE_URL_PATTERN,
        description="postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or empty: dice in memory.",
    )
    database_timeout_seconds: float = Field(
        default=0.4,
        gt=0,
        le=30,
        description=(
            "Longest wait for a connection, and again for a query. 0.4 s keeps both "
            "under the dice-roller's 1 s for the whole lookup, so it hears why."
        ),
    )
    database_pool_size: int = Field(
        default=5, ge=1, le=100, description="Most connections the service keeps open."
    )
    flags_file: FilePath | None = Field(
        default=None,
        description="A flagd flag file of faults (a slow service, a slow database), watched "
        "and applied live, see stack/flags/README.md; unset: no faults.",
    )


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate every setting, reporting all bad values at once.

    `overrides` come from the command line and win over the environment.
    """
    env = os.environ if environ is None else environ
    return read_settings(Settings, "DIE_SERVICE_", env, overrides)

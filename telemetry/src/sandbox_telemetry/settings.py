"""One way to read a service's settings: `PREFIX_<FIELD>` variables into a pydantic model.

Every bad value is reported at once, at start, each with where it came from and what
is allowed; the `OTEL_*` variables a service gives its own meaning to are checked in
the same pass, so a typo stops the service rather than silently losing its traces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError

from .tracing import otel_problems

__all__ = ["LogLevel", "SettingsError", "read_settings"]

Model = TypeVar("Model", bound=BaseModel)
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
]
"""A service's lowest logged level, in any case (`info` is INFO)."""


class SettingsError(Exception):
    """A setting has a value the service cannot run with; the message says which and why."""


def read_settings(
    model: type[Model], prefix: str, env: Mapping[str, str], overrides: Mapping[str, object]
) -> Model:
    """`model` read from `env` (`PREFIX_<FIELD NAME>`, empty means unset) and `overrides`.

    `overrides` come from the command line and win over the environment; an override of
    None is a flag that was not given. Only `env` is read, never os.environ behind its
    back, so a test's environment of its own is the whole environment.
    """
    problems = otel_problems(env)
    values: dict[str, object] = {}
    for name in model.model_fields:
        key = f"{prefix}{name.upper()}"
        if env.get(key, "") != "":
            values[name] = env[key]
    given = {name: value for name, value in overrides.items() if value is not None}
    values.update(given)
    settings: Model | None = None
    try:
        settings = model.model_validate(values)
    except ValidationError as error:
        problems.extend(_describe(model, prefix, error, env, given))
    if problems or settings is None:
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
    return settings


def _describe(
    model: type[BaseModel],
    prefix: str,
    error: ValidationError,
    env: Mapping[str, str],
    given: Mapping[str, object],
) -> list[str]:
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        field = model.model_fields.get(name)
        if name in given:
            source, value = f"--{name.replace('_', '-')}", given[name]
        else:
            source = f"{prefix}{name.upper()}"
            value = env.get(source)
        hint = f" ({field.description})" if field is not None and field.description else ""
        lines.append(f"{source}={_without_password(value)!r}: {item['msg']}{hint}")
    return lines


def _without_password(value: object) -> object:
    """`value`, a URL's password hidden (`postgresql://dice:***@...`): an error message
    goes to a terminal and to logs."""
    return _PASSWORD.sub(r"\1***@", value) if isinstance(value, str) else value


_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/@\s]*@")

"""Fault flags: what breaks a service on purpose, read live from a flagd flag file.

A service defines each of its flags once, as a `FaultFlag`, the way it defines a
metric: its key in the file, what it does, the numbers it accepts and its shipped
default. The file (stack/flags/flags.json) holds the variants a user or a drill picks
from; the services of the sandbox share it, and each flag says in its `metadata` which
service reads it (`{"service": "die-service"}`). A service evaluates its own flags
only: another's is no concern of it, and a flag no service reads is named in a warning
(a typo?).

OpenFeature's client evaluates each flag on every request it applies to, with flagd's
in-process file provider (no flagd server). The file is watched by flag_file.py, not by
flagd: it polls the file and hands flagd its flags when its content changes, and refuses
what is not a regular file or is over 1 MiB. The OpenTelemetry hook records every
evaluation that changes a request on the request's span.
Without a flag file every flag keeps its default: the spec, as the settings say.

Each service subclasses `ServiceFlags` with its flags and settings (dice_roller/flags.py,
die_service/flags.py) and reads a request's values through `RequestFlags.number`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode, FlagNotFoundError, OpenFeatureError
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason
from openfeature.hook import HookContext, HookHints
from openfeature.provider.no_op_provider import NoOpProvider

from .flag_file import FlagFile
from .tracing import current_ids

__all__ = ["POLL_SECONDS", "FaultFlag", "RequestFlags", "ServiceFlags"]

POLL_SECONDS = 0.5
"""How often the watcher looks for a change of the file."""


@dataclass(frozen=True)
class FaultFlag:
    """A float flag in the file: `key`, the range it accepts, and its shipped default."""

    key: str
    description: str
    default: float
    default_variant: str
    minimum: float = 0.0
    maximum: float = 1.0

    @property
    def allowed(self) -> str:
        return f"a number from {self.minimum:g} to {self.maximum:g}"

    def accepts(self, value: object) -> bool:
        """A finite number (not a boolean) within the flag's range."""
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and self.minimum <= value <= self.maximum
        )


_TARGETED = {Reason.TARGETING_MATCH, Reason.SPLIT, Reason.DEFAULT}
"""flagd's reasons for a flag with targeting rules (STATIC: none)."""
_SAID_ELSEWHERE = {ErrorCode.FLAG_NOT_FOUND, ErrorCode.PROVIDER_NOT_READY, ErrorCode.PROVIDER_FATAL}
"""Evaluation errors that the file's own events report, once: a request takes the default."""
_domains = itertools.count()


@dataclass
class RequestFlags:
    """The flags as one request sees them; `away` names those not at their default."""

    flags: ServiceFlags
    context: EvaluationContext
    away: dict[str, str] = field(default_factory=dict)

    def number(self, flag: FaultFlag) -> float:
        """The flag's value for this request (its default if the file gives none usable)."""
        value, variant = self.flags.evaluate(flag, self.context)
        if variant is not None and value != flag.default:
            self.away[flag.key] = variant
        return value

    def log_fields(self) -> dict[str, Any]:
        """`{"feature_flags": {key: variant}}` for the request's log line, if any is away."""
        return {"feature_flags": self.away} if self.away else {}


class ServiceFlags:
    """`service`'s `flags` in the file at `path`, watched; `for_request` gives one
    request's evaluations. `log` says what changes and what is wrong; `defaults` replace
    shipped defaults (a service's settings may, without a file)."""

    def __init__(
        self,
        service: str,
        flags: Sequence[FaultFlag],
        path: Path | None,
        log: logging.Logger,
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        self.service, self.flags, self.path, self.log = service, tuple(flags), path, log
        self.defaults = {flag.key: flag.default for flag in flags} | dict(defaults or {})
        self.client: OpenFeatureClient | None = None
        self._lock = threading.Lock()  # provider events arrive on OpenFeature's threads
        self._said: set[str] = set()  # the problems logged since the file last changed
        self._announced: dict[str, str] | None = None
        self._loaded = False  # whether a good file was ever applied
        self._failing = False  # whether the last event was an error
        if path is None:
            return
        # A domain per instance: the OpenFeature API is global, and tests build many apps.
        self.domain = f"{service}-{next(_domains)}"
        self.client = client = api.get_client(self.domain)
        client.add_hooks([ChangedFlagsHook()])
        for event in _EVENTS:
            client.add_handler(event, self._on_event)
        self._provider = provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=str(path)
        )
        FlagFile.install(provider, POLL_SECONDS)
        with contextlib.suppress(Exception):  # a PROVIDER_ERROR event says what is wrong
            api.set_provider_and_wait(provider, self.domain)
            self._loaded = True
        with self._lock:
            self._announced = self._away_from_default(client)
            log.info("Watching the flag file", extra=self._fields())
            self._say_missing(client)

    def for_request(self, **attributes: str) -> RequestFlags:
        """One request's flags: targeting rules see `attributes`, and `fractional` splits
        by trace."""
        ids = current_ids()
        trace_id = ids.trace_id if ids else None
        return RequestFlags(self, EvaluationContext(trace_id, dict(attributes)))

    def evaluate(self, flag: FaultFlag, context: EvaluationContext) -> tuple[float, str | None]:
        """The value and variant of `flag`; the default and no variant if the file has no
        usable value (with one line saying why, if it has a wrong one)."""
        default = self.defaults[flag.key]
        if self.client is None:
            return default, None
        details = self.client.get_float_details(flag.key, default, context)
        if details.reason == Reason.DISABLED or details.error_code in _SAID_ELSEWHERE:
            return default, None
        if details.error_code is None and flag.accepts(details.value):
            return float(details.value), details.variant
        problem = details.error_message or f"{details.value!r} is not {flag.allowed}"
        self._say_once(f"Flag {flag.key} in {self.path}: {problem}; using the default {default:g}")
        return default, None

    def close(self) -> None:
        """Stop watching the file (the app's shutdown)."""
        if self.client is not None:
            for event in _EVENTS:
                self.client.remove_handler(event, self._on_event)
            with self._lock:
                self._announced = None  # events already queued for handlers say nothing
            api.set_provider(NoOpProvider(), self.domain)  # shuts the watcher down

    def _on_event(self, details: EventDetails) -> None:
        """The provider (re)loaded the file, or could not: say what changed, once."""
        with self._lock:
            if self.client is None or self._announced is None:
                return  # still starting (__init__ announces what it finds), or closed
            if details.provider_name != self._provider.get_metadata().name:
                return  # the no-op provider's READY, which add_handler sent on a thread
            if details.error_code == ErrorCode.PROVIDER_NOT_READY:
                return  # the first read failed; the watcher's next poll says why
            if details.error_code is not None:
                kept = (
                    "keeping the last good values" if self._loaded else "using the shipped defaults"
                )
                self._say_once(f"Flag file {self.path}: {details.message}; {kept}")
                self._failing = True
                return
            self._loaded = True
            unknown = sorted(  # the changed keys include those the file no longer has
                key
                for key in details.flags_changed or ()
                if key not in self.defaults and _unread(self._provider, key, self.service)
            )
            if unknown:
                self._say_once(
                    f"Flags in {self.path} that the service does not know (a typo?): "
                    f"{_listed(unknown)}; it knows: {', '.join(self.defaults)}",
                    logging.WARNING,
                )
            away = self._away_from_default(self.client)
            if away != self._announced or self._failing:
                self._said.clear()  # a new file: its problems are news again
                self._failing = False
            self._say_missing(self.client)
            if away != self._announced:
                self._announced = away
                self.log.info("Feature flags changed", extra=self._fields())

    def _away_from_default(self, client: OpenFeatureClient) -> dict[str, str]:
        """Each flag away from its default outside any request ("targeting" for a flag
        with rules)."""
        away = {}
        for flag in self.flags:
            details = client.get_float_details(flag.key, flag.default, EvaluationContext())
            if details.reason in _TARGETED:
                away[flag.key] = "targeting"
            elif details.value != flag.default and flag.accepts(details.value):
                away[flag.key] = details.variant or "?"
        return away

    def _say_missing(self, client: OpenFeatureClient) -> None:
        """Name the flags the file lacks: they take their shipped defaults."""
        missing = [
            flag.key
            for flag in self.flags
            if client.get_float_details(flag.key, flag.default).error_code
            == ErrorCode.FLAG_NOT_FOUND
        ]
        if missing and len(missing) < len(self.flags):  # all missing: the file failed to load
            names = ", ".join(missing)
            self._say_once(f"Flags missing from {self.path} take their shipped defaults: {names}")

    def _fields(self) -> dict[str, Any]:
        away = {"feature_flags": self._announced} if self._announced else {}
        return {"flags_file": str(self.path), **away}

    def _say_once(self, message: str, level: int = logging.ERROR) -> None:
        if message not in self._said:
            self._said.add(message)
            self.log.log(level, message, extra={"flags_file": str(self.path)})


class ChangedFlagsHook(TracingHook):
    """OpenFeature's OpenTelemetry hook, for the evaluations that change a request: each
    is a `feature_flag.evaluation` event on the request's span. Flags at their default
    are left out: an event per flag on every request would bury the ones that matter,
    and the exporter pays for each (docs/performance.md)."""

    def finally_after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        if details.value != hook_context.default_value or details.error_code is not None:
            super().finally_after(hook_context, details, hints)


_EVENTS = (
    ProviderEvent.PROVIDER_READY,
    ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
    ProviderEvent.PROVIDER_ERROR,
)


def _unread(provider: FlagdProvider, key: str, service: str) -> bool:
    """Whether the file has `key` and names no other service as its reader (in the
    flag's metadata), asked of flagd itself: the client may already have another
    provider (the app shutting down)."""
    try:
        details = provider.resolve_float_details(key, 0.0)
    except FlagNotFoundError:
        return False
    except OpenFeatureError:  # there, but not a number: whose it is, is not said
        return True
    return details.flag_metadata.get("service", service) == service


def _listed(names: list[str], most: int = 5) -> str:
    """The first `most` of `names` for a log line, and how many more: a file may hold
    thousands, with long names."""
    more = f" and {len(names) - most:,} more" if len(names) > most else ""
    return ", ".join(name[:80] for name in names[:most]) + more

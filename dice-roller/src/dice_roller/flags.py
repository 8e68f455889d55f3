"""The fault flags: what breaks a roll on purpose, read live from a flagd flag file.

Each flag is defined once here, the way a metric is: its key in the file, what it
does, the numbers it accepts and its shipped default (the spec's behaviour). The file
(stack/flags/flags.json) holds the variants a user or a drill picks from.

OpenFeature's client evaluates each flag on every roll it applies to, with flagd's
in-process file provider (no flagd server). The file is watched by flag_file.py, not by
flagd: it polls the file and hands flagd its flags when its content changes, and refuses
what is not a regular file or is over 1 MiB. The OpenTelemetry hook records every
evaluation on the request's span.
Without a flag file every flag keeps its default: the spec, as the settings say.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
from dataclasses import dataclass, field
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
from sandbox_telemetry import current_ids

from .dice import DieType
from .flag_file import FlagFile
from .settings import Settings

__all__ = [
    "EXTRA_LATENCY_SECONDS",
    "EXTRA_LATENCY_SHARE",
    "FAILURE_RATE",
    "FLAGS",
    "LOADED_DIE_BIAS",
    "POLL_SECONDS",
    "FaultFlag",
    "FaultFlags",
    "RollFlags",
]

POLL_SECONDS = 0.5
"""How often the watcher looks for a change of the file."""

log = logging.getLogger("dice_roller.flags")


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


RISKY_FAILURE_RATE = FaultFlag(
    "risky-failure-rate", "Probability that a risky roll fails with HTTP 500.", 0.1, "spec"
)
FAIR_FAILURE_RATE = FaultFlag(
    "fair-failure-rate", "Probability that a fair roll fails with HTTP 500.", 0.0, "spec"
)
EXTRA_LATENCY_SECONDS = FaultFlag(
    "extra-latency-seconds", "Seconds added to a roll's random delay.", 0.0, "off", maximum=30.0
)
EXTRA_LATENCY_SHARE = FaultFlag(
    "extra-latency-share", "Share of rolls that get the extra latency, while it is on.", 1.0, "all"
)
LOADED_DIE_BIAS = FaultFlag(
    "loaded-die-bias",
    "Share of rolls that show the die's top face (6 fair, 7 risky, 20 d20).",
    0.0,
    "off",
)
FLAGS = (
    RISKY_FAILURE_RATE,
    FAIR_FAILURE_RATE,
    EXTRA_LATENCY_SECONDS,
    EXTRA_LATENCY_SHARE,
    LOADED_DIE_BIAS,
)
FAILURE_RATE: dict[str, FaultFlag] = {
    DieType.FAIR: FAIR_FAILURE_RATE,
    DieType.RISKY: RISKY_FAILURE_RATE,
}
"""The failure-rate flag of stage 1's dice; the die-service's other dice fail at the
rate it gives them."""
_TARGETED = {Reason.TARGETING_MATCH, Reason.SPLIT, Reason.DEFAULT}
"""flagd's reasons for a flag with targeting rules (STATIC: none)."""
_SAID_ELSEWHERE = {ErrorCode.FLAG_NOT_FOUND, ErrorCode.PROVIDER_NOT_READY, ErrorCode.PROVIDER_FATAL}
"""Evaluation errors that the file's own events report, once: a roll takes the default."""
_domains = itertools.count()


@dataclass
class RollFlags:
    """The flags as one roll sees them; `away` names those not at their default."""

    flags: FaultFlags
    context: EvaluationContext
    away: dict[str, str] = field(default_factory=dict)

    def number(self, flag: FaultFlag) -> float:
        """The flag's value for this roll (its default if the file gives none usable)."""
        value, variant = self.flags.evaluate(flag, self.context)
        if variant is not None and value != flag.default:
            self.away[flag.key] = variant
        return value

    def log_fields(self) -> dict[str, Any]:
        """`{"feature_flags": {key: variant}}` for the roll's log line, if any is away."""
        return {"feature_flags": self.away} if self.away else {}


class FaultFlags:
    """The flag file, watched; `for_roll` gives one roll's evaluations."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.flags_file
        self.defaults = {flag.key: flag.default for flag in FLAGS}
        self.client: OpenFeatureClient | None = None
        self._lock = threading.Lock()  # provider events arrive on OpenFeature's threads
        self._said: set[str] = set()  # the problems logged since the file last changed
        self._announced: dict[str, str] | None = None
        self._loaded = False  # whether a good file was ever applied
        self._failing = False  # whether the last event was an error
        if self.path is None:  # no file: DICE_RISKY_FAILURE_RATE sets the risky rate
            self.defaults[RISKY_FAILURE_RATE.key] = settings.risky_failure_rate
            return
        if "risky_failure_rate" in settings.model_fields_set:
            self._say_once(
                "DICE_RISKY_FAILURE_RATE is not used while DICE_FLAGS_FILE is set: the flag "
                "risky-failure-rate decides",
                logging.WARNING,
            )
        # A domain per instance: the OpenFeature API is global, and tests build many apps.
        self.domain = f"dice-roller-{next(_domains)}"
        self.client = client = api.get_client(self.domain)
        client.add_hooks([ChangedFlagsHook()])
        for event in _EVENTS:
            client.add_handler(event, self._on_event)
        self._provider = provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=str(self.path)
        )
        FlagFile.install(provider, POLL_SECONDS)
        with contextlib.suppress(Exception):  # a PROVIDER_ERROR event says what is wrong
            api.set_provider_and_wait(provider, self.domain)
            self._loaded = True
        with self._lock:
            self._announced = self._away_from_default(client)
            log.info("Watching the flag file", extra=self._fields())
            self._say_missing(client)

    def for_roll(self, die: str) -> RollFlags:
        """One roll's flags: targeting rules see the die, and `fractional` splits by trace."""
        ids = current_ids()
        trace_id = ids.trace_id if ids else None
        return RollFlags(
            self, EvaluationContext(trace_id, {"die": str(die)})
        )  # plain text for flagd

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
                if key not in self.defaults and _has_flag(self._provider, key)
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
                log.info("Feature flags changed", extra=self._fields())

    def _away_from_default(self, client: OpenFeatureClient) -> dict[str, str]:
        """Each flag away from its default outside any roll ("targeting" for a flag with
        rules)."""
        away = {}
        for flag in FLAGS:
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
            for flag in FLAGS
            if client.get_float_details(flag.key, flag.default).error_code
            == ErrorCode.FLAG_NOT_FOUND
        ]
        if missing and len(missing) < len(FLAGS):  # all missing: the file failed to load
            names = ", ".join(missing)
            self._say_once(f"Flags missing from {self.path} take their shipped defaults: {names}")

    def _fields(self) -> dict[str, Any]:
        away = {"feature_flags": self._announced} if self._announced else {}
        return {"flags_file": str(self.path), **away}

    def _say_once(self, message: str, level: int = logging.ERROR) -> None:
        if message not in self._said:
            self._said.add(message)
            log.log(level, message, extra={"flags_file": str(self.path)})


class ChangedFlagsHook(TracingHook):
    """OpenFeature's OpenTelemetry hook, for the evaluations that change a roll: each is a
    `feature_flag.evaluation` event on the roll's span. Flags at their default are left
    out: an event per flag on every roll would bury the ones that matter, and the
    exporter pays for each (docs/performance.md)."""

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


def _has_flag(provider: FlagdProvider, key: str) -> bool:
    """Whether the file has `key`, asked of flagd itself: the client may already have
    another provider (the app shutting down)."""
    try:
        provider.resolve_float_details(key, 0.0)
    except FlagNotFoundError:
        return False
    except OpenFeatureError:  # there, but not a number
        pass
    return True


def _listed(names: list[str], most: int = 5) -> str:
    """The first `most` of `names` for a log line, and how many more: a file may hold
    thousands, with long names."""
    more = f" and {len(names) - most:,} more" if len(names) > most else ""
    return ", ".join(name[:80] for name in names[:most]) + more

"""Where a roll's faults come from: fixed settings, or the flag file, changed live.

Without `DICE_FLAGS_FILE` the faults are fixed: the spec's, with the risky die's
failure rate from `DICE_RISKY_FAILURE_RATE` (`FixedFaults`).

With it, `FlagFileFaults` evaluates the file with OpenFeature and flagd's in-process
file resolver (no flagd server). The resolver checks the file's modification time
every `POLL_SECONDS` and reloads it when it changed; each reload, or failed reload,
is an OpenFeature provider event. On every event this module reads the file itself,
evaluates each flag of what it read once, with flagd's own evaluator (`FlagdCore`,
so its verdict never depends on when the provider's watcher polled), and decides,
per flag:

- at its shipped default, no targeting: nothing to do per request. A roll reads a
  ready-made answer (`RollFaults`), so flags as shipped cost a dictionary look-up;
- away from its default, or with targeting rules: evaluated on each roll it applies
  to, through the OpenFeature client with the OpenTelemetry hook, so the request's
  span gets a `feature_flag.evaluation` event exactly when a flag changed something.

A file that does not parse, or a flag that breaks the rules of `dice_roller.flags`,
is reported once, in one log line naming the flag and what it allows, and the
service keeps the last good values (the shipped defaults if none was ever good).
flagd's own watcher logs a traceback on every poll while the file is bad; those
lines are dropped here, since this module reports each bad state once.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from .dice import DieType, Faults
from .flags import FLAGS, FLAGS_BY_KEY, FaultFlag, check_document
from .ids import current_ids
from .logs import LOGGER_NAME
from .settings import Settings

if TYPE_CHECKING:
    from openfeature.client import OpenFeatureClient
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.event import EventDetails, ProviderEvent
    from openfeature.flag_evaluation import FlagResolutionDetails

__all__ = [
    "POLL_SECONDS",
    "FaultSource",
    "FixedFaults",
    "FlagFileError",
    "FlagFileFaults",
    "RollFaults",
    "fault_source",
    "read_flag_file",
]

POLL_SECONDS = 0.5
"""How often flagd's file resolver looks at the file's modification time."""

log = logging.getLogger(f"{LOGGER_NAME}.flags")
_domains = itertools.count()


@dataclass(frozen=True, slots=True)
class RollFaults:
    """What one roll runs with, and what its log line says about the flags.

    `log_fields` is `{}` when every flag that applies to the roll is at its shipped
    default, else `{"feature_flags": {key: variant, ...}}` naming the flags that are
    not; it goes into the roll's log line as it is, and must not be changed.
    """

    faults: Faults
    log_fields: Mapping[str, Any]


class FaultSource(Protocol):
    def for_roll(self, die: DieType) -> RollFaults:
        """The faults of one roll of `die`, decided now."""
        ...

    def close(self) -> None:
        """Stop watching; the app calls this at shutdown."""
        ...


def fault_source(settings: Settings) -> FaultSource:
    """The flag file's faults if `DICE_FLAGS_FILE` is set, else fixed ones."""
    if settings.flags_file is None:
        return FixedFaults(Faults(risky_failure_rate=settings.risky_failure_rate))
    if "risky_failure_rate" in settings.model_fields_set:
        log.warning(
            "DICE_RISKY_FAILURE_RATE is not used while DICE_FLAGS_FILE is set: the flag "
            "risky-failure-rate decides",
            extra={"flags_file": str(settings.flags_file)},
        )
    return FlagFileFaults(settings.flags_file)


class FixedFaults:
    """The same faults for every roll, and nothing to say about flags."""

    def __init__(self, faults: Faults) -> None:
        self._rolls = RollFaults(faults, {})

    def for_roll(self, die: DieType) -> RollFaults:
        return self._rolls

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _FlagState:
    """One flag as the last good reading of the file left it."""

    value: float
    variant: str
    per_request: bool  # evaluated on each roll it applies to
    targeted: bool = False

    @classmethod
    def shipped(cls, flag: FaultFlag) -> _FlagState:
        return cls(flag.default, flag.default_variant, per_request=False)

    def held(self) -> _FlagState:
        """Kept as it was; the file no longer describes it, so it is not evaluated."""
        return dataclasses.replace(self, per_request=False, targeted=False)

    def describe(self) -> str:
        return f"{self.variant!r} ({self.value:g})"


@dataclass(frozen=True)
class _Snapshot:
    """Every flag's state, and what a roll of each die gets when none is evaluated."""

    states: Mapping[str, _FlagState]
    fixed: Mapping[DieType, RollFaults]
    per_request: Mapping[DieType, tuple[FaultFlag, ...]]

    @classmethod
    def of(cls, states: Mapping[str, _FlagState]) -> _Snapshot:
        faults = Faults(**{flag.fault: states[flag.key].value for flag in FLAGS})
        fixed: dict[DieType, RollFaults] = {}
        per_request: dict[DieType, tuple[FaultFlag, ...]] = {}
        for die in DieType:
            applying = [flag for flag in FLAGS if die in flag.dice and _matters(flag, states)]
            per_request[die] = tuple(flag for flag in applying if states[flag.key].per_request)
            away = {
                flag.key: states[flag.key].variant
                for flag in applying
                if not states[flag.key].per_request and states[flag.key].value != flag.default
            }
            fixed[die] = RollFaults(faults, {"feature_flags": away} if away else {})
        return cls(states, fixed, per_request)

    def away_from_default(self) -> dict[str, str]:
        """Key -> variant of each flag that is not at its shipped default."""
        return {
            key: "targeting" if state.targeted else state.variant
            for key, state in self.states.items()
            if state.targeted or state.value != FLAGS_BY_KEY[key].default
        }


def _matters(flag: FaultFlag, states: Mapping[str, _FlagState]) -> bool:
    if flag.only_with is None:
        return True
    needed = states[flag.only_with]
    return needed.per_request or needed.value != 0.0


class FlagFileError(Exception):
    """The flag file as a whole cannot be used; `stamp` identifies the file's state."""

    def __init__(self, stamp: object, reason: str) -> None:
        super().__init__(reason)
        self.stamp = stamp
        self.reason = reason


class FlagFileFaults:
    """Faults from a flagd flag file, watched; see the module docstring."""

    def __init__(self, path: Path) -> None:
        # Imported here: without a flag file the service never loads OpenFeature,
        # flagd or gRPC (which the flagd provider imports whatever its resolver).
        from openfeature import api
        from openfeature.contrib.hook.opentelemetry import TracingHook
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType
        from openfeature.evaluation_context import EvaluationContext
        from openfeature.event import ProviderEvent

        _drop_watcher_tracebacks()
        self.path = path
        self._lock = threading.Lock()
        self._loaded_once = False
        self._reported: object = None  # the file state whose problems were logged
        self._snapshot = _Snapshot.of({flag.key: _FlagState.shipped(flag) for flag in FLAGS})
        self._context_type = EvaluationContext
        self._refresh_context = EvaluationContext()
        self._provider = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(path),
            deadline_ms=int(POLL_SECONDS * 1000),  # the file resolver's poll interval
        )
        # A domain of its own, never reused: the OpenFeature API is global, and tests
        # and the benchmark build (and close) several apps in one process.
        self.domain = f"dice-roller-flags-{next(_domains)}"
        self._client: OpenFeatureClient = api.get_client(self.domain)
        self._client.add_hooks([TracingHook()])
        # If the first read fails, the provider stays in error and keeps polling;
        # reload() below says what is wrong, once.
        with contextlib.suppress(Exception):
            api.set_provider_and_wait(self._provider, self.domain)
        self._events: tuple[ProviderEvent, ...] = (
            ProviderEvent.PROVIDER_READY,
            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
            ProviderEvent.PROVIDER_ERROR,
        )
        # Handlers run on OpenFeature's thread pool, possibly several at once and out
        # of order: each one re-reads the current state under the lock rather than
        # trusting its event. Registered after the first load, then one reload here,
        # so no change falls between the two.
        for event in self._events:
            self._client.add_handler(event, self._on_event)
        self.reload()
        log.info(
            "Watching the flag file",
            extra={"flags_file": str(path), **self._announce(self._snapshot)},
        )

    def for_roll(self, die: DieType) -> RollFaults:
        snapshot = self._snapshot  # one read: a reload swaps the whole snapshot
        flags = snapshot.per_request[die]
        if not flags:
            return snapshot.fixed[die]
        return self._evaluate(snapshot, die, flags)

    def close(self) -> None:
        from openfeature import api
        from openfeature.provider.no_op_provider import NoOpProvider

        for event in self._events:
            self._client.remove_handler(event, self._on_event)
        api.set_provider(NoOpProvider(), self.domain)  # shuts ours down, watcher included

    def _evaluate(
        self, snapshot: _Snapshot, die: DieType, flags: tuple[FaultFlag, ...]
    ) -> RollFaults:
        """Evaluate `flags` for this roll; a failed evaluation keeps the flag's last good
        value (the hook still records it on the span)."""
        fixed = snapshot.fixed[die]
        values: dict[str, float] = {}
        variants: dict[str, str] = dict(fixed.log_fields.get("feature_flags", {}))
        ids = current_ids()
        context = self._context_type(ids.trace_id if ids else None, {"die": die.value})
        for flag in flags:
            if flag.only_with is not None:
                needed = FLAGS_BY_KEY[flag.only_with].fault
                if values.get(needed, getattr(fixed.faults, needed)) == 0.0:
                    continue
            state = snapshot.states[flag.key]
            details = self._client.get_float_details(flag.key, state.value, context)
            if details.error_code is None and flag.accepts(details.value):
                value, variant = float(details.value), details.variant or state.variant
            else:
                value, variant = state.value, state.variant
            values[flag.fault] = value
            if value != flag.default:
                variants[flag.key] = variant
        faults = dataclasses.replace(fixed.faults, **values)
        return RollFaults(faults, {"feature_flags": variants} if variants else {})

    def _on_event(self, details: EventDetails) -> None:
        try:
            self.reload()
        except Exception as error:  # a handler that raises gets a traceback logged
            log.error(
                "Could not apply the flag file: %s: %s",
                type(error).__name__,
                error,
                extra={"flags_file": str(self.path)},
            )

    def reload(self) -> None:
        """Read the file and apply it now: what every provider event does."""
        with self._lock:
            try:
                stamp, document, evaluator = read_flag_file(self.path)
            except FlagFileError as error:
                if error.stamp != self._reported:
                    self._reported = error.stamp
                    kept = (
                        "keeping the last good values"
                        if self._loaded_once
                        else ("using the shipped defaults")
                    )
                    log.error(
                        "Flag file %s %s; %s",
                        self.path,
                        error.reason,
                        kept,
                        extra={"flags_file": str(self.path)},
                    )
                return
            report = stamp != self._reported
            self._reported = stamp
            self._loaded_once = True
            self._apply(document, evaluator, report)

    def _apply(self, document: Mapping[str, Any], evaluator: FlagdCore, report: bool) -> None:
        from openfeature.exception import OpenFeatureError

        check = check_document(document)
        states: dict[str, _FlagState] = {}
        for flag in FLAGS:
            previous = self._snapshot.states[flag.key]
            problem = check.problems.get(flag.key)
            if flag.key in check.missing:
                states[flag.key] = _FlagState.shipped(flag)
                continue
            if problem is None:
                try:
                    details = evaluator.resolve_float_value(
                        flag.key, previous.value, self._refresh_context
                    )
                except OpenFeatureError as error:
                    problem = f"could not be evaluated: {error.error_message or error}"
                else:
                    state = _state_of(flag, details)
                    if state is not None:
                        states[flag.key] = state
                        continue
                    problem = f"could not be evaluated: {details.value!r} ({details.reason})"
            states[flag.key] = previous.held()
            if report:
                log.error(
                    "Flag %s in %s: %s; keeping %s",
                    flag.key,
                    self.path,
                    problem,
                    previous.describe(),
                    extra={"flag": flag.key, "allowed": flag.allowed, "flags_file": str(self.path)},
                )
        if report and check.missing:
            log.warning(
                "Flags missing from %s take their shipped defaults: %s",
                self.path,
                ", ".join(check.missing),
                extra={"flags_file": str(self.path)},
            )
        if report and check.unknown:
            log.warning(
                "Flags in %s that the service does not know (a typo?): %s; it knows: %s",
                self.path,
                ", ".join(check.unknown),
                ", ".join(FLAGS_BY_KEY),
                extra={"flags_file": str(self.path)},
            )
        snapshot = _Snapshot.of(states)
        before = self._snapshot.away_from_default()
        self._snapshot = snapshot
        if snapshot.away_from_default() != before:
            log.info(
                "Feature flags changed",
                extra={"flags_file": str(self.path), **self._announce(snapshot)},
            )

    @staticmethod
    def _announce(snapshot: _Snapshot) -> dict[str, Any]:
        away = snapshot.away_from_default()
        return {"feature_flags": away} if away else {}


def _state_of(flag: FaultFlag, details: FlagResolutionDetails[float]) -> _FlagState | None:
    """The flag's state from flagd's evaluation of the file outside any request, or None
    if unusable."""
    from openfeature.flag_evaluation import Reason

    if details.reason == Reason.DISABLED:  # OpenFeature's rule: the code's default
        return _FlagState.shipped(flag)
    if details.error_code is not None or not flag.accepts(details.value):
        return None
    value = float(details.value)
    variant = details.variant or flag.default_variant
    if details.reason == Reason.STATIC:  # flagd's word for "no targeting"
        return _FlagState(value, variant, per_request=value != flag.default)
    return _FlagState(value, variant, per_request=True, targeted=True)


def read_flag_file(path: Path) -> tuple[object, dict[str, Any], FlagdCore]:
    """The file's state stamp, its document, and flagd's evaluator loaded with it.

    Raises FlagFileError saying what is wrong, naming the flag when flagd's parser
    rejects one (its own message does not).
    """
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.contrib.tools.flagd.core.model.flag import Flag
    from openfeature.exception import ParseError

    try:
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            stamp: object = (info.st_ino, info.st_mtime_ns, info.st_size)
            raw = file.read()
    except FileNotFoundError as error:
        raise FlagFileError("missing", "is missing") from error
    except OSError as error:
        reason = f"cannot be read: {error.strerror}"
        raise FlagFileError(("unreadable", error.errno), reason) from error
    try:
        # flagd's file resolver reads YAML for a path ending in .yaml, else JSON.
        document = yaml.safe_load(raw) if str(path).endswith(".yaml") else json.loads(raw)
    except json.JSONDecodeError as error:
        raise FlagFileError(
            stamp, f"is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from error
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise FlagFileError(stamp, f"does not parse: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        raise FlagFileError(stamp, 'is not a flagd flag file: it needs a "flags" object')
    evaluator = FlagdCore()
    try:
        evaluator.set_flags(copy.deepcopy(document))  # it rewrites what it reads
    except Exception as error:
        culprit = ""
        for key, definition in document["flags"].items():
            try:
                Flag.from_dict(key, copy.deepcopy(definition))
            except Exception:
                culprit = f"flag {key}: "
                break
        message = (error.error_message if isinstance(error, ParseError) else None) or str(
            error.__cause__ or error
        )
        raise FlagFileError(stamp, f"is not a flagd flag file: {culprit}{message}") from error
    return stamp, document, evaluator


class _WatcherTracebacks(logging.Filter):
    """Drops the traceback flagd's file watcher logs on every poll of a bad file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != "handle_error"


_watcher_filter = _WatcherTracebacks()


def _drop_watcher_tracebacks() -> None:
    logging.getLogger("openfeature.contrib").addFilter(_watcher_filter)  # idempotent

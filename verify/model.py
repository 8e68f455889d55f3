"""The checklist's vocabulary: a check, its result, and the run that collects them.

A check is a function that returns a short description of what it saw when the box
is ticked, and raises `Failed` when it is not. `Run.check` calls it and records the
result, whatever happens: an `ApiError` (component down, HTTP 500, not JSON) or even
a bug in the check becomes a cross with its message, never a traceback, and the next
check still runs.

A cross that comes only from a component that could not be reached is put down to
that component (`Result.blocked_by`), so the report can say it once, at the top, and
fold those boxes to one line each instead of repeating "unreachable" forty times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stackclient import ApiError, Component

from .sources import recording

__all__ = ["GROUPS", "Failed", "Result", "Run"]

GROUPS = (
    "Service Health",
    "Metrics Collection",
    "Log Collection",
    "Trace Collection",
    "Trace-to-Logs Correlation",
    "Dashboard",
    "Traffic Generation",
    "Stage 2: Across Services",
    "Stage 3: Three Services",
    "Stage 4: Async Rolls",
    "Stage 5: PostgreSQL",
)
"""The checklist's sections, in the order docs/checklist.md lists them."""


class Failed(Exception):
    """The box stays unticked; the message says what was seen instead."""


@dataclass(frozen=True)
class Result:
    group: str
    title: str
    passed: bool
    detail: str
    hint: str
    seconds: float
    blocked_by: Component | None = None
    """The component that could not be reached, when that alone crossed the box."""
    answered_by: tuple[str, ...] = ()
    """Names of the components that answered the check."""
    files: tuple[Path, ...] = ()
    """The repository's files the check read."""

    @property
    def from_files_only(self) -> bool:
        """Ticked from the repository's files, without a running component's word."""
        return self.passed and bool(self.files) and not self.answered_by


@dataclass
class Run:
    """The results so far, in the order the checks ran."""

    results: list[Result] = field(default_factory=list)
    unreachable: dict[Component, str] = field(default_factory=dict)
    """Components that could not be reached, each with the first message saying so."""
    _relying_on: tuple[Component, ...] = ()

    def check(self, group: str, title: str, hint: str, check: Callable[[], str]) -> bool:
        """Run one check, record its result, and say whether it passed."""
        if group not in GROUPS:
            raise ValueError(f"unknown checklist group {group!r}")
        started = time.monotonic()
        blocked_by = None
        with recording() as sources:
            try:
                detail, passed = check(), True
            except (Failed, ApiError) as failure:
                detail, passed = str(failure), False
                blocked_by = self._blocker(failure)
            except Exception as error:  # a check's own bug must not hide the other checks
                detail, passed = f"unexpected {type(error).__name__} in the check: {error}", False
        seconds = time.monotonic() - started
        self.results.append(
            Result(
                group,
                title,
                passed,
                detail,
                hint,
                seconds,
                blocked_by,
                tuple(sources.components),
                tuple(sources.files),
            )
        )
        return passed

    @contextmanager
    def relying_on(self, *components: Component) -> Iterator[None]:
        """The checks run inside need `components`: when one of them could not be reached,
        a cross of theirs is put down to it, even when the check only saw the consequence
        (no request of the service's to follow, no dashboard of Grafana's to read)."""
        outer = self._relying_on
        self._relying_on = outer + components
        try:
            yield
        finally:
            self._relying_on = outer

    def _blocker(self, failure: Exception) -> Component | None:
        error = _unreachable_error(failure)
        if error is not None and error.unreachable is not None:
            self.unreachable.setdefault(error.unreachable, str(error))
            return error.unreachable
        return next((c for c in self._relying_on if c in self.unreachable), None)

    @property
    def answered(self) -> list[str]:
        """Components that answered some check and were never found unreachable."""
        down = {component.name for component in self.unreachable}
        names = (name for result in self.results for name in result.answered_by)
        return [name for name in dict.fromkeys(names) if name not in down]

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result.passed for result in self.results)


def _unreachable_error(failure: BaseException) -> ApiError | None:
    """The `ApiError` of an unreachable component behind `failure`, if there is one.

    Checks often restate an `ApiError` as a `Failed` of their own (`raise Failed(...)
    from None`); Python still keeps the original as the new exception's context.
    """
    seen: set[int] = set()
    current: BaseException | None = failure
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ApiError) and current.unreachable is not None:
            return current
        current = current.__cause__ or current.__context__
    return None

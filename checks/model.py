"""The checklist's vocabulary: a check, its result, and the run that collects them.

A check is a function that returns a short description of what it saw when the box
is ticked, and raises `Failed` when it is not. `Run.check` calls it and records the
result, whatever happens: an `ApiError` (component down, HTTP 500, not JSON) or even
a bug in the check becomes a cross with its message, never a traceback, and the next
check still runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .http import ApiError

__all__ = ["GROUPS", "Failed", "Result", "Run"]

GROUPS = (
    "Service Health",
    "Metrics Collection",
    "Log Collection",
    "Trace Collection",
    "Trace-to-Logs Correlation",
    "Dashboard",
    "Traffic Generation",
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


@dataclass
class Run:
    """The results so far, in the order the checks ran."""

    results: list[Result] = field(default_factory=list)

    def check(self, group: str, title: str, hint: str, check: Callable[[], str]) -> bool:
        """Run one check, record its result, and say whether it passed."""
        if group not in GROUPS:
            raise ValueError(f"unknown checklist group {group!r}")
        started = time.monotonic()
        try:
            detail, passed = check(), True
        except (Failed, ApiError) as failure:
            detail, passed = str(failure), False
        except Exception as error:  # a check's own bug must not hide the other checks
            detail, passed = f"unexpected {type(error).__name__} in the check: {error}", False
        seconds = time.monotonic() - started
        self.results.append(Result(group, title, passed, detail, hint, seconds))
        return passed

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result.passed for result in self.results)

"""Showing the run while it happens.

On a terminal a live panel (drawn by Rich) keeps the totals in view while each roll's
line scrolls above it. Anywhere else (CI, ``docker logs``, a pipe) there is no cursor
to move, so the same information comes as plain lines: one per roll (and per page load,
for the frontend's visitors), and a progress line every ``PLAIN_PROGRESS_SECONDS``.
"""

from __future__ import annotations

import time
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TextIO

from .frontend import PageLoad
from .load import RollResult
from .stats import Outcome, RunStats

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

__all__ = ["Display", "LiveDisplay", "PlainDisplay", "open_display", "page_line", "roll_line"]

PLAIN_PROGRESS_SECONDS = 10.0


def roll_line(label: str, result: RollResult) -> str:
    """The line per roll the checklist looks for (docs/checklist.md):
    ``User 3 roll 5/12: risky -> 6 (412 ms)``."""
    line = f"{label}: {result.die} -> {result.text}"
    if result.latency_seconds is not None:
        line += f" ({result.latency_seconds * 1000:.0f} ms)"
    return line


def page_line(label: str, page: PageLoad) -> str:
    """A visitor's page load:
    ``User 3 page: HTTP 200 + 3 assets (failed: /static/tracing.js HTTP 404) (25 ms)``."""
    line = f"{label} page: {page.text}"
    if page.assets:
        line += f" + {len(page.assets)} assets"
        failed = [f"{a.path} {a.text}" for a in page.assets if a.outcome is not Outcome.SUCCESS]
        if failed:
            line += f" (failed: {', '.join(failed)})"
    if page.latency_seconds is not None:
        line += f" ({page.latency_seconds * 1000:.0f} ms)"
    return line


def progress_lines(stats: RunStats, elapsed: float, rate: float | None) -> list[str]:
    """The running totals, shared by both displays."""
    finished = stats.finished
    success = f"{stats.successes / finished:.1%}" if finished else "-"
    rate_text = f"{rate:.1f}/s" if rate is not None else "-"
    lines = [
        f"{elapsed:.0f} s elapsed · {stats.started} sent · {finished} finished · "
        f"{stats.started - finished} in flight",
        f"{rate_text} now · {success} success",
        f"errors: HTTP {stats.count(Outcome.HTTP_ERROR)} · "
        f"timeout {stats.count(Outcome.TIMEOUT)} · "
        f"connection {stats.count(Outcome.CONNECTION_ERROR)} · "
        f"invalid {stats.count(Outcome.INVALID_RESPONSE)}",
    ]
    if stats.pages.total:  # the frontend's visitors
        pages = stats.pages
        lines.append(
            f"pages: {pages.total} · failed {pages.total - pages.successes} · "
            f"assets failed {pages.asset_failures}"
        )
    return lines


class Display(Protocol):
    """Where the run's messages and per-roll lines go."""

    def __enter__(self) -> Display: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def message(self, text: str) -> None: ...

    def result(self, label: str, result: RollResult) -> None: ...

    def page(self, label: str, page: PageLoad) -> None: ...


class PlainDisplay:
    """Line-by-line output that reads well in a log file."""

    def __init__(self, stream: TextIO, stats: RunStats, *, quiet: bool) -> None:
        self._stream = stream
        self._stats = stats
        self._quiet = quiet
        self._started = time.monotonic()
        self._last_progress = self._started
        self._last_finished = 0

    def __enter__(self) -> PlainDisplay:
        self._started = self._last_progress = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stream.flush()

    def message(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def page(self, label: str, page: PageLoad) -> None:
        if not self._quiet:
            print(page_line(label, page), file=self._stream, flush=True)

    def result(self, label: str, result: RollResult) -> None:
        if not self._quiet:
            # Flushed line by line, so `| tee` and `docker logs` follow the run live.
            print(roll_line(label, result), file=self._stream, flush=True)
        now = time.monotonic()
        if now - self._last_progress >= PLAIN_PROGRESS_SECONDS:
            finished = self._stats.finished
            rate = (finished - self._last_finished) / (now - self._last_progress)
            self._last_progress, self._last_finished = now, finished
            lines = progress_lines(self._stats, now - self._started, rate)
            print("Progress: " + " · ".join(lines), file=self._stream)
            self._stream.flush()


class LiveDisplay:
    """A panel redrawn four times a second, with roll lines printed above it."""

    def __init__(self, stream: TextIO, stats: RunStats, *, quiet: bool, title: str) -> None:
        from rich.console import Console

        self._console = Console(file=stream)
        self._stats = stats
        self._quiet = quiet
        self._title = title
        self._started = time.monotonic()
        # (time, finished) a few seconds back, for a rate that follows the present.
        self._samples: deque[tuple[float, int]] = deque(maxlen=20)
        self._live: Live | None = None

    def __enter__(self) -> LiveDisplay:
        from rich.live import Live

        self._started = time.monotonic()
        self._live = Live(console=self._console, get_renderable=self._render, refresh_per_second=4)
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def message(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False)  # above the panel

    def page(self, label: str, page: PageLoad) -> None:
        if not self._quiet:
            self._console.print(page_line(label, page), markup=False, highlight=False)

    def result(self, label: str, result: RollResult) -> None:
        if not self._quiet:
            self._console.print(roll_line(label, result), markup=False, highlight=False)

    def _render(self) -> RenderableType:
        from rich.panel import Panel

        now = time.monotonic()
        finished = self._stats.finished
        self._samples.append((now, finished))
        then, finished_then = self._samples[0]
        rate = (finished - finished_then) / (now - then) if now > then else None
        lines = progress_lines(self._stats, now - self._started, rate)
        return Panel("\n".join(lines), title=self._title, expand=False)


def open_display(stream: TextIO, stats: RunStats, *, quiet: bool, title: str) -> Display:
    """A live panel when ``stream`` is a terminal, plain lines otherwise."""
    if stream.isatty():
        return LiveDisplay(stream, stats, quiet=quiet, title=title)
    return PlainDisplay(stream, stats, quiet=quiet)

"""The frontend's visitors: people who open the dice page, then roll through its API.

A visitor does what a person does with a browser: load the page (``GET /``, then the
stylesheets and scripts it names, once per visit), read it a moment, press Roll a few
times, thinking between rolls. Each press is a ``GET /api/roll?die=...``; when the
dice-roller behind the frontend fails, is down or is too slow, the frontend answers
502, 503 or 504 with a ``reason``, and the summary counts the failures by both.

The options mean what they mean for the dice-roller's users (``load.py``): ``--users``
visitors at once, ``--rolls`` per visit, ``--think`` between steps, and with
``--duration`` each visitor comes back, loading the page anew, until time is up. The
page loads are counted apart from the rolls (``RunStats.pages``).

Unlike a browser, a visitor fetches the assets one after another (a browser fetches
them side by side: the frontend sees the same requests), runs no script and sends no
spans of its own; and when the page does not load, it cannot roll.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import httpx

from .client import ClientGroup
from .config import Settings
from .load import (
    NoAnswer,
    ResultCallback,
    RunTiming,
    check_service,
    get_answer,
    pick_die,
    record_result,
    roll_once,
    roll_urls,
    sleep_unless,
    until_done_or_stopped,
)
from .stats import Outcome, PageStats, RunStats

__all__ = [
    "Asset",
    "PageCallback",
    "PageLoad",
    "asset_urls",
    "check_frontend",
    "load_page",
    "record_page",
    "run_visitors",
]

#: Where the page's Roll button sends its request, relative to the frontend's URL.
ROLL_PATH = "api/roll"
#: Most assets fetched for one page: a page naming more is not the sandbox's.
MAX_ASSETS = 20

#: Called with a label such as "User 3" and the page load that visitor made.
PageCallback = Callable[[str, "PageLoad"], None]


@dataclass(frozen=True)
class Asset:
    """One stylesheet or script of the page, and how fetching it went."""

    path: str
    outcome: Outcome
    text: str  # "HTTP 200", "HTTP 404", "TIMEOUT", ...
    status_code: int | None = None


@dataclass(frozen=True)
class PageLoad:
    """One visit's page: ``GET /`` (its outcome and text), then each asset it names.

    ``latency_seconds`` is the whole load: the page and then every asset.
    """

    outcome: Outcome
    text: str
    latency_seconds: float | None = None
    status_code: int | None = None
    assets: tuple[Asset, ...] = ()

    @property
    def loaded(self) -> bool:
        return self.outcome is Outcome.SUCCESS


async def check_frontend(client: ClientGroup, wait_seconds: float) -> str:
    """The start-up check: the frontend names itself in its OpenAPI document.

    Not ``GET /``, so the frontend's count of page requests is the visitors' alone.
    """
    return await check_service(client, wait_seconds, "/openapi.json", _describe_from_openapi)


def _describe_from_openapi(response: httpx.Response) -> str:
    try:
        info = response.json().get("info")
    except (ValueError, AttributeError):
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("title"), str):
        return "(unnamed)"
    version = info.get("version")
    return f"{info['title']} {version}" if isinstance(version, str) else info["title"]


class _AssetFinder(HTMLParser):
    """Collects what a browser fetches before showing the page: stylesheets, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        reference = None
        if tag == "script":
            reference = attributes.get("src")
        elif tag == "link" and "stylesheet" in (attributes.get("rel") or "").lower().split():
            reference = attributes.get("href")
        if reference:
            self.references.append(reference)


def asset_urls(page: httpx.Response) -> list[httpx.URL]:
    """The page's own stylesheets and scripts, in order, each once (others' are skipped)."""
    finder = _AssetFinder()
    finder.feed(page.text)
    site = _origin(page.url)
    found: list[httpx.URL] = []
    for reference in finder.references:
        try:
            url = page.url.join(reference)
        except httpx.InvalidURL:
            continue
        if _origin(url) == site and url not in found:
            found.append(url)
    return found[:MAX_ASSETS]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


async def load_page(client: ClientGroup, timeout: float) -> PageLoad:
    """Load the page as a browser would, ``timeout`` per request; never raises."""
    began = time.perf_counter()
    try:
        page, latency = await get_answer(client, "/", timeout)
    except NoAnswer as missing:
        return PageLoad(missing.outcome, missing.text)
    status = page.status_code
    if not page.is_success:
        return PageLoad(Outcome.HTTP_ERROR, f"HTTP {status}", latency, status)
    if not page.headers.get("content-type", "").lower().startswith("text/html"):
        text = f"INVALID RESPONSE (HTTP {status}, not a page)"
        return PageLoad(Outcome.INVALID_RESPONSE, text, latency, status)
    assets = [await _fetch_asset(client, url, timeout) for url in asset_urls(page)]
    latency = time.perf_counter() - began
    return PageLoad(Outcome.SUCCESS, f"HTTP {status}", latency, status, tuple(assets))


async def _fetch_asset(client: ClientGroup, url: httpx.URL, timeout: float) -> Asset:
    try:
        answer, _ = await get_answer(client, url, timeout)
    except NoAnswer as missing:
        return Asset(url.path, missing.outcome, missing.text)
    outcome = Outcome.SUCCESS if answer.is_success else Outcome.HTTP_ERROR
    return Asset(url.path, outcome, f"HTTP {answer.status_code}", answer.status_code)


def record_page(stats: PageStats, page: PageLoad) -> None:
    """Count one page load, and each of its assets, in ``stats``."""
    stats.record(page.outcome, latency_seconds=page.latency_seconds, status_code=page.status_code)
    for asset in page.assets:
        stats.record_asset(asset.path, asset.outcome, asset.status_code)


async def _visitor(
    number: int,
    client: ClientGroup,
    settings: Settings,
    stats: RunStats,
    on_page: PageCallback,
    on_result: ResultCallback,
    stop: asyncio.Event,
    deadline: float | None,
) -> None:
    """One person: open the page, read, roll a few times with pauses, maybe come back.

    Seeded like the dice-roller's users: the same ``--seed`` makes the same choices.
    """
    seed = f"{settings.seed}-{number}" if settings.seed is not None else None
    rng = random.Random(seed)  # None: seeded from the system's entropy
    loop = asyncio.get_running_loop()
    urls = roll_urls(client, ROLL_PATH)

    def time_is_up() -> bool:
        return stop.is_set() or (deadline is not None and loop.time() >= deadline)

    async def think() -> None:
        pause = settings.think.draw(rng)
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - loop.time()))
        await sleep_unless(stop, pause)

    visit = 0
    while not time_is_up():
        visit += 1
        who = f"User {number}" if visit == 1 else f"User {number} (session {visit})"
        die = pick_die(rng, settings.risky_share)
        rolls = settings.rolls.draw(rng)
        page = await load_page(client, settings.timeout)
        record_page(stats.pages, page)
        on_page(who, page)
        if page.loaded:  # no page, no Roll button
            for roll in range(1, rolls + 1):
                await think()  # reading the page, or the last roll's answer
                if time_is_up():
                    return
                stats.started += 1
                result = await roll_once(client, urls[die], die, settings.timeout)
                record_result(stats, result)
                on_result(f"{who} roll {roll}/{rolls}", result)
        if deadline is None:  # without --duration, each visitor comes once
            return
        await think()  # before coming back


async def run_visitors(
    client: ClientGroup,
    settings: Settings,
    stats: RunStats,
    on_page: PageCallback,
    on_result: ResultCallback,
    stop: asyncio.Event,
) -> RunTiming:
    """``settings.users`` visitors at once, until they are done, time is up, or stop."""
    loop = asyncio.get_running_loop()
    timing = RunTiming(started_at=loop.time())
    deadline = timing.started_at + settings.duration if settings.duration else None
    visitors = [
        asyncio.create_task(
            _visitor(n, client, settings, stats, on_page, on_result, stop, deadline)
        )
        for n in range(1, settings.users + 1)
    ]
    await until_done_or_stopped(visitors, stop, timing)
    timing.sending_stopped_at = timing.finished_at = loop.time()
    return timing

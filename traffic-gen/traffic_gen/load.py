"""Sending the rolls: simulated users (closed loop) or a fixed request rate (open loop).

Both modes send through one ``ClientGroup`` (see ``client.py``), sized for the most
requests that can be in flight at once. The frontend's visitors (``frontend.py``) roll
with the same pieces: ``roll_once``, ``pick_die``, ``sleep_unless``.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from .client import ClientGroup
from .config import Settings
from .stats import DIE_FACES, Outcome, RunStats

__all__ = [
    "NoAnswer",
    "ResultCallback",
    "RollResult",
    "RunTiming",
    "ServiceUnavailable",
    "check_service",
    "get_answer",
    "pick_die",
    "record_result",
    "roll_once",
    "roll_urls",
    "run_open_loop",
    "run_users",
    "sleep_unless",
    "unless_stopped",
    "until_done_or_stopped",
]

#: Called with a label such as "User 3 roll 5/12" and the result of that roll.
ResultCallback = Callable[[str, "RollResult"], None]


@dataclass(frozen=True)
class RollResult:
    """One request's fate, with a short text for the log line ("6", "HTTP 500", ...).

    ``reason`` is why the service said it failed, when it says (the frontend does).
    """

    die: str
    outcome: Outcome
    text: str
    latency_seconds: float | None = None
    status_code: int | None = None
    value: int | None = None
    reason: str | None = None


@dataclass
class RunTiming:
    """When sending started and stopped, for an honest achieved rate."""

    started_at: float
    sending_stopped_at: float | None = None
    finished_at: float | None = None
    interrupted: bool = False


class ServiceUnavailable(Exception):
    """The start-up check could not get a healthy answer from the service."""


class NoAnswer(Exception):
    """A request that got no answer: how it ended, and the text for its log line."""

    def __init__(self, outcome: Outcome, text: str) -> None:
        super().__init__(text)
        self.outcome = outcome
        self.text = text


#: Connections opened before the open-loop clock starts (see ``_warm_up``).
WARM_CONNECTIONS = 8
#: A failure's ``reason`` as counted: one short word, whatever else a service may say.
_REASON = re.compile(r"[A-Za-z0-9_.-]{1,40}")


async def check_service(
    client: ClientGroup,
    wait_seconds: float,
    path: str = "/",
    describe: Callable[[httpx.Response], str] | None = None,
) -> str:
    """Make sure the service answers ``GET path`` before any traffic; describe it.

    Retries for up to ``wait_seconds`` so a container started next to the service can
    wait for it, then raises ``ServiceUnavailable`` with the last reason. ``describe``
    names the service from the answer; the default reads the dice-roller's ``GET /``.
    """
    describe = describe or _describe_service
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            response = await client.get(path)
            if response.is_success:
                return describe(response)
            reason = f"GET {path} answered HTTP {response.status_code}"
        except httpx.TimeoutException:
            reason = f"GET {path} got no answer in time"
        except httpx.HTTPError as exc:
            reason = _transport_reason(exc)
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(reason)
        await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


async def _warm_up(client: ClientGroup, connections: int) -> None:
    """Open ``connections`` connections before the open-loop clock starts.

    A cold pool meets the first burst of scheduled requests with no idle connection,
    so each of them opens its own; the connects slow the event loop, which makes the
    next requests find no idle connection either. A few concurrent ``GET /`` first
    (they show in the service's metrics under handler "/") avoid that storm.
    """
    # Failures here are not the run's to count: the schedule will meet them again.
    await asyncio.gather(*(client.get("/") for _ in range(connections)), return_exceptions=True)


def _describe_service(response: httpx.Response) -> str:
    """Name and version from the service's ``GET /``; "(unnamed)" for another server."""
    try:
        info = response.json()
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("service"), str):
        return "(unnamed)"
    version = info.get("version")
    return f"{info['service']} {version}" if version else info["service"]


def _transport_reason(exc: httpx.HTTPError) -> str:
    """A short reason for a failed connection: the OS's words when there are some."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def roll_urls(client: ClientGroup, path: str = "roll") -> dict[str, httpx.URL]:
    """The absolute URL of each die's roll, parsed once rather than on every request."""
    return {die: client.base_url.join(f"{path}?die={die}") for die in DIE_FACES}


async def get_answer(
    client: ClientGroup, url: httpx.URL | str, timeout: float
) -> tuple[httpx.Response, float]:
    """``GET url``: the answer and how long it took, or ``NoAnswer`` saying why none came.

    ``timeout`` bounds the whole request, not just each read, so a server that trickles
    bytes cannot hold a simulated user longer than asked.
    """
    began = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            response = await client.get(url)
    except (TimeoutError, httpx.TimeoutException):
        raise NoAnswer(Outcome.TIMEOUT, "TIMEOUT") from None
    except httpx.HTTPError as exc:
        text = f"CONNECTION ERROR ({_transport_reason(exc)})"
        raise NoAnswer(Outcome.CONNECTION_ERROR, text) from None
    return response, time.perf_counter() - began


async def roll_once(client: ClientGroup, url: httpx.URL, die: str, timeout: float) -> RollResult:
    """Roll one die at ``url``; never raises for anything the network or the service does."""
    try:
        response, latency = await get_answer(client, url, timeout)
    except NoAnswer as missing:
        return RollResult(die, missing.outcome, missing.text)
    status = response.status_code
    if not response.is_success:
        reason = _failure_reason(response)
        text = f"HTTP {status} {reason}" if reason else f"HTTP {status}"
        return RollResult(die, Outcome.HTTP_ERROR, text, latency, status, reason=reason)
    value = _roll_value(response)
    if value is None:
        return RollResult(
            die, Outcome.INVALID_RESPONSE, f"INVALID RESPONSE (HTTP {status})", latency, status
        )
    return RollResult(die, Outcome.SUCCESS, str(value), latency, status, value)


def record_result(stats: RunStats, result: RollResult) -> None:
    """Count one roll's result in ``stats``."""
    stats.record(
        result.die,
        result.outcome,
        latency_seconds=result.latency_seconds,
        status_code=result.status_code,
        reason=result.reason,
        value=result.value,
    )


def _roll_value(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("roll") if isinstance(body, dict) else None
    # bool is an int in Python; a roll of `true` is still not a roll.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _failure_reason(response: httpx.Response) -> str | None:
    """The ``reason`` of an error answer, as the frontend gives it ("unreachable", ...).

    Only a short word is taken: the summary counts by it, and a service could say anything.
    """
    try:
        body = response.json()
    except ValueError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) and _REASON.fullmatch(reason) else None


def pick_die(rng: random.Random, risky_share: float) -> str:
    return "risky" if rng.random() < risky_share else "fair"


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when ``stop`` is set."""
    if seconds <= 0:
        return
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass


async def _user(
    user_id: int,
    client: ClientGroup,
    settings: Settings,
    stats: RunStats,
    on_result: ResultCallback,
    stop: asyncio.Event,
    deadline: float | None,
) -> None:
    """One simulated user: pick a die, roll it a few times with pauses, maybe again.

    Each user draws from its own generator seeded from ``--seed`` and its number, so a
    seeded run makes the same choices whatever order the answers come back in.
    """
    seed = f"{settings.seed}-{user_id}" if settings.seed is not None else None
    rng = random.Random(seed)  # None: seeded from the system's entropy
    loop = asyncio.get_running_loop()
    urls = roll_urls(client)
    session = 0
    while not stop.is_set():
        session += 1
        die = pick_die(rng, settings.risky_share)
        rolls = settings.rolls.draw(rng)
        who = f"User {user_id}" if session == 1 else f"User {user_id} (session {session})"
        for number in range(1, rolls + 1):
            if stop.is_set() or (deadline is not None and loop.time() >= deadline):
                return
            stats.started += 1
            result = await roll_once(client, urls[die], die, settings.timeout)
            record_result(stats, result)
            on_result(f"{who} roll {number}/{rolls}", result)
            if number < rolls or deadline is not None:  # the next roll may be a new session
                pause = settings.think.draw(rng)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - loop.time()))
                await sleep_unless(stop, pause)
        if deadline is None:  # without --duration, each user has one session
            return


async def run_users(
    client: ClientGroup,
    settings: Settings,
    stats: RunStats,
    on_result: ResultCallback,
    stop: asyncio.Event,
) -> RunTiming:
    """Closed loop: ``settings.users`` users until they are done, time is up, or stop."""
    loop = asyncio.get_running_loop()
    timing = RunTiming(started_at=loop.time())
    deadline = timing.started_at + settings.duration if settings.duration else None
    users = [
        asyncio.create_task(_user(n, client, settings, stats, on_result, stop, deadline))
        for n in range(1, settings.users + 1)
    ]
    await until_done_or_stopped(users, stop, timing)
    timing.sending_stopped_at = timing.finished_at = loop.time()
    return timing


async def run_open_loop(
    client: ClientGroup,
    settings: Settings,
    stats: RunStats,
    on_result: ResultCallback,
    stop: asyncio.Event,
) -> RunTiming:
    """Open loop: request ``i`` leaves at ``start + i / rate``, answered or not.

    The schedule is absolute, so a late wake-up is caught up at once rather than
    shifting every later request. When ``max_in_flight`` requests are outstanding a
    due request is skipped and counted: the generator never queues without bound.
    """
    assert settings.rate is not None
    await unless_stopped(_warm_up(client, min(settings.max_in_flight, WARM_CONNECTIONS)), stop)
    loop = asyncio.get_running_loop()
    rng = random.Random(settings.seed)
    timing = RunTiming(started_at=loop.time())
    deadline = timing.started_at + settings.duration if settings.duration else None
    interval = 1.0 / settings.rate
    urls = roll_urls(client)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(number: int, die: str) -> None:
        result = await roll_once(client, urls[die], die, settings.timeout)
        record_result(stats, result)
        on_result(f"Request {number}", result)

    number = 0
    while not stop.is_set():
        due = timing.started_at + number * interval
        if deadline is not None and due >= deadline:
            break
        delay = due - loop.time()
        if delay > 0:
            await sleep_unless(stop, delay)
            continue  # re-check stop and the clock after every sleep
        number += 1
        die = pick_die(rng, settings.risky_share)
        if len(in_flight) >= settings.max_in_flight:
            stats.skipped += 1
        else:
            stats.started += 1
            task = asyncio.create_task(send(number, die))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if number % 64 == 0:
            await asyncio.sleep(0)  # when far behind, still let answers be handled
    # A schedule that ran to its end covered the whole duration, even if its last
    # request was due a moment before the deadline; a late one stretches the window.
    timing.sending_stopped_at = loop.time()
    if deadline is not None and not stop.is_set():
        timing.sending_stopped_at = max(timing.sending_stopped_at, deadline)
    await until_done_or_stopped(list(in_flight), stop, timing)
    timing.finished_at = loop.time()
    return timing


async def until_done_or_stopped(
    tasks: list[asyncio.Task[None]], stop: asyncio.Event, timing: RunTiming
) -> None:
    """Wait for ``tasks``; if ``stop`` is set first, cancel what is left and say so."""
    await unless_stopped(asyncio.gather(*tasks), stop)
    timing.interrupted = stop.is_set()


T = TypeVar("T")


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Await ``work``; if ``stop`` is set first, cancel it and return None.

    An exception raised by ``work`` surfaces here rather than vanishing.
    """
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None

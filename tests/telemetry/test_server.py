"""The limits `serve()` gives every service, read from what it hands uvicorn, and the
line that reports connections closed at them (the processes: tests/reliability/
test_server_limits.py)."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sandbox_telemetry import server
from sandbox_telemetry.http import MAX_FIELD_CHARS, _exchange
from sandbox_telemetry.server import (
    HEADER_TIMEOUT_SECONDS,
    IDLE_TIMEOUT_SECONDS,
    LIMITS_MESSAGE,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    TRUSTED_PROXIES_VARIABLE,
    BoundedHttpToolsProtocol,
    ClosedAtLimits,
    connection_limit,
)

from tests.support.compose import ROOT_COMPOSE, load_project


def served_with(monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    """What `serve()` passes to uvicorn.run, without serving or touching the signals."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    server.serve(FastAPI(), "127.0.0.1", 8100, *args)
    return seen


def test_forwarded_headers_are_believed_from_no_one_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's variable is not read behind us
    options = served_with(monkeypatch)
    assert options["proxy_headers"] is False
    assert options["forwarded_allow_ips"] == ""


def test_forwarded_headers_are_believed_from_the_proxies_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = served_with(monkeypatch, "10.0.0.2")
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == "10.0.0.2"


def test_every_connection_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    options = served_with(monkeypatch)
    assert options["http"] is BoundedHttpToolsProtocol
    assert options["timeout_keep_alive"] == IDLE_TIMEOUT_SECONDS
    assert (MAX_HEADER_BYTES, HEADER_TIMEOUT_SECONDS, MAX_CONNECTIONS) == (64 * 1024, 10, 1024)


def test_the_connection_limit_leaves_files_for_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for files, expected in ((256, 128), (1024, 896), (65536, MAX_CONNECTIONS), (100, 1)):
        monkeypatch.setattr(resource, "getrlimit", lambda _, files=files: (files, files))
        assert connection_limit() == expected
    infinite = resource.RLIM_INFINITY
    monkeypatch.setattr(resource, "getrlimit", lambda _: (infinite, infinite))
    assert connection_limit() == MAX_CONNECTIONS


def test_a_forged_client_is_cut_like_a_path() -> None:
    scope = {"method": "GET", "path": "/", "query_string": b"", "client": ("x" * 40_000, 0)}
    client = _exchange(scope, 200, 0.0)["client"]
    assert client.startswith("x" * MAX_FIELD_CHARS + "... [")
    assert len(client) < MAX_FIELD_CHARS + 40


def test_closed_connections_make_one_line_at_once_then_one_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """300 closures in two bursts: a line for the first burst, one for the second."""

    async def closures() -> None:
        report = ClosedAtLimits(interval=0.3, delay=0.05)
        loop = asyncio.get_running_loop()
        for _ in range(150):
            report.count("stalled", loop, 10)
        await asyncio.sleep(0.1)
        for reason in ("made_room", "too_large") * 75:
            report.count(reason, loop, 10)
        await asyncio.sleep(0.5)

    with caplog.at_level(logging.WARNING, logger="sandbox_telemetry.server"):
        asyncio.run(closures())
    lines = [r for r in caplog.records if r.getMessage() == LIMITS_MESSAGE]
    assert [line.closed for line in lines] == [  # type: ignore[attr-defined]
        {"stalled": 150},
        {"made_room": 75, "too_large": 75},
    ]


@pytest.mark.parametrize("name", ["dice-roller", "frontend"])
def test_compose_trusts_no_proxy_either(name: str) -> None:
    """Nothing in front of the services in compose: no variable names a trusted proxy."""
    spec = load_project(ROOT_COMPOSE).services[name].spec
    environment = spec.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    assert not environment.get(TRUSTED_PROXIES_VARIABLE), environment

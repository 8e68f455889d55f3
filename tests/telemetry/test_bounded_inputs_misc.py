"""The pieces behind tests/reliability/test_collector_warning.py, test_shutdown_cancel.py
and test_redirects_and_docs.py, each alone: the edge cases a running service rarely
shows."""

from __future__ import annotations

import asyncio
import logging

from sandbox_telemetry.logs import ExportWarningLimiter, ShutdownCancellationFilter
from sandbox_telemetry.web import RelativeRedirects
from starlette.types import Message, Receive, Scope, Send


def record(logger: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord(logger, logging.WARNING, __file__, 1, "message", None, exc_info)


def test_each_opentelemetry_logger_has_its_own_warning_budget() -> None:
    limiter = ExportWarningLimiter(interval=60)
    header = "opentelemetry.trace.propagation.tracecontext"
    exporter = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    assert [limiter.filter(record(header)) for _ in range(100)].count(True) == 1
    assert limiter.filter(record(exporter))  # not spent by the hostile headers
    assert not limiter.filter(record(exporter))
    assert limiter.filter(record("dice_roller"))  # the service's own lines: never limited


def test_only_uvicorns_traceback_of_a_cancelled_request_is_dropped() -> None:
    drop = ShutdownCancellationFilter()
    assert not drop.filter(record("uvicorn.error", asyncio.CancelledError("timeout")))
    assert drop.filter(record("uvicorn.error", ValueError("a real bug")))
    assert drop.filter(record("uvicorn.error"))
    assert drop.filter(record("dice_roller", asyncio.CancelledError()))


def redirected(location: str, host: bytes | None = b"svc:8000") -> str:
    """The Location a client gets when the app behind RelativeRedirects says `location`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 307,
                "headers": [(b"location", location.encode())],
            }
        )

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request"}

    scope: Scope = {
        "type": "http",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "path": "/roll/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", host)] if host else [],
    }
    asyncio.run(RelativeRedirects(app)(scope, receive, send))
    location_header: bytes = dict(sent[0]["headers"])[b"location"]
    return location_header.decode()


def test_a_redirect_to_the_service_itself_becomes_a_path() -> None:
    assert redirected("http://svc:8000/roll?die=fair") == "/roll?die=fair"
    assert redirected("http://127.0.0.1:8000/roll", host=None) == "/roll"
    assert redirected("http://svc:8000") == "/"
    assert redirected("http://svc:8000//elsewhere/x") == "/elsewhere/x"  # never //host


def test_other_redirects_are_left_alone() -> None:
    assert redirected("https://grafana.example/d/abc") == "https://grafana.example/d/abc"
    assert redirected("https://svc:8000/roll") == "https://svc:8000/roll"  # another scheme
    assert redirected("/already/a/path") == "/already/a/path"

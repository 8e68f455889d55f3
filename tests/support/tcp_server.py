"""A raw TCP server for tests that need a "service" no HTTP framework would write.

Answers that are not HTTP, bodies cut short, connections held open without a word:
tests of clients against a broken service write those bytes themselves. This runs
their connection handler on an asyncio server on 127.0.0.1 (a port the OS picks),
in its own event loop on a thread, so the test itself stays synchronous.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

__all__ = ["ConnectionHandler", "serving_tcp"]

ConnectionHandler = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, asyncio.Event], Awaitable[None]
]
"""Serves one connection. The event is set when the server stops: a handler that
holds its connection open waits on it, so stopping never waits for the handler."""


@contextmanager
def serving_tcp(handle: ConnectionHandler) -> Iterator[str]:
    """Serve each connection with `handle` until the block ends; yields the server's URL.

    A client hanging up (the stream ending or the connection reset) ends the handler
    quietly, and the connection is closed after each handler, however it ended.
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    stopped = asyncio.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer, stopped)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(connection, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await stopped.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        loop.call_soon_threadsafe(stopped.set)
        thread.join(10)
        raise RuntimeError("the TCP server did not start within 10 s")
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(stopped.set)
        thread.join(10)
        loop.close()

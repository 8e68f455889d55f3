"""Serving a sandbox service with uvicorn, the same way for every service."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "serve"]

GRACEFUL_SHUTDOWN_SECONDS = 5
"""On SIGTERM, requests in flight get this long to finish before uvicorn closes the
connections and the service flushes its spans."""


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down gracefully and return."""
    # Uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler it found. A handler that ignores it makes a clean shutdown exit with 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _after_graceful_shutdown)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the JSON handlers configure_logging installed
        access_log=False,  # every request writes its own line (sandbox_telemetry.http)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """Uvicorn has already stopped cleanly when this runs: nothing is left to do."""

"""Start the real frontend as a process, the way users run it, and stop it again.

The counterpart of `service.py` for stage 2's frontend: `python -m frontend` on a free
port of 127.0.0.1, in front of whatever dice-roller URL the test gives (a real one, a
stand-in, or a port where nothing listens), its stdout captured for the test to read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .processes import wait_until_ready
from .tools import free_port

__all__ = ["DEFAULT_FRONTEND_ENV", "RunningFrontend", "running_frontend"]

DEFAULT_FRONTEND_ENV: Mapping[str, str] = {"OTEL_TRACES_EXPORTER": "none"}
"""Traces are off unless a test brings a receiver."""


@dataclass
class RunningFrontend:
    """A frontend process listening on `url`, its stdout captured in `output_path`."""

    process: subprocess.Popen[bytes]
    port: int
    output_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running_frontend(
    dice_roller_url: str, env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[RunningFrontend]:
    """Run the frontend in front of `dice_roller_url`, with `env` on top of
    `DEFAULT_FRONTEND_ENV`, until the block ends."""
    port = free_port()
    full_env = {
        **os.environ,
        **DEFAULT_FRONTEND_ENV,
        **(env or {}),
        "FRONTEND_HOST": "127.0.0.1",
        "FRONTEND_PORT": str(port),
        "FRONTEND_DICE_ROLLER_URL": dice_roller_url,
    }
    with tempfile.TemporaryDirectory(prefix="frontend-") as tmp:
        output_path = Path(tmp) / "stdout.log"
        with output_path.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "frontend"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        frontend = RunningFrontend(process, port, output_path)
        try:
            wait_until_ready(
                process,
                frontend.url + "/metrics",  # not `/`: the page's count is the test's own
                name="frontend",
                output=frontend.output,
                timeout=ready_timeout,
                interval=0.05,
            )
            yield frontend
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

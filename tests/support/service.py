"""Start the real dice-roller as a process, the way users run it, and stop it again.

Tests talk to it over real HTTP on 127.0.0.1 and read what it printed, so they
check the same bytes a log pipeline and a scraper would see.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify.service import parse_traceresponse

from .processes import wait_until_ready
from .tools import free_port

__all__ = ["DEFAULT_TEST_ENV", "RunningService", "running_service", "trace_of"]

DEFAULT_TEST_ENV: Mapping[str, str] = {
    "DICE_MAX_DELAY_SECONDS": "0.05",
    "OTEL_TRACES_EXPORTER": "none",
    "DICE_LOG_LEVEL": "INFO",
}
"""A short delay keeps tests quick; traces are off unless a test brings a receiver."""


@dataclass
class RunningService:
    """A dice-roller process listening on `url`, its stdout captured in `output_path`."""

    process: subprocess.Popen[bytes]
    port: int
    output_path: Path
    env: Mapping[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[str]:
        return [line for line in self.output().splitlines() if line.strip()]

    def log_records(self) -> list[dict[str, Any]]:
        """Every stdout line, parsed as JSON (fails loudly on a line that is not)."""
        return [json.loads(line) for line in self.log_lines()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` and wait for the exit code; kills the process if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode


def service_command(port: int) -> list[str]:
    return [sys.executable, "-m", "dice_roller", "--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def running_service(
    env: Mapping[str, str] | None = None, ready_timeout: float = 30.0
) -> Iterator[RunningService]:
    """Run the service with `env` on top of `DEFAULT_TEST_ENV`, until the block ends."""
    port = free_port()
    full_env = {**os.environ, **DEFAULT_TEST_ENV, **(env or {})}
    with tempfile.TemporaryDirectory(prefix="dice-roller-") as tmp:
        output_path = Path(tmp) / "stdout.log"
        with output_path.open("wb") as sink:
            process = subprocess.Popen(
                service_command(port), stdout=sink, stderr=subprocess.STDOUT, env=full_env
            )
        service = RunningService(process, port, output_path, full_env)
        try:
            wait_until_ready(
                process,
                service.url + "/",
                name="dice-roller",
                output=service.output,
                timeout=ready_timeout,
                interval=0.05,
            )
            yield service
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def trace_of(headers: Mapping[str, str]) -> tuple[str, str]:
    """(trace id, span id) of an answer, from its `traceresponse` header.

    Fails the test when the header is missing, malformed or names the all-zero trace.
    """
    ids = parse_traceresponse(headers.get("traceresponse"))
    assert ids is not None, f"no valid traceresponse header: {headers.get('traceresponse')!r}"
    return ids

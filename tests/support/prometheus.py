"""A real Prometheus server for tests, started with a config the test writes.

Debian's `prometheus` package (2.42) runs here as a plain process: it listens on a
free 127.0.0.1 port, keeps its data in a temporary directory, stores exemplars
(`--enable-feature=exemplar-storage`), and is stopped when the block ends. Without
the binary the test is skipped on a laptop and fails under CI=true (`require_tool`).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .tools import free_port, require_tool

__all__ = ["RunningPrometheus", "running_prometheus"]


@dataclass
class RunningPrometheus:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query now; fails the test on an API error."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Wait until `expr` has a result (e.g. until a first scrape arrived)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()}")
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.2)
        raise TimeoutError(f"no result for {expr} within {timeout} s:\n{self.log()}")


@contextmanager
def running_prometheus(config_text: str, ready_timeout: float = 30) -> Iterator[RunningPrometheus]:
    """Run Prometheus with `config_text` as its prometheus.yml until the block ends."""
    binary = require_tool("prometheus", "Debian package prometheus")
    with tempfile.TemporaryDirectory(prefix="prometheus-") as tmp:
        workdir = Path(tmp)
        config = workdir / "prometheus.yml"
        config.write_text(config_text, encoding="utf-8")
        port = free_port()
        log_path = workdir / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    "--enable-feature=exemplar-storage",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = RunningPrometheus(process, f"http://127.0.0.1:{port}", log_path)
        try:
            _wait_until_ready(server, ready_timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(server: RunningPrometheus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"prometheus exited:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"prometheus not ready after {timeout} s:\n{server.log()}")

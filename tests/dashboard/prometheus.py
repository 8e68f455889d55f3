"""A real Prometheus server for tests: the project's config and rules, one local target.

The stack's `prometheus.yml` scrapes `dice-roller:8000` inside the compose network.
Here the same file is loaded with only what cannot work outside Docker changed:

- the scrape target becomes the service the test started on 127.0.0.1;
- rule files are given by absolute path, so the copied config finds the project's rules;
- `scrape_protocols` is removed when the installed Prometheus predates it (Debian's
  2.42 refuses unknown keys; 2.x asks for OpenMetrics first anyway, so exemplars
  still arrive exactly as the pinned setting asks in Prometheus 3).

Scrape and evaluation intervals stay as the project sets them.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.dashboard.model import PROMETHEUS_CONFIG
from tests.support.tools import free_port

JOB = "dice-roller-stage1"


def prometheus_version(binary: str) -> tuple[int, int]:
    output = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    match = re.search(r"version (\d+)\.(\d+)", output.stdout + output.stderr)
    assert match, f"cannot read the version of {binary}: {output.stdout}{output.stderr}"
    return int(match.group(1)), int(match.group(2))


def local_config(target: str, version: tuple[int, int]) -> dict[str, Any]:
    """The project's Prometheus config, pointed at `target` (host:port)."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["rule_files"] = [
        str(PROMETHEUS_CONFIG.parent / pattern) for pattern in config.get("rule_files", [])
    ]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    job["static_configs"] = [{"targets": [target]}]
    if version < (2, 49):  # scrape_protocols arrived in Prometheus 2.49
        job.pop("scrape_protocols", None)
    return config


def scrape_interval_seconds() -> float:
    """The dice-roller job's scrape interval, as the project configures it."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    interval = job.get("scrape_interval") or config.get("global", {}).get("scrape_interval", "1m")
    return parse_duration(str(interval))


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `5s`, `1m30s`, `250ms`."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(int(number) * units[unit] for number, unit in parts)


class PrometheusError(AssertionError):
    """Prometheus answered a query with an error."""


@dataclass
class Prometheus:
    """A running Prometheus and the parts of its HTTP API the tests use."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def _get(self, path: str, **params: str | float) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('error', response.text)}")
        return body["data"]

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """Instant query at time `at` (Unix seconds); the result vector or matrix."""
        data = self._get("/api/v1/query", query=expr, time=f"{at:.3f}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self._get(
            "/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self._get(
            "/api/v1/query_exemplars", query=expr, start=f"{start:.3f}", end=f"{end:.3f}"
        )
        result: list[dict[str, Any]] = data
        return result

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["groups"]
        return groups

    def scrape_times(self, job: str, until: float) -> list[float]:
        """Timestamps of every scrape of `job` so far (the samples of its `up` series)."""
        [series] = self.query(f'up{{job="{job}"}}[1h]', until) or [{"values": []}]
        return [float(timestamp) for timestamp, _ in series["values"]]

    def wait_for_scrape_after(self, job: str, moment: float, timeout: float = 60) -> float:
        """Wait until `job` has been scraped after `moment`; that scrape's timestamp."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()}")
            later = [t for t in self.scrape_times(job, time.time()) if t > moment]
            if later:
                return later[0]
            time.sleep(0.25)
        raise TimeoutError(f"no scrape of {job} after {moment} within {timeout} s")


@contextmanager
def running_prometheus(binary: str, target: str, workdir: Path) -> Iterator[Prometheus]:
    """Run Prometheus on a free 127.0.0.1 port with the project's config, then stop it."""
    config_path = workdir / "prometheus.yml"
    config = local_config(target, prometheus_version(binary))
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={workdir / 'data'}",
                "--enable-feature=exemplar-storage",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(process, f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(server: Prometheus, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"prometheus exited:\n{server.log_path.read_text()}")
        try:
            if httpx.get(server.url + "/-/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"prometheus not ready after {timeout} s:\n{server.log_path.read_text()}")

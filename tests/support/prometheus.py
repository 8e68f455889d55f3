"""A real Prometheus server for tests: with a config the test writes, or the project's.

It is the Prometheus users run, v3.14.0 as stack/compose.yml pins it, built from its
Go module by nativestack/build.py (`python3 tasks.py test` builds it before the
suite starts), run as a plain process: it listens on a free 127.0.0.1 port, keeps its
data in a temporary directory, stores exemplars (`--enable-feature=exemplar-storage`,
as compose enables it), and is stopped when the block ends.

Two ways in:

- `running_prometheus(config_text)`: a test's own prometheus.yml, for tests that need
  a Prometheus and not the project's settings (a fast scrape, a target that is down);
- `running_project_prometheus(targets)`: the repository's stack/prometheus/prometheus.yml
  and its rules, with only what cannot work outside Docker changed: absolute rule file
  paths, and the static targets of the jobs a test names (`dice-roller:8000` only
  resolves inside the compose network). Scrape and evaluation intervals stay as the
  project sets them. The native stack (nativestack/) runs the file unchanged.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

import stackclient

from .native import built
from .paths import ROOT
from .processes import wait_until_ready
from .tools import free_port

__all__ = [
    "CONFIG",
    "JOB",
    "OPENMETRICS_FIRST",
    "PROMETHEUS_DIR",
    "RULES_DIR",
    "Prometheus",
    "load_config",
    "local_config",
    "parse_duration",
    "prometheus_binary",
    "running_project_prometheus",
    "running_prometheus",
    "scrape_interval_seconds",
    "write_local_config",
]

PROMETHEUS_DIR = ROOT / "stack" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"

JOB = "dice-roller-stage1"
"""The project's scrape job for the dice roller."""

OPENMETRICS_FIRST = "OpenMetricsText1.0.0"

JSON = dict[str, Any]


# --- The project's config -------------------------------------------------------------


def prometheus_binary(program: str = "prometheus") -> str:
    """The pinned Prometheus (or its `promtool`), as `python3 tasks.py test` built it."""
    return built("prometheus", program)


def load_config() -> JSON:
    """stack/prometheus/prometheus.yml as it is in the repository."""
    document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{CONFIG}: expected a mapping")
    return document


def local_config(targets: Mapping[str, Sequence[str]] | None = None) -> JSON:
    """The project's config for a Prometheus running outside Docker.

    Rule file globs become absolute paths into stack/prometheus/. `targets` replaces
    the static targets of the named jobs, e.g. ``{"dice-roller-stage1": ["127.0.0.1:8123"]}``.
    """
    config = load_config()
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    for job, job_targets in (targets or {}).items():
        matching = [s for s in config["scrape_configs"] if s["job_name"] == job]
        if not matching:
            raise ValueError(f"no scrape job {job!r} in {CONFIG}")
        matching[0]["static_configs"] = [{"targets": list(job_targets)}]
    return config


def write_local_config(directory: Path, targets: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Write `local_config` into `directory`."""
    config = local_config(targets)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `5s`, `1m30s`, `250ms`."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(int(number) * units[unit] for number, unit in parts)


def scrape_interval_seconds(job: str = JOB) -> float:
    """`job`'s scrape interval, as the project configures it (its own, else the global)."""
    config = load_config()
    [scrape] = [s for s in config["scrape_configs"] if s["job_name"] == job]
    default = config.get("global", {}).get("scrape_interval", "1m")  # 1m: Prometheus's own
    interval = scrape.get("scrape_interval") or default
    return parse_duration(str(interval))


# --- A running Prometheus and its HTTP API --------------------------------------------


class Prometheus(stackclient.Prometheus):
    """A running Prometheus, queried through the project's client (whose `ApiError`
    fails the test with Prometheus' own message)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        super().__init__(stackclient.Api(timeout=30), url)
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        """What Prometheus printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited:\n{self.log()}")

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Wait until `expr` has a result now (e.g. until a first scrape arrived)."""

        def result() -> list[dict[str, Any]] | None:
            self._check_running()
            return self.query(expr) or None

        found = stackclient.wait_until(result, timeout)
        if found is None:
            raise TimeoutError(f"no result for {expr} within {timeout} s:\n{self.log()}")
        return found

    def scrape_times(self, job: str, until: float) -> list[float]:
        """Timestamps of every scrape of `job` so far (the samples of its `up` series)."""
        [series] = self.query(f'up{{job="{job}"}}[1h]', until) or [{"values": []}]
        return [float(timestamp) for timestamp, _ in series["values"]]

    def wait_for_scrape_after(self, job: str, moment: float, timeout: float = 60) -> float:
        """Wait until `job` has been scraped after `moment`; that scrape's timestamp."""

        def scraped() -> float | None:
            self._check_running()
            later = [t for t in self.scrape_times(job, time.time()) if t > moment]
            return later[0] if later else None

        found = stackclient.wait_until(scraped, timeout, interval=0.25)
        if found is not None:
            return found
        raise TimeoutError(f"no scrape of {job} after {moment} within {timeout} s")


@contextmanager
def running_prometheus(config_text: str, ready_timeout: float = 30) -> Iterator[Prometheus]:
    """Run Prometheus with `config_text` as its prometheus.yml until the block ends."""
    binary = prometheus_binary()
    with tempfile.TemporaryDirectory(prefix="prometheus-") as tmp:
        workdir = Path(tmp)
        config = workdir / "prometheus.yml"
        config.write_text(config_text, encoding="utf-8")
        with _running(binary, config, workdir, ready_timeout) as server:
            yield server


@contextmanager
def running_project_prometheus(
    targets: Mapping[str, Sequence[str]], ready_timeout: float = 30
) -> Iterator[Prometheus]:
    """Run Prometheus with the project's config and rules (see `local_config`), scraping
    `targets` (job name to host:port list) instead of the compose services."""
    binary = prometheus_binary()
    with tempfile.TemporaryDirectory(prefix="prometheus-") as tmp:
        workdir = Path(tmp)
        config = write_local_config(workdir, targets)
        with _running(binary, config, workdir, ready_timeout) as server:
            yield server


@contextmanager
def _running(
    binary: str, config: Path, workdir: Path, ready_timeout: float
) -> Iterator[Prometheus]:
    """Start `binary` on `config`, its data and log in `workdir`; stop it at the end."""
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
    server = Prometheus(process, f"http://127.0.0.1:{port}", log_path)
    try:
        ready = f"{server.url}/-/ready"
        wait_until_ready(
            process, ready, name="prometheus", output=server.log, timeout=ready_timeout
        )
        yield server
    finally:
        server.api.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""The repository's prometheus.yml, adapted to whichever Prometheus runs the tests.

Users run Prometheus 3 (compose.yml); our machines have Debian's 2.42. The config is
written for 3 and pins `scrape_protocols` (OpenMetrics first, so exemplars arrive),
a key Prometheus only knows since 2.49: older versions refuse the whole file. Their
scrapes already ask for OpenMetrics 1.0.0 first (2.42's scrape/scrape.go,
`scrapeAcceptHeader`), so dropping the key there keeps what is scraped the same.
That, and absolute rule file paths, are the only changes made.

Other tests that run a real Prometheus with this config (the dashboard's integration
test) use `write_local_config` so they make exactly the same adaptation.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.stack.compose import ROOT

PROMETHEUS_DIR = ROOT / "stack" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"

Version = tuple[int, int, int]
SCRAPE_PROTOCOLS_SINCE: Version = (2, 49, 0)
"""First Prometheus release with `scrape_protocols` (its CHANGELOG, 2.49.0)."""

OPENMETRICS_FIRST = "OpenMetricsText1.0.0"

JSON = dict[str, Any]


def tool_version(binary: str) -> Version:
    """The version `prometheus --version` or `promtool --version` reports."""
    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", result.stdout + result.stderr)
    if match is None:
        raise ValueError(f"{binary} --version printed no version: {result.stdout!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def load_config() -> JSON:
    document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{CONFIG}: expected a mapping")
    return document


def config_for_version(config: JSON, version: Version) -> JSON:
    """`config` as a Prometheus of `version` accepts it, scraping the same way."""
    adapted = copy.deepcopy(config)
    if version >= SCRAPE_PROTOCOLS_SINCE:
        return adapted
    for scope in [adapted.get("global") or {}, *adapted.get("scrape_configs", [])]:
        protocols = scope.pop("scrape_protocols", None)
        if protocols is not None and protocols[0] != OPENMETRICS_FIRST:
            raise ValueError(
                f"scrape_protocols {protocols} can't be dropped for Prometheus "
                f"{'.'.join(map(str, version))}: it always asks for {OPENMETRICS_FIRST} first"
            )
    return adapted


def write_local_config(
    binary: str, directory: Path, targets: dict[str, list[str]] | None = None
) -> Path:
    """Write the config for the Prometheus or promtool at `binary` into `directory`.

    Rule file globs become absolute paths into stack/prometheus/. `targets` replaces
    the static targets of the named jobs, e.g. ``{"dice-roller-stage1": ["127.0.0.1:8123"]}``.
    """
    config = config_for_version(load_config(), tool_version(binary))
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    for job, job_targets in (targets or {}).items():
        matching = [s for s in config["scrape_configs"] if s["job_name"] == job]
        if not matching:
            raise ValueError(f"no scrape job {job!r} in {CONFIG}")
        matching[0]["static_configs"] = [{"targets": list(job_targets)}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path

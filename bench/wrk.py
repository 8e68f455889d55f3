"""Load from wrk (the Debian package), and its report turned into numbers.

wrk is a closed-loop generator: each connection sends its next request as soon as
the previous answer arrives, so it measures the most a server can answer, which is
what the overhead and concurrency benches want.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["WrkError", "WrkResult", "find_wrk", "parse_wrk", "run_wrk"]

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something this module cannot read."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    latency_seconds: dict[int, float]  # percentile (50, 75, 90, 99) -> seconds
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx answers

    @property
    def p50(self) -> float:
        return self.latency_seconds[50]

    @property
    def p99(self) -> float:
        return self.latency_seconds[99]


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed: apt-get install wrk (Debian), brew install wrk")
    return path


def run_wrk(url: str, connections: int, seconds: float, timeout_seconds: float = 10.0) -> WrkResult:
    """`connections` connections from one wrk thread (the other core serves), for `seconds`."""
    command = [
        find_wrk(),
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        f"{timeout_seconds:g}s",
        "--latency",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> WrkResult:
    """Read wrk's `--latency` report."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if total is None or rate is None:
        raise WrkError(f"unexpected wrk output:\n{text}")
    latency = {
        int(percent): _seconds(value, unit)
        for percent, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)", text, re.M)
    }
    if not {50, 99} <= set(latency):
        raise WrkError(f"wrk printed no latency distribution:\n{text}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_seconds(total.group(2), total.group(3)),
        requests_per_second=float(rate.group(1)),
        latency_seconds=latency,
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
    )


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]

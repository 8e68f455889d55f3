"""How faithfully the traffic generator keeps an open-loop rate: a benchmark, not a test.

Starts the real service with no delay and no trace export, runs
``traffic-gen --rate R --duration S`` against it, and prints the target rate, the rate
the generator achieved, the shortfall, and the CPU the generator used. The goal is
under 2 % shortfall at 500 requests/s on a 2-core machine; the figures are printed,
never asserted, since the machine is shared with the service and anything else running.

    uv run python -m bench.traffic_gen_accuracy [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .servers import FULL, cpu_seconds, start_server

__all__ = ["Accuracy", "measure_accuracy"]

SERVICE_ENV = {
    "DICE_MAX_DELAY_SECONDS": "0",
    "OTEL_TRACES_EXPORTER": "none",
}
GOAL_SHORTFALL = 0.02


@dataclass(frozen=True)
class Accuracy:
    shortfall: float  # share of the scheduled requests not sent; negative when ahead
    lines: list[str]  # the figures, as printed


def measure_accuracy(rate: float, seconds: float, output_dir: Path) -> Accuracy:
    """Run the generator at `rate` for `seconds` against the real service."""
    load_before = os.getloadavg()[0]
    with start_server(FULL, SERVICE_ENV, output_dir) as server:
        service_cpu_before = cpu_seconds(server.process.pid)
        summary, process_cpu, wall = _run_generator(server.url, rate, seconds)
        service_cpu = cpu_seconds(server.process.pid) - service_cpu_before

    shortfall = summary["shortfall"]
    run_cpu = summary["generator_cpu_seconds"]
    sending = summary["sending_seconds"]
    requests = summary["requests"]
    latency = summary["latency_seconds"]
    lines = [
        f"machine:          {os.cpu_count()} cores, load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (other work here skews every figure)",
        f"target rate:      {rate:g} requests/s for {seconds:g} s",
        f"achieved rate:    {summary['achieved_rate']:.1f} requests/s (sent {requests['sent']})",
        f"shortfall:        {shortfall:.2%} (goal: under {GOAL_SHORTFALL:.0%})",
        f"answered:         {requests['finished']} finished, {requests['skipped']} skipped, "
        f"success rate {summary['success_rate']:.1%}",
        f"latency:          p50 {latency['p50'] * 1000:.1f} ms, p99 {latency['p99'] * 1000:.1f} ms",
        f"generator CPU:    {run_cpu:.2f} s while sending ({run_cpu / sending:.0%} of one core); "
        f"{process_cpu:.2f} s for the whole process in {wall:.1f} s, start-up included",
        f"CPU per request:  {run_cpu / max(requests['sent'], 1) * 1e6:.0f} µs in the generator, "
        f"{service_cpu / max(requests['finished'], 1) * 1e6:.0f} µs in the service",
        f"service CPU:      {service_cpu:.2f} s ({service_cpu / sending:.0%} of one core)",
    ]
    return Accuracy(shortfall, lines)


def _run_generator(url: str, rate: float, seconds: float) -> tuple[dict[str, Any], float, float]:
    """Run the generator to the end; its JSON summary, whole-process CPU and wall time."""
    command = [sys.executable, "-m", "traffic_gen", "--url", url, "--rate", f"{rate:g}"]
    command += ["--duration", f"{seconds:g}", "--quiet", "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"traffic-gen exited with {done.returncode}:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary, cpu, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=500.0, help="target requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be greater than 0")
    with tempfile.TemporaryDirectory(prefix="traffic-gen-accuracy-") as tmp:
        try:
            accuracy = measure_accuracy(args.rate, args.seconds, Path(tmp))
        except RuntimeError as error:
            print(f"traffic_gen_accuracy: {error}", file=sys.stderr)
            return 1
    print("\n".join(accuracy.lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

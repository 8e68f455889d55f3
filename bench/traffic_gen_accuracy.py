"""How faithfully the traffic generator keeps an open-loop rate: a benchmark, not a test.

Starts the real service with no delay and no trace export, runs
``traffic-gen --rate R --duration S`` against it, and prints the target rate, the rate
the generator achieved, the shortfall, and the CPU the generator used. The goal is
under 2 % shortfall at 500 requests/s on a 2-core machine; the figures are printed,
never asserted, since the machine is shared with the service and anything else running.

    uv run python bench/traffic_gen_accuracy.py [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from typing import Any

import httpx

SERVICE_ENV = {
    "DICE_MAX_DELAY_SECONDS": "0",
    "OTEL_TRACES_EXPORTER": "none",
}
GOAL_SHORTFALL = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited early with code {process.returncode}")
        try:
            if httpx.get(url + "/", timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the service did not answer at {url} within {timeout:g} s")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU of a running process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_generator(url: str, rate: float, seconds: float) -> tuple[dict[str, Any], float, float]:
    """Run the generator to the end; its JSON summary, whole-process CPU and wall time."""
    command = [sys.executable, "-m", "traffic_gen", "--url", url, "--rate", f"{rate:g}"]
    command += ["--duration", f"{seconds:g}", "--quiet", "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"traffic-gen exited with {done.returncode}:\n{done.stderr}")
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

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(
        [sys.executable, "-m", "dice_roller", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **SERVICE_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    load_before = os.getloadavg()[0]
    try:
        wait_until_up(url, service)
        service_cpu_before = process_cpu_seconds(service.pid)
        summary, process_cpu, wall = run_generator(url, args.rate, args.seconds)
        service_cpu = process_cpu_seconds(service.pid) - service_cpu_before
    finally:
        service.terminate()
        service.wait(20)

    achieved = summary["achieved_rate"]
    shortfall = summary["shortfall"]
    run_cpu = summary["generator_cpu_seconds"]
    sending = summary["sending_seconds"]
    requests = summary["requests"]
    latency = summary["latency_seconds"]
    print(
        f"machine:          {os.cpu_count()} cores, load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (other work here skews every figure)"
    )
    print(f"target rate:      {args.rate:g} requests/s for {args.seconds:g} s")
    print(f"achieved rate:    {achieved:.1f} requests/s (sent {requests['sent']})")
    print(f"shortfall:        {shortfall:.2%} (goal: under {GOAL_SHORTFALL:.0%})")
    print(
        f"answered:         {requests['finished']} finished, {requests['skipped']} skipped, "
        f"success rate {summary['success_rate']:.1%}"
    )
    print(
        f"latency:          p50 {latency['p50'] * 1000:.1f} ms, p99 {latency['p99'] * 1000:.1f} ms"
    )
    print(
        f"generator CPU:    {run_cpu:.2f} s while sending ({run_cpu / sending:.0%} of one core); "
        f"{process_cpu:.2f} s for the whole process in {wall:.1f} s, start-up included"
    )
    print(
        f"CPU per request:  {run_cpu / max(requests['sent'], 1) * 1e6:.0f} µs in the generator, "
        f"{service_cpu / max(requests['finished'], 1) * 1e6:.0f} µs in the service"
    )
    print(f"service CPU:      {service_cpu:.2f} s ({service_cpu / sending:.0%} of one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

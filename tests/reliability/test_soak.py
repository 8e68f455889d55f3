"""Soak: minutes of steady traffic, and nothing grows that should not.

The traffic generator sends a steady 50 rolls a second (loopback only, bounded in
time) to a service exporting its spans to a real OTLP receiver. Every few seconds
the test samples the service's resident memory and open file descriptors from
/proc. A leak shows as a later stretch sitting higher than an earlier one; the
first stretch is left out, since a fresh process grows its caches then.

SOAK_SECONDS sets the length (default 60: some 3,000 rolls, 30 samples); run it
longer by hand to look harder.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time

import pytest

from tests.support.figures import broken_log_lines, metric_series, open_fds, report, rss_bytes
from tests.support.otlp import otlp_receiver
from tests.support.service import running_service
from tests.support.traffic_gen import gen_command

MiB = 1024 * 1024
RATE = 50
SAMPLE_EVERY = 2.0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_steady_traffic_leaks_nothing() -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    samples: list[tuple[float, int, int]] = []  # (time, rss, fds)
    with otlp_receiver() as receiver:
        env = receiver.service_env(
            DICE_MAX_DELAY_SECONDS="0.2",
        )
        with running_service(env) as service:
            pid = service.process.pid
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(SAMPLE_EVERY):
                    samples.append((time.monotonic(), rss_bytes(pid), open_fds(pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            series_at_start: dict[str, int] | None = None
            gen = subprocess.Popen(
                gen_command("--url", service.url, "--rate", str(RATE), "--duration",
                            str(seconds), "--quiet", "--json"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                time.sleep(min(10.0, seconds / 4))
                series_at_start = {n: len(s) for n, s in metric_series(service).items()}
                out, err = gen.communicate(timeout=seconds + 120)
            finally:
                stop.set()
                gen.kill()
            sampler.join(10)
            series_at_end = {n: len(s) for n, s in metric_series(service).items()}
            time.sleep(1.5)  # the last batch of spans
            lines, broken = broken_log_lines(service)
            exit_code = service.stop()
        spans = len(receiver.spans)

    assert gen.returncode == 0, err[-2000:]
    summary = json.loads(out)
    counted: dict[str, int] = {}
    for die in ("fair", "risky"):
        for outcome, count in summary["dice"][die]["outcomes"].items():
            counted[outcome] = counted.get(outcome, 0) + count
    fair_errors = summary["dice"]["fair"]["outcomes"]["http_error"]
    risky_statuses = summary["dice"]["risky"]["status_codes"]

    # Leave the first fifth out (warm-up), then compare the last third to the one before.
    steady = samples[len(samples) // 5 :]
    third = max(1, len(steady) // 3)
    middle, last = steady[third : 2 * third], steady[-third:]
    rss_middle = statistics.median(s[1] for s in middle)
    rss_last = statistics.median(s[1] for s in last)
    fds_middle = max(s[2] for s in middle)
    fds_last = max(s[2] for s in last)
    report(
        "soak",
        seconds=seconds,
        sent=summary["requests"]["sent"],
        outcomes=counted,
        achieved_rps=summary["achieved_rate"],
        spans_received=spans,
        samples=len(samples),
        rss_mib_middle=round(rss_middle / MiB, 1),
        rss_mib_last=round(rss_last / MiB, 1),
        fds_max_middle=fds_middle,
        fds_max_last=fds_last,
        log_lines=lines,
        broken_lines=len(broken),
    )
    assert summary["requests"]["sent"] == summary["requests"]["finished"]
    assert summary["requests"]["skipped"] == 0
    assert counted["connection_error"] == counted["timeout"] == 0
    assert counted["invalid_response"] == 0
    assert fair_errors == 0
    assert set(risky_statuses) <= {"200", "500"}  # the only errors: the risky die's own
    assert spans >= counted["success"] + counted["http_error"]  # one span per roll, kept
    assert series_at_end == series_at_start
    assert broken == []
    assert exit_code == 0
    assert len(samples) >= 10
    assert rss_last <= rss_middle * 1.10 + 4 * MiB, "memory keeps growing"
    assert fds_last <= fds_middle + 8, "file descriptors keep growing"

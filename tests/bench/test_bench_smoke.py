"""The benchmarks cannot rot: a quick run of every part must print every figure.

The hop part runs in tests/bench/test_hop.py, which checks it in detail; here the
quick run takes every other part, so no part is measured twice per test run.

No thresholds here (figures live in the bench, not in tests): the checks are that each
part ran, printed its ratio or figure, and that the figure is a real positive number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.cli import PARTS
from bench.wrk import WrkError, parse_wrk
from tests.support.bench import positive, run_bench
from tests.support.tools import require_tool

WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18091/roll?die=fair
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.40ms    5.20ms  55.53ms   91.08%
    Req/Sec     2.76k     1.43k    5.76k    63.64%
  Latency Distribution
     50%    2.64ms
     75%    5.05ms
     90%    8.98ms
     99%    1.02s
  3030 requests in 1.11s, 807.93KB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   2728.00
Transfer/sec:    727.40KB
"""


@pytest.mark.slow
def test_quick_run_prints_every_part_and_its_figures(tmp_path: Path) -> None:
    require_tool("wrk", "the benchmarks load the service with wrk")
    results = tmp_path / "bench.json"
    parts = [part for part in PARTS if part != "hop"]
    done = run_bench("--quick", "--only", ",".join(parts), "--json", str(results))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    out = done.stdout

    for part in parts:
        assert f"== {part}:" in out, f"part {part} did not run:\n{out}"
    assert "cores: " in out and "reproduce: python3 tasks.py bench" in out
    assert "throughput full/bare: " in out
    assert "CPU per request full/recipe: " in out

    data = json.loads(results.read_text())
    figures = data["figures"]
    overhead = figures["overhead"]
    builds = ("bare", "metrics", "metrics+logs", "traces-unexported", "full")
    for build in (*builds, "full-flags", "full-drill", "recipe"):
        assert positive(overhead[build]["ratio"]), overhead[build]
        assert all(positive(c) for c in overhead[build]["cpu_microseconds_per_request"])
    flags = overhead["flags"]
    for ratio in ("at_default_cpu_ratio", "drill_cpu_ratio", "drill_throughput_ratio"):
        assert positive(flags[ratio]), flags
    for timed in ("layer_at_default_microseconds", "layer_in_drill_microseconds"):
        assert positive(flags[timed]), flags
    assert positive(flags["layer_at_default_share_of_request"])
    assert "a fair roll's flag evaluations with the tracing hook take" in out
    # No sampling: the full build sent a span for every roll it logged.
    assert positive(overhead["full_over_recipe_cpu"])
    emitted = overhead["full_emitted"]
    assert emitted["spans"] == emitted["logged"] >= emitted["answered"] > 0

    at_200 = figures["concurrency"]["clients_200"]
    assert positive(at_200["requests_per_second"]) and positive(at_200["p99_seconds"])
    assert positive(at_200["rss_peak_bytes"])

    rss = figures["memory"]["rss_mb"]
    assert positive(rss["under_load_peak"]) and positive(rss["soak_end"])

    spans = figures["visibility"]["spans"]
    assert spans["missing"] == 0 and spans["delays_seconds"]
    assert all(positive(d) for d in spans["delays_seconds"])

    assert "hop" not in figures  # tests/bench/test_hop.py runs it

    shortfall = figures["traffic"]["shortfall"]  # may be negative: a little ahead of the rate
    assert isinstance(shortfall, float) and math.isfinite(shortfall), figures["traffic"]

    judged = {check["part"] for check in data["checks"]}
    assert judged == set(parts)
    assert all(check["verdict"].startswith("not judged") for check in data["checks"])
    assert data["machine"]["cores"].isdigit()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "overhead,nope"], "unknown part(s) 'nope'"),
        (["--only", ","], "unknown part(s) (none given)"),
        (["--quick", "extra"], "unrecognized arguments: extra"),
        (["--json", "/nonexistent-dir/figures.json"], "does not exist"),
    ],
)
def test_bad_flags_get_a_clear_error_and_no_traceback(args: list[str], message: str) -> None:
    done = run_bench(*args, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_wrk_report_is_read_into_numbers() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 3030
    assert result.seconds == pytest.approx(1.11)
    assert result.requests_per_second == pytest.approx(2728.0)
    assert result.p50 == pytest.approx(0.00264)
    assert result.p99 == pytest.approx(1.02)
    assert result.errors == 2 + 3 + 7


def test_unreadable_wrk_report_is_an_error_not_a_zero() -> None:
    with pytest.raises(WrkError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")

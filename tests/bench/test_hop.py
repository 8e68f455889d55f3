"""The frontend hop bench (`bench.hop`): a quick run reports every figure, and the
figures hang together: every answer through the frontend was a roll at the dice-roller,
every roll with tracing on left its spans. No thresholds: figures live in the bench."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import httpx
import pytest
from dice_roller.app import create_app
from dice_roller.settings import Settings
from opentelemetry.sdk.trace import TracerProvider

from bench.hop import rolls_counted
from tests.support.bench import positive, run_bench
from tests.support.tools import require_tool

LOADS = ("connections_1", "connections_50")
MODES = ("off", "on")
ROUTES = ("direct", "through")


@pytest.mark.slow
def test_quick_hop_run_reports_both_routes_with_tracing_off_and_on(tmp_path: Path) -> None:
    require_tool("wrk", "the benchmarks load the services with wrk")
    results = tmp_path / "hop.json"
    done = run_bench("--quick", "--only", "hop", "--json", str(results), timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    out = done.stdout
    assert "== hop:" in out and "== overhead:" not in out, out
    assert "What the hop adds, through the frontend against direct" in out
    assert "Frontend throughput at 50 connections" in out

    data = json.loads(results.read_text())
    assert set(data["figures"]) == {"hop"}
    hop = data["figures"]["hop"]
    for load in LOADS:
        assert set(hop[load]) == set(MODES)
        for mode in MODES:
            assert set(hop[load][mode]) == set(ROUTES)
            for route in ROUTES:
                runs = hop[load][mode][route]
                p50s, p99s = runs["p50_seconds"], runs["p99_seconds"]
                assert len(p50s) == len(p99s) == len(runs["requests_per_second"]) >= 1
                assert all(positive(v) for v in (*p50s, *p99s, *runs["requests_per_second"]))
                assert all(p99 >= p50 for p50, p99 in zip(p50s, p99s, strict=True)), runs
                cpu = runs["cpu_microseconds_per_request"]
                assert all(positive(c) for c in cpu), runs
                frontend_cpu = runs["frontend_cpu_microseconds_per_request"]
                if route == "through":  # the frontend's own share of the chain's CPU
                    assert all(0 < f <= c for f, c in zip(frontend_cpu, cpu, strict=True)), runs
                else:
                    assert frontend_cpu == []
                assert runs["requests"] > 0
            # Each answer through the frontend was a roll the dice-roller's own
            # dice_rolls_total counted (more: requests in flight when wrk stopped).
            through = hop[load][mode]["through"]
            assert through["rolled"] >= through["requests"] > 0, through
            added = hop["added"][load][mode]
            for ratio in ("p50_ratio", "p99_ratio", "throughput_ratio"):
                assert positive(added[ratio]), added
            for difference in ("p50_added_ms", "p99_added_ms", "cpu_added_microseconds"):
                assert math.isfinite(added[difference]), added
    assert positive(hop["through_tracing_on_over_off_throughput"])

    for mode in MODES:
        upstream = hop["upstream"][mode]
        assert upstream["rolled"] >= upstream["answered"] > 0, upstream
    spans = hop["spans"]
    on, off = spans["on"], spans["off"]
    # A direct roll is one span, one through the frontend three (its server and client
    # spans, the dice-roller's): the dice-roller's count includes the rolls relayed.
    assert on["frontend_rolls_logged"] > 0
    assert on["dice_roller_rolls_logged"] > on["frontend_rolls_logged"]
    assert on["expected"] == on["dice_roller_rolls_logged"] + 2 * on["frontend_rolls_logged"]
    assert on["received"] >= on["expected"], on
    assert off["frontend_rolls_logged"] > 0 and off["received"] == 0, off

    assert {check["part"] for check in data["checks"]} == {"hop"}
    assert len(data["checks"]) == 2
    assert all(check["value"] == 0 for check in data["checks"]), data["checks"]
    assert all(check["verdict"].startswith("not judged") for check in data["checks"])


def test_rolls_are_counted_from_the_dice_rollers_own_metrics() -> None:
    """The counter the hop bench reads, on the real service: fair and risky rolls,
    failures included, and nothing else (not the HTTP requests, not a scrape)."""
    settings = Settings(max_delay_seconds=0.0, risky_failure_rate=0.5, seed=3)
    app = create_app(settings, TracerProvider())

    async def roll_then_scrape() -> tuple[list[int], str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            before = rolls_counted((await client.get("/metrics")).text)
            statuses = [
                (await client.get("/roll", params={"die": die})).status_code
                for die in ["fair", "risky"] * 10
            ]
            await client.get("/roll", params={"die": "loaded"})  # refused: no roll
            assert before == 0
            return statuses, (await client.get("/metrics")).text

    statuses, exposition = asyncio.run(roll_then_scrape())
    assert {200, 500} <= set(statuses)
    assert rolls_counted(exposition) == 20

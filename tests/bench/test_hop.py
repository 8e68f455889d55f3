"""The hop bench (`bench.hop`): a quick run reports every figure of the four hops, the
frontend's (stage 2), the die-service's (stage 3), the database's (the die-service on
PostgreSQL, stage 5) and stage 5's whole path (a frontend in front of the database
hop), and the figures hang together: every answer through a hop was
counted by the service behind it (a roll at the dice-roller, a lookup at the
die-service), every roll with tracing on left its spans, the query's included.
No thresholds: figures live in the bench."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest
from dice_roller.app import create_app
from dice_roller.settings import Settings
from die_service.app import create_app as create_die_service_app
from opentelemetry.sdk.trace import TracerProvider

from bench.hop import counted, rolls_counted
from tests.support.bench import positive, run_bench
from tests.support.tools import require_tool

LOADS = ("connections_1", "connections_50")
MODES = ("off", "on")
HOPS = ("frontend", "die-service", "database", "stage-5")
ROUTES = ("direct", *HOPS)
LABELS = (
    "dice-roller /roll",
    "frontend /api/roll",
    "dice-roller /roll + die-service",
    "dice-roller /roll + die-service + PostgreSQL",
    "frontend /api/roll + dice-roller + die-service + PostgreSQL",
)
COUNTERS = {
    "frontend": "dice_rolls_total",
    "die-service": "die_service_lookups_total",
    "database": "die_service_lookups_total",
    "stage-5": "dice_rolls_total",
}


@pytest.mark.slow
def test_quick_hop_run_reports_the_four_hops_with_tracing_off_and_on(tmp_path: Path) -> None:
    require_tool("wrk", "the benchmarks load the services with wrk")
    results = tmp_path / "hop.json"
    done = run_bench("--quick", "--only", "hop", "--json", str(results), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    out = done.stdout
    assert "== hop:" in out and "== overhead:" not in out, out
    # Every route has its row, labelled, at both loads and in both tracing modes.
    rows = Counter(re.findall(r"^ +(off|on) +(\S.*?) +\d", out, re.M))
    assert rows == {(mode, label): len(LOADS) for mode in MODES for label in LABELS}, out
    assert "What the frontend hop adds, frontend /api/roll against direct" in out
    assert "What the die-service hop adds, dice-roller /roll + die-service against direct" in out
    assert "Through the frontend, throughput at 50 connections" in out
    assert "With the die-service, throughput at 50 connections" in out
    assert (
        "What the database hop adds, dice-roller /roll + die-service + PostgreSQL against direct"
        in out
    )
    assert "With the die-service and PostgreSQL, throughput at 50 connections" in out
    assert "Along stage 5's whole path, throughput at 50 connections" in out

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
                hop_cpu = runs["hop_service_cpu_microseconds_per_request"]
                if route in HOPS:  # the frontend's or the die-service's share of the CPU
                    assert all(0 < h < c for h, c in zip(hop_cpu, cpu, strict=True)), runs
                else:
                    assert hop_cpu == []
                assert runs["requests"] > 0
                # Each answer was a roll the route's dice-roller counted (more: requests
                # in flight when wrk stopped, at most one per connection and run).
                in_flight = int(load.rpartition("_")[2]) * len(p50s)
                assert 0 <= runs["rolled"] - runs["requests"] <= in_flight, runs
            for name in HOPS:
                # ... and each roll through a hop was counted behind it: at the
                # die-service, a lookup per roll of the dice-roller in front of it (more
                # only if a request in flight had looked its die up, not yet rolled).
                through = hop[load][mode][name]
                assert 0 <= through["counted_behind"] - through["rolled"] <= in_flight, through
                added = hop["added"][name][load][mode]
                for ratio in ("p50_ratio", "p99_ratio", "throughput_ratio"):
                    assert positive(added[ratio]), added
                for difference in ("p50_added_ms", "p99_added_ms", "cpu_added_microseconds"):
                    assert math.isfinite(added[difference]), added
    assert set(hop["added"]) == set(HOPS)
    assert set(hop["tracing_on_over_off_throughput"]) == set(HOPS)
    assert all(positive(r) for r in hop["tracing_on_over_off_throughput"].values())

    for name in HOPS:
        for mode in MODES:
            upstream = hop["upstream"][name][mode]
            assert upstream["counted_behind"] >= upstream["rolled"] >= upstream["answered"] > 0
            assert f"{upstream['counted_behind']} in {COUNTERS[name]} behind it" in out
    spans = hop["spans"]
    on, off = spans["on"], spans["off"]
    logged = on["logged"]
    assert set(logged) == {
        "dice-roller",
        "frontend hop: front",
        "die-service hop: front",
        "die-service hop: behind",
        "database hop: front",
        "database hop: behind",
        "stage-5 hop: front",
    }
    # A direct roll is one span, one through either hop three: the frontend's server
    # and client spans and the dice-roller's (counted in its lines, which include the
    # rolls relayed); the stage-3 dice-roller's server and client spans and the
    # die-service's; through the database four, the query's span besides; along stage
    # 5's path six, the stage-5 frontend's two on top of the database hop's four (its
    # dice-roller's lines include the rolls that frontend relayed). Each die-service
    # looked up every roll the dice-roller in front of it logged, and answered its own
    # readiness probe.
    assert logged["frontend hop: front"] > 0
    assert logged["dice-roller"] > logged["frontend hop: front"]
    assert logged["die-service hop: behind"] > logged["die-service hop: front"] > 0
    assert logged["database hop: behind"] > logged["database hop: front"]
    assert logged["database hop: front"] > logged["stage-5 hop: front"] > 0
    assert on["expected"] == (
        logged["dice-roller"]
        + 2 * logged["frontend hop: front"]
        + 2 * logged["die-service hop: front"]
        + logged["die-service hop: behind"]
        + 2 * logged["database hop: front"]
        + 2 * logged["database hop: behind"]
        + 2 * logged["stage-5 hop: front"]
    )
    assert on["received"] >= on["expected"], on
    assert off["logged"]["die-service hop: behind"] > 0 and off["received"] == 0, off

    assert {check["part"] for check in data["checks"]} == {"hop"}
    assert len(data["checks"]) == 5
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


def test_lookups_are_counted_from_the_die_services_own_metrics() -> None:
    """The counter the die-service hop reads, on the real service: every lookup, found
    or not, and nothing else (not the list, not a scrape)."""
    app = create_die_service_app(tracer_provider=TracerProvider())

    async def look_up_then_scrape() -> str:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        ):
            assert counted((await client.get("/metrics")).text, "die_service_lookups_total") == 0
            for name in ["fair", "d20", "d7"]:
                await client.get(f"/dice/{name}")
            await client.get("/dice")
            return (await client.get("/metrics")).text

    exposition = asyncio.run(look_up_then_scrape())
    assert counted(exposition, "die_service_lookups_total") == 3
    assert counted(exposition, "dice_rolls_total") == 0

"""Part 6, the frontend hop: what a roll through the frontend costs over a direct one.

Two chains of real processes, each a dice-roller (delay 0) and a frontend in front of
it (`python -m frontend`, `FRONTEND_DICE_ROLLER_URL` pointing at that dice-roller):

- tracing off: both with `OTEL_SDK_DISABLED=true` (`metrics+logs`, `frontend-untraced`);
- tracing on: both as they run (`full`, `frontend`), exporting over OTLP to a bench
  receiver, so a roll through the frontend makes three spans (the frontend's server
  span, its httpx client span, the dice-roller's server span) and a direct one makes one.

wrk loads the dice-roller's `/roll?die=fair` (direct) and the frontend's
`/api/roll?die=fair` (through) of each chain, at two loads: one connection, one
request at a time, where a latency is what one request costs and nothing queues; and
`loaded_connections` connections, where wrk, both services and the receiver share the
two cores and the rate is the most the chain answers. The runs alternate (per load:
off direct, off through, on direct, on through) over the rounds, and each "added"
figure is the median of the per-round differences and ratios, so a noisy minute hits
the direct run and the through run beside it alike.

It also checks what the figures rest on: every answer through the frontend was a roll
at its dice-roller (the dice-roller's `dice_rolls_total`, read around each through
run), and with tracing on every roll left its spans (with it off, none is sent).
"""

from __future__ import annotations

import re
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .receiver import BenchReceiver, bench_receiver
from .report import Report
from .servers import (
    FRONTEND,
    FRONTEND_UNTRACED,
    FULL,
    METRICS_LOGS,
    Server,
    cpu_seconds,
    start_servers,
)
from .wrk import WrkResult, run_wrk

__all__ = ["HopPlan", "rolls_counted", "run_hop"]

PART = "hop"
OFF, ON = "off", "on"
DIRECT, THROUGH = "direct", "through"
BUILDS = {OFF: (METRICS_LOGS, FRONTEND_UNTRACED), ON: (FULL, FRONTEND)}
"""Per tracing mode: the dice-roller's build and the frontend's (`bench.servers`)."""
SPANS_PER_ROLL = {DIRECT: 1, THROUGH: 3}
_ROLLS = re.compile(r"^dice_rolls_total\{[^}]*\}\s+(\S+)$", re.M)


@dataclass(frozen=True)
class HopPlan:
    rounds: int
    seconds: float
    light_connections: int = 1
    loaded_connections: int = 50
    pause_seconds: float = 0.5  # lets the last batch of spans leave before the next run


@dataclass(frozen=True)
class Chain:
    """A frontend in front of its own dice-roller, both tracing or neither."""

    tracing: str
    dice_roller: Server
    frontend: Server
    receiver: BenchReceiver

    def url(self, route: str) -> str:
        return (self.frontend if route == THROUGH else self.dice_roller).roll_url

    def pids(self, route: str) -> tuple[int, ...]:
        """The processes a request on `route` runs in, the frontend first when it is one
        of them (the receiver's CPU is the bench's)."""
        if route == THROUGH:
            return (self.frontend.process.pid, self.dice_roller.process.pid)
        return (self.dice_roller.process.pid,)


@dataclass
class Runs:
    """The rounds of one (connections, tracing, route)."""

    results: list[WrkResult] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # µs per request, every process of the route
    frontend_cpu: list[float] = field(default_factory=list)  # µs per request, the frontend's
    rolled: list[int] = field(default_factory=list)  # the dice-roller's rolls during each run


def run_hop(report: Report, plan: HopPlan, output_dir: Path) -> None:
    loads = (plan.light_connections, plan.loaded_connections)
    report.section(
        PART,
        f"/roll on the dice-roller (delay 0) against /api/roll through the frontend, "
        f"tracing off and on; wrk 1 thread, {' and '.join(map(str, loads))} connection(s), "
        f"{plan.seconds:g} s per run, {plan.rounds} alternating round(s)",
    )
    with ExitStack() as stack:
        receivers = {mode: stack.enter_context(bench_receiver()) for mode in BUILDS}
        dice_rollers = stack.enter_context(
            start_servers(
                [(BUILDS[mode][0], _dice_roller_env(receivers[mode])) for mode in BUILDS],
                output_dir,
            )
        )
        frontends = stack.enter_context(
            start_servers(
                [
                    (BUILDS[mode][1], _frontend_env(receivers[mode], dice_roller))
                    for mode, dice_roller in zip(BUILDS, dice_rollers, strict=True)
                ],
                output_dir,
            )
        )
        chains = [
            Chain(mode, dice_roller, frontend, receivers[mode])
            for mode, dice_roller, frontend in zip(BUILDS, dice_rollers, frontends, strict=True)
        ]
        for chain in chains:  # warm up: imports, caches, both services' connection pools
            for route in (DIRECT, THROUGH):
                run_wrk(chain.url(route), plan.loaded_connections, 1)
        time.sleep(plan.pause_seconds)

        runs = {
            (c, chain.tracing, route): Runs()
            for c in loads
            for chain in chains
            for route in (DIRECT, THROUGH)
        }
        for _ in range(plan.rounds):
            for connections in loads:
                for chain in chains:
                    for route in (DIRECT, THROUGH):
                        _measure(
                            chain, route, connections, plan, runs[connections, chain.tracing, route]
                        )
        spans = _spans(chains)

    for connections in loads:
        _print_load(report, connections, runs)
    _print_added(report, loads, runs)
    _check_consistency(report, loads, runs, spans)


def _dice_roller_env(receiver: BenchReceiver) -> dict[str, str]:
    return receiver.service_env(max_delay_seconds=0)


def _frontend_env(receiver: BenchReceiver, dice_roller: Server) -> dict[str, str]:
    return {
        "FRONTEND_DICE_ROLLER_URL": dice_roller.url,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
    }


def _measure(chain: Chain, route: str, connections: int, plan: HopPlan, runs: Runs) -> None:
    pids = chain.pids(route)
    cpu_before = [cpu_seconds(pid) for pid in pids]
    rolls_before = _rolls(chain.dice_roller)
    result = run_wrk(chain.url(route), connections, plan.seconds)
    time.sleep(plan.pause_seconds)  # the batch of spans in flight is part of the cost
    cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
    per_request = 1e6 / max(result.requests, 1)
    runs.results.append(result)
    runs.cpu.append(sum(cpu) * per_request)
    if route == THROUGH:
        runs.frontend_cpu.append(cpu[0] * per_request)
    runs.rolled.append(_rolls(chain.dice_roller) - rolls_before)


def _rolls(dice_roller: Server) -> int:
    return rolls_counted(httpx.get(dice_roller.url + "/metrics", timeout=10.0).text)


def rolls_counted(exposition: str) -> int:
    """Every roll a dice-roller's `/metrics` (classic text) counts: `dice_rolls_total`,
    all dice and results."""
    return round(sum(float(value) for value in _ROLLS.findall(exposition)))


def _spans(chains: list[Chain]) -> dict[str, dict[str, int]]:
    """Per tracing mode, the spans expected from the rolls both services logged (warm-up
    and readiness probes included), and those received."""
    counted = {}
    for chain in chains:
        logged_direct = chain.dice_roller.count_in_output(b'"Roll completed"')
        logged_through = chain.frontend.count_in_output(b'"Roll served"')
        expected = 0
        if chain.tracing == ON:  # the dice-roller's rolls include those through the frontend
            expected = logged_direct + (SPANS_PER_ROLL[THROUGH] - 1) * logged_through
        received = chain.receiver.wait_for_spans(expected, timeout=5.0) if expected else 0
        counted[chain.tracing] = {
            "dice_roller_rolls_logged": logged_direct,
            "frontend_rolls_logged": logged_through,
            "expected": expected,
            "received": received,
        }
    for chain in chains:  # anything sent with tracing off has left by now
        counted[chain.tracing]["received"] = chain.receiver.span_count()
    return counted


def _print_load(report: Report, connections: int, runs: dict[tuple[int, str, str], Runs]) -> None:
    what = "one request at a time" if connections == 1 else "the most the chain answers"
    report.say(f"  {connections} connection(s), {what} (medians of the rounds):")
    rows = []
    figures: dict[str, dict[str, object]] = {}
    for mode in BUILDS:
        for route in (DIRECT, THROUGH):
            r = runs[connections, mode, route]
            rates = [x.requests_per_second for x in r.results]
            rows.append(
                [
                    mode,
                    "dice-roller /roll" if route == DIRECT else "frontend /api/roll",
                    statistics.median(rates),
                    statistics.median(x.p50 for x in r.results) * 1000,
                    statistics.median(x.p99 for x in r.results) * 1000,
                    statistics.median(r.cpu),
                    statistics.median(r.frontend_cpu) if r.frontend_cpu else "-",
                    sum(x.errors for x in r.results),
                    " ".join(f"{rate:.0f}" for rate in rates),
                ]
            )
            figures.setdefault(mode, {})[route] = {
                "requests_per_second": rates,
                "p50_seconds": [x.p50 for x in r.results],
                "p99_seconds": [x.p99 for x in r.results],
                "cpu_microseconds_per_request": r.cpu,
                "frontend_cpu_microseconds_per_request": r.frontend_cpu,
                "errors": sum(x.errors for x in r.results),
                "requests": sum(x.requests for x in r.results),
                "rolled": sum(r.rolled),
            }
    report.table(
        [
            "tracing",
            "route",
            "req/s",
            "p50 ms",
            "p99 ms",
            "CPU µs/req",
            "of it frontend",
            "errors",
            "req/s per round",
        ],
        rows,
    )
    report.figure(PART, f"connections_{connections}", figures)


def _print_added(
    report: Report, loads: tuple[int, ...], runs: dict[tuple[int, str, str], Runs]
) -> None:
    """Through against direct, per round (medians): what the hop adds."""
    report.say("  What the hop adds, through the frontend against direct (per-round medians):")
    rows = []
    added: dict[str, dict[str, dict[str, float]]] = {}
    for connections in loads:
        for mode in BUILDS:
            direct = runs[connections, mode, DIRECT]
            through = runs[connections, mode, THROUGH]
            pairs = list(zip(direct.results, through.results, strict=True))
            figures = {
                "p50_added_ms": statistics.median((t.p50 - d.p50) * 1000 for d, t in pairs),
                "p50_ratio": statistics.median(t.p50 / d.p50 for d, t in pairs),
                "p99_added_ms": statistics.median((t.p99 - d.p99) * 1000 for d, t in pairs),
                "p99_ratio": statistics.median(t.p99 / d.p99 for d, t in pairs),
                "throughput_ratio": statistics.median(
                    t.requests_per_second / d.requests_per_second for d, t in pairs
                ),
                "cpu_added_microseconds": statistics.median(
                    t - d for d, t in zip(direct.cpu, through.cpu, strict=True)
                ),
            }
            added.setdefault(f"connections_{connections}", {})[mode] = figures
            rows.append(
                [
                    connections,
                    mode,
                    f"{figures['p50_added_ms']:+.2f}",
                    f"{figures['p50_ratio']:.2f}x",
                    f"{figures['p99_added_ms']:+.2f}",
                    f"{figures['p99_ratio']:.2f}x",
                    f"{figures['throughput_ratio']:.2f}",
                    f"{figures['cpu_added_microseconds']:+.0f}",
                ]
            )
    report.table(
        [
            "connections",
            "tracing",
            "p50 +ms",
            "p50 ratio",
            "p99 +ms",
            "p99 ratio",
            "req/s ratio",
            "CPU µs/req added",
        ],
        rows,
    )
    report.figure(PART, "added", added)
    loaded = loads[-1]
    off = runs[loaded, OFF, THROUGH].results
    on = runs[loaded, ON, THROUGH].results
    tracing_ratio = statistics.median(
        n.requests_per_second / f.requests_per_second for f, n in zip(off, on, strict=True)
    )
    report.say(
        f"  Frontend throughput at {loaded} connections on this machine: "
        f"{statistics.median(x.requests_per_second for x in off):.0f} req/s tracing off "
        f"({added[f'connections_{loaded}'][OFF]['throughput_ratio']:.2f} of direct), "
        f"{statistics.median(x.requests_per_second for x in on):.0f} req/s tracing on "
        f"({added[f'connections_{loaded}'][ON]['throughput_ratio']:.2f} of direct); "
        f"through the frontend, tracing on / off = {tracing_ratio:.2f}"
    )
    report.figure(PART, "through_tracing_on_over_off_throughput", tracing_ratio)


def _check_consistency(
    report: Report,
    loads: tuple[int, ...],
    runs: dict[tuple[int, str, str], Runs],
    spans: dict[str, dict[str, int]],
) -> None:
    upstream = {}
    unrolled = 0
    for mode in BUILDS:
        through = [runs[c, mode, THROUGH] for c in loads]
        answered = sum(x.requests for r in through for x in r.results)
        rolled = sum(n for r in through for n in r.rolled)
        # Each answer wrk counted was rolled before the frontend sent it (more may have
        # been rolled: requests in flight when wrk stopped).
        unrolled += sum(
            max(x.requests - n, 0)
            for r in through
            for x, n in zip(r.results, r.rolled, strict=True)
        )
        upstream[mode] = {"answered": answered, "rolled": rolled}
        report.say(
            f"  tracing {mode}: {answered} answers through the frontend, "
            f"{rolled} rolls counted by the dice-roller's dice_rolls_total meanwhile; "
            f"spans received {spans[mode]['received']} (at least {spans[mode]['expected']}: "
            f"{spans[mode]['dice_roller_rolls_logged']} dice-roller rolls logged, "
            f"{spans[mode]['frontend_rolls_logged']} through the frontend)"
        )
    report.figure(PART, "upstream", upstream)
    report.figure(PART, "spans", spans)
    report.check(PART, "answers through the frontend not rolled upstream", unrolled, "<=", 0)
    # With tracing on, more spans than expected is possible, never fewer: a request in
    # flight when wrk stops may be cut short after its span started, before its roll line.
    wrong = max(spans[ON]["expected"] - spans[ON]["received"], 0) + spans[OFF]["received"]
    report.check(PART, "spans missing (tracing on) or sent (off)", wrong, "<=", 0)

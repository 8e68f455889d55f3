"""Part 6, the hops: what a roll costs through each extra service, against a direct one.

A hop is a service a roll goes through on top of the dice-roller's own work: what is
in front, what is behind, the variable that wires one to the other, and the spans it
adds. Four are measured, by the same code and reported in the same form:

- `frontend` (stage 2): a frontend (`python -m frontend`) in front of the dice-roller,
  `FRONTEND_DICE_ROLLER_URL` pointing at it; wrk loads the frontend's `/api/roll`;
- `die-service` (stage 3): a second dice-roller, `DICE_DIE_SERVICE_URL` pointing at a
  die-service behind it, which it asks what the die is before every roll; wrk loads
  its `/roll`. The die-service's dice have their delays at 0 (`bench.serve`), as the
  dice-roller's own dice have here (`DICE_MAX_DELAY_SECONDS=0`): a stage-3 roll waits
  the delay the die-service gives, and the shipped fair die's (up to 1 s) would hide
  the hop;
- `database` (stage 5): the same, the die-service keeping its dice in a PostgreSQL of
  the bench's own (Debian's, `nativestack.postgres.temporary_server`,
  `DIE_SERVICE_DATABASE_URL`): each lookup is a query through the pool. Against the
  die-service hop, it is what the database adds;
- `stage-5`: a frontend in front of the database hop's dice-roller: stage 5's whole
  path, from the page's `/api/roll` to the query, one process each, against stage 1's
  direct roll.

Both against the same direct roll: the dice-roller (delay 0, stage 1's dice known by
heart) `/roll?die=fair`, the one the frontend hop's frontend calls. Per tracing mode
one such set of processes:

- tracing off: all with `OTEL_SDK_DISABLED=true` (`metrics+logs`, `frontend-untraced`,
  `die-service-untraced`);
- tracing on: all as they run (`full`, `frontend`, `die-service`), exporting over OTLP
  to a bench receiver, so a roll through the frontend or the die-service makes three
  spans (frontend: its server and client spans, the dice-roller's server span;
  die-service: the dice-roller's server and client spans, the die-service's server
  span), through the database four (the query's span besides), along stage 5's whole
  path six, and a direct one one.

wrk runs at two loads: one connection, one request at a time, where a latency is what
one request costs and nothing queues; and `loaded_connections` connections, where wrk,
the services and the receiver share the two cores and the rate is the most the route
answers. The runs alternate (per load and tracing mode: direct, then each hop) over the
rounds, and each "added" figure is the median of the per-round differences and ratios
against the direct run of the same round, so a noisy minute hits the direct run and the
hop's run beside it alike.

It also checks what the figures rest on: every answer through a hop was counted by the
service behind it (the frontend's: a roll in the dice-roller's `dice_rolls_total`; the
die-service's: a lookup in its `die_service_lookups_total`, and so was every roll of
the dice-roller in front of it), read around each run; and with tracing on every roll
left its spans (with it off, none is sent).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

import httpx

from nativestack.postgres import temporary_server
from stackclient import free_port

from .receiver import BenchReceiver, bench_receiver
from .report import Report
from .servers import (
    DIE_SERVICE,
    DIE_SERVICE_UNTRACED,
    FRONTEND,
    FRONTEND_UNTRACED,
    FULL,
    METRICS_LOGS,
    SERVICE_BUILDS,
    Server,
    cpu_seconds,
    start_servers,
)
from .wrk import WrkResult, run_wrk

__all__ = ["DATABASE", "HOPS", "Hop", "HopPlan", "counted", "rolls_counted", "run_hop"]

PART = "hop"
OFF, ON = "off", "on"
MODES = (OFF, ON)
DIRECT = "direct"
DIRECT_BUILDS = {OFF: METRICS_LOGS, ON: FULL}
"""Per tracing mode, the build of the direct dice-roller (`bench.servers`)."""
ROLL_LINE = b'"Roll completed"'
_ROLLS = re.compile(r"^dice_rolls_total\{[^}]*\}\s+(\S+)$", re.M)


@dataclass(frozen=True)
class Hop:
    """A service a roll goes through: the process wrk loads (`front`) and the one it
    calls (`behind`, or the direct dice-roller when None), per tracing mode; the
    variable that points the front at what is behind; the spans a roll makes."""

    name: str
    title: str  # for sentences: "Through the frontend"
    route: str  # what wrk loads, in the tables
    front_builds: Mapping[str, str]
    behind_builds: Mapping[str, str] | None
    wire: str  # the front's variable naming what is behind
    front_line: bytes  # the line the front writes for each roll it answers
    front_spans: int  # the spans that line stands for (its server span, its client span)
    behind_line: bytes  # the line the one behind writes for each call
    counter: str  # what the one behind counts for each call, in its /metrics
    hop_service: str  # the service the hop adds, whose CPU is shown on its own
    added_is_front: bool  # whether that service is the front (else the one behind)
    spans_per_roll: int = 3  # against 1 for a direct roll
    behind_spans: int = 1  # the spans that line stands for (its server span, its query's)
    database: bool = False  # whether the one behind keeps its dice in PostgreSQL
    in_front_of: str | None = None  # another hop whose front this one's front calls


FRONTEND_HOP = Hop(
    name="frontend",
    title="Through the frontend",
    route="frontend /api/roll",
    front_builds={OFF: FRONTEND_UNTRACED, ON: FRONTEND},
    behind_builds=None,
    wire="FRONTEND_DICE_ROLLER_URL",
    front_line=b'"Roll served"',
    front_spans=2,
    behind_line=ROLL_LINE,
    counter="dice_rolls_total",
    hop_service="frontend",
    added_is_front=True,
)
DIE_SERVICE_HOP = Hop(
    name="die-service",
    title="With the die-service",
    route="dice-roller /roll + die-service",
    front_builds=DIRECT_BUILDS,
    behind_builds={OFF: DIE_SERVICE_UNTRACED, ON: DIE_SERVICE},
    wire="DICE_DIE_SERVICE_URL",
    front_line=ROLL_LINE,
    front_spans=2,
    behind_line=b'"Die found"',
    counter="die_service_lookups_total",
    hop_service="die-service",
    added_is_front=False,
)
DATABASE_HOP = replace(
    DIE_SERVICE_HOP,
    name="database",
    title="With the die-service and PostgreSQL",
    route="dice-roller /roll + die-service + PostgreSQL",
    spans_per_roll=4,
    behind_spans=2,  # its server span and its query's
    database=True,
)
STAGE5_HOP = replace(
    FRONTEND_HOP,
    name="stage-5",
    title="Along stage 5's whole path",
    route="frontend /api/roll + dice-roller + die-service + PostgreSQL",
    spans_per_roll=6,
    in_front_of=DATABASE_HOP.name,
)
HOPS = (FRONTEND_HOP, DIE_SERVICE_HOP, DATABASE_HOP, STAGE5_HOP)
DATABASE = "dice"
"""The bench's PostgreSQL's user, password and database: stages/stage5.yml's, on 127.0.0.1."""
ROUTES = (DIRECT, *(hop.name for hop in HOPS))


class SpanCount(TypedDict):
    logged: dict[str, int]  # the lines each service wrote, that spans are expected from
    expected: int
    received: int


@dataclass(frozen=True)
class HopPlan:
    rounds: int
    seconds: float
    light_connections: int = 1
    loaded_connections: int = 50
    pause_seconds: float = 0.5  # lets the last batch of spans leave before the next run


@dataclass(frozen=True)
class Leg:
    """One hop's processes in one tracing mode."""

    hop: Hop
    front: Server
    behind: Server

    @property
    def added(self) -> Server:
        return self.front if self.hop.added_is_front else self.behind


@dataclass(frozen=True)
class Chain:
    """One tracing mode: the direct dice-roller and every hop, all tracing or none."""

    tracing: str
    dice_roller: Server
    legs: dict[str, Leg]
    receiver: BenchReceiver

    def url(self, route: str) -> str:
        return (self.dice_roller if route == DIRECT else self.legs[route].front).roll_url

    def pids(self, route: str) -> tuple[int, ...]:
        """The processes a request on `route` runs in, the one the hop adds first when
        there is one (the receiver's CPU is the bench's)."""
        if route == DIRECT:
            return (self.dice_roller.process.pid,)
        leg = self.legs[route]
        other = leg.behind if leg.hop.added_is_front else leg.front
        pids = [leg.added.process.pid, other.process.pid]
        if leg.hop.in_front_of is not None:  # and what is behind the leg it calls
            pids.append(self.legs[leg.hop.in_front_of].behind.process.pid)
        return tuple(pids)

    def roller(self, route: str) -> Server:
        """The dice-roller that rolls the dice on `route`."""
        if route == DIRECT:
            return self.dice_roller
        leg = self.legs[route]
        return leg.front if leg.front.build in SERVICE_BUILDS else leg.behind


@dataclass
class Runs:
    """The rounds of one (connections, tracing, route)."""

    results: list[WrkResult] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # µs per request, every process of the route
    hop_cpu: list[float] = field(default_factory=list)  # µs per request, the hop's service's
    rolled: list[int] = field(default_factory=list)  # the route's dice-roller's rolls, each run
    counted: list[int] = field(default_factory=list)  # the hop's counter behind, each run


def run_hop(report: Report, plan: HopPlan, output_dir: Path) -> None:
    loads = (plan.light_connections, plan.loaded_connections)
    report.section(
        PART,
        f"/roll on the dice-roller (delay 0) against "
        f"{' and '.join(f'{hop.route} ({hop.name} hop)' for hop in HOPS)}, "
        f"tracing off and on; wrk 1 thread, {' and '.join(map(str, loads))} connection(s), "
        f"{plan.seconds:g} s per run, {plan.rounds} alternating round(s)",
    )
    with ExitStack() as stack:
        chains = _start_chains(stack, output_dir)
        for chain in chains:  # warm up: imports, caches, every service's connection pools
            for route in ROUTES:
                run_wrk(chain.url(route), plan.loaded_connections, 1)
        time.sleep(plan.pause_seconds)

        runs = {
            (c, chain.tracing, route): Runs() for c in loads for chain in chains for route in ROUTES
        }
        for _ in range(plan.rounds):
            for connections in loads:
                for chain in chains:
                    for route in ROUTES:
                        _measure(
                            chain, route, connections, plan, runs[connections, chain.tracing, route]
                        )
        spans = _spans(chains)

    for connections in loads:
        _print_load(report, connections, runs)
    added = {hop.name: _print_added(report, hop, loads, runs) for hop in HOPS}
    report.figure(PART, "added", {name: figures for name, (figures, _) in added.items()})
    report.figure(
        PART, "tracing_on_over_off_throughput", {name: ratio for name, (_, ratio) in added.items()}
    )
    _check_consistency(report, loads, runs, spans)


def _start_chains(stack: ExitStack, output_dir: Path) -> list[Chain]:
    """Per tracing mode, a receiver; then the direct dice-roller and what is behind each
    hop (a die-service on PostgreSQL for the database hop); then each hop's front, wired
    to what is behind it; then the fronts in front of another hop's front."""
    receivers = {mode: stack.enter_context(bench_receiver()) for mode in MODES}
    database = stack.enter_context(temporary_server(DATABASE, DATABASE, DATABASE, free_port()))
    first: list[tuple[str, Hop | None, str]] = [(mode, None, DIRECT_BUILDS[mode]) for mode in MODES]
    first += [
        (mode, hop, hop.behind_builds[mode])
        for mode in MODES
        for hop in HOPS
        if hop.behind_builds is not None
    ]
    started = stack.enter_context(
        start_servers(
            [
                (
                    build,
                    {
                        **_env(build, receivers[mode]),
                        **(
                            {"DIE_SERVICE_DATABASE_URL": database.url}
                            if hop and hop.database
                            else {}
                        ),
                    },
                )
                for mode, hop, build in first
            ],
            output_dir,
        )
    )
    dice_rollers: dict[str, Server] = {}
    behind: dict[tuple[str, str], Server] = {}
    for (mode, hop, _), server in zip(first, started, strict=True):
        if hop is None:
            dice_rollers[mode] = server
        else:
            behind[mode, hop.name] = server
    legs: dict[str, dict[str, Leg]] = {mode: {} for mode in MODES}

    def behind_of(mode: str, hop: Hop) -> Server:
        if hop.in_front_of is not None:
            return legs[mode][hop.in_front_of].front
        return behind.get((mode, hop.name), dice_rollers[mode])

    for wave in ([h for h in HOPS if h.in_front_of is None], [h for h in HOPS if h.in_front_of]):
        pairs = [(mode, hop, behind_of(mode, hop)) for mode in MODES for hop in wave]
        fronts = stack.enter_context(
            start_servers(
                [
                    (
                        hop.front_builds[mode],
                        {**_env(hop.front_builds[mode], receivers[mode]), hop.wire: server.url},
                    )
                    for mode, hop, server in pairs
                ],
                output_dir,
            )
        )
        for (mode, hop, server), front in zip(pairs, fronts, strict=True):
            legs[mode][hop.name] = Leg(hop, front, server)
    return [Chain(mode, dice_rollers[mode], legs[mode], receivers[mode]) for mode in MODES]


def _env(build: str, receiver: BenchReceiver) -> dict[str, str]:
    """A build's environment: a dice-roller's delay at 0; spans, when made, to `receiver`
    (the build's own switches turn them off)."""
    if build in SERVICE_BUILDS:
        return receiver.service_env(max_delay_seconds=0)
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}


def _measure(chain: Chain, route: str, connections: int, plan: HopPlan, runs: Runs) -> None:
    pids = chain.pids(route)
    roller = chain.roller(route)
    leg = chain.legs.get(route)
    cpu_before = [cpu_seconds(pid) for pid in pids]
    rolls_before = _rolls(roller)
    counted_before = _counted(leg) if leg else 0
    result = run_wrk(chain.url(route), connections, plan.seconds)
    time.sleep(plan.pause_seconds)  # the batch of spans in flight is part of the cost
    cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
    per_request = 1e6 / max(result.requests, 1)
    runs.results.append(result)
    runs.cpu.append(sum(cpu) * per_request)
    runs.rolled.append(_rolls(roller) - rolls_before)
    if leg:
        runs.hop_cpu.append(cpu[0] * per_request)
        runs.counted.append(_counted(leg) - counted_before)


def _metrics(server: Server) -> str:
    return httpx.get(server.url + "/metrics", timeout=10.0).text


def _rolls(dice_roller: Server) -> int:
    return rolls_counted(_metrics(dice_roller))


def _counted(leg: Leg) -> int:
    return counted(_metrics(leg.behind), leg.hop.counter)


def rolls_counted(exposition: str) -> int:
    """Every roll a dice-roller's `/metrics` (classic text) counts: `dice_rolls_total`,
    all dice and results."""
    return round(sum(float(value) for value in _ROLLS.findall(exposition)))


def counted(exposition: str, counter: str) -> int:
    """The sum of every series of `counter` (its `_total` sample name) in a classic
    text exposition: `dice_rolls_total`, `die_service_lookups_total`."""
    samples = re.compile(rf"^{re.escape(counter)}(?:\{{[^}}]*\}})?\s+(\S+)$", re.M)
    return round(sum(float(value) for value in samples.findall(exposition)))


def _spans(chains: list[Chain]) -> dict[str, SpanCount]:
    """Per tracing mode, the spans expected from the lines every service wrote (warm-up
    and readiness probes included), and those received."""
    counted_spans: dict[str, SpanCount] = {}
    for chain in chains:
        logged = {"dice-roller": chain.dice_roller.count_in_output(ROLL_LINE)}
        expected = logged["dice-roller"]  # one span each, relayed rolls included
        for leg in chain.legs.values():
            hop = leg.hop
            front = leg.front.count_in_output(hop.front_line)
            logged[f"{hop.name} hop: front"] = front
            expected += hop.front_spans * front
            if hop.behind_builds is not None:  # a process of its own, a span per call
                behind = leg.behind.count_in_output(hop.behind_line)
                logged[f"{hop.name} hop: behind"] = behind
                expected += hop.behind_spans * behind
        if chain.tracing != ON:
            expected = 0
        received = chain.receiver.wait_for_spans(expected, timeout=5.0) if expected else 0
        counted_spans[chain.tracing] = SpanCount(
            logged=logged, expected=expected, received=received
        )
    for chain in chains:  # anything sent with tracing off has left by now
        counted_spans[chain.tracing]["received"] = chain.receiver.span_count()
    return counted_spans


def _print_load(report: Report, connections: int, runs: dict[tuple[int, str, str], Runs]) -> None:
    what = "one request at a time" if connections == 1 else "the most each route answers"
    report.say(f"  {connections} connection(s), {what} (medians of the rounds):")
    rows = []
    figures: dict[str, dict[str, object]] = {}
    routes = {DIRECT: "dice-roller /roll", **{hop.name: hop.route for hop in HOPS}}
    services = {DIRECT: "-", **{hop.name: hop.hop_service for hop in HOPS}}
    for mode in MODES:
        for route in ROUTES:
            r = runs[connections, mode, route]
            rates = [x.requests_per_second for x in r.results]
            rows.append(
                [
                    mode,
                    routes[route],
                    statistics.median(rates),
                    statistics.median(x.p50 for x in r.results) * 1000,
                    statistics.median(x.p99 for x in r.results) * 1000,
                    statistics.median(r.cpu),
                    f"{statistics.median(r.hop_cpu):.0f} {services[route]}" if r.hop_cpu else "-",
                    sum(x.errors for x in r.results),
                    " ".join(f"{rate:.0f}" for rate in rates),
                ]
            )
            figures.setdefault(mode, {})[route] = {
                "requests_per_second": rates,
                "p50_seconds": [x.p50 for x in r.results],
                "p99_seconds": [x.p99 for x in r.results],
                "cpu_microseconds_per_request": r.cpu,
                "hop_service_cpu_microseconds_per_request": r.hop_cpu,
                "errors": sum(x.errors for x in r.results),
                "requests": sum(x.requests for x in r.results),
                "rolled": sum(r.rolled),
                "counted_behind": sum(r.counted),
            }
    report.table(
        [
            "tracing",
            "route",
            "req/s",
            "p50 ms",
            "p99 ms",
            "CPU µs/req",
            "of it the hop's service",
            "errors",
            "req/s per round",
        ],
        rows,
    )
    report.figure(PART, f"connections_{connections}", figures)


def _print_added(
    report: Report, hop: Hop, loads: tuple[int, ...], runs: dict[tuple[int, str, str], Runs]
) -> tuple[dict[str, dict[str, dict[str, float]]], float]:
    """The hop's route against direct, per round (medians): what the hop adds; and
    its throughput at load, tracing on over off."""
    report.say(
        f"  What the {hop.name} hop adds, {hop.route} against direct (per-round medians; "
        f"spans a roll with tracing on: {hop.spans_per_roll} against 1):"
    )
    rows = []
    added: dict[str, dict[str, dict[str, float]]] = {}
    for connections in loads:
        for mode in MODES:
            direct = runs[connections, mode, DIRECT]
            through = runs[connections, mode, hop.name]
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
    loaded = loads[-1]
    off = runs[loaded, OFF, hop.name].results
    on = runs[loaded, ON, hop.name].results
    tracing_ratio = statistics.median(
        n.requests_per_second / f.requests_per_second for f, n in zip(off, on, strict=True)
    )
    report.say(
        f"  {hop.title}, throughput at {loaded} connections on this machine: "
        f"{statistics.median(x.requests_per_second for x in off):.0f} req/s tracing off "
        f"({added[f'connections_{loaded}'][OFF]['throughput_ratio']:.2f} of direct), "
        f"{statistics.median(x.requests_per_second for x in on):.0f} req/s tracing on "
        f"({added[f'connections_{loaded}'][ON]['throughput_ratio']:.2f} of direct); "
        f"tracing on / off = {tracing_ratio:.2f}"
    )
    return added, tracing_ratio


def _check_consistency(
    report: Report,
    loads: tuple[int, ...],
    runs: dict[tuple[int, str, str], Runs],
    spans: dict[str, SpanCount],
) -> None:
    upstream: dict[str, dict[str, dict[str, int]]] = {}
    for hop in HOPS:
        uncounted = 0
        for mode in MODES:
            hop_runs = [runs[c, mode, hop.name] for c in loads]
            answered = sum(x.requests for r in hop_runs for x in r.results)
            rolled = sum(n for r in hop_runs for n in r.rolled)
            behind = sum(n for r in hop_runs for n in r.counted)
            # Each answer wrk counted, and each roll, was counted behind before the
            # answer left (more may have been: requests in flight when wrk stopped).
            for r in hop_runs:
                for x, n_rolled, n_behind in zip(r.results, r.rolled, r.counted, strict=True):
                    uncounted += max(x.requests - n_behind, 0) + max(n_rolled - n_behind, 0)
            upstream.setdefault(hop.name, {})[mode] = {
                "answered": answered,
                "rolled": rolled,
                "counted_behind": behind,
            }
            report.say(
                f"  {hop.name} hop, tracing {mode}: {answered} answers on {hop.route}, "
                f"{rolled} rolls by its dice-roller, {behind} in {hop.counter} behind it"
            )
        report.check(
            PART, f"{hop.name} hop: answers or rolls not in {hop.counter}", uncounted, "<=", 0
        )
    for mode in MODES:
        report.say(
            f"  tracing {mode}: spans received {spans[mode]['received']} "
            f"(at least {spans[mode]['expected']}, from the lines logged: "
            f"{', '.join(f'{k} {v}' for k, v in spans[mode]['logged'].items())})"
        )
    report.figure(PART, "upstream", upstream)
    report.figure(PART, "spans", spans)
    # With tracing on, more spans than expected is possible, never fewer: a request in
    # flight when wrk stops may be cut short after its span started, before its line.
    on, off = spans[ON], spans[OFF]
    wrong = max(on["expected"] - on["received"], 0) + off["received"]
    report.check(PART, "spans missing (tracing on) or sent (off)", wrong, "<=", 0)

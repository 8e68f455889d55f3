"""The drills: what each one breaks, where to look, and which signals must respond.

A drill is data: what it does to the stack, which is one of two actions, or both
(the flags it sets, flag key -> variant of stack/flags/flags.json; the service it
stops, and starts again at the end: drills/outage.py), where its traffic goes (the
dice-roller, or the frontend in front of it), the stage it needs, what to show the
user (dashboard panels by title, a LogQL and a TraceQL query to paste, the alert), the
lesson, and a plan made when it starts: the signals to wait for, each a probe of one
component's API, and how long to wait for them all (drills/timing.py says how that is
computed from the alert windows); for a drill that stops a service, the signals of its
return too, waited for once it is started again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from verify.context import DASHBOARD_FILE, ROOT, SERVICE_NAME
from verify.otlp_json import ERROR_STATUSES, SERVER_KINDS
from verify.stage2 import FRONTEND_SERVICE

from . import timing
from .alert_probes import (
    RECEIVER_LOGS,
    AlertRef,
    alert_pending,
    alertmanager_holds,
    alertmanager_released,
    firing_alerts,
    prometheus_firing,
    prometheus_resolved,
    receiver_line,
)
from .context import DrillContext, Reading
from .database_probes import (
    DATABASE_DOWN_LINES,
    DATABASE_HOP,
    POSTGRES,
    database_fails_the_roll,
    exporter_reports_down,
    trace_of_database_failure,
)
from .flagfile import read_flag_file
from .probes import (
    SERVICE_LOGS,
    Span,
    error_ratio,
    fair_rolls_succeed,
    flagged_lines,
    flagged_spans,
    generator_flags_skew,
    p99_above,
    value_skew,
)
from .slow_probes import (
    DATABASE_FLAG,
    DATABASE_SLOW_HOP,
    DATABASE_TIMEOUT,
    DATABASE_TIMEOUT_LINES,
    DIE_SERVICE_FLAG,
    DIE_SERVICE_SLOW_HOP,
    DIE_SERVICE_TIMEOUT,
    DIE_TIMEOUT_LINES,
    SLOW_LOOKUP_SECONDS,
    SLOW_QUERY_SECONDS,
    STUCK_QUERY_SECONDS,
    database_times_out,
    die_service_times_out,
    lookups_slower_than_the_wait,
    query_p99_rises,
    slow_lookups_logged,
    slow_queries_logged,
    trace_of_cut_query,
    trace_of_slow_lookup,
    trace_of_slow_query,
)
from .traffic import FRONTEND
from .upstream_probes import (
    DIE_SERVICE_HOP,
    DIE_UNAVAILABLE_LINES,
    FAILED_LINES,
    REASON,
    Hop,
    answers_503,
    callee_answers,
    callers_graph,
    dice_roller_answers,
    failed_lines,
    frontend_answers_503,
    rolls_succeed_again,
    scrape_fails,
    trace_ends_at_caller,
    trace_ends_at_frontend,
    upstream_errors,
)

__all__ = [
    "DRILLS",
    "ERROR_LINES",
    "LOADED_LINES",
    "SHIPPED",
    "SLOW_LINES",
    "STAGE2_DASHBOARD",
    "STAGE3_DASHBOARD",
    "STAGE5_DASHBOARD",
    "Drill",
    "Plan",
    "Signal",
    "Step",
    "WhereToLook",
]

STAGE2_DASHBOARD = ROOT / "grafana-dashboards" / "stage2-dashboard.json"
STAGE3_DASHBOARD = ROOT / "grafana-dashboards" / "stage3-dashboard.json"
STAGE5_DASHBOARD = ROOT / "grafana-dashboards" / "stage5-dashboard.json"

SHIPPED: Mapping[str, str] = {
    "risky-failure-rate": "spec",
    "fair-failure-rate": "spec",
    "extra-latency-seconds": "off",
    "extra-latency-share": "all",
    "loaded-die-bias": "off",
    "die-service-latency-seconds": "off",
    "database-latency-seconds": "off",
}
"""Each flag's default variant as stack/flags/flags.json ships it: the spec's behaviour."""

FAILURE_RATES = {"spec": {"risky": 0.1, "fair": 0.0}, "half": {"risky": 0.5, "fair": 0.5}}
"""The failure rates of the variants the error spike switches between."""
SLOW_SECONDS = timing.LATENCY_OBJECTIVE
"""A roll longer than this is slow: an ordinary roll waits up to 1 s, a slowed one 1.5 s
more (the LogQL and TraceQL shown to the user say the same)."""


@dataclass(frozen=True)
class Signal:
    """One thing that must respond: its name, where it is read, and how."""

    name: str
    source: str
    probe: Callable[[DrillContext], Reading]
    hint: str = ""
    """What to check when it never responds."""


@dataclass(frozen=True)
class WhereToLook:
    panels: tuple[str, ...]
    """Panel titles of `dashboard`."""
    logql: str
    traceql: str
    alerts: tuple[str, ...] = ()
    dashboard: Path = DASHBOARD_FILE
    """The dashboard's file: that of the drill's stage (stage 2's for a drill that needs
    the frontend, stage 3's for one that needs the die-service, stage 5's for one that
    needs the database)."""


@dataclass(frozen=True)
class Step:
    """A later step of a drill: flags switched further once the signals before it have
    responded (or been given up on), and what must respond then."""

    flags: Mapping[str, str]
    signals: list[Signal]
    give_up: float
    says: str
    """What the step does, in words, printed as it begins."""


@dataclass(frozen=True)
class Plan:
    """What a drill waits for, decided when it starts (recovery looks at what fires)."""

    signals: list[Signal]
    give_up: float
    """Seconds, unless --give-up says otherwise."""
    flags: Mapping[str, str] = field(default_factory=dict)
    """Flags to switch (key -> variant); usually the drill's own."""
    notes: list[str] = field(default_factory=list)
    """Lines to show before waiting."""
    done: str | None = None
    """Set when there is nothing to wait for: the runner says so and stops."""
    then: list[Step] = field(default_factory=list)
    """Later steps, in order, each switching flags further (database-slow: `slow`, then
    `stuck`)."""
    back: list[Signal] = field(default_factory=list)
    """What must respond once the drill has undone its change: a stopped service started
    again, or (a flag drill) its flags put back, the traffic still running."""
    back_give_up: float = 0.0
    """Seconds to wait for `back`, unless --give-up says otherwise."""


@dataclass(frozen=True)
class Drill:
    name: str
    summary: str
    """One line for --list."""
    flags: Mapping[str, str]
    look: WhereToLook
    lesson: str
    plan: Callable[[DrillContext], Plan]
    give_up_text: str
    """How long it waits by default, in words, for --list."""
    needs: tuple[str, ...] = ("service", "prometheus", "loki", "tempo", "alertmanager")
    keeps_flags: bool = False
    """True for recovery: its change (back to shipped) is the point, so it stays."""
    stops: str | None = None
    """The compose service the drill stops while it runs, and starts again at the end."""
    traffic: str = "dice-roller"
    """Where the generator sends its rolls: `dice-roller`, or `frontend` (stage 2)."""
    stage: int = 1
    """The stage the drill needs running: what its compose commands name
    (`outage.compose_command`), and what a missing component's message says to start."""

    def undone(self) -> str:
        """What the end of the drill (or Ctrl-C) puts back, in words."""
        if self.stops is not None:
            return f"starts the {self.stops} again"
        return "the flags stay shipped" if self.keeps_flags else "puts the flags back"


def _lines(die: str, *filters: str) -> str:
    return " | ".join([SERVICE_LOGS, "json", f'die_type="{die}"', *filters])


HINT_FLAGS = (
    "Rolls that do not change with the flag: is --flags-file (or DRILL_FLAGS_FILE) the file "
    "the running service reads (its DICE_FLAGS_FILE)? Under compose that is "
    "stack/flags/flags.json."
)
HINT_ALERT = (
    "See the rule's state at Prometheus /alerts; `python3 tasks.py drill --list` says how "
    "long each alert takes."
)
HINT_ALERTMANAGER = "Prometheus sends alerts to alertmanager:9093 (its `alerting:` block)."
HINT_RECEIVER = (
    f"The receiver's lines reach Loki through Alloy: {RECEIVER_LOGS}. Alertmanager "
    "routes to it in stack/alertmanager/alertmanager.yml."
)


def _alert_signals(ctx: DrillContext, ref: AlertRef, notes: list[str]) -> list[Signal]:
    """The journey of an alert that must fire: pending, firing, Alertmanager, receiver.

    An alert already active when the drill begins (an earlier drill's) cannot make that
    journey again until it resolves: its signals are left out, and a note says why.
    """
    if ref in firing_alerts(ctx, (ref.name,)):
        notes.append(
            f"{ref} is already active (from an earlier drill?), so this drill cannot watch "
            "it pend, fire and reach the receiver: its signals are left out. "
            "`python3 tasks.py drill recovery` waits until it resolves."
        )
        return []
    return [
        Signal(f"{ref} pending", "Prometheus", lambda c: alert_pending(c, ref), HINT_ALERT),
        Signal(f"{ref} firing", "Prometheus", lambda c: prometheus_firing(c, ref), HINT_ALERT),
        Signal(
            f"{ref} in Alertmanager",
            "Alertmanager",
            lambda c: alertmanager_holds(c, ref),
            HINT_ALERTMANAGER,
        ),
        Signal(
            f"{ref} received",
            "receiver, in Loki",
            lambda c: receiver_line(c, ref, "firing"),
            HINT_RECEIVER,
        ),
    ]


# ---------------------------------------------------------------- error-spike

ERROR_SPIKE_FLAGS = {"risky-failure-rate": "half", "fair-failure-rate": "half"}
FAIR_FAST_BURN = AlertRef(timing.FAST_BURN, {"die_type": "fair"})


FAILURE_FLAG_OF = {"fair": "fair-failure-rate", "risky": "risky-failure-rate"}
ERROR_LINES = {
    die: _lines(die, 'level="ERROR"', f'feature_flags_{flag.replace("-", "_")}="half"')
    for die, flag in FAILURE_FLAG_OF.items()
}
"""LogQL per die: its failed rolls that carry its failure-rate flag."""


def _error_spike(ctx: DrillContext) -> Plan:
    before, after = FAILURE_RATES["spec"], FAILURE_RATES["half"]
    thresholds = {die: (before[die] + after[die]) / 2 for die in ("fair", "risky")}
    flag_of, queries = FAILURE_FLAG_OF, ERROR_LINES

    def failed(span: Span) -> bool:
        return span["status"] in ERROR_STATUSES

    signals = [
        Signal(
            "Error rate up",
            "Prometheus",
            lambda c: error_ratio(c, thresholds),
            HINT_FLAGS,
        ),
        Signal(
            "Error lines carry the flag",
            "Loki",
            lambda c: flagged_lines(c, "errors", queries),
            HINT_FLAGS,
        ),
        Signal(
            "Error spans carry the flag",
            "Tempo",
            lambda c: flagged_spans(c, "errors", flag_of, failed, "failed span"),
            "Spans reach Tempo through Alloy; the flag's evaluation is a span event.",
        ),
    ]
    notes: list[str] = []
    signals += _alert_signals(ctx, FAIR_FAST_BURN, notes)
    give_up = timing.error_spike_seconds(after["fair"])
    return Plan(signals, give_up, ERROR_SPIKE_FLAGS, notes)


ERROR_SPIKE = Drill(
    name="error-spike",
    summary="the risky die fails half the time, and the fair die too: errors, "
    "flagged spans, the fair die's fast-burn alert",
    flags=ERROR_SPIKE_FLAGS,
    look=WhereToLook(
        panels=("Error Rate by Die Type", "Success Rate", "Request Rate", "Error Logs"),
        logql=f'{SERVICE_LOGS} | json | level="ERROR" | feature_flags_fair_failure_rate="half" '
        'or feature_flags_risky_failure_rate="half"',
        traceql='{ status = error && event.feature_flag.key = "fair-failure-rate" }',
        alerts=(str(FAIR_FAST_BURN),),
    ),
    lesson=(
        "The risky die's SLO is 90 %: failing half the time burns its budget 5 times too "
        "fast, below both burn-rate alerts (14.4 and 6), so it alone can never page. The "
        "fair die's SLO is 99.9 %: the same 50 % burns its budget 500 times too fast, and "
        "its fast-burn alert fires. A loose SLO hides what a tight one shouts about."
    ),
    plan=_error_spike,
    give_up_text=f"{timing.error_spike_seconds(0.5) / 60:.1f} min (the 1 h burn-rate window)",
)


# ---------------------------------------------------------------- latency

LATENCY_FLAGS = {"extra-latency-seconds": "slow", "extra-latency-share": "some"}
SLOW_SHARE = 0.2
"""The share of rolls the `some` variant slows down."""
LATENCY_REF = AlertRef(timing.LATENCY_ALERT)


SLOW_LINES = {
    die: _lines(
        die, 'feature_flags_extra_latency_seconds="slow"', f"duration_seconds > {SLOW_SECONDS:g}"
    )
    for die in ("fair", "risky")
}
"""LogQL per die: its rolls that the extra-latency flag slowed down."""


def _latency(ctx: DrillContext) -> Plan:
    queries = SLOW_LINES
    flag_of = {die: "extra-latency-seconds" for die in ("fair", "risky")}

    def slow(span: Span) -> bool:
        return span["kind"] in SERVER_KINDS and span["seconds"] > SLOW_SECONDS

    signals = [
        Signal(
            "p99 past the objective",
            "Prometheus",
            lambda c: p99_above(c, timing.LATENCY_OBJECTIVE),
            HINT_FLAGS,
        ),
        Signal(
            "Slowed rolls logged with the flag",
            "Loki",
            lambda c: flagged_lines(c, "slow", queries),
            HINT_FLAGS,
        ),
        Signal(
            f"Spans over {SLOW_SECONDS:g} s carry the flag",
            "Tempo",
            lambda c: flagged_spans(c, "slow", flag_of, slow, "slow server span"),
            "Spans reach Tempo through Alloy; the flag's evaluation is a span event.",
        ),
    ]
    notes: list[str] = []
    signals += _alert_signals(ctx, LATENCY_REF, notes)
    return Plan(signals, timing.latency_seconds(SLOW_SHARE), LATENCY_FLAGS, notes)


LATENCY = Drill(
    name="latency",
    summary="1.5 s more on a fifth of the rolls: p99 past its objective, slow spans, "
    f"{timing.LATENCY_ALERT}",
    flags=LATENCY_FLAGS,
    look=WhereToLook(
        panels=("Request Duration", "Average Response Time by Die Type"),
        logql=f'{SERVICE_LOGS} | json | feature_flags_extra_latency_seconds="slow" '
        f"| duration_seconds > {SLOW_SECONDS:g}",
        traceql=f'{{ resource.service.name = "{SERVICE_NAME}" && kind = server '
        f"&& duration > {SLOW_SECONDS:g}s }}",
        alerts=(timing.LATENCY_ALERT,),
    ),
    lesson=(
        "Only a fifth of the rolls slow down, so the average and the median barely move; "
        "the p99 jumps past the objective. Alert on the tail, not the mean."
    ),
    plan=_latency,
    give_up_text=f"{timing.latency_seconds(SLOW_SHARE) / 60:.1f} min (window and hold)",
)


# ---------------------------------------------------------------- loaded-die

LOADED_FLAGS = {"loaded-die-bias": "loaded"}


LOADED_LINES = {
    die: _lines(die, 'feature_flags_loaded_die_bias="loaded"') for die in ("fair", "risky")
}
"""LogQL per die: its rolls made with the loaded-die flag."""


def _loaded_die(ctx: DrillContext) -> Plan:
    queries = LOADED_LINES
    signals = [
        Signal(
            "Value histogram skewed",
            "Prometheus",
            value_skew,
            HINT_FLAGS,
        ),
        Signal(
            "Chi-square test flags the dice",
            "traffic-gen",
            generator_flags_skew,
            "The generator judges its values at the end of each round, from 30 of each die "
            "(a longer --round gives it more). " + HINT_FLAGS,
        ),
        Signal(
            "Rolls logged with the flag",
            "Loki",
            lambda c: flagged_lines(c, "loaded", queries),
            HINT_FLAGS,
        ),
    ]
    return Plan(signals, timing.loaded_die_seconds(ctx.settings.round_seconds), LOADED_FLAGS)


LOADED_DIE = Drill(
    name="loaded-die",
    summary="half the rolls show the top face: the value histogram and the generator's "
    "chi-square test both notice",
    flags=LOADED_FLAGS,
    look=WhereToLook(
        panels=("Roll Value Distribution (Fair)", "Roll Value Distribution (Risky)"),
        logql=f'{SERVICE_LOGS} | json | feature_flags_loaded_die_bias="loaded" | roll_value="6"',
        traceql='{ span.die.value = 6 && event.feature_flag.key = "loaded-die-bias" }',
    ),
    lesson=(
        "Nothing fails and nothing is slow: no error rate, latency or alert shows a loaded "
        "die. Only the values do, and a test of their distribution (chi-square) says how "
        "unlikely they are from a fair die."
    ),
    plan=_loaded_die,
    give_up_text="two generator rounds and a minute (2 x --round + 60 s)",
    needs=("service", "prometheus", "loki"),
)


# ---------------------------------------------------------------- recovery


def _resolution_signals(ref: AlertRef) -> list[Signal]:
    """The journey of an alert that must stop: Prometheus, Alertmanager, receiver."""
    return [
        Signal(f"{ref} resolved", "Prometheus", lambda c: prometheus_resolved(c, ref), HINT_ALERT),
        Signal(
            f"{ref} resolved in Alertmanager",
            "Alertmanager",
            lambda c: alertmanager_released(c, ref),
            HINT_ALERTMANAGER,
        ),
        Signal(
            f"{ref} resolution received",
            "receiver, in Loki",
            lambda c: receiver_line(c, ref, "resolved"),
            HINT_RECEIVER,
        ),
    ]


def _recovery(ctx: DrillContext) -> Plan:
    current = read_flag_file(ctx.settings.flags_file)
    changes = {
        key: variant
        for key, variant in SHIPPED.items()
        if key in current.flags and current.default_variant(key) != variant
    }
    firing = firing_alerts(ctx, timing.DRILL_ALERTS)
    followed = ctx.settings.follow or timing.DRILL_ALERTS
    refs = [ref for ref in firing if ref.name in followed]
    notes: list[str] = []
    signals = [
        Signal(
            "Fair rolls succeed again",
            "Prometheus",
            fair_rolls_succeed,
            HINT_FLAGS,
        )
    ]
    for ref in refs:
        seconds = timing.resolve_seconds(ref.name)
        notes.append(f"{ref} is firing; it resolves within about {seconds / 60:.0f} min")
        signals += _resolution_signals(ref)
    if not refs:
        notes.append("No drill alert to follow is firing.")
    for other in firing:
        if other not in refs:
            notes.append(f"{other} is firing too, not followed (--follow)")
    give_up = max([timing.resolve_seconds(ref.name) for ref in refs] + [60.0 + timing.MARGIN])
    done = None
    if not changes and not refs:
        done = "Nothing to recover: every flag is at its shipped variant and no drill alert fires."
    return Plan(signals, give_up, changes, notes, done)


RECOVERY = Drill(
    name="recovery",
    summary="every flag back to its shipped variant; the firing alerts resolve and the "
    "receiver says so",
    flags=SHIPPED,
    look=WhereToLook(
        panels=("Error Rate by Die Type", "Success Rate", "Request Duration"),
        logql=f'{RECEIVER_LOGS} | json | status="resolved"',
        traceql=f'{{ resource.service.name = "{SERVICE_NAME}" && status = error }}',
        alerts=timing.DRILL_ALERTS,
    ),
    lesson=(
        "An alert stops only when its shortest window holds no bad data: 5 min for the "
        "fast burn, 30 min for the slow burn. Fixing the service is instant; the alert's "
        "memory is not."
    ),
    plan=_recovery,
    give_up_text=(
        "the longest window of the firing alerts, plus a few minutes "
        f"({timing.resolve_seconds(timing.FAST_BURN) / 60:.1f} min for the fast burn, "
        f"{timing.resolve_seconds(timing.SLOW_BURN) / 60:.0f} min for the slow burn)"
    ),
    keeps_flags=True,
)


# ---------------------------------------------------------------- upstream-down

OUTAGE_WAIT = (
    f"{timing.outage_seconds():.0f} s, then {timing.return_seconds():.0f} s for its return "
    "(the scrapes and the trip to Loki)"
)
"""How long a drill that stops a service waits, in words, for --list."""

HINT_STOPPED = (
    "Is the dice-roller stopped? `docker compose ps dice-roller`; elsewhere, "
    "--stop-command (or DRILL_STOP_COMMAND) must stop the service --service-url reaches."
)
HINT_FRONTEND = (
    "The frontend's metrics reach Prometheus through Alloy, which scrapes containers "
    "labelled sandbox.metrics.port (stack/alloy/config.alloy)."
)
HINT_FRONTEND_LOGS = (
    'The frontend\'s lines reach Loki through Alloy; its stream is {container_name="frontend"}.'
)
HINT_FRONTEND_SPANS = (
    "The frontend's spans reach Tempo through Alloy (OTEL_EXPORTER_OTLP_ENDPOINT in "
    "docker-compose.yml); traces are fetched by the ids of failed rolls."
)
HINT_GRAPH = (
    "Alloy's otelcol.connector.servicegraph (stack/alloy/config.alloy) counts a client span "
    "that no server span answered towards a virtual node, once its store's ttl is over."
)
HINT_STARTED = (
    "Is the dice-roller running again? `docker compose ps dice-roller`; elsewhere, "
    "--start-command (or DRILL_START_COMMAND) must start it."
)


def _upstream_down(ctx: DrillContext) -> Plan:
    signals = [
        Signal("The frontend answers 503", "the frontend", frontend_answers_503, HINT_STOPPED),
        Signal("Upstream errors up", "Prometheus", upstream_errors, HINT_FRONTEND),
        Signal("The dice-roller's scrape fails", "Prometheus", scrape_fails, HINT_STOPPED),
        Signal("Failed rolls logged", "Loki", failed_lines, HINT_FRONTEND_LOGS),
        Signal(
            "A trace ends at the frontend", "Tempo", trace_ends_at_frontend, HINT_FRONTEND_SPANS
        ),
        Signal(
            "Calls to a virtual node", "service graph, in Prometheus", callers_graph, HINT_GRAPH
        ),
    ]
    back = [
        Signal(
            "The dice-roller answers again", "the dice roller", dice_roller_answers, HINT_STARTED
        ),
        Signal("Rolls succeed again", "Prometheus", rolls_succeed_again, HINT_STARTED),
    ]
    return Plan(signals, timing.outage_seconds(), back=back, back_give_up=timing.return_seconds())


UPSTREAM_DOWN = Drill(
    name="upstream-down",
    summary="the dice-roller stops while the frontend serves traffic: 503s, unreachable "
    "errors and traces that end at the frontend; then it comes back",
    flags={},
    look=WhereToLook(
        panels=(
            "Upstream Errors by Reason",
            "Frontend Error Ratio",
            "Service Graph",
            "Logs of One Trace",
        ),
        logql=FAILED_LINES,
        traceql=f'{{ resource.service.name = "{FRONTEND_SERVICE}" && kind = server '
        f'&& span.upstream.failure = "{REASON}" }}',
        dashboard=STAGE2_DASHBOARD,
    ),
    lesson=(
        "A stopped service says nothing: no error rate, no error line, no span of its own; "
        "only its scrape failing (up = 0) tells of it. Its caller tells the rest: the "
        "frontend answers 503 at once, counts the calls it could not make, logs each, and "
        "its traces stop at its own client span, with nothing beneath. Watch a service "
        "from its callers too."
    ),
    plan=_upstream_down,
    give_up_text=OUTAGE_WAIT,
    needs=("frontend", "service", "prometheus", "loki", "tempo"),
    stops="dice-roller",
    traffic=FRONTEND,
    stage=2,
)


# ---------------------------------------------------------------- die-service-down

STAGE3_PS = "`docker compose -f docker-compose.yml -f stages/stage3.yml ps die-service`"
HINT_DIE_SERVICE_STOPPED = (
    f"Is the die-service stopped? {STAGE3_PS}; elsewhere, --stop-command (or "
    "DRILL_STOP_COMMAND) must stop the die-service the dice-roller at --service-url asks "
    "(its DICE_DIE_SERVICE_URL). A roll that answers 200 found a die-service that still "
    "answers, or a dice-roller that asks none (stage 1 or 2: no DICE_DIE_SERVICE_URL)."
)
HINT_DICE_ROLLER_METRICS = (
    'The dice-roller\'s metrics reach Prometheus by its own scrape (job "dice-roller-stage1"); '
    "dice_die_service_errors_total is exported from stage 3 on (DICE_DIE_SERVICE_URL)."
)
HINT_DIE_SERVICE_SCRAPE = (
    "Alloy scrapes the die-service by its container's label sandbox.metrics.port "
    "(stages/stage3.yml, stack/alloy/config.alloy) and writes `up` to Prometheus."
)
HINT_DICE_ROLLER_LOGS = (
    "The dice-roller's lines reach Loki through Alloy; its stream is "
    '{container_name="dice-roller-stage1"}.'
)
HINT_DICE_ROLLER_SPANS = (
    "The dice-roller's spans reach Tempo through Alloy (OTEL_EXPORTER_OTLP_ENDPOINT in "
    "docker-compose.yml); traces are fetched by the ids of failed rolls."
)
HINT_DIE_SERVICE_STARTED = (
    f"Is the die-service running again? {STAGE3_PS}; elsewhere, --start-command (or "
    "DRILL_START_COMMAND) must start it."
)


def _die_service_down(ctx: DrillContext) -> Plan:
    hop = DIE_SERVICE_HOP
    signals = [
        Signal(
            "The dice-roller answers 503",
            "the dice roller",
            lambda c: answers_503(c, hop),
            HINT_DIE_SERVICE_STOPPED,
        ),
        Signal(
            "Die-service errors up",
            "Prometheus",
            lambda c: upstream_errors(c, hop),
            HINT_DICE_ROLLER_METRICS,
        ),
        Signal(
            "The die-service's scrape fails",
            "Prometheus",
            lambda c: scrape_fails(c, hop),
            HINT_DIE_SERVICE_SCRAPE,
        ),
        Signal(
            "Die unavailable logged", "Loki", lambda c: failed_lines(c, hop), HINT_DICE_ROLLER_LOGS
        ),
        Signal(
            "A trace ends at the dice-roller",
            "Tempo",
            lambda c: trace_ends_at_caller(c, hop),
            HINT_DICE_ROLLER_SPANS,
        ),
        Signal(
            "Calls to a virtual node",
            "service graph, in Prometheus",
            lambda c: callers_graph(c, hop),
            HINT_GRAPH,
        ),
    ]
    back = _die_service_back(hop, HINT_DIE_SERVICE_STARTED)
    return Plan(signals, timing.outage_seconds(), back=back, back_give_up=timing.return_seconds())


def _die_service_back(hop: Hop, hint: str) -> list[Signal]:
    """The return of what `hop` stopped, as the dice-roller's rolls see it: the
    die-service answers (a roll of the drill's own is 200), and rolls succeed."""
    return [
        Signal(
            "The die-service answers again",
            "the dice roller",
            lambda c: callee_answers(c, hop),
            hint,
        ),
        Signal("Rolls succeed again", "Prometheus", lambda c: rolls_succeed_again(c, hop), hint),
    ]


DIE_SERVICE_DOWN = Drill(
    name="die-service-down",
    summary="the die-service stops while the dice-roller rolls: 503s that name it, "
    "unreachable errors and traces that end at the dice-roller; then it comes back",
    flags={},
    look=WhereToLook(
        panels=(
            "Die-Service Failures by Reason",
            "Die Lookups by Outcome",
            "Rolls by Die",
            "Service Graph",
            "Logs of One Trace",
        ),
        logql=DIE_UNAVAILABLE_LINES,
        traceql=f'{{ resource.service.name = "{SERVICE_NAME}" && kind = server '
        f'&& span.upstream.name = "{DIE_SERVICE_HOP.callee}" '
        f'&& span.upstream.failure = "{REASON}" }}',
        dashboard=STAGE3_DASHBOARD,
    ),
    lesson=(
        "Every roll needs the die-service, so when it stops no die is rolled: the rolls "
        "panels go quiet, its lookups stop, and the error ratio of the dice does not rise, "
        "since no roll failed; none was made. Only its scrape failing tells of the "
        "die-service itself. The dice-roller tells the rest: it answers 503 at once, "
        "naming the die-service unreachable, counts each roll it could not serve by "
        'reason, logs "Die unavailable", and its traces stop at its own client span. '
        "A dependency's outage is its caller's error: count it where it is met."
    ),
    plan=_die_service_down,
    give_up_text=OUTAGE_WAIT,
    needs=("service", "prometheus", "loki", "tempo"),
    stops=DIE_SERVICE_HOP.callee,
    stage=3,
)


# ---------------------------------------------------------------- database-down

STAGE5_FILES = "-f docker-compose.yml -f stages/stage3.yml -f stages/stage5.yml"
STAGE5_PS = f"`docker compose {STAGE5_FILES} ps {POSTGRES}`"
HINT_DATABASE_STOPPED = (
    f"Is PostgreSQL stopped? {STAGE5_PS}; elsewhere, --stop-command (or DRILL_STOP_COMMAND) "
    "must stop the database the die-service behind --service-url reads (its "
    "DIE_SERVICE_DATABASE_URL). A roll that answers 200 found a database that still "
    "answers, or a die-service that keeps its dice in memory (stage 3 or 4)."
)
HINT_DIE_SERVICE_METRICS = (
    "Alloy scrapes the die-service by its container's label sandbox.metrics.port "
    "(stages/stage3.yml) and remote-writes die_service_db_errors_total, exported when "
    "DIE_SERVICE_DATABASE_URL is set (stages/stage5.yml)."
)
HINT_EXPORTER = (
    "Alloy scrapes postgres_exporter by its container's label (stages/stage5.yml): "
    'up{job="postgres-exporter"} is its scrape, pg_up whether it reached the database '
    "of its DATA_SOURCE_NAME."
)
HINT_DIE_SERVICE_LOGS = (
    "The die-service's lines reach Loki through Alloy; its stream is "
    '{container_name="die-service"}.'
)
HINT_DIE_SERVICE_SPANS = (
    "The die-service's spans reach Tempo through Alloy (OTEL_EXPORTER_OTLP_ENDPOINT in "
    "stages/stage3.yml); traces are fetched by the ids of failed rolls."
)
HINT_DATABASE_STARTED = (
    f"Is PostgreSQL running again? {STAGE5_PS}; elsewhere, --start-command (or "
    "DRILL_START_COMMAND) must start it. The die-service reconnects by itself: no "
    "restart is needed."
)


def _database_down(ctx: DrillContext) -> Plan:
    hop = DATABASE_HOP
    signals = [
        Signal(
            "The dice-roller answers 502",
            "the dice roller",
            database_fails_the_roll,
            HINT_DATABASE_STOPPED,
        ),
        Signal(
            "Database errors up",
            "Prometheus",
            lambda c: upstream_errors(c, hop),
            HINT_DIE_SERVICE_METRICS,
        ),
        Signal("pg_up falls to 0", "Prometheus", exporter_reports_down, HINT_EXPORTER),
        Signal(
            "Database unavailable logged",
            "Loki",
            lambda c: failed_lines(c, hop),
            HINT_DIE_SERVICE_LOGS,
        ),
        Signal(
            "A trace's die-service span failed",
            "Tempo",
            trace_of_database_failure,
            HINT_DIE_SERVICE_SPANS,
        ),
    ]
    back = _die_service_back(hop, HINT_DATABASE_STARTED)
    return Plan(signals, timing.outage_seconds(), back=back, back_give_up=timing.return_seconds())


DATABASE_DOWN = Drill(
    name="database-down",
    summary="PostgreSQL stops while the dice-roller rolls: 502s that name the database, "
    "the die-service's database errors, pg_up 0 and failed die-service spans; then it "
    "comes back",
    flags={},
    look=WhereToLook(
        panels=(
            "Database Errors by Reason",
            "PostgreSQL Up",
            "Pool Connections",
            "Database Unavailable",
            "PostgreSQL Server Log",
        ),
        logql=DATABASE_DOWN_LINES,
        traceql=f'{{ resource.service.name = "{DIE_SERVICE_HOP.callee}" && kind = server '
        "&& span.http.response.status_code = 503 }",
        dashboard=STAGE5_DASHBOARD,
    ),
    lesson=(
        "The database sits two hops from the rolls, and each hop tells it in its own words: "
        "the die-service answers 503, counts the lookups the database failed by reason, "
        'logs "Database unavailable" and marks its span with database.failure; the dice-roller '
        "turns that into a 502, an error of its upstream's answer (error_status), not an "
        "unreachable one. The die-service itself is up: its scrape, and the exporter's, "
        "still succeed; only pg_up says the database is gone. When it is back, nothing is "
        "restarted: the die-service's pool opens new connections at the next lookup."
    ),
    plan=_database_down,
    give_up_text=OUTAGE_WAIT,
    needs=("service", "prometheus", "loki", "tempo"),
    stops=POSTGRES,
    stage=5,
)


# ---------------------------------------------------------------- die-service-slow

DIE_SERVICE_SLOW_FLAGS = {DIE_SERVICE_FLAG: "slow"}
FLAG_WAIT = (
    f"{timing.outage_seconds():.0f} s, then {timing.return_seconds():.0f} s for the return "
    "once the flags are back (the scrapes and the trip to Loki)"
)
"""How long a drill that slows a dependency waits, in words, for --list."""
HINT_DIE_SERVICE_FLAGS = (
    "Rolls that answer 200 in time: is --flags-file (or DRILL_FLAGS_FILE) the file the "
    "die-service reads (its DIE_SERVICE_FLAGS_FILE)? Under compose, and for the native "
    "stack, that is stack/flags/flags.json; stages/stage3.yml mounts its folder. A "
    "dice-roller that asks no die-service (stage 1 or 2) cannot wait for one."
)
HINT_DIE_SERVICE_LATENCY = (
    "Alloy scrapes the die-service by its container's label sandbox.metrics.port "
    "(stages/stage3.yml) and remote-writes its http_request_duration_seconds; the "
    "die-service measures a lookup when it ends, 1.5 s after it began."
)
HINT_DIE_SERVICE_FLAG_LINES = (
    'The die-service\'s lines reach Loki through Alloy ({container_name="die-service"}); '
    "a lookup's line names the flags away from their default (feature_flags)."
)
HINT_SLOW_SPANS = (
    "Both services' spans reach Tempo through Alloy; the die-service's span ends 0.5 s "
    "after the dice-roller's gave up, and carries the flag's feature_flag.evaluation event."
)
HINT_FLAGS_BACK = (
    "The flags are back in the file: the die-service reads it twice a second. Rolls that "
    "still fail: is another drill, or an edit, holding a flag?"
)


def _die_service_slow(ctx: DrillContext) -> Plan:
    hop = DIE_SERVICE_SLOW_HOP
    signals = [
        Signal(
            "The dice-roller answers 504",
            "the dice roller",
            die_service_times_out,
            HINT_DIE_SERVICE_FLAGS,
        ),
        *_counted_and_logged(
            hop,
            ("Die-service timeouts up", HINT_DICE_ROLLER_METRICS),
            ("Die unavailable logged", HINT_DICE_ROLLER_LOGS),
        ),
        Signal(
            f"Lookups past {DIE_SERVICE_TIMEOUT:g} s",
            "Prometheus",
            lookups_slower_than_the_wait,
            HINT_DIE_SERVICE_LATENCY,
        ),
        Signal(
            "Slow lookups logged with the flag",
            "Loki",
            slow_lookups_logged,
            HINT_DIE_SERVICE_FLAG_LINES,
        ),
        Signal(
            "A die-service span outlasts the wait",
            "Tempo",
            trace_of_slow_lookup,
            HINT_SLOW_SPANS,
        ),
    ]
    return _slowed(signals, DIE_SERVICE_SLOW_FLAGS, hop)


def _counted_and_logged(
    hop: Hop, counted: tuple[str, str], logged: tuple[str, str]
) -> list[Signal]:
    """The caller's failed calls of `hop.reason`: counted in Prometheus, logged in Loki
    (each signal's name and hint)."""
    return [
        Signal(counted[0], "Prometheus", lambda c: upstream_errors(c, hop), counted[1]),
        Signal(logged[0], "Loki", lambda c: failed_lines(c, hop), logged[1]),
    ]


def _slowed(
    signals: list[Signal], flags: Mapping[str, str], hop: Hop, then: list[Step] | None = None
) -> Plan:
    """The plan of a drill that slows what `hop` calls by its flags: no alert, so as long
    as an outage's; then the flags go back and its return is seen as an outage's."""
    back = _die_service_back(hop, HINT_FLAGS_BACK)
    give_up, back_give_up = timing.outage_seconds(), timing.return_seconds()
    return Plan(signals, give_up, flags, then=then or [], back=back, back_give_up=back_give_up)


DIE_SERVICE_SLOW = Drill(
    name="die-service-slow",
    summary=f"the die-service waits {SLOW_LOOKUP_SECONDS:g} s before each lookup, past the "
    f"dice-roller's {DIE_SERVICE_TIMEOUT:g} s: 504s, timeouts, and spans that outlast the "
    "wait; then the flag goes back",
    flags=DIE_SERVICE_SLOW_FLAGS,
    look=WhereToLook(
        panels=(
            "Die-Service Failures by Reason",
            "Die-Service Lookup Duration",
            "Roll Duration p99 by Die",
            "Rolls by Die",
            "Logs of One Trace",
        ),
        logql=DIE_TIMEOUT_LINES,
        traceql=f'{{ resource.service.name = "{DIE_SERVICE_SLOW_HOP.callee}" && kind = server '
        f'&& event.feature_flag.key = "{DIE_SERVICE_FLAG}" }}',
        dashboard=STAGE3_DASHBOARD,
    ),
    lesson=(
        "A slow dependency is not a down one, and the caller's timeout decides what it "
        f"becomes: the die-service answers every lookup, {SLOW_LOOKUP_SECONDS:g} s late, "
        f"but the dice-roller stops waiting after {DIE_SERVICE_TIMEOUT:g} s and answers 504, "
        'counting a timeout and logging "Die unavailable". Both sides are true at once: the '
        "die-service's own metrics and lines say every lookup succeeded, slowly; the "
        "dice-roller's say every roll failed. In the trace the die-service's span runs on "
        "after its caller's has ended: work nobody waits for any more. Bound every wait, "
        "and read a dependency's latency against its callers' timeouts."
    ),
    plan=_die_service_slow,
    give_up_text=FLAG_WAIT,
    needs=("service", "prometheus", "loki", "tempo"),
    stage=3,
)


# ---------------------------------------------------------------- database-slow

DATABASE_SLOW_FLAGS = {DATABASE_FLAG: "slow"}
DATABASE_STUCK_FLAGS = {DATABASE_FLAG: "stuck"}
HINT_DATABASE_FLAGS = (
    "Lookups that do not change with the flag: is --flags-file (or DRILL_FLAGS_FILE) the "
    "file the die-service reads (its DIE_SERVICE_FLAGS_FILE)? Under compose, and for the "
    "native stack, that is stack/flags/flags.json. With its dice in memory (stage 3 or 4, "
    "no DIE_SERVICE_DATABASE_URL) the die-service makes no query to slow."
)
HINT_QUERY_METRICS = (
    "Alloy scrapes the die-service by its container's label (stages/stage3.yml) and "
    "remote-writes die_service_db_query_duration_seconds, exported from stage 5 "
    "(DIE_SERVICE_DATABASE_URL); it measures the queries that end."
)
HINT_QUERY_SPANS = (
    "The die-service's spans reach Tempo through Alloy; asyncpg's instrumentation makes "
    "each query a SELECT span under the lookup's, its statement in db.statement."
)


def _database_slow(ctx: DrillContext) -> Plan:
    hop = DATABASE_SLOW_HOP
    slow = [
        Signal("Query p99 rises", "Prometheus", query_p99_rises, HINT_QUERY_METRICS),
        Signal(
            "Slow lookups logged with the flag",
            "Loki",
            slow_queries_logged,
            HINT_DIE_SERVICE_LOGS,
        ),
        Signal("A SELECT waits in pg_sleep", "Tempo", trace_of_slow_query, HINT_QUERY_SPANS),
    ]
    stuck = [
        Signal(
            "The dice-roller answers 502",
            "the dice roller",
            database_times_out,
            HINT_DATABASE_FLAGS,
        ),
        *_counted_and_logged(
            hop,
            ("Database timeouts up", HINT_DIE_SERVICE_METRICS),
            ("Database unavailable logged", HINT_DIE_SERVICE_LOGS),
        ),
        Signal(
            "A SELECT cut at the bound",
            "Tempo",
            trace_of_cut_query,
            HINT_DIE_SERVICE_SPANS,
        ),
    ]
    step = Step(
        DATABASE_STUCK_FLAGS,
        stuck,
        timing.outage_seconds(),
        f"Now {DATABASE_FLAG}: stuck, {STUCK_QUERY_SECONDS:g} s, past the die-service's "
        f"{DATABASE_TIMEOUT:g} s bound:",
    )
    return _slowed(slow, DATABASE_SLOW_FLAGS, hop, [step])


DATABASE_SLOW = Drill(
    name="database-slow",
    summary=f"the lookup's query waits {SLOW_QUERY_SECONDS:g} s in PostgreSQL, then "
    f"{STUCK_QUERY_SECONDS:g} s, past the die-service's {DATABASE_TIMEOUT:g} s bound: "
    "slow queries, then timeouts, 502s and cut SELECT spans; then the flag goes back",
    flags=DATABASE_SLOW_FLAGS,
    look=WhereToLook(
        panels=(
            "Query Duration by Query",
            "Call Duration die-service → dice",
            "Database Errors by Reason",
            "Pool Connections",
            "Database Unavailable",
        ),
        logql=DATABASE_TIMEOUT_LINES,
        traceql=f'{{ resource.service.name = "{DIE_SERVICE_SLOW_HOP.callee}" && kind = server '
        f'&& span.database.failure = "timeout" }}',
        dashboard=STAGE5_DASHBOARD,
    ),
    lesson=(
        f"First the query waits {SLOW_QUERY_SECONDS:g} s, under the die-service's "
        f"{DATABASE_TIMEOUT:g} s bound: nothing fails, every roll is late, and only the "
        "latency shows it: the query's p99, and the SELECT span in pg_sleep. Then it waits "
        f"{STUCK_QUERY_SECONDS:g} s, past the bound: the die-service cuts each query at "
        f"{DATABASE_TIMEOUT:g} s and answers 503, reason timeout, which the dice-roller "
        "turns into a 502. The query's duration panel now goes quiet rather than up: a "
        "query cut short is never measured as one that ended, it is counted as an error. "
        "A bounded wait turns a stuck dependency into a prompt error; watch the errors "
        "beside the latency, or the worst of it looks like nothing."
    ),
    plan=_database_slow,
    give_up_text=f"{timing.outage_seconds():.0f} s for each step (slow, then stuck), then "
    f"{timing.return_seconds():.0f} s for the return once the flags are back",
    needs=("service", "prometheus", "loki", "tempo"),
    stage=5,
)


DRILLS: dict[str, Drill] = {
    drill.name: drill
    for drill in (
        ERROR_SPIKE,
        LATENCY,
        LOADED_DIE,
        UPSTREAM_DOWN,
        DIE_SERVICE_DOWN,
        DATABASE_DOWN,
        DIE_SERVICE_SLOW,
        DATABASE_SLOW,
        RECOVERY,
    )
}

"""Probes of the service's own signals: metrics in Prometheus, lines in Loki, spans in
Tempo, and the traffic generator's verdict on the values it rolled.

Each probe asks one component's HTTP API about what happened since the drill
switched its flags, and returns a `Reading`: whether the signal responded, with the
numbers that say so. An API that is down or answers nonsense raises `ApiError` or
`Failed` (from `checks`); the runner keeps the message and asks again next round.

Statistics are judged with a margin, so a probe that says "responded" is not luck:
an error ratio must pass a threshold halfway between the shipped and the drilled
failure rates, and a skewed face must be four standard errors above a fair die's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from traffic_gen.report import UNLIKELY_P_VALUE
from traffic_gen.stats import DIE_FACES

from verify.context import JOB
from verify.logs import SELECTOR, json_object, lines_of
from verify.model import Failed
from verify.otlp_json import spans_of
from verify.tempo import tempo_trace

from .context import DrillContext, Reading, not_yet, seen
from .timing import OBJECTIVE_SERIES

__all__ = [
    "MIN_ROLLS",
    "SERVICE_LOGS",
    "Span",
    "error_ratio",
    "fair_rolls_succeed",
    "flag_event",
    "flag_variant",
    "flagged_lines",
    "flagged_spans",
    "generator_flags_skew",
    "latency_objective",
    "p99_above",
    "p99_since_start",
    "prometheus_vector",
    "sample_value",
    "since",
    "since_start",
    "value_skew",
]

SERVICE_LOGS = SELECTOR
"""The service's log stream in Loki, as the dashboard selects it."""
MIN_ROLLS = 20
"""Rolls of a die needed before its error ratio is judged."""
SKEW_MIN_ROLLS = 30
"""Successful rolls of a die needed before its value histogram is judged."""
SKEW_SIGMAS = 4.0
"""How many standard errors above 1/6 the top face's share must be to call it skewed."""
TRACES_PER_ROUND = 5
"""Traces fetched by id per probe round: enough to find one, without hammering Tempo."""

Span = dict[str, Any]


def prometheus_vector(ctx: DrillContext, expr: str) -> list[dict[str, Any]]:
    """The instant vector `expr` evaluates to now."""
    return ctx.verify.prometheus.query(expr)


def sample_value(sample: dict[str, Any]) -> float:
    try:
        return float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise Failed(f"a sample without a value: {sample!r:.120}") from None


def _by_die(samples: list[dict[str, Any]]) -> dict[str, float]:
    return {
        str(sample.get("metric", {}).get("die_type")): sample_value(sample)
        for sample in samples
        if isinstance(sample, dict)
    }


def since_start(ctx: DrillContext, selector: str, by: str) -> str:
    """PromQL for how much the counters of `selector` grew since the drill began, summed
    by `by`: now minus at the start (the `@` modifier), or all of it for a series born
    since. Rolls made before the drill, even a second before, never count."""
    return since(ctx.started, selector, by)


def since(moment: float, selector: str, by: str) -> str:
    """PromQL for how much the counters of `selector` grew since `moment` (Unix seconds),
    summed by `by` (see `since_start`)."""
    at = f"{moment:.3f}"
    now, then = f"sum by ({by}) ({selector})", f"sum by ({by}) ({selector} @ {at})"
    return f"({now} - {then}) or {now}"


def error_ratio(ctx: DrillContext, thresholds: Mapping[str, float]) -> Reading:
    """Share of each die's rolls that failed since the drill began, against its threshold."""
    errors = _by_die(
        prometheus_vector(
            ctx, since_start(ctx, f'dice_rolls_total{{job="{JOB}", result="error"}}', "die_type")
        )
    )
    totals = _by_die(
        prometheus_vector(ctx, since_start(ctx, f'dice_rolls_total{{job="{JOB}"}}', "die_type"))
    )
    parts, responded = [], True
    for die, threshold in thresholds.items():
        total, failed = totals.get(die, 0.0), errors.get(die, 0.0)
        if total < MIN_ROLLS:
            parts.append(f"{die}: {total:.0f} rolls so far")
            responded = False
            continue
        ratio = failed / total
        parts.append(f"{die} {ratio:.0%} of {total:.0f} rolls failed")
        if ratio < threshold:
            parts[-1] += f" (waiting for {threshold:.0%})"
            responded = False
    return Reading(responded, ", ".join(parts))


def latency_objective(ctx: DrillContext, fallback: float) -> float:
    """The p99 objective of /roll as Prometheus records it (the latency rules write it
    once, as a series), or `fallback` when it has no such series."""
    samples = prometheus_vector(ctx, OBJECTIVE_SERIES)
    return sample_value(samples[0]) if samples else fallback


def p99_above(ctx: DrillContext, fallback_objective: float) -> Reading:
    """p99 of /roll since the drill began (the "Request Duration" panel's quantile),
    against the latency objective."""
    objective_seconds = latency_objective(ctx, fallback_objective)
    p99 = p99_since_start(
        ctx, f'http_request_duration_seconds_bucket{{job="{JOB}", handler="/roll"}}'
    )
    if math.isnan(p99):
        return not_yet("no /roll request measured since the drill began")
    detail = f"p99 {p99:.2f} s (objective {objective_seconds:g} s)"
    return Reading(p99 > objective_seconds, detail)


def p99_since_start(ctx: DrillContext, buckets: str) -> float:
    """The p99 of the histogram whose `_bucket` series `buckets` selects, over what it
    measured since the drill began (NaN when it measured nothing)."""
    grown = since_start(ctx, buckets, "le")
    samples = prometheus_vector(ctx, f"histogram_quantile(0.99, {grown})")
    return sample_value(samples[0]) if samples else math.nan


def value_skew(ctx: DrillContext) -> Reading:
    """Whether each die's top face (6 fair, 7 risky) shows far more than a sixth of the
    rolls since the drill began, from the `dice_roll_value` buckets."""
    expr = since_start(ctx, f'dice_roll_value_bucket{{job="{JOB}"}}', "die_type, le")
    buckets: dict[str, dict[float, float]] = {}
    for sample in prometheus_vector(ctx, expr):
        labels = sample.get("metric", {})
        try:
            bound = float(labels.get("le", "nan"))
        except ValueError:
            continue
        buckets.setdefault(str(labels.get("die_type")), {})[bound] = sample_value(sample)
    parts, responded = [], True
    for die, faces in DIE_FACES.items():
        counts = buckets.get(die, {})
        total = counts.get(math.inf, 0.0)
        top = faces[-1]
        if total < SKEW_MIN_ROLLS:
            parts.append(f"{die}: {total:.0f} rolls so far")
            responded = False
            continue
        top_count = counts.get(float(top), 0.0) - counts.get(float(top - 1), 0.0)
        share, fair_share = top_count / total, 1 / len(faces)
        sigmas = (share - fair_share) / math.sqrt(fair_share * (1 - fair_share) / total)
        parts.append(f"{die}: {top} on {share:.0%} of {total:.0f} rolls")
        if sigmas < SKEW_SIGMAS:
            parts[-1] += " (a fair die: about 17%)"
            responded = False
    return Reading(responded, ", ".join(parts))


def fair_rolls_succeed(ctx: DrillContext, seconds: int = 30) -> Reading:
    """No fair roll failed in the last `seconds`, and some succeeded: the fair die (whose
    spec is to never fail) is itself again. Judged once that window lies wholly after
    the drill's start."""
    selector = f'dice_rolls_total{{job="{JOB}", die_type="fair"}}'
    rows = prometheus_vector(ctx, f"sum by (result) (increase({selector}[{seconds}s]))")
    counts = {str(row.get("metric", {}).get("result")): sample_value(row) for row in rows}
    succeeded, failed = counts.get("success", 0.0), counts.get("error", 0.0)
    if ctx.elapsed() < seconds:
        return not_yet(f"the last {seconds} s still reach back before the drill began")
    if succeeded >= 1 and failed < 0.5:
        return seen(f"no fair roll failed in the last {seconds} s ({succeeded:.0f} succeeded)")
    return not_yet(
        f"fair rolls in the last {seconds} s: {succeeded:.0f} succeeded, {failed:.0f} failed"
    )


def flagged_lines(ctx: DrillContext, key: str, queries: Mapping[str, str]) -> Reading:
    """Whether each LogQL query of `queries` found a line since the drill began.

    The trace ids of the lines found are kept in `ctx.found[key][label]`, for the
    probe that follows them into Tempo.
    """
    found: dict[str, list[str]] = ctx.found.setdefault(key, {})
    parts, responded = [], True
    for label, query in queries.items():
        lines = lines_of(ctx.verify.loki.streams(query, ctx.started, time.time() + 1, 50))
        records = [record for line in lines if (record := json_object(line)) is not None]
        found[label] = [r["trace_id"] for r in records if isinstance(r.get("trace_id"), str)]
        if lines:
            parts.append(f"{label}: {len(lines)}{'+' if len(lines) == 50 else ''} line(s)")
        else:
            parts.append(f"{label}: no line yet")
            responded = False
    return Reading(responded, ", ".join(parts))


def flag_event(span: Span, flag: str) -> dict[str, Any] | None:
    """The span's feature-flag evaluation event for `flag` (OpenTelemetry's feature-flag
    conventions: an event named `feature_flag...`, attribute `feature_flag.key`)."""
    for event in span.get("events", []):
        if (
            str(event.get("name", "")).startswith("feature_flag")
            and event.get("attributes", {}).get("feature_flag.key") == flag
        ):
            event_dict: dict[str, Any] = event
            return event_dict
    return None


def flag_variant(event: dict[str, Any]) -> str:
    """The variant a flag evaluation event names."""
    attributes = event.get("attributes", {})
    return str(
        attributes.get("feature_flag.result.variant") or attributes.get("feature_flag.variant")
    )


def flagged_spans(
    ctx: DrillContext,
    key: str,
    flags: Mapping[str, str],
    wanted: Callable[[Span], bool],
    what: str,
) -> Reading:
    """Whether, for each label of `flags`, a trace found by `flagged_lines(key)` has a span
    that is `wanted` and carries the evaluation event of that label's flag.

    Traces are fetched by id (Tempo's `/api/v2/traces/ID`), which sees a trace about a
    second after its request; TraceQL search leaves out the newest 30 s.
    """
    lines_found: dict[str, list[str]] = ctx.found.get(key, {})
    checked: set[str] = ctx.found.setdefault(f"{key}:checked", set())
    matched: dict[str, str] = ctx.found.setdefault(f"{key}:matched", {})
    for label, flag in flags.items():
        if label in matched:
            continue
        pending = [i for i in lines_found.get(label, []) if i not in checked][:TRACES_PER_ROUND]
        for trace_id in pending:
            trace = tempo_trace(ctx.verify, trace_id)
            if trace is None:
                continue  # not in Tempo yet: ask again next round
            checked.add(trace_id)
            for span in spans_of(trace):
                event = flag_event(span, flag)
                if event is not None and wanted(span):
                    matched[label] = (
                        f"{label}: trace {trace_id}, span {span['name']!r} "
                        f"{span['seconds']:.2f} s, {flag}={flag_variant(event)}"
                    )
                    break
            if label in matched:
                break
    if all(label in matched for label in flags):
        return seen("; ".join(matched[label] for label in flags))
    missing = [label for label in flags if label not in matched]
    return not_yet(
        f"no {what} carrying the flag yet for {', '.join(missing)} "
        f"({len(checked)} trace(s) of flagged lines read)"
    )


def generator_flags_skew(ctx: DrillContext) -> Reading:
    """Whether a round of the traffic generator found each die's values unlikely from a
    uniform die (its chi-square test, as its summary prints it)."""
    rounds = ctx.traffic.finished_rounds() if ctx.traffic is not None else []
    verdicts: dict[str, str] = {}
    last: dict[str, str] = {}
    for finished in rounds:
        dice = (finished.summary or {}).get("dice") or {}
        for die in DIE_FACES:
            chi = (dice.get(die) or {}).get("chi_square")
            if not isinstance(chi, dict):
                continue
            text = f"{die}: chi² {chi['statistic']:.1f}, p {chi['p_value']:.2g}"
            last[die] = text if chi.get("enough_rolls") else f"{die}: too few rolls to judge"
            if chi.get("enough_rolls") and chi["p_value"] < UNLIKELY_P_VALUE:
                verdicts.setdefault(die, text)
    if rounds and rounds[-1].summary is None:
        return not_yet(
            f"traffic-gen ended with exit code {rounds[-1].exit_code}: {rounds[-1].last_words}"
        )
    if all(die in verdicts for die in DIE_FACES):
        return seen(", ".join(verdicts[die] for die in DIE_FACES) + ": unlikely from a uniform die")
    if not rounds:
        return not_yet("its first round has not ended yet")
    return not_yet(", ".join(last.get(die, f"{die}: no rolls") for die in DIE_FACES))

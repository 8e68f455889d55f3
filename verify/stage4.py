"""Stage 4, Async Rolls: one request rolls several dice at once, and the trace shows
them side by side.

The batch is the checks' own: `GET /roll-async?die=d4&times=5` on the dice-roller. Its
five rolls run concurrently (asyncio.gather), each in a child span of the request's
server span, so in Tempo their spans overlap; Prometheus has the batch's metrics; and
a batch past the limit is refused, saying the limit.
"""

from __future__ import annotations

import time
from typing import Any

from stackclient import decode_json

from .context import JOB, SERVICE_NAME, Context, FreshRequest, poll
from .model import Failed, Run
from .otlp_json import spans_of
from .service import parse_traceresponse
from .stage3 import DIE, HINT_STAGE3
from .tempo import tempo_trace

__all__ = ["TIMES", "overlapping", "run_stage4_checks"]

GROUP = "Stage 4: Async Rolls"
TIMES = 5
MAX_BATCH = 20
"""The dice-roller's limit (dice-roller/src/dice_roller/app.py, MAX_BATCH)."""
PATH = f"/roll-async?die={DIE}&times={TIMES}"

HINT_BATCH = (
    "/roll-async exists from stage 3 on, when the dice-roller has a DICE_DIE_SERVICE_URL. "
    + HINT_STAGE3
)
HINT_SPANS = (
    "Each roll of a batch opens a span of its own (`roll_one` in "
    "dice-roller/src/dice_roller/app.py) inside the request's; asyncio.gather runs them "
    "at once, so they overlap. One after the other means the rolls were awaited in turn."
)
HINT_METRICS = (
    f'Prometheus scrapes the dice-roller (job="{JOB}"); dice_batch_size exists at stage 3 '
    "and later only (dice-roller/src/dice_roller/metrics.py)."
)


def run_stage4_checks(ctx: Context, run: Run) -> None:
    run.check(
        GROUP,
        f"The dice-roller rolls {TIMES} dice at once: GET {PATH}",
        HINT_BATCH,
        lambda: _batch(ctx),
    )
    with run.relying_on(ctx.service, ctx.tempo.component):
        run.check(
            GROUP,
            "The batch's rolls are child spans that overlap in time",
            HINT_SPANS,
            lambda: _overlap(ctx),
        )
    run.check(
        GROUP,
        f'Prometheus has the batch size: dice_batch_size_count{{job="{JOB}"}} > 0',
        HINT_METRICS,
        lambda: _metrics(ctx),
    )
    run.check(
        GROUP, f"A batch past the limit is refused: times={MAX_BATCH + 1} answers 422",
        HINT_BATCH, lambda: _refused(ctx),
    )  # fmt: skip


def _batch(ctx: Context) -> str:
    started, clock = time.time(), time.perf_counter()
    params = {"die": DIE, "times": str(TIMES)}
    response = ctx.api.request(ctx.service, "GET", "/roll-async", params=params, ok=(200, 404))
    seconds = time.perf_counter() - clock
    if response.status_code == 404:
        raise Failed("the dice-roller has no /roll-async: it runs without a die-service")
    body = decode_json(ctx.service, PATH, response)
    rolls = body.get("rolls") if isinstance(body, dict) else None
    if not isinstance(rolls, list) or len(rolls) != TIMES or not all(1 <= r <= 4 for r in rolls):
        raise Failed(f"expected {{'rolls': [{TIMES} values 1..4], 'failed': 0}}, got {body!r:.120}")
    ids = parse_traceresponse(response.headers.get("traceresponse"))
    if ids is None:
        raise Failed("the answer names no trace (traceresponse header)")
    ctx.facts["stage4_batch"] = FreshRequest(PATH, 200, *ids, started, seconds)
    return f"rolled {rolls} in {seconds:.2f} s, trace {ids[0]}"


def overlapping(trace: Any, server_span_id: str) -> tuple[list[dict[str, Any]], int]:
    """The roll spans under the server span, and how many pairs of them overlap."""
    rolls = [span for span in spans_of(trace) if span["parent_id"] == server_span_id]
    pairs = sum(
        1
        for i, one in enumerate(rolls)
        for other in rolls[i + 1 :]
        if one["start"] < other["end"] and other["start"] < one["end"]
    )
    return rolls, pairs


def _overlap(ctx: Context) -> str:
    batch = ctx.facts.get("stage4_batch")
    if not isinstance(batch, FreshRequest):
        raise Failed("no batch to follow: the batch above failed")

    def attempt() -> Any:
        trace = tempo_trace(ctx, batch.trace_id)
        rolls, _ = overlapping(trace, batch.span_id) if trace else ([], 0)
        return trace if len([r for r in rolls if r["name"] == f"roll {DIE}"]) >= TIMES else None

    trace = poll(ctx, attempt)
    if trace is None:
        raise Failed(
            f"trace {batch.trace_id} did not show {TIMES} `roll {DIE}` spans of {SERVICE_NAME} "
            "under its server span within the wait"
        )
    rolls, pairs = overlapping(trace, batch.span_id)
    if pairs == 0:
        raise Failed(f"the {len(rolls)} roll spans ran one after the other: none overlap")
    return f"{len(rolls)} roll spans, {pairs} overlapping pair(s)"


def _metrics(ctx: Context) -> str:
    query = f'sum(dice_batch_size_count{{job="{JOB}"}})'

    def attempt() -> float | None:
        result = ctx.prometheus.query(query)
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value > 0 else None

    value = poll(ctx, attempt)
    if value is None:
        raise Failed(f"{query} stayed empty or 0 within the wait")
    return f"{value:g} batch(es) counted"


def _refused(ctx: Context) -> str:
    params = {"die": DIE, "times": str(MAX_BATCH + 1)}
    response = ctx.api.request(ctx.service, "GET", "/roll-async", params=params, ok=(200, 422))
    if response.status_code != 422:
        raise Failed(f"a batch of {MAX_BATCH + 1} was rolled: {response.text:.120}")
    detail = decode_json(ctx.service, "/roll-async", response).get("detail", "")
    if str(MAX_BATCH) not in str(detail):
        raise Failed(f"the 422 does not state the limit {MAX_BATCH}: {detail!r:.120}")
    return f"422: {detail}"

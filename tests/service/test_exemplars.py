"""Exemplars name a real trace or nothing: never the all-zero id of "no span".

An observation made outside any span, or while the current span context is invalid
(OpenTelemetry's `INVALID_SPAN_CONTEXT`, all zeros), must carry no exemplar: a
`trace_id` of 32 zeros would send a click on a latency graph to a trace that does
not exist. Inside the running service every observation happens in a request's span,
so these tests observe the families directly, as the roll handler does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dice_roller.dice import DieType
from dice_roller.metrics import DiceMetrics
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from sandbox_telemetry import current_exemplar

from tests.support.metrics import OPENMETRICS

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
VALID = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))


@contextmanager
def current_span_context(context: SpanContext) -> Iterator[None]:
    """Make `context` the current span context, as a request's span would be."""
    with trace.use_span(NonRecordingSpan(context)):
        yield


def roll_exemplars(registry: CollectorRegistry) -> list[dict[str, str]]:
    """The exemplar labels of every dice_roll* sample, as a scraper would read them."""
    encoder, _ = choose_encoder(OPENMETRICS)
    text = encoder(registry).decode()
    return [
        dict(sample.exemplar.labels)
        for family in text_string_to_metric_families(text)
        if family.name.startswith("dice_roll")
        for sample in family.samples
        if sample.exemplar is not None
    ]


def test_no_exemplar_outside_a_span() -> None:
    assert not trace.get_current_span().get_span_context().is_valid
    assert current_exemplar() is None


def test_no_exemplar_with_an_invalid_span_context() -> None:
    with current_span_context(INVALID_SPAN_CONTEXT):
        assert current_exemplar() is None


def test_a_valid_span_gives_its_trace_id() -> None:
    with current_span_context(VALID):
        assert current_exemplar() == {"trace_id": f"{TRACE_ID:032x}"}


def observe_roll(metrics: DiceMetrics, die: DieType, value: int) -> None:
    """What the roll handler records of a roll, with the exemplar it takes."""
    exemplar = current_exemplar()
    metrics.rolls.labels(die, "success").inc(exemplar=exemplar)
    metrics.roll_duration.labels(die).observe(0.1, exemplar=exemplar)
    metrics.roll_value.labels(die).observe(value, exemplar=exemplar)


def test_rolls_observed_without_a_valid_span_store_no_exemplar() -> None:
    registry = CollectorRegistry()
    metrics = DiceMetrics(registry)
    observe_roll(metrics, DieType.FAIR, 3)
    with current_span_context(INVALID_SPAN_CONTEXT):
        observe_roll(metrics, DieType.RISKY, 4)
    assert roll_exemplars(registry) == []

    with current_span_context(VALID):
        observe_roll(metrics, DieType.FAIR, 4)
    exemplars = roll_exemplars(registry)
    assert exemplars and all(e == {"trace_id": f"{TRACE_ID:032x}"} for e in exemplars)

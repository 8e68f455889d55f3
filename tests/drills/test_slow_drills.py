"""die-service-slow and database-slow without a stack: their catalogue entries, the
numbers they judge by (checked against the files that set them), the traces they look
for, their probes against stand-in answers of the dice-roller, Prometheus, Loki and
Tempo (an in-process transport), and the runner's steps: flags switched further, then
put back while the traffic runs, before the return is waited for.

Both drills run end to end against a stage-5 native stack in tests/nativestack/live/."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from dice_roller.settings import Settings as DiceRollerSettings
from die_service.settings import Settings as DieServiceSettings

from drills.catalogue import DRILLS, STAGE3_DASHBOARD, STAGE5_DASHBOARD, Drill, Plan, Signal, Step
from drills.context import DrillContext, Reading, not_yet, seen
from drills.flagfile import read_flag_file
from drills.outage import CommandControl
from drills.probes import Span
from drills.runner import Printer, _run, describe
from drills.settings import DrillSettings
from drills.slow_probes import (
    DATABASE_SLOW_HOP,
    DATABASE_TIMEOUT,
    DATABASE_TIMEOUT_LINES,
    DIE_SERVICE_SLOW_HOP,
    DIE_SERVICE_TIMEOUT,
    DIE_TIMEOUT_LINES,
    SLOW_LOOKUP_SECONDS,
    SLOW_QUERY_SECONDS,
    STUCK_QUERY_SECONDS,
    database_times_out,
    die_service_times_out,
    gave_up_on_a_slow_lookup,
    lookups_slower_than_the_wait,
    query_cut_at_the_bound,
    query_p99_rises,
    slept_in_the_query,
    trace_of_slow_lookup,
)
from drills.upstream_probes import failed_lines, upstream_errors
from stackclient import Api
from tests.drills.test_database_down import _ctx, _loki, _prometheus, _roll, _tempo
from tests.support.drills import SHIPPED_FLAGS, copy_flags

TRACE_ID = "d2cb9a033611c9b62ad23078b5b1fe9a"
"""The trace id `_roll` answers with."""
LATE = "The die-service did not answer within 1 s."
"""The dice-roller's 504, as a stage-5 native stack answered it with the die-service slow."""
CUT = "The die-service answered 503: The database did not answer within 0.4 s."
"""Its 502, with the database stuck."""


# ---------------------------------------------------------------- the catalogue entries


def test_die_service_slow_flips_the_die_service_s_flag_at_stage_3_and_stops_nothing() -> None:
    drill = DRILLS["die-service-slow"]
    assert (drill.flags, drill.stage, drill.stops, drill.traffic) == (
        {"die-service-latency-seconds": "slow"},
        3,
        None,
        "dice-roller",
    )
    assert drill.look.dashboard == STAGE3_DASHBOARD and drill.look.logql == DIE_TIMEOUT_LINES
    assert "alertmanager" not in drill.needs and "frontend" not in drill.needs
    assert drill.undone() == "puts the flags back"


def test_database_slow_flips_the_database_flag_at_stage_5_slow_then_stuck() -> None:
    drill = DRILLS["database-slow"]
    assert (drill.flags, drill.stage, drill.stops) == (
        {"database-latency-seconds": "slow"},
        5,
        None,
    )
    assert drill.look.dashboard == STAGE5_DASHBOARD and drill.look.logql == DATABASE_TIMEOUT_LINES
    assert drill.look.panels[0] == "Query Duration by Query"
    plan = drill.plan(_ctx({}))
    assert [step.flags for step in plan.then] == [{"database-latency-seconds": "stuck"}]


def test_the_numbers_they_judge_by_are_the_flag_file_s_and_the_services_defaults() -> None:
    shipped = read_flag_file(SHIPPED_FLAGS)
    assert shipped.variants("die-service-latency-seconds")["slow"] == SLOW_LOOKUP_SECONDS
    variants = shipped.variants("database-latency-seconds")
    assert (variants["slow"], variants["stuck"]) == (SLOW_QUERY_SECONDS, STUCK_QUERY_SECONDS)
    roller = DiceRollerSettings.model_fields["die_service_timeout_seconds"].default
    database = DieServiceSettings.model_fields["database_timeout_seconds"].default
    assert (roller, database) == (DIE_SERVICE_TIMEOUT, DATABASE_TIMEOUT)
    # What each drill is about: past the caller's wait, or under it then past it.
    assert SLOW_LOOKUP_SECONDS > DIE_SERVICE_TIMEOUT
    assert SLOW_QUERY_SECONDS < DATABASE_TIMEOUT < STUCK_QUERY_SECONDS


def test_their_plans_wait_for_the_slowness_then_the_return_once_the_flags_are_back() -> None:
    plan = DRILLS["die-service-slow"].plan(_ctx({}))
    assert [s.name for s in plan.signals] == [
        "The dice-roller answers 504",
        "Die-service timeouts up",
        "Die unavailable logged",
        "Lookups past 1 s",
        "Slow lookups logged with the flag",
        "A die-service span outlasts the wait",
    ]
    assert plan.flags == {"die-service-latency-seconds": "slow"} and plan.then == []
    assert [s.name for s in plan.back] == ["The die-service answers again", "Rolls succeed again"]

    plan = DRILLS["database-slow"].plan(_ctx({}))
    assert [s.name for s in plan.signals] == [
        "Query p99 rises",
        "Slow lookups logged with the flag",
        "A SELECT waits in pg_sleep",
    ]
    assert [s.name for s in plan.then[0].signals] == [
        "The dice-roller answers 502",
        "Database timeouts up",
        "Database unavailable logged",
        "A SELECT cut at the bound",
    ]
    assert [s.name for s in plan.back] == ["The die-service answers again", "Rolls succeed again"]
    assert plan.give_up > 0 and plan.then[0].give_up > 0 and plan.back_give_up > 0


# ---------------------------------------------------------------- the traces


def _span(
    service: str,
    kind: str,
    name: str,
    seconds: float,
    *,
    span_id: str,
    parent_id: str = "",
    error: bool = False,
    attributes: dict[str, Any] | None = None,
    flag: tuple[str, str] | None = None,
) -> Span:
    events = []
    if flag is not None:
        attributes_of_event = {"feature_flag.key": flag[0], "feature_flag.result.variant": flag[1]}
        events.append({"name": "feature_flag.evaluation", "attributes": attributes_of_event})
    return {
        "service": service,
        "kind": kind,
        "name": name,
        "span_id": span_id,
        "parent_id": parent_id,
        "seconds": seconds,
        "status": "STATUS_CODE_ERROR" if error else "STATUS_CODE_UNSET",
        "attributes": attributes or {},
        "events": events,
    }


SERVER, CLIENT = "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"
ROLL = _span(
    "dice-roller",
    SERVER,
    "GET /roll",
    1.01,
    span_id="1" * 16,
    error=True,
    attributes={"upstream.name": "die-service", "upstream.failure": "timeout"},
)
CALL = _span("dice-roller", CLIENT, "GET", 1.0, span_id="2" * 16, parent_id="1" * 16, error=True)
LOOKUP = _span(
    "die-service",
    SERVER,
    "GET /dice/{name}",
    1.5,
    span_id="3" * 16,
    parent_id="2" * 16,
    flag=("die-service-latency-seconds", "slow"),
)


def test_a_roll_gave_up_on_a_slow_lookup_when_the_die_service_s_span_outlasts_the_call() -> None:
    found = gave_up_on_a_slow_lookup([ROLL, CALL, LOOKUP])
    assert found is not None
    assert "'GET /roll' ERROR, upstream.failure=timeout, its call cut after 1.00 s" in found
    assert "'GET /dice/{name}' 1.50 s, die-service-latency-seconds=slow" in found


def test_a_trace_that_is_not_a_slow_lookup_given_up_on_is_not_it() -> None:
    quick = {**LOOKUP, "seconds": 0.9}
    no_flag = {**LOOKUP, "events": []}
    unreachable = {**ROLL, "attributes": {"upstream.failure": "unreachable"}}
    answered = {**CALL, "status": "STATUS_CODE_UNSET"}
    for spans in (
        [ROLL, CALL],  # the die-service's span is not in yet
        [ROLL, CALL, quick],
        [ROLL, CALL, no_flag],
        [unreachable, CALL, LOOKUP],
        [ROLL, answered, LOOKUP],
        [ROLL, LOOKUP],  # no call under the roll
    ):
        assert gave_up_on_a_slow_lookup(spans) is None, spans


STATEMENT = "SELECT name, faces FROM pg_sleep($2), dice WHERE name = $1"
FOUND = _span(
    "die-service",
    SERVER,
    "GET /dice/{name}",
    0.31,
    span_id="4" * 16,
    flag=("database-latency-seconds", "slow"),
)
SELECT = _span(
    "die-service",
    CLIENT,
    "SELECT",
    0.3,
    span_id="5" * 16,
    parent_id="4" * 16,
    attributes={"db.statement": STATEMENT},
)
FAILED = _span(
    "die-service",
    SERVER,
    "GET /dice/{name}",
    0.41,
    span_id="4" * 16,
    error=True,
    attributes={"http.response.status_code": 503, "database.failure": "timeout"},
    flag=("database-latency-seconds", "stuck"),
)
CUT_SELECT = {**SELECT, "seconds": 0.4, "status": "STATUS_CODE_ERROR"}


def test_a_slowed_query_is_a_select_that_slept_and_succeeded_under_the_flagged_lookup() -> None:
    found = slept_in_the_query([FOUND, SELECT])
    assert found is not None
    assert "'GET /dice/{name}' 0.31 s, database-latency-seconds=slow" in found
    assert f"its 'SELECT' 0.30 s: {STATEMENT}" in found
    plain = {**SELECT, "attributes": {"db.statement": "SELECT name FROM dice"}}
    for spans in (
        [FOUND],
        [FOUND, plain],
        [FOUND, {**SELECT, "seconds": 0.01}],
        [{**FOUND, "events": []}, SELECT],
        [FOUND, CUT_SELECT],
    ):
        assert slept_in_the_query(spans) is None, spans


def test_a_stuck_query_is_a_select_cut_at_the_bound_under_a_503_of_reason_timeout() -> None:
    found = query_cut_at_the_bound([FAILED, CUT_SELECT])
    assert found is not None
    assert "HTTP 503, database.failure=timeout" in found
    assert "its 'SELECT' ERROR after 0.40 s (database-latency-seconds=stuck" in found
    unreachable = {**FAILED["attributes"], "database.failure": "unreachable"}
    for spans in (
        [FAILED, SELECT],  # the query ended: not cut
        [FAILED, {**CUT_SELECT, "seconds": 2.0}],  # it waited it all
        [{**FAILED, "attributes": unreachable}, CUT_SELECT],  # database-down's
        [FOUND, CUT_SELECT],  # the lookup did not fail
    ):
        assert query_cut_at_the_bound(spans) is None, spans


def test_a_trace_is_judged_only_once_the_die_service_s_span_is_in_it() -> None:
    """The die-service's span ends half a second after the dice-roller's, and comes in
    a batch of its own: a trace without it is asked for again, not written off."""
    ctx = _ctx({"/api/v2/traces/": _tempo([ROLL, CALL])})
    ctx.found["die-service-slow:rolled"] = [TRACE_ID]
    reading = trace_of_slow_lookup(ctx)
    assert not reading.responded
    assert reading.detail.endswith("(0 of 1 read)")
    # In full, it is read (the stand-in drops the times and events: not the one wanted).
    ctx = _ctx({"/api/v2/traces/": _tempo([ROLL, CALL, LOOKUP])})
    ctx.found["die-service-slow:rolled"] = [TRACE_ID]
    assert trace_of_slow_lookup(ctx).detail.endswith("(1 of 1 read)")


# ---------------------------------------------------------------- the probes


def test_a_504_saying_the_die_service_did_not_answer_in_time_is_the_slowness() -> None:
    ctx = _ctx({"/roll": _roll(504, {"detail": LATE})})
    reading = die_service_times_out(ctx)
    assert reading.responded, reading.detail
    assert reading.detail.startswith("HTTP 504 in ") and LATE in reading.detail
    assert ctx.found["die-service-slow:rolled"] == [TRACE_ID]

    unreachable = {"detail": "The die-service is unreachable at http://die-service:8000."}
    proxy = {"detail": "Gateway Timeout"}  # a 504 of something else than the dice-roller
    for status, body in (
        (200, {"roll": 3}),
        (503, unreachable),
        (502, {"detail": CUT}),
        (504, proxy),
    ):
        ctx = _ctx({"/roll": _roll(status, body)})
        reading = die_service_times_out(ctx)
        assert not reading.responded and f"HTTP {status}" in reading.detail
        assert "is die-service-latency-seconds slow in the flag file" in reading.detail
        assert "die-service-slow:rolled" not in ctx.found


def test_a_502_quoting_the_database_s_timeout_is_the_database_stuck() -> None:
    ctx = _ctx({"/roll": _roll(502, {"detail": CUT})})
    reading = database_times_out(ctx)
    assert reading.responded, reading.detail
    assert ctx.found["database-slow:rolled"] == [TRACE_ID]
    down = "The die-service answered 503: The database cannot be reached (OSError)."
    for status, body in ((200, {"roll": 3}), (502, {"detail": down}), (504, {"detail": LATE})):
        reading = database_times_out(_ctx({"/roll": _roll(status, body)}))
        assert not reading.responded
        assert "is database-latency-seconds stuck in the flag file" in reading.detail


Rows = dict[str, list[tuple[dict[str, str], float]]]


def test_timeouts_are_counted_by_reason_timeout_not_unreachable() -> None:
    def rows(errors: str, reason: str, count: float) -> Rows:
        answers = [({"status": "5xx"}, 12.0), ({"status": "2xx"}, 3.0)]
        return {errors: [({"reason": reason}, count)], "http_requests_total": answers}

    for hop, errors in (
        (DIE_SERVICE_SLOW_HOP, "dice_die_service_errors_total"),
        (DATABASE_SLOW_HOP, "die_service_db_errors_total"),
    ):
        ctx = _ctx({"/api/v1/query": _prometheus(rows(errors, "timeout", 12))})
        reading = upstream_errors(ctx, hop)
        assert reading.responded, reading.detail
        assert reading.detail.startswith(f"12 calls to the {hop.callee} timeout; 12 of 15")
        ctx = _ctx({"/api/v1/query": _prometheus(rows(errors, "unreachable", 50))})
        assert not upstream_errors(ctx, hop).responded


def test_lookups_past_the_wait_are_the_die_service_s_p99_over_the_dice_roller_s_timeout() -> None:
    def reading(p99: float | None) -> Reading:
        rows: Rows = {} if p99 is None else {'job="die-service"': [({}, p99)]}
        return lookups_slower_than_the_wait(_ctx({"/api/v1/query": _prometheus(rows)}))

    slow = reading(2.45)
    assert slow.responded
    assert slow.detail == "p99 of the die-service's lookups 2.45 s; the dice-roller waits 1 s"
    assert not reading(0.9).responded
    assert not reading(float("nan")).responded
    assert reading(None).detail == "no die-service lookup measured since the drill began"


def test_the_query_p99_rises_to_the_flag_s_wait_and_says_how_many_lookups_failed() -> None:
    def reading(p99: float, failed: float = 0.0) -> Reading:
        rows: Rows = {
            "die_service_db_query_duration_seconds_bucket": [({}, p99)],
            "die_service_db_errors_total": [({"job": "die-service"}, failed)],
        }
        return query_p99_rises(_ctx({"/api/v1/query": _prometheus(rows)}))

    slow = reading(0.35)
    assert slow.responded
    assert (
        slow.detail == "p99 of the one_die query 0.35 s (the flag's wait 0.3 s); 0 lookups failed"
    )
    assert not reading(0.01).responded
    assert "3 lookups failed" in reading(0.35, 3).detail


def test_the_timeouts_logged_are_the_caller_s_lines_of_reason_timeout() -> None:
    asked: list[str] = []

    def loki(request: Any) -> Any:
        asked.append(request.url.params["query"])
        return _loki([{"message": "Die unavailable", "trace_id": TRACE_ID}])(request)

    ctx = _ctx({"/loki/api/v1/query_range": loki})
    reading = failed_lines(ctx, DIE_SERVICE_SLOW_HOP)
    assert reading.responded and reading.detail == "reason=timeout: 1 line(s)"
    assert asked == [DIE_TIMEOUT_LINES] and 'reason="timeout"' in DIE_TIMEOUT_LINES
    assert ctx.found["die-service-slow"] == {"reason=timeout": [TRACE_ID]}


# ---------------------------------------------------------------- the runner's steps


def _drill(plan: Plan) -> Drill:
    return Drill(
        name="test-steps",
        summary="steps",
        flags=plan.flags,
        look=DRILLS["database-slow"].look,
        lesson="",
        plan=lambda ctx: plan,
        give_up_text="",
    )


def test_a_step_switches_the_flags_further_and_the_return_comes_once_they_are_back(
    tmp_path: Path,
) -> None:
    """Each signal reads the flag file as the drill holds it at that moment: `slow`,
    then `stuck`, then the original bytes (and `ctx.resumed` set) for the return,
    while the traffic still runs; the file ends as it began."""
    flags = copy_flags(tmp_path)
    original = flags.read_bytes()
    script = tmp_path / "traffic.py"
    script.write_text("import time\ntime.sleep(60)\n", encoding="utf-8")
    seen_variants: list[str] = []

    def variant_is(expected: str) -> Signal:
        def probe(ctx: DrillContext) -> Reading:
            variant = read_flag_file(flags).default_variant("database-latency-seconds")
            seen_variants.append(variant)
            if expected == "off" and (ctx.resumed is None or flags.read_bytes() != original):
                return not_yet("not back")
            assert ctx.traffic is not None and ctx.traffic.describe()
            return seen(variant) if variant == expected else not_yet(variant)

        return Signal(f"flag {expected}", "the file", probe)

    plan = Plan(
        [variant_is("slow")],
        5,
        {"database-latency-seconds": "slow"},
        then=[Step({"database-latency-seconds": "stuck"}, [variant_is("stuck")], 5, "Stuck now:")],
        back=[variant_is("off")],
        back_give_up=5,
    )
    settings = DrillSettings(flags_file=flags, traffic_script=script, poll=0.1)
    api = Api(timeout=2)
    out = io.StringIO()
    try:
        ctx = DrillContext(settings, api)
        say = Printer(out, lambda: ctx.started)
        drill = _drill(plan)
        control = CommandControl("true", "true")
        lines = describe(drill, plan, settings, read_flag_file(flags), control)
        assert "Then flag database-latency-seconds: slow -> stuck" in lines
        assert "Then puts the flags back, the traffic still running, and waits for the return" in (
            lines
        )
        code = _run(drill, plan, ctx, read_flag_file(flags), say, control)
    finally:
        api.close()
    text = out.getvalue()
    assert code == 0, text
    assert seen_variants == ["slow", "stuck", "off"], text
    assert flags.read_bytes() == original
    assert text.index("Stuck now:") < text.index("Flags put back") < text.index("flag off")
    assert text.count("Flags put back") == 1
    assert "changed during the drill" not in text
    assert not list(flags.parent.glob("*.during-drill"))


def test_ctrl_c_in_a_step_puts_the_original_bytes_back(tmp_path: Path) -> None:
    flags = copy_flags(tmp_path)
    original = flags.read_bytes()
    script = tmp_path / "traffic.py"
    script.write_text("import time\ntime.sleep(60)\n", encoding="utf-8")

    def interrupt(ctx: DrillContext) -> Reading:
        assert read_flag_file(flags).default_variant("database-latency-seconds") == "stuck"
        raise KeyboardInterrupt

    plan = Plan(
        [Signal("slow", "x", lambda ctx: seen("slow"))],
        5,
        {"database-latency-seconds": "slow"},
        then=[Step({"database-latency-seconds": "stuck"}, [Signal("i", "x", interrupt)], 5, "")],
    )
    settings = DrillSettings(flags_file=flags, traffic_script=script, poll=0.1)
    api = Api(timeout=2)
    try:
        ctx = DrillContext(settings, api)
        say = Printer(io.StringIO(), lambda: ctx.started)
        with pytest.raises(KeyboardInterrupt):
            _run(_drill(plan), plan, ctx, read_flag_file(flags), say, CommandControl("a", "b"))
    finally:
        api.close()
    assert flags.read_bytes() == original
    assert json.loads(original) == json.loads(SHIPPED_FLAGS.read_bytes())

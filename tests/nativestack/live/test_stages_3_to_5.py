"""Stages 3, 4 and 5 for real: a roll through the frontend is one trace over three
services and a query, the service graph gains the dice-roller → die-service and
die-service → dice (the database) edges, a batch's rolls are child spans side by side,
the die-service-down and database-down drills see their outages and the returns, and
the die-service down is a prompt 503 that says so.

One stage-5 native stack for the module (stages/stage3.yml and stage5.yml merged over
compose, nativestack/): stage 5 runs everything stage 3 and 4 run, and adds Debian's
PostgreSQL and postgres_exporter. The real Prometheus, Loki and Alloy; Tempo is the
stand-in (docs/native-stack.md).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drills.catalogue import DRILLS
from drills.runner import EXIT_OK, run_drill
from nativestack.stack import native_stack
from tests.support.dashboard_model import (
    HOST_DASHBOARD_PATH,
    STAGE3_DASHBOARD_PATH,
    STAGE4_DASHBOARD_PATH,
    STAGE5_DASHBOARD_PATH,
    load_dashboard,
    without_cadvisor,
)
from tests.support.drills import (
    SHIPPED_FLAGS,
    NativeControl,
    live_generators,
    signals_responded,
    stack_settings,
)
from tests.support.live_stack import WAIT, LiveStack, roll
from tests.support.processes import eventually
from verify import stage2, stage3, stage4, stage5
from verify.cli import run_checks

pytestmark = [pytest.mark.nativestack, pytest.mark.slow]

DICE = ["d4", "d20", "fair", "d6"]
OUTAGE = [
    "The dice-roller answers 503",
    "Die-service errors up",
    "The die-service's scrape fails",
    "Die unavailable logged",
    "A trace ends at the dice-roller",
    "Calls to a virtual node",
]
RETURN = ["The die-service answers again", "Rolls succeed again"]
SLOWNESS = [
    "The dice-roller answers 504",
    "Die-service timeouts up",
    "Die unavailable logged",
    "Lookups past 1 s",
    "Slow lookups logged with the flag",
    "A die-service span outlasts the wait",
]
SLOW_QUERIES = [
    "Query p99 rises",
    "Slow lookups logged with the flag",
    "A SELECT waits in pg_sleep",
]
STUCK_QUERIES = [
    "The dice-roller answers 502",
    "Database timeouts up",
    "Database unavailable logged",
    "A SELECT cut at the bound",
]
DATABASE_OUTAGE = [
    "The dice-roller answers 502",
    "Database errors up",
    "pg_up falls to 0",
    "Database unavailable logged",
    "A trace's die-service span failed",
]


@pytest.fixture(scope="module")
def flags_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of stack/flags/flags.json that this stack's dice-roller and die-service
    read (as both containers read the one mounted file), for the flag drills to switch:
    the repository's stays as it is."""
    copy = tmp_path_factory.mktemp("stage5-flags") / "flags.json"
    copy.write_bytes(SHIPPED_FLAGS.read_bytes())
    return copy


@pytest.fixture(scope="module")
def live(flags_file: Path) -> Iterator[LiveStack]:
    with native_stack(
        stage=5,
        service_env={"DICE_FLAGS_FILE": str(flags_file)},
        die_service_env={"DIE_SERVICE_FLAGS_FILE": str(flags_file)},
    ) as native:
        live = LiveStack(native, [], native.started)
        live.rolls = roll(f"{native.frontend_url}/api", DICE * 2)
        yield live
        live.api.close()


def test_the_page_offers_the_die_services_dice(live: LiveStack) -> None:
    page = httpx.get(live.native.frontend_url + "/", timeout=10).text
    for die in ("fair", "risky", "d4", "d6", "d8", "d10", "d12", "d20"):
        assert f'value="{die}"' in page


def test_rolls_of_the_die_services_dice_show_their_faces(live: LiveStack) -> None:
    for rolled in live.rolls:
        assert rolled.status in (200, 502), rolled  # a d20 or d6 may fail, as specified
    faces = {"d4": range(1, 5), "d6": range(1, 7), "d20": range(1, 21), "fair": range(1, 7)}
    for rolled in live.rolls:
        if rolled.status == 200:
            assert rolled.value in faces[rolled.die], rolled


def test_verify_ticks_every_box_of_stages_2_to_5(live: LiveStack) -> None:
    """One run at stage 5 checks the earlier stages' boxes too: the query span under
    the die-service's lookup, postgres_exporter up, the die-service → dice edge, the
    pool, besides stage 4's batch, stage 3's three-service trace and stage 2's page."""
    results = run_checks(live.verify_settings(stage=5)).results
    groups = (stage2.GROUP, stage3.GROUP, stage4.GROUP, stage5.GROUP)
    boxes = {group: [r for r in results if r.group == group] for group in groups}
    assert [len(b) for b in boxes.values()] == [5, 5, 4, 5]
    assert [(r.group, r.title, r.detail) for b in boxes.values() for r in b if not r.passed] == []


def test_every_line_of_the_die_service_is_json_with_its_trace(live: LiveStack) -> None:
    lines = [json.loads(line) for line in live.native.die_service_lines()]
    lookups = [line for line in lines if line.get("message") in ("Die found", "Die unknown")]
    assert len(lookups) >= len(live.rolls), "one lookup per roll, at least"
    assert all(len(line["trace_id"]) == 32 for line in lookups)


def test_every_query_of_the_stage3_dashboard_returns_data(live: LiveStack) -> None:
    """Each Prometheus and Loki panel over the run, as Grafana would ask.

    The service graph counts failed calls from the first one that fails, and the
    fixture's rolls rarely fail (the d20 one in twenty, the d6 one in two hundred):
    roll the d20 through the page until one has. The die-service failures panel needs
    none: the dice-roller exports every reason at zero."""

    rolls = list(live.rolls)
    while not any(r.status >= 500 for r in rolls) and len(rolls) < 400:
        rolls += roll(f"{live.native.frontend_url}/api", ["d20"] * 10)
    failed = "traces_service_graph_request_failed_total"  # Alloy pairs the spans first
    eventually(lambda: live.prometheus(failed)["result"], "no failed call counted", WAIT)
    # Then two later samples of each: the dice-roller's, scraped by Prometheus, the
    # die-service's and the service graph's, remote-written by Alloy in batches. The
    # oldest of their newest samples must move on twice.
    sample = (
        'min(timestamp(dice_roll_duration_seconds_count{die_type="d4"}) or timestamp('
        'http_request_duration_seconds_count{job="die-service", handler="/dice/{name}"})'
        f" or timestamp({failed}))"
    )
    end = live.later_samples(sample, count=2)
    dashboard = load_dashboard(STAGE3_DASHBOARD_PATH)
    assert live.empty_panels(dashboard, end, live.rolls[0].trace_id) == []


def test_every_query_of_the_stage4_dashboard_returns_data(live: LiveStack) -> None:
    """Each Prometheus and Loki panel over the run, as Grafana would ask, after batches
    of its own: the page's "Roll them all" (five d20s through the frontend) and batches
    straight at the dice-roller; the fixture's single rolls are the latency panel's
    other line. The failed-rolls panel sums the `failed` of every "Batch rolled" line,
    0 included, so it needs no failure; Rolls in Flight no batch a scrape caught (the
    gauge exists at zero from the start)."""
    batches = [(f"{live.native.frontend_url}/api", "5")] * 3 + [(live.native.service_url, "20")] * 2
    for url, times in batches:
        answer = httpx.get(f"{url}/roll-async", params={"die": "d20", "times": times}, timeout=30)
        assert answer.status_code == 200, answer.text
    line = '{container_name="dice-roller-stage1"} |= "Batch rolled"'
    eventually(lambda: live.loki(line), "no Batch rolled line in Loki", WAIT)
    end = live.later_samples("timestamp(dice_batch_size_count)", count=2)
    assert live.empty_panels(load_dashboard(STAGE4_DASHBOARD_PATH), end) == []


@pytest.fixture(scope="module")
def die_service_control(live: LiveStack, flags_file: Path) -> Iterator[NativeControl]:
    """Stops the die-service's process and starts a new one in its place, as `docker
    compose stop` and `start` do; at the module's end it stops the one it started."""
    control = NativeControl(
        live.native,
        service_env={"DICE_FLAGS_FILE": str(flags_file)},
        stage=5,
        die_service_env={"DIE_SERVICE_FLAGS_FILE": str(flags_file)},
    )
    try:
        yield control
    finally:
        control.close()


@pytest.mark.timeout(300)
def test_the_die_service_down_drill_sees_the_outage_from_the_dice_roller_and_its_return(
    live: LiveStack, die_service_control: NativeControl
) -> None:
    """die-service-down as `python3 tasks.py drill die-service-down` runs it, at a
    shorter pace, the die-service stopped and started by `die_service_control`. After
    it, the die-service runs again (the last test stops it) and rolls work."""
    native, control = live.native, die_service_control
    settings = stack_settings(native, rate=5, round_seconds=20, poll=1)
    out = io.StringIO()
    began = time.monotonic()
    code = run_drill(DRILLS["die-service-down"], settings, out, control)
    text = out.getvalue()
    print(text, f"\n(the drill took {time.monotonic() - began:.0f} s)")
    assert code == EXIT_OK, text
    assert control.calls == ["stop die-service", "start die-service"]
    order = signals_responded(text)
    assert sorted(order[: len(OUTAGE)]) == sorted(OUTAGE), order
    assert sorted(order[len(OUTAGE) :]) == sorted(RETURN), order
    assert '"Die-Service Failures by Reason"' in text
    assert 'dashboard "Dice Roller - Stage 3"' in text
    assert "HTTP 503 in" in text and "The die-service is unreachable at" in text
    assert "no die-service span" in text and "ConnectError" in text
    assert text.index("Started the die-service again") < text.index("The die-service answers")
    assert live_generators(native.service_url) == []

    # The stack is as it was: the die-service runs, and rolls of its dice work.
    assert native.components["die-service"].process.poll() is None
    assert httpx.get(f"{native.die_service_url}/", timeout=10).status_code == 200
    rolled = httpx.get(f"{native.service_url}/roll", params={"die": "d4"}, timeout=10)
    assert rolled.status_code == 200, rolled.text


@pytest.fixture(scope="module")
def postgres_control(live: LiveStack) -> Iterator[NativeControl]:
    """Stops PostgreSQL's process and starts a new one in its place (the same command,
    on the same data folder), as `docker compose stop` and `start` do; at the module's
    end it stops the one it started."""
    control = NativeControl(live.native, stage=5)
    try:
        yield control
    finally:
        control.close()


@pytest.mark.timeout(300)
def test_the_database_down_drill_sees_the_outage_two_hops_up_and_its_return(
    live: LiveStack, postgres_control: NativeControl
) -> None:
    """database-down as `python3 tasks.py drill database-down` runs it, at a shorter
    pace, PostgreSQL stopped and started by `postgres_control`. After it, PostgreSQL
    runs again, the die-service recovered without a restart, and rolls work."""
    native, control = live.native, postgres_control
    die_service = native.components["die-service"].process
    settings = stack_settings(native, rate=5, round_seconds=20, poll=1)
    out = io.StringIO()
    began = time.monotonic()
    code = run_drill(DRILLS["database-down"], settings, out, control)
    text = out.getvalue()
    print(text, f"\n(the drill took {time.monotonic() - began:.0f} s)")
    assert code == EXIT_OK, text
    assert control.calls == ["stop postgres", "start postgres"]
    order = signals_responded(text)
    assert sorted(order[: len(DATABASE_OUTAGE)]) == sorted(DATABASE_OUTAGE), order
    assert sorted(order[len(DATABASE_OUTAGE) :]) == sorted(RETURN), order
    assert '"Database Errors by Reason"' in text
    assert 'dashboard "Dice Roller - Stage 5"' in text
    assert "HTTP 502 in" in text
    assert "The die-service answered 503: The database cannot be reached" in text
    assert "(up is 1: the exporter answers, the database does not)" in text
    assert "database.failure=unreachable" in text and "upstream.failure=error_status" in text
    assert text.index("Started the postgres again") < text.index("The die-service answers")
    assert live_generators(native.service_url) == []

    # The stack is as it was: PostgreSQL runs, the same die-service serves rolls again.
    assert native.components["postgres"].process.poll() is None
    assert native.components["die-service"].process is die_service
    assert die_service.poll() is None
    rolled = httpx.get(f"{native.service_url}/roll", params={"die": "d4"}, timeout=10)
    assert rolled.status_code == 200, rolled.text


@pytest.mark.timeout(300)
def test_the_die_service_slow_drill_sees_the_dice_roller_give_up_and_the_return(
    live: LiveStack, flags_file: Path
) -> None:
    """die-service-slow as `python3 tasks.py drill die-service-slow` runs it, at a
    shorter pace, on the flag file the die-service reads. After it, the file holds its
    bytes again and rolls work."""
    native, before = live.native, flags_file.read_bytes()
    settings = stack_settings(native, flags_file=flags_file, rate=5, round_seconds=20, poll=1)
    out = io.StringIO()
    began = time.monotonic()
    code = run_drill(DRILLS["die-service-slow"], settings, out)
    text = out.getvalue()
    print(text, f"\n(the drill took {time.monotonic() - began:.0f} s)")
    assert code == EXIT_OK, text
    assert flags_file.read_bytes() == before
    order = signals_responded(text)
    assert sorted(order[: len(SLOWNESS)]) == sorted(SLOWNESS), order
    assert sorted(order[len(SLOWNESS) :]) == sorted(RETURN), order
    assert 'dashboard "Dice Roller - Stage 3"' in text and '"Die-Service Lookup Duration"' in text
    assert "HTTP 504 in" in text and "The die-service did not answer within 1 s." in text
    assert "upstream.failure=timeout" in text and "die-service-latency-seconds=slow" in text
    assert text.index("Flags put back") < text.index("The die-service answers again")
    assert live_generators(native.service_url) == []
    rolled = httpx.get(f"{native.service_url}/roll", params={"die": "d4"}, timeout=10)
    assert rolled.status_code == 200, rolled.text


@pytest.mark.timeout(300)
def test_the_database_slow_drill_sees_slow_queries_then_timeouts_and_the_return(
    live: LiveStack, flags_file: Path
) -> None:
    """database-slow as `python3 tasks.py drill database-slow` runs it, at a shorter
    pace: `slow`, then `stuck`, then the flag back. After it, the file holds its bytes
    again and rolls work, with no restart of the die-service."""
    native, before = live.native, flags_file.read_bytes()
    die_service = native.components["die-service"].process
    settings = stack_settings(native, flags_file=flags_file, rate=5, round_seconds=20, poll=1)
    out = io.StringIO()
    began = time.monotonic()
    code = run_drill(DRILLS["database-slow"], settings, out)
    text = out.getvalue()
    print(text, f"\n(the drill took {time.monotonic() - began:.0f} s)")
    assert code == EXIT_OK, text
    assert flags_file.read_bytes() == before
    order = signals_responded(text)
    slow, stuck = len(SLOW_QUERIES), len(SLOW_QUERIES) + len(STUCK_QUERIES)
    assert sorted(order[:slow]) == sorted(SLOW_QUERIES), order
    assert sorted(order[slow:stuck]) == sorted(STUCK_QUERIES), order
    assert sorted(order[stuck:]) == sorted(RETURN), order
    assert 'dashboard "Dice Roller - Stage 5"' in text and '"Query Duration by Query"' in text
    assert "Then flag database-latency-seconds: slow -> stuck" in text
    assert "0 lookups failed" in text and "pg_sleep($2)" in text
    assert "The die-service answered 503: The database did not answer within 0.4 s." in text
    assert "database.failure=timeout" in text and "database-latency-seconds=stuck" in text
    assert text.index("Flags put back") < text.index("The die-service answers again")
    assert live_generators(native.service_url) == []
    assert native.components["die-service"].process is die_service
    rolled = httpx.get(f"{native.service_url}/roll", params={"die": "d4"}, timeout=10)
    assert rolled.status_code == 200, rolled.text


def test_every_node_exporter_query_of_the_host_dashboard_returns_data(live: LiveStack) -> None:
    """The host row of "Host and Containers", as Grafana would ask it, from the native
    node_exporter Alloy scrapes by its label. cAdvisor's row reads Docker's containers,
    which the native stack has none of, and is left out (`without_cadvisor`)."""
    eventually(
        lambda: live.prometheus('up{job="node-exporter"} == 1')["result"],
        "Alloy never scraped node-exporter",
        WAIT,
    )
    end = live.later_samples('timestamp(node_load1{job="node-exporter"})', count=2)
    native = without_cadvisor(load_dashboard(HOST_DASHBOARD_PATH))
    assert [p["title"] for p in native["panels"] if p["type"] != "row"] == [
        "Host CPU Busy",
        "Host Memory",
        "Host Network",
        "Host Load",
    ]
    assert live.empty_panels(native, end) == []


def test_every_query_of_the_stage5_dashboard_returns_data(live: LiveStack) -> None:
    """Each Prometheus and Loki panel over the run, as Grafana would ask, after the
    database-down drill: its outage left the "Database unavailable" lines, PostgreSQL's
    own log and the errors the panels show. The failed-calls line needs no failed
    query (`or 0 * ...`), the errors panel no error (every reason starts at zero)."""
    edge = (
        'traces_service_graph_request_total{client="die-service", server="dice", '
        'connection_type="database"}'
    )
    eventually(lambda: live.prometheus(edge)["result"], "no die-service → dice edge", WAIT)
    # Two later samples of each: the die-service's and the exporter's, scraped by
    # Alloy, and the service graph's, remote-written in batches.
    sample = (
        'min(timestamp(die_service_db_errors_total{reason="unreachable"})'
        f" or timestamp(pg_up) or timestamp({edge}))"
    )
    end = live.later_samples(sample, count=2)
    dashboard = load_dashboard(STAGE5_DASHBOARD_PATH)
    assert live.empty_panels(dashboard, end) == []


def test_the_die_service_down_is_a_prompt_503_that_says_so(live: LiveStack) -> None:
    """Last in the module: it stops the die-service."""
    live.native.components["die-service"].stop()
    answer = httpx.get(live.native.service_url + "/roll", params={"die": "d4"}, timeout=10)
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("The die-service is unreachable at ")
    trace_id = answer.headers["traceresponse"].split("-")[1]

    def error_span() -> bool:
        trace = json.dumps(live.tempo.trace(trace_id)["trace"])
        return "upstream.failure" in trace and "STATUS_CODE_ERROR" in trace

    eventually(error_span, f"trace {trace_id} never showed the failed call", WAIT)

"""The die-service's fault flags, as users run the service: a flag file in a temporary
folder named by DIE_SERVICE_FLAGS_FILE, switched while the service runs, as a drill
does. `die-service-latency-seconds` holds a lookup, `database-latency-seconds` holds
its query in a real PostgreSQL (`pg_sleep`, in the SELECT span's statement), and each
evaluation that changes a lookup is on its span and in its log line, as the
dice-roller's are on a roll's.

Durations are read from the spans' own timestamps ("at least the flag's delay"), never
from the clock of the test; waits poll with a limit.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dice_roller.flags import FaultFlags as DiceRollerFlags
from dice_roller.settings import Settings as DiceRollerSettings
from die_service.flags import DATABASE_LATENCY_SECONDS, DIE_SERVICE_LATENCY_SECONDS, FLAGS
from die_service.flags import FaultFlags as DieServiceFlags
from die_service.settings import Settings as DieServiceSettings
from sandbox_telemetry.flags import ServiceFlags

from tests.support.die_service import RunningDieService, running_die_service
from tests.support.flags import SHIPPED_FLAGS, copy_shipped, edit_flags, select_variants
from tests.support.otlp import OtlpReceiver, ReceivedSpan, only, otlp_receiver, spans_of
from tests.support.postgres import RunningPostgres, running_postgres
from tests.support.processes import eventually
from tests.support.service import trace_of

WAIT = 15.0  # seconds: the watcher polls every 0.5 s, a busy machine may take longer
SERVER_KIND, CLIENT_KIND = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
ERROR_STATUS = 2  # opentelemetry.proto.trace.v1.Status.StatusCode
SLOW = 0.3
"""The test's own variant of die-service-latency-seconds: short, so the test is."""
DATABASE_TIMEOUT = "1"
"""DIE_SERVICE_DATABASE_TIMEOUT_SECONDS: over the shipped `slow` (0.3 s), under `stuck`
(2 s), with room for a busy machine either side."""


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


def service_env(receiver: OtlpReceiver, flags_file: Path, **extra: str) -> dict[str, str]:
    return {
        **receiver.service_env(OTEL_BSP_SCHEDULE_DELAY="200"),  # spans leave within 0.2 s
        "DIE_SERVICE_FLAGS_FILE": str(flags_file),
        **extra,
    }


def with_test_variant(path: Path) -> None:
    """die-service-latency-seconds gets the variant `test`, SLOW seconds."""
    edit_flags(
        path,
        lambda d: d["flags"][DIE_SERVICE_LATENCY_SECONDS.key]["variants"].update(test=SLOW),
    )


def lookup(service: RunningDieService, name: str = "d20") -> tuple[httpx.Response, str]:
    response = httpx.get(f"{service.url}/dice/{name}", timeout=10)
    return response, trace_of(response.headers)[0]


def lookup_until(service: RunningDieService, status: int, what: str) -> tuple[httpx.Response, str]:
    """The first lookup answered with `status` (a flag's change takes a poll or two)."""

    def answered() -> tuple[httpx.Response, str] | None:
        response, trace_id = lookup(service)
        return (response, trace_id) if response.status_code == status else None

    return eventually(answered, what, WAIT)


def lookup_line(service: RunningDieService, trace_id: str) -> dict[str, Any]:
    """The lookup's one log line (the request is over: its answer came)."""
    [line] = [
        r
        for r in service.log_records()
        if r.get("trace_id") == trace_id and r.get("logger") == "die_service"
    ]
    return line


def evaluations(span: ReceivedSpan) -> dict[str, Any]:
    """Flag key -> variant, of the OpenTelemetry hook's events on `span`."""
    found = {}
    for name, attributes in span.events:
        assert name == "feature_flag.evaluation"
        found[attributes["feature_flag.key"]] = attributes["feature_flag.result.variant"]
    return found


def flag_lines(service: RunningDieService, level: str = "WARNING") -> list[str]:
    levels = ("WARNING", "ERROR") if level == "WARNING" else (level,)
    return [
        r["message"]
        for r in service.log_records()
        if r.get("logger") == "die_service.flags" and r["level"] in levels
    ]


# --- die-service-latency-seconds -------------------------------------------------------


def test_the_latency_flag_holds_lookups_from_the_next_one_and_says_so(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    path = copy_shipped(tmp_path)
    with_test_variant(path)
    with running_die_service(service_env(receiver, path)) as service:
        response, trace_id = lookup(service)
        server = only(spans_of(receiver, trace_id, 1), "die-service", SERVER_KIND)
        assert response.status_code == 200 and evaluations(server) == {}
        assert "feature_flags" not in lookup_line(service, trace_id)

        select_variants(path, {DIE_SERVICE_LATENCY_SECONDS.key: "test"})
        eventually(
            lambda: any(r["message"] == "Feature flags changed" for r in service.log_records()),
            "the change announced",
            WAIT,
        )
        response, trace_id = lookup(service)
        server = only(spans_of(receiver, trace_id, 1), "die-service", SERVER_KIND)
        assert response.status_code == 200
        assert server.duration_seconds >= SLOW
        assert evaluations(server) == {DIE_SERVICE_LATENCY_SECONDS.key: "test"}
        line = lookup_line(service, trace_id)
        assert line["feature_flags"] == {DIE_SERVICE_LATENCY_SECONDS.key: "test"}

        unknown, trace_id = lookup(service, "d7")  # a 404 waits too: the wait comes first
        server = only(spans_of(receiver, trace_id, 1), "die-service", SERVER_KIND)
        assert unknown.status_code == 404 and server.duration_seconds >= SLOW
        assert flag_lines(service) == []


def test_a_bad_value_is_refused_in_one_line_and_the_default_kept(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    path = copy_shipped(tmp_path)
    edit_flags(
        path,
        lambda d: d["flags"][DIE_SERVICE_LATENCY_SECONDS.key].update(
            variants={"off": 0.0, "slow": 60.0}, defaultVariant="slow"
        ),
    )
    with running_die_service(service_env(receiver, path)) as service:
        for _ in range(3):
            response, trace_id = lookup(service)  # answered at once, not in 60 s
            assert response.status_code == 200
            assert "feature_flags" not in lookup_line(service, trace_id)
        [line] = flag_lines(service)
    assert line == (
        f"Flag die-service-latency-seconds in {path}: 60.0 is not a number from 0 to 10; "
        "using the default 0"
    )


def test_in_memory_the_database_flag_is_not_read(tmp_path: Path, receiver: OtlpReceiver) -> None:
    """Stage 3 has no query to slow: the lookup answers, and names no flag."""
    path = copy_shipped(tmp_path, {DATABASE_LATENCY_SECONDS.key: "stuck"})
    with running_die_service(service_env(receiver, path)) as service:
        response, trace_id = lookup(service)
        server = only(spans_of(receiver, trace_id, 1), "die-service", SERVER_KIND)
        assert response.status_code == 200 and evaluations(server) == {}
        assert "feature_flags" not in lookup_line(service, trace_id)


# --- database-latency-seconds ----------------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[RunningPostgres]:
    with running_postgres() as database:
        yield database


def test_the_database_flag_sleeps_in_the_select_and_past_the_timeout_is_a_503(
    tmp_path: Path, receiver: OtlpReceiver, database: RunningPostgres
) -> None:
    path = copy_shipped(tmp_path, {DATABASE_LATENCY_SECONDS.key: "slow"})
    slow = 0.3  # the shipped `slow`
    env = service_env(
        receiver,
        path,
        DIE_SERVICE_DATABASE_URL=database.url,
        DIE_SERVICE_DATABASE_TIMEOUT_SECONDS=DATABASE_TIMEOUT,
    )
    with running_die_service(env) as service:
        response, trace_id = lookup(service)
        spans = spans_of(receiver, trace_id, 2)
        server = only(spans, "die-service", SERVER_KIND)
        select = only(spans, "die-service", CLIENT_KIND)
        assert response.status_code == 200, response.text
        assert "pg_sleep($2)" in select.attributes["db.statement"]
        assert select.duration_seconds >= slow
        assert evaluations(server) == {DATABASE_LATENCY_SECONDS.key: "slow"}

        select_variants(path, {DATABASE_LATENCY_SECONDS.key: "stuck"})
        response, trace_id = lookup_until(service, 503, "a lookup past the database's timeout")
        assert response.json()["reason"] == "timeout"
        spans = spans_of(receiver, trace_id, 2)
        select = only(spans, "die-service", CLIENT_KIND)
        assert "pg_sleep($2)" in select.attributes["db.statement"]
        assert select.status_code == ERROR_STATUS
        line = lookup_line(service, trace_id)
        assert line["message"] == "Database unavailable"
        assert line["feature_flags"] == {DATABASE_LATENCY_SECONDS.key: "stuck"}

        select_variants(path, {DATABASE_LATENCY_SECONDS.key: "off"})
        response, trace_id = lookup_until(service, 200, "an answer again, the flag off")
        select = only(spans_of(receiver, trace_id, 2), "die-service", CLIENT_KIND)
        assert "pg_sleep" not in select.attributes["db.statement"]


# --- one file, two services ------------------------------------------------------------


def test_the_shipped_file_has_the_die_services_flags_off_and_in_range() -> None:
    document = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    ours = {k: d for k, d in document["flags"].items() if d["metadata"]["service"] == "die-service"}
    assert list(ours) == [flag.key for flag in FLAGS]
    for flag in FLAGS:
        definition = ours[flag.key]
        assert definition["defaultVariant"] == flag.default_variant == "off"
        assert definition["variants"]["off"] == flag.default == 0
        assert all(flag.accepts(value) for value in definition["variants"].values())
    assert ours[DATABASE_LATENCY_SECONDS.key]["variants"] == {"off": 0, "slow": 0.3, "stuck": 2}


def test_the_readme_lists_the_die_services_flags_as_the_file_has_them() -> None:
    """Its own table (a column more: the stage each flag works from)."""
    document = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    readme = (SHIPPED_FLAGS.parent / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z-]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1:]
    assert list(rows) == [flag.key for flag in FLAGS]
    for flag in FLAGS:
        variants, allowed, _, _ = rows[flag.key]
        listed = [(n, float(v)) for n, v in re.findall(r"`([a-z]+)` ([0-9.]+)", variants)]
        assert listed == list(document["flags"][flag.key]["variants"].items())
        assert allowed == f"{flag.minimum:g} to {flag.maximum:g}"


Reader = Callable[[Path], ServiceFlags]


@pytest.mark.parametrize(
    ("reader", "logger", "others"),
    [
        (
            lambda path: DiceRollerFlags(DiceRollerSettings(flags_file=path)),
            "dice_roller.flags",
            {DIE_SERVICE_LATENCY_SECONDS.key: "slow", DATABASE_LATENCY_SECONDS.key: "stuck"},
        ),
        (
            lambda path: DieServiceFlags(DieServiceSettings(flags_file=path)),
            "die_service.flags",
            {"risky-failure-rate": "always", "loaded-die-bias": "loaded"},
        ),
    ],
    ids=["dice-roller", "die-service"],
)
def test_each_service_reads_its_own_flags_and_names_a_flag_no_service_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, reader: Reader, logger: str, others: Any
) -> None:
    """The other service's flags switched and a typo added, in one change of the file:
    one line, naming the typo alone."""

    def switch_and_misspell(document: dict[str, Any]) -> None:
        for key, variant in others.items():
            document["flags"][key]["defaultVariant"] = variant
        document["flags"]["die-service-latency-second"] = {
            "state": "ENABLED",
            "variants": {"off": 0.0},
            "defaultVariant": "off",
        }

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == logger]

    caplog.set_level(logging.INFO, logger=logger)
    path = copy_shipped(tmp_path)
    flags = reader(path)
    try:
        edit_flags(path, switch_and_misspell)
        eventually(lambda: len(lines()) >= 2, "a line about the change", WAIT)
    finally:
        flags.close()
    watching, warning = lines()
    assert watching == "Watching the flag file"
    assert "does not know (a typo?): die-service-latency-second; it knows" in warning

"""The fault flags, evaluated by the real OpenFeature SDK and flagd's file provider.

No mock of OpenFeature anywhere: each test writes a flag file, lets the service's
watcher (flag_file.py) find the change, and reads what a roll would get. Waits poll
for the change with a limit, never assert how long it took.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openfeature._event_support
import pytest
from dice_roller.dice import DieType
from dice_roller.flags import (
    EXTRA_LATENCY_SECONDS,
    EXTRA_LATENCY_SHARE,
    FAILURE_RATE,
    FAIR_FAILURE_RATE,
    FLAGS,
    LOADED_DIE_BIAS,
    RISKY_FAILURE_RATE,
    FaultFlag,
    FaultFlags,
)
from dice_roller.settings import Settings
from openfeature.event import EventDetails, ProviderEvent

from tests.support.flags import SHIPPED_FLAGS, copy_shipped, edit_flags, select_variants, write_raw
from tests.support.processes import eventually

WAIT = 15.0  # seconds: the watcher polls every 0.5 s, a busy machine may take longer
FLAGS_LOGGER = "dice_roller.flags"

# The variants every part of the project relies on (drills, docs), as the file ships them.
SHIPPED_VARIANTS = {
    "risky-failure-rate": {"spec": 0.1, "never": 0.0, "half": 0.5, "always": 1.0},
    "fair-failure-rate": {"spec": 0.0, "some": 0.1, "half": 0.5, "always": 1.0},
    "extra-latency-seconds": {"off": 0.0, "slow": 1.5, "crawl": 5.0},
    "extra-latency-share": {"all": 1.0, "some": 0.2},
    "loaded-die-bias": {"off": 0.0, "loaded": 0.5},
}


@contextmanager
def watching(path: Path | None, **settings: Any) -> Iterator[FaultFlags]:
    flags = FaultFlags(Settings(flags_file=path, **settings))
    try:
        yield flags
    finally:
        flags.close()


def rolled(
    flags: FaultFlags, die: DieType, *evaluated: FaultFlag
) -> tuple[list[float], dict[str, Any]]:
    """The values one roll of `die` gets for `evaluated`, and its log line's flag fields."""
    roll = flags.for_roll(die)
    return [roll.number(flag) for flag in evaluated], roll.log_fields()


def value_of(
    flags: FaultFlags, flag: FaultFlag, die: DieType = DieType.FAIR
) -> Callable[[], float]:
    return lambda: rolled(flags, die, flag)[0][0]


def flag_records(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(FLAGS_LOGGER) and record.levelno >= level
    ]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None and record.exc_text is None, record.getMessage()
        assert "Traceback" not in record.getMessage()


# --- the shipped file ------------------------------------------------------------------


def test_the_shipped_file_selects_each_flags_spec_default() -> None:
    document = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    assert document["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    ours = {  # the die-service's flags follow, in the same file
        key: definition
        for key, definition in document["flags"].items()
        if definition["metadata"] == {"service": "dice-roller"}
    }
    assert list(ours) == [flag.key for flag in FLAGS]
    for flag in FLAGS:
        definition = ours[flag.key]
        assert definition["state"] == "ENABLED" and "targeting" not in definition
        assert definition["defaultVariant"] == flag.default_variant
        assert definition["variants"][flag.default_variant] == flag.default
        assert all(flag.accepts(value) for value in definition["variants"].values())
    assert {key: d["variants"] for key, d in ours.items()} == SHIPPED_VARIANTS
    # The spec: fair never fails, risky fails one time in ten.
    assert (FAILURE_RATE[DieType.FAIR].default, FAILURE_RATE[DieType.RISKY].default) == (0, 0.1)


def test_flags_as_shipped_give_the_spec_and_name_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with watching(copy_shipped(tmp_path)) as flags:
        for die in DieType:
            values, fields = rolled(flags, die, *FLAGS)
            assert values == [flag.default for flag in FLAGS] and fields == {}
    assert flag_records(caplog) == []


def test_without_a_flag_file_the_risky_rate_comes_from_the_settings() -> None:
    with watching(None, risky_failure_rate=0.5) as flags:
        assert rolled(flags, DieType.RISKY, RISKY_FAILURE_RATE, FAIR_FAILURE_RATE) == ([0.5, 0], {})


def test_with_a_flag_file_the_flag_wins_over_the_setting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with watching(copy_shipped(tmp_path), risky_failure_rate=0.5) as flags:
        assert value_of(flags, RISKY_FAILURE_RATE, DieType.RISKY)() == 0.1
    [warning] = flag_records(caplog)
    assert "DICE_RISKY_FAILURE_RATE is not used" in warning


# --- each flag -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "variant"),
    [
        (RISKY_FAILURE_RATE, "half"),
        (RISKY_FAILURE_RATE, "never"),
        (FAIR_FAILURE_RATE, "always"),
        (EXTRA_LATENCY_SECONDS, "slow"),
        (EXTRA_LATENCY_SHARE, "some"),
        (LOADED_DIE_BIAS, "loaded"),
    ],
    ids=lambda value: value.key if isinstance(value, FaultFlag) else value,
)
def test_an_edit_of_each_flag_applies_live_and_is_named_on_the_roll(
    tmp_path: Path, flag: FaultFlag, variant: str
) -> None:
    path = copy_shipped(tmp_path)
    value = SHIPPED_VARIANTS[flag.key][variant]
    with watching(path) as flags:
        select_variants(path, {flag.key: variant})
        eventually(lambda: value_of(flags, flag)() == value, f"{flag.key}={variant}", WAIT)
        others = [f for f in FLAGS if f is not flag]
        values, fields = rolled(flags, DieType.FAIR, flag, *others)
    assert values == [value] + [f.default for f in others]
    assert fields == {"feature_flags": {flag.key: variant}}


def test_a_flag_with_targeting_sees_the_die(tmp_path: Path) -> None:
    """Targeting sees the die as `die`: here only fair rolls get the loaded die."""

    def target_fair(document: dict[str, Any]) -> None:
        document["flags"][LOADED_DIE_BIAS.key]["targeting"] = {
            "if": [{"==": [{"var": "die"}, "fair"]}, "loaded", None]
        }

    path = copy_shipped(tmp_path)
    edit_flags(path, target_fair)
    with watching(path) as flags:
        fair = rolled(flags, DieType.FAIR, LOADED_DIE_BIAS)
        risky = rolled(flags, DieType.RISKY, LOADED_DIE_BIAS)
    assert fair == ([0.5], {"feature_flags": {"loaded-die-bias": "loaded"}})
    assert risky == ([0.0], {})


def test_a_disabled_flag_takes_its_shipped_default(tmp_path: Path) -> None:
    def disable(document: dict[str, Any]) -> None:
        document["flags"][FAIR_FAILURE_RATE.key]["state"] = "DISABLED"

    path = copy_shipped(tmp_path, {FAIR_FAILURE_RATE.key: "always"})
    edit_flags(path, disable)
    with watching(path) as flags:
        assert rolled(flags, DieType.FAIR, FAIR_FAILURE_RATE) == ([0.0], {})


# --- bad files and bad values ----------------------------------------------------------

BAD_FILES: dict[str, tuple[Any, str]] = {
    # name: (raw text or a change of the document, the words of the one line)
    "not JSON": ('{"flags": {', "Could not parse JSON"),
    "not an object": ("[1, 2]", "Could not"),
    "not flagd's format": (
        lambda d: d["flags"]["risky-failure-rate"].update(state="ON"),
        "Could not parse flag data using flagd syntax",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_reported_once_and_the_last_good_values_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    edit, expected = BAD_FILES[case]
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"risky-failure-rate": "always"})
    with watching(path) as flags:
        assert flags.client is not None
        errors: list[EventDetails] = []
        flags.client.add_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
        if isinstance(edit, str):
            write_raw(path, edit)
        else:
            edit_flags(path, edit)
        # the watcher reports the bad file again every poll: three errors, one line.
        eventually(lambda: len(errors) >= 3, f"three polls of the {case} file", WAIT)
        flags.client.remove_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
        value = value_of(flags, RISKY_FAILURE_RATE, DieType.RISKY)
        assert value() == 1.0, "the last good values stay"
        [line] = flag_records(caplog)
        assert expected in line and str(path) in line and "keeping the last good values" in line
        assert_no_traceback(caplog)

        select_variants(copy_shipped(tmp_path), {"risky-failure-rate": "half"})
        eventually(lambda: value() == 0.5, "the fixed file applied", WAIT)


BAD_VALUES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "out of range": (
        lambda d: d["flags"]["risky-failure-rate"]["variants"].update(always=1.5),
        "1.5 is not a number from 0 to 1",
    ),
    "an unknown default variant": (
        lambda d: d["flags"]["risky-failure-rate"].update(defaultVariant="hafl"),
        "risky-failure-rate",
    ),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_bad_value_falls_back_to_the_default_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    edit, expected = BAD_VALUES[case]
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"risky-failure-rate": "always", "loaded-die-bias": "loaded"})
    edit_flags(path, edit)
    with watching(path) as flags:
        for _ in range(20):
            values, fields = rolled(flags, DieType.RISKY, RISKY_FAILURE_RATE, LOADED_DIE_BIAS)
            assert values == [0.1, 0.5], "the bad flag's default; the others as the file says"
            assert fields == {"feature_flags": {"loaded-die-bias": "loaded"}}
    [line] = flag_records(caplog)
    assert expected in line and "using the default 0.1" in line and str(path) in line
    assert_no_traceback(caplog)


def test_a_bad_file_at_start_gives_the_shipped_defaults_until_it_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "flags.json"
    path.write_text("not json", encoding="utf-8")
    with watching(path) as flags:
        assert rolled(flags, DieType.RISKY, *FLAGS)[0] == [flag.default for flag in FLAGS]
        eventually(lambda: flag_records(caplog), "a line about the bad file", WAIT)
        [line] = flag_records(caplog)
        assert "Could not parse JSON" in line and "using the shipped defaults" in line
        copy_shipped(tmp_path, {"fair-failure-rate": "half"})
        eventually(lambda: value_of(flags, FAIR_FAILURE_RATE)() == 0.5, "the fixed file", WAIT)
    assert_no_traceback(caplog)


class LateExecutor(ThreadPoolExecutor):
    """OpenFeature's event-handler pool on a busy machine: each handler starts late."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def late() -> Any:
            time.sleep(0.3)
            return fn(*args, **kwargs)

        return super().submit(late)


def test_late_event_handlers_do_not_make_a_bad_file_look_once_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenFeature runs handlers on a pool: the no-op provider's READY, sent when the
    handler is added, may arrive after flagd's provider has replaced it."""
    caplog.set_level(logging.INFO)
    with LateExecutor() as late:
        monkeypatch.setattr(openfeature._event_support, "_event_executor", late)
        path = tmp_path / "flags.json"
        path.write_text("not json", encoding="utf-8")
        with watching(path):
            eventually(lambda: flag_records(caplog), "a line about the bad file", WAIT)
    [line] = flag_records(caplog)
    assert "using the shipped defaults" in line


def test_a_file_that_goes_missing_keeps_the_last_good_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"fair-failure-rate": "some"})
    with watching(path) as flags:
        path.unlink()
        eventually(lambda: flag_records(caplog), "a line about the missing file", WAIT)
        assert value_of(flags, FAIR_FAILURE_RATE)() == 0.1
        [line] = flag_records(caplog)
        assert "keeping the last good values" in line
        copy_shipped(tmp_path)
        eventually(lambda: value_of(flags, FAIR_FAILURE_RATE)() == 0.0, "the restored file", WAIT)
    assert_no_traceback(caplog)


def test_missing_and_unknown_flags_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path)
    with watching(path) as flags:

        def rename(document: dict[str, Any]) -> None:
            document["flags"]["fair-failure-rates"] = document["flags"].pop("fair-failure-rate")
            document["flags"]["fair-failure-rates"]["defaultVariant"] = "always"

        edit_flags(path, rename)
        eventually(lambda: len(flag_records(caplog)) >= 2, "two lines about the flags", WAIT)
        assert value_of(flags, FAIR_FAILURE_RATE)() == 0.0
    lines = flag_records(caplog)
    assert any("take their shipped defaults: fair-failure-rate" in line for line in lines)
    assert any("does not know (a typo?): fair-failure-rates" in line for line in lines)


def test_every_change_is_announced_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path)
    with watching(path) as flags:
        select_variants(path, {"risky-failure-rate": "half", "extra-latency-seconds": "slow"})
        eventually(
            lambda: value_of(flags, RISKY_FAILURE_RATE, DieType.RISKY)() == 0.5, "the change", WAIT
        )
        select_variants(path, {"risky-failure-rate": "half", "extra-latency-seconds": "slow"})
        eventually(lambda: caplog.text.count("Feature flags changed") >= 1, "the line", WAIT)
    changes = [r for r in caplog.records if r.getMessage() == "Feature flags changed"]
    assert [r.__dict__["feature_flags"] for r in changes] == [
        {"risky-failure-rate": "half", "extra-latency-seconds": "slow"}
    ]

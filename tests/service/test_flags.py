"""The fault flags, evaluated by the real OpenFeature SDK and flagd's file resolver.

No mock of OpenFeature anywhere: each test writes a flag file, lets flagd's watcher
find the change, and reads what the service would do with it. Waits poll for the
change with a limit, never assert how long it took.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dice_roller.dice import SPEC, DieType, Faults
from dice_roller.faults import FlagFileFaults, fault_source
from dice_roller.flags import (
    EXTRA_LATENCY_SECONDS,
    EXTRA_LATENCY_SHARE,
    FAIR_FAILURE_RATE,
    FLAGS,
    FLAGS_BY_KEY,
    LOADED_DIE_BIAS,
    RISKY_FAILURE_RATE,
    FaultFlag,
    check_document,
)
from dice_roller.settings import Settings
from openfeature import api
from openfeature.event import EventDetails, ProviderEvent
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.provider.no_op_provider import NoOpProvider

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
def watching(path: Path) -> Iterator[FlagFileFaults]:
    faults = FlagFileFaults(path)
    try:
        yield faults
    finally:
        faults.close()


class RollEvaluations(Hook):
    """Counts the flag evaluations made for rolls (their context names the die), in one
    OpenFeature domain: a real hook, registered with the real API."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.keys: list[str] = []

    def finally_after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[FlagValueType],
        hints: HookHints,
    ) -> None:
        metadata = hook_context.client_metadata
        in_domain = metadata is not None and metadata.domain == self.domain
        if in_domain and "die" in hook_context.evaluation_context.attributes:
            self.keys.append(hook_context.flag_key)


@contextmanager
def counting_evaluations(faults: FlagFileFaults) -> Iterator[RollEvaluations]:
    hook = RollEvaluations(faults.domain)
    api.add_hooks([hook])
    try:
        yield hook
    finally:
        api.clear_hooks()


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
    assert list(document["flags"]) == [flag.key for flag in FLAGS]
    for flag in FLAGS:
        definition = document["flags"][flag.key]
        assert definition["state"] == "ENABLED" and "targeting" not in definition
        assert definition["defaultVariant"] == flag.default_variant
        assert definition["variants"][flag.default_variant] == flag.default
        assert flag.default == getattr(SPEC, flag.fault), "the default is the spec's"
    assert {key: d["variants"] for key, d in document["flags"].items()} == SHIPPED_VARIANTS
    check = check_document(document)
    assert (check.problems, check.missing, check.unknown) == ({}, (), ())


def test_flags_as_shipped_give_the_spec_and_are_not_evaluated_per_roll(tmp_path: Path) -> None:
    with watching(copy_shipped(tmp_path)) as faults, counting_evaluations(faults) as counted:
        for _ in range(100):
            for die in DieType:
                rolled = faults.for_roll(die)
                assert rolled.faults == SPEC and rolled.log_fields == {}
    assert counted.keys == []


def test_without_a_flag_file_the_risky_rate_comes_from_the_settings(tmp_path: Path) -> None:
    fixed = fault_source(Settings(risky_failure_rate=0.5))
    assert fixed.for_roll(DieType.RISKY).faults == Faults(risky_failure_rate=0.5)
    assert fixed.for_roll(DieType.RISKY).log_fields == {}


def test_with_a_flag_file_the_flag_wins_over_the_setting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings(risky_failure_rate=0.5, flags_file=copy_shipped(tmp_path))
    source = fault_source(settings)
    try:
        assert source.for_roll(DieType.RISKY).faults.risky_failure_rate == 0.1
    finally:
        source.close()
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
        (LOADED_DIE_BIAS, "loaded"),
    ],
    ids=lambda value: value.key if isinstance(value, FaultFlag) else value,
)
def test_each_flag_sets_its_fault_for_the_dice_it_applies_to(
    tmp_path: Path, flag: FaultFlag, variant: str
) -> None:
    path = copy_shipped(tmp_path)
    value = SHIPPED_VARIANTS[flag.key][variant]
    with watching(path) as faults, counting_evaluations(faults) as counted:
        select_variants(path, {flag.key: variant})
        eventually(
            lambda: getattr(faults.for_roll(next(iter(flag.dice))).faults, flag.fault) == value,
            f"{flag.key}={variant} applied",
            WAIT,
        )
        counted.keys.clear()
        for die in DieType:
            rolled = faults.for_roll(die)
            assert getattr(rolled.faults, flag.fault) == value
            others = {f.fault: getattr(rolled.faults, f.fault) for f in FLAGS if f is not flag}
            assert others == {f.fault: f.default for f in FLAGS if f is not flag}
            if die in flag.dice:
                assert rolled.log_fields == {"feature_flags": {flag.key: variant}}
            else:
                assert rolled.log_fields == {}, "a flag that does not apply is not logged"
    # Away from its default, the flag is evaluated for each roll it applies to, only.
    assert counted.keys == [flag.key] * len(flag.dice)


def test_the_latency_share_matters_only_with_extra_latency(tmp_path: Path) -> None:
    path = copy_shipped(tmp_path, {EXTRA_LATENCY_SHARE.key: "some"})
    with watching(path) as faults, counting_evaluations(faults) as counted:
        rolled = faults.for_roll(DieType.FAIR)
        assert rolled.log_fields == {} and rolled.faults.extra_latency_seconds == 0.0
        assert counted.keys == []
        select_variants(path, {EXTRA_LATENCY_SECONDS.key: "crawl"})
        eventually(
            lambda: faults.for_roll(DieType.FAIR).faults.extra_latency_seconds == 5.0,
            "extra-latency-seconds=crawl applied",
            WAIT,
        )
        counted.keys.clear()
        rolled = faults.for_roll(DieType.FAIR)
    assert (rolled.faults.extra_latency_seconds, rolled.faults.extra_latency_share) == (5.0, 0.2)
    assert rolled.log_fields == {
        "feature_flags": {"extra-latency-seconds": "crawl", "extra-latency-share": "some"}
    }
    assert counted.keys == ["extra-latency-seconds", "extra-latency-share"]


def test_a_flag_with_targeting_is_evaluated_for_each_roll(tmp_path: Path) -> None:
    """Targeting sees the die as `die`: here only fair rolls get the loaded die."""

    def target_fair(document: dict[str, Any]) -> None:
        document["flags"][LOADED_DIE_BIAS.key]["targeting"] = {
            "if": [{"==": [{"var": "die"}, "fair"]}, "loaded", None]
        }

    path = copy_shipped(tmp_path)
    edit_flags(path, target_fair)
    with watching(path) as faults, counting_evaluations(faults) as counted:
        fair, risky = faults.for_roll(DieType.FAIR), faults.for_roll(DieType.RISKY)
    assert fair.faults.loaded_die_bias == 0.5
    assert fair.log_fields == {"feature_flags": {"loaded-die-bias": "loaded"}}
    assert risky.faults.loaded_die_bias == 0.0 and risky.log_fields == {}
    assert counted.keys == ["loaded-die-bias", "loaded-die-bias"]


def test_a_disabled_flag_takes_its_shipped_default(tmp_path: Path) -> None:
    def disable(document: dict[str, Any]) -> None:
        document["flags"][FAIR_FAILURE_RATE.key]["state"] = "DISABLED"

    path = copy_shipped(tmp_path, {FAIR_FAILURE_RATE.key: "always"})
    edit_flags(path, disable)
    with watching(path) as faults:
        rolled = faults.for_roll(DieType.FAIR)
    assert rolled.faults.fair_failure_rate == 0.0 and rolled.log_fields == {}


# --- live changes and bad files --------------------------------------------------------

BAD_EDITS: dict[str, tuple[Any, str, str | None]] = {
    # name: (edit: raw text or a change of the document, expected words, flag named)
    "not JSON": ('{"flags": {', "is not valid JSON: Expecting", None),
    "not an object": ("[1, 2]", 'needs a "flags" object', None),
    "not flagd's format": (
        lambda d: d["flags"]["risky-failure-rate"].update(state="ON"),
        "is not a flagd flag file: flag risky-failure-rate: Incorrect 'state'",
        None,
    ),
    "variants not an object": (
        lambda d: d["flags"]["risky-failure-rate"].update(variants=[0.5]),
        "flag risky-failure-rate: Incorrect 'variants'",
        None,
    ),
    "value out of range": (
        lambda d: d["flags"]["risky-failure-rate"]["variants"].update(half=1.5),
        "variant 'half' is 1.5, not a number from 0 to 1",
        "risky-failure-rate",
    ),
    "a string": (
        lambda d: d["flags"]["risky-failure-rate"]["variants"].update(half="0.5"),
        "variant 'half' is \"0.5\", not a number from 0 to 1",
        "risky-failure-rate",
    ),
    "a boolean": (
        lambda d: d["flags"]["risky-failure-rate"]["variants"].update(always=True),
        "variant 'always' is true, not a number from 0 to 1",
        "risky-failure-rate",
    ),
    "an unknown variant": (
        lambda d: d["flags"]["risky-failure-rate"].update(defaultVariant="hafl"),
        "defaultVariant \"hafl\" is not one of its variants ('spec', 'never', 'half', 'always')",
        "risky-failure-rate",
    ),
}


@pytest.mark.parametrize("case", list(BAD_EDITS))
def test_a_bad_file_is_reported_once_and_the_last_good_values_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    edit, expected, flag_named = BAD_EDITS[case]
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"risky-failure-rate": "always", "loaded-die-bias": "loaded"})
    errors: list[EventDetails] = []
    with watching(path) as faults:
        client = api.get_client(faults.domain)
        client.add_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
        if isinstance(edit, str):
            write_raw(path, edit)
        else:
            edit_flags(path, edit)
        eventually(lambda: flag_records(caplog), f"a line about the {case} file", WAIT)
        if flag_named is None:  # flagd rejects the file: its watcher retries every poll
            eventually(lambda: len(errors) >= 3, "three polls of the bad file", WAIT)
        for _ in range(3):  # what every later event does: nothing new to say
            faults.reload()
        risky = faults.for_roll(DieType.RISKY)
        fair = faults.for_roll(DieType.FAIR)
        client.remove_handler(ProviderEvent.PROVIDER_ERROR, errors.append)

        # The good values stay: the broken flag's, and every other flag's.
        assert risky.faults.risky_failure_rate == 1.0 and fair.faults.loaded_die_bias == 0.5
        assert risky.log_fields["feature_flags"]["risky-failure-rate"] == "always"

        [line] = flag_records(caplog)
        assert expected in line and str(path) in line
        if flag_named is not None:
            [record] = [r for r in caplog.records if r.name == FLAGS_LOGGER and r.levelno >= 30]
            assert record.__dict__["flag"] == flag_named
            assert record.__dict__["allowed"] == FLAGS_BY_KEY[flag_named].allowed
            assert "keeping 'always' (1)" in line
        assert_no_traceback(caplog)

        # Fixed, it applies again without a restart.
        select_variants(copy_shipped(tmp_path), {"risky-failure-rate": "half"})
        eventually(
            lambda: faults.for_roll(DieType.RISKY).faults.risky_failure_rate == 0.5,
            "the fixed file applied",
            WAIT,
        )


def test_a_bad_file_at_start_gives_the_shipped_defaults_until_it_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "flags.json"
    path.write_text("not json", encoding="utf-8")
    with watching(path) as faults:
        assert faults.for_roll(DieType.RISKY).faults == SPEC
        [line] = flag_records(caplog)
        assert "is not valid JSON" in line and "using the shipped defaults" in line
        copy_shipped(tmp_path, {"fair-failure-rate": "half"})
        eventually(
            lambda: faults.for_roll(DieType.FAIR).faults.fair_failure_rate == 0.5,
            "the fixed file applied",
            WAIT,
        )
    assert_no_traceback(caplog)


def test_a_file_that_goes_missing_keeps_the_last_good_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"fair-failure-rate": "some"})
    with watching(path) as faults:
        path.unlink()
        eventually(lambda: flag_records(caplog), "a line about the missing file", WAIT)
        faults.reload()
        assert faults.for_roll(DieType.FAIR).faults.fair_failure_rate == 0.1
        [line] = flag_records(caplog)
        assert "is missing; keeping the last good values" in line
        copy_shipped(tmp_path)
        eventually(
            lambda: faults.for_roll(DieType.FAIR).faults.fair_failure_rate == 0.0,
            "the restored file applied",
            WAIT,
        )
    assert_no_traceback(caplog)


def test_missing_and_unknown_flags_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def rename(document: dict[str, Any]) -> None:
        document["flags"]["fair-failure-rates"] = document["flags"].pop("fair-failure-rate")

    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"fair-failure-rate": "always"})
    edit_flags(path, rename)
    with watching(path) as faults:
        assert faults.for_roll(DieType.FAIR).faults.fair_failure_rate == 0.0
    missing, unknown = flag_records(caplog)
    assert "take their shipped defaults: fair-failure-rate" in missing
    assert "does not know (a typo?): fair-failure-rates" in unknown


def test_every_change_is_announced_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path)
    with watching(path) as faults:
        select_variants(path, {"risky-failure-rate": "half", "extra-latency-seconds": "slow"})
        eventually(
            lambda: faults.for_roll(DieType.RISKY).faults.risky_failure_rate == 0.5,
            "the change applied",
            WAIT,
        )
        faults.reload()
    changes = [r for r in caplog.records if r.getMessage() == "Feature flags changed"]
    assert [r.__dict__["feature_flags"] for r in changes] == [
        {"risky-failure-rate": "half", "extra-latency-seconds": "slow"}
    ]


def test_a_reload_decides_from_the_file_it_read_whatever_the_provider_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider may hold another version of the file (its watcher polls on its own
    clock), or no file at all while an app closes: OpenFeature's no-op provider answers
    every flag with the caller's default and reason DEFAULT. A reload must not take
    such answers for the file's, here for targeting rules."""
    caplog.set_level(logging.INFO)
    with watching(copy_shipped(tmp_path)) as faults:
        api.set_provider(NoOpProvider(), faults.domain)
        faults.reload()
        with counting_evaluations(faults) as evaluations:
            rolls = [faults.for_roll(die) for die in DieType]
        assert [roll.faults for roll in rolls] == [SPEC, SPEC]
        assert [roll.log_fields for roll in rolls] == [{}, {}]
        assert evaluations.keys == [], "no flag became evaluated per roll"
    assert [r for r in caplog.records if r.getMessage() == "Feature flags changed"] == []

"""The flag file: read and checked, switched atomically, its exact bytes put back."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from drills.catalogue import (
    DRILLS,
    FAILURE_FLAG_OF,
    FAILURE_RATES,
    LATENCY_FLAGS,
    SHIPPED,
    SLOW_SHARE,
)
from drills.flagfile import (
    FlagFileError,
    read_flag_file,
    restore_bytes,
    switched_flags,
    write_atomically,
)
from tests.support.drills import SHIPPED_FLAGS, copy_flags

# Odd spacing and key order on purpose: only the original bytes count as "put back".
HAND_WRITTEN = (
    b'{"flags": {\n  "fair-failure-rate": {"variants": {"spec": 0.0,  "half": 0.5},\n'
    b'     "defaultVariant": "spec", "state": "ENABLED"}}}'
)


def test_the_shipped_file_selects_the_variants_the_drills_call_shipped() -> None:
    shipped = read_flag_file(SHIPPED_FLAGS)
    assert {key: shipped.default_variant(key) for key in shipped.flags} == dict(SHIPPED)


def test_every_drill_names_flags_and_variants_the_shipped_file_has() -> None:
    shipped = read_flag_file(SHIPPED_FLAGS)
    for drill in DRILLS.values():
        for key, variant in drill.flags.items():
            assert variant in shipped.variants(key), f"{drill.name}: {key}={variant}"


def test_the_rates_the_drills_judge_by_are_the_shipped_file_s() -> None:
    """FAILURE_RATES and SLOW_SHARE copy variants' values: the file must still say them."""
    shipped = read_flag_file(SHIPPED_FLAGS)
    for variant, rates in FAILURE_RATES.items():
        assert set(rates) == set(FAILURE_FLAG_OF), variant
        for die, rate in rates.items():
            assert shipped.variants(FAILURE_FLAG_OF[die])[variant] == rate, (die, variant)
    share = LATENCY_FLAGS["extra-latency-share"]
    assert shipped.variants("extra-latency-share")[share] == SLOW_SHARE


def test_switching_writes_the_variants_and_the_block_ends_with_the_original_bytes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    path.write_bytes(HAND_WRITTEN)
    with switched_flags(path, {"fair-failure-rate": "half"}) as before:
        assert before.raw == HAND_WRITTEN
        during = json.loads(path.read_bytes())
        assert during["flags"]["fair-failure-rate"]["defaultVariant"] == "half"
        assert during["flags"]["fair-failure-rate"]["variants"] == {"spec": 0.0, "half": 0.5}
    assert path.read_bytes() == HAND_WRITTEN


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_original_bytes_come_back_when_the_block_fails(
    tmp_path: Path, error: BaseException
) -> None:
    path = copy_flags(tmp_path)
    original = path.read_bytes()
    with pytest.raises(type(error)), switched_flags(path, {"loaded-die-bias": "loaded"}):
        assert path.read_bytes() != original
        raise error
    assert path.read_bytes() == original


def test_each_write_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A new inode each time (what a folder mount shows the container), same permissions."""
    path = copy_flags(tmp_path)
    path.chmod(0o640)
    inode = path.stat().st_ino
    with switched_flags(path, {"loaded-die-bias": "loaded"}):
        assert path.stat().st_ino != inode
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == ["flags.json"]


def test_an_edit_made_during_the_drill_is_kept_beside_the_restored_file(tmp_path: Path) -> None:
    path = copy_flags(tmp_path)
    original = path.read_bytes()
    kept: list[Path | None] = []
    with switched_flags(path, {"loaded-die-bias": "loaded"}, on_restore=kept.append):
        path.write_bytes(b'{"flags": {}}')
    assert path.read_bytes() == original
    assert kept == [path.with_name("flags.json.during-drill")]
    assert kept[0] is not None and kept[0].read_bytes() == b'{"flags": {}}'


def test_restoring_an_untouched_file_writes_nothing(tmp_path: Path) -> None:
    path = copy_flags(tmp_path)
    inode = path.stat().st_ino
    assert restore_bytes(path, path.read_bytes(), b"other") is None
    assert path.stat().st_ino == inode


def test_a_failed_write_leaves_the_file_and_the_folder_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copy_flags(tmp_path)
    original = path.read_bytes()

    def disk_full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomically(path, b"{}")
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == ["flags.json"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "not in flagd's format"),
        (b'{"flags": {"x": {"defaultVariant": "a"}}}', "flag 'x' in .* has no variants"),
        (
            b'{"flags": {"x": {"variants": {"a": 1}, "defaultVariant": "b"}}}',
            "defaults to 'b', which is not one of its variants \\(a\\)",
        ),
    ],
    ids=["missing", "not-json", "not-flagd", "no-variants", "bad-default"],
)
def test_a_file_that_cannot_be_used_is_one_message(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "flags.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FlagFileError, match=expected):
        read_flag_file(path)


def test_an_unknown_flag_or_variant_names_what_the_file_has(tmp_path: Path) -> None:
    path = copy_flags(tmp_path)
    original = path.read_bytes()
    with pytest.raises(FlagFileError, match=r"no flag 'nope' \(it has: database-latency"):
        switched_flags(path, {"nope": "x"}).__enter__()
    with pytest.raises(FlagFileError, match=r"no variant 'x' \(it has: off, loaded\)"):
        switched_flags(path, {"loaded-die-bias": "x"}).__enter__()
    assert path.read_bytes() == original


def test_a_file_that_cannot_be_written_is_one_message_and_stays_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copy_flags(tmp_path)
    original = path.read_bytes()

    def read_only(source: object, target: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with (
        pytest.raises(FlagFileError, match=r"cannot write the flag file .*Read-only file system"),
        switched_flags(path, {"loaded-die-bias": "loaded"}),
    ):
        pytest.fail("the block must not run when the flags could not be switched")
    assert path.read_bytes() == original


def test_a_restore_that_fails_hands_the_original_content_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is lost: the message carries the bytes the file must get back."""
    path = copy_flags(tmp_path)
    original = path.read_bytes()

    def disk_full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    with (
        pytest.raises(FlagFileError) as raised,
        switched_flags(path, {"loaded-die-bias": "loaded"}),
    ):
        monkeypatch.setattr(os, "replace", disk_full)  # from now on: the restore fails
    message = str(raised.value)
    assert message.startswith(f"could not put the flag file {path} back")
    assert message.endswith(original.decode())

"""The flag file as an input: whatever is put at its path, the service says what is
wrong in one line and keeps its last good values, and a later good file applies.

Real OpenFeature and flagd, a real file in a temporary folder; waits poll with a limit,
no assertion on how long anything took.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dice_roller.dice import DieType
from dice_roller.flags import RISKY_FAILURE_RATE, FaultFlags
from dice_roller.settings import Settings
from openfeature.event import EventDetails, ProviderEvent
from sandbox_telemetry.flag_file import Refused, read_bounded

from tests.support.flags import copy_shipped, select_variants, write_many_flags
from tests.support.processes import eventually

WAIT = 15.0  # seconds: the watcher polls every 0.5 s, a busy machine may take longer
KEPT = "keeping the last good values"


@contextmanager
def watching(path: Path) -> Iterator[tuple[FaultFlags, list[EventDetails]]]:
    """The flags of `path`, and the provider's error events as they come."""
    flags = FaultFlags(Settings(flags_file=path))
    assert flags.client is not None
    errors: list[EventDetails] = []
    flags.client.add_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
    try:
        yield flags, errors
    finally:
        flags.client.remove_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
        flags.close()


def risky_rate(flags: FaultFlags) -> float:
    return flags.for_roll(DieType.RISKY).number(RISKY_FAILURE_RATE)


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "dice_roller.flags" and r.levelno >= logging.ERROR
    ]


def said_once_while_polled(
    caplog: pytest.LogCaptureFixture, errors: list[EventDetails], lines: int, what: str
) -> list[str]:
    """Wait for the `lines`-th error line and three more polls of the same file, then
    check that no poll said it again."""
    eventually(lambda: len(error_lines(caplog)) >= lines, what, WAIT)
    seen = len(errors)
    eventually(lambda: len(errors) >= seen + 3, f"three more polls of {what}", WAIT)
    found = error_lines(caplog)
    assert len(found) == lines, found
    return found


def rss_mib() -> float:
    """This process's resident memory, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def replace_with_older_mtime(path: Path, text: str) -> None:
    """Replace the file atomically by one whose mtime is an hour older (a copy that kept
    its mtime, `cp -p`, `rsync -t`, a file from an archive)."""
    staged = path.with_name(".staged.json")
    staged.write_text(text, encoding="utf-8")
    older = path.stat().st_mtime - 3600
    os.utime(staged, (older, older))
    os.replace(staged, path)


def test_a_replacement_with_an_older_mtime_applies(tmp_path: Path) -> None:
    path = copy_shipped(tmp_path, {"risky-failure-rate": "always"})
    (tmp_path / "other").mkdir()
    half = copy_shipped(tmp_path / "other", {"risky-failure-rate": "half"})
    with watching(path) as (flags, _):
        assert risky_rate(flags) == 1.0
        replace_with_older_mtime(path, half.read_text(encoding="utf-8"))
        eventually(lambda: risky_rate(flags) == 0.5, "the older file applied", WAIT)


def test_a_fifo_moved_into_place_is_refused_in_one_line_and_a_later_file_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"risky-failure-rate": "always"})
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    os.link(pipe, tmp_path / ".staged")  # a second name, to unblock a reader at the end
    try:
        with watching(path) as (flags, errors):
            os.replace(tmp_path / ".staged", path)
            [line] = said_once_while_polled(caplog, errors, 1, "a line about the FIFO")
            assert "not a regular file" in line and str(path) in line and KEPT in line
            assert risky_rate(flags) == 1.0
            select_variants(copy_shipped(tmp_path), {"risky-failure-rate": "half"})
            eventually(lambda: risky_rate(flags) == 0.5, "the good file after the FIFO", WAIT)
    finally:  # a watcher stuck opening the FIFO gets an end of file
        with contextlib.suppress(OSError):
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_symlink_to_a_device_is_refused_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, device: str
) -> None:
    assert stat.S_ISCHR(os.stat(device).st_mode)
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"risky-failure-rate": "always"})
    with watching(path) as (flags, errors):
        (tmp_path / ".staged").symlink_to(device)
        os.replace(tmp_path / ".staged", path)
        [line] = said_once_while_polled(caplog, errors, 1, f"a line about {device}")
        assert "not a regular file" in line and str(path) in line and KEPT in line
        assert risky_rate(flags) == 1.0
        select_variants(copy_shipped(tmp_path), {"risky-failure-rate": "half"})
        eventually(lambda: risky_rate(flags) == 0.5, "the good file after the device", WAIT)


def test_a_file_over_the_limit_is_refused_unread_and_each_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """10 MB of valid flags (110,000 of them): refused by its size, never parsed."""
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path, {"risky-failure-rate": "always"})
    with watching(path) as (flags, errors):
        before = rss_mib()
        size = write_many_flags(path, 110_000)
        assert size > 10_000_000
        [line] = said_once_while_polled(caplog, errors, 1, "a line about the large file")
        grown = rss_mib() - before
        assert "over the limit of 1 MiB" in line and str(path) in line and KEPT in line
        assert grown < 8, f"RSS grew {grown:.1f} MiB for a {size / 2**20:.1f} MiB file"
        assert risky_rate(flags) == 1.0

        write_many_flags(path, 60_000)  # another large file: another line, once
        said_once_while_polled(caplog, errors, 2, "a line about the second large file")
        select_variants(copy_shipped(tmp_path), {"risky-failure-rate": "half"})
        eventually(lambda: risky_rate(flags) == 0.5, "the good file after the large one", WAIT)


def test_a_file_over_the_limit_at_start_gives_the_shipped_defaults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "flags.json"
    write_many_flags(path, 20_000)
    with watching(path) as (flags, _):
        assert risky_rate(flags) == 0.1
        eventually(lambda: error_lines(caplog), "a line about the large file", WAIT)
        [line] = error_lines(caplog)
        assert "over the limit of 1 MiB" in line and "using the shipped defaults" in line
        select_variants(copy_shipped(tmp_path), {"risky-failure-rate": "half"})
        eventually(lambda: risky_rate(flags) == 0.5, "the good file", WAIT)


def test_thousands_of_unknown_flags_are_named_in_one_short_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file under the limit may still hold 10,000 flags: the warning names five."""
    caplog.set_level(logging.INFO)
    path = copy_shipped(tmp_path)
    with watching(path) as (flags, _):
        write_many_flags(path, 10_000)
        eventually(lambda: "filler-000000" in caplog.text, "the warning", WAIT)
        select_variants(copy_shipped(tmp_path), {"risky-failure-rate": "half"})
        eventually(lambda: risky_rate(flags) == 0.5, "the file without them", WAIT)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "filler-000004 and 9,995 more; it knows" in warning and len(warning) < 1000
    assert error_lines(caplog) == []


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: path.write_bytes(b"x" * 64), None),
        (lambda path: path.write_bytes(b"x" * 65), "65 bytes, over the limit of 64 bytes"),
        (os.mkfifo, "not a regular file but a FIFO"),
        (Path.mkdir, "not a regular file but a directory"),
        (lambda path: None, "no such file"),
    ],
    ids=["at the limit", "over it", "FIFO", "directory", "missing"],
)
def test_read_bounded_reads_regular_files_up_to_the_limit(
    tmp_path: Path, make: Callable[[Path], object], expected: str | None
) -> None:
    path = tmp_path / "flags.json"
    make(path)
    if expected is None:
        assert read_bounded(str(path), limit=64) == b"x" * 64
    else:
        with pytest.raises(Refused, match=re.escape(expected)):
            read_bounded(str(path), limit=64)


def test_read_bounded_refuses_a_file_that_is_longer_than_it_says() -> None:
    """/proc files say they are empty: only the bytes read tell."""
    assert Path("/proc/self/status").stat().st_size == 0
    with pytest.raises(Refused, match="it grew while read, over the limit"):
        read_bounded("/proc/self/status", limit=100)

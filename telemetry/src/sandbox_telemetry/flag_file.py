"""The flag file's watcher: reads the file with limits and hands its flags to flagd.

flagd's own file watcher (openfeature-provider-flagd 0.6) applies the file only when its
mtime grows, opens whatever the path names and reads it whole: a replacement that kept
an older mtime is never applied, a FIFO blocks the watcher for good, a symlink to
/dev/zero is skipped for its old mtime (or read without end), a 10 MB file is loaded
whole. This watcher
takes its place inside the provider (`install`), so evaluation, targeting and the
provider's events stay flagd's. Every `poll_seconds`, like flagd's, it:

- opens the path without blocking (a FIFO with no writer opens at once) and, on the
  open file, refuses anything but a regular file: a FIFO, a device, a directory;
- refuses a file over `LIMIT` bytes, and reads at most `LIMIT` + 1 bytes of the others
  (a file that grows while it is read is refused too);
- applies the file when those bytes differ from the last ones it read (a SHA-256),
  whatever the mtime says; the same bytes are not parsed twice.

The file is JSON (flagd's YAML form is not read). While it is bad, each poll sends the
provider's error event again, as flagd's watcher does; flags.py says it once. A look at
the file costs about 50 µs for the shipped one, 2 ms at the limit.

The flags go to flagd through the interface its own watcher uses (a connector that
hands the provider's flag store each new document): one reader of the file, one poll.
Copying a checked file to a private one for flagd's watcher to poll would keep that
watcher's mtime rule and add a second poll and a file to clean up.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable
from typing import Any, Protocol

from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.resolvers import InProcessResolver
from openfeature.contrib.provider.flagd.resolvers.process.connector.file_watcher import (
    FileWatcher,
)
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, ParseError, ProviderNotReadyError

__all__ = ["LIMIT", "FlagFile", "read_bounded"]

LIMIT = 1024 * 1024
"""The largest flag file read, in bytes: 1 MiB (the shipped one is under 1 KB)."""
_KINDS = {"p": "a FIFO", "c": "a character device", "b": "a block device", "s": "a socket"}
_LONGEST_MESSAGE = 300
"""Characters of a parse error kept: flagd's messages may quote the file."""


class Refused(Exception):
    """The file was not read: the message says why."""


def read_bounded(path: str, limit: int = LIMIT) -> bytes:
    """The bytes of the regular file at `path`, if it has at most `limit` of them."""
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                kind = _KINDS.get(stat.filemode(info.st_mode)[0], "something else")
                raise Refused(f"not a regular file but {kind}; not read")
            content = f.read(limit + 1) if info.st_size <= limit else b""
    except FileNotFoundError:
        raise Refused("no such file") from None
    except IsADirectoryError:  # open() refuses a directory itself
        raise Refused("not a regular file but a directory; not read") from None
    except OSError as error:
        raise Refused(f"cannot be read: {error.strerror}") from None
    if info.st_size > limit or len(content) > limit:
        size = f"{info.st_size:,} bytes" if info.st_size > limit else "it grew while read"
        most = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit:,} bytes"
        raise Refused(f"{size}, over the limit of {most}; not read")
    return content


class _FlagStore(Protocol):
    def update(self, flags_data: dict[str, Any], /) -> object: ...


class FlagFile:
    """A FlagStateConnector (flagd's interface for a source of flags) for one file."""

    @classmethod
    def install(cls, provider: FlagdProvider, poll_seconds: float) -> None:
        """Watch `provider`'s file (a FILE resolver's) with this watcher, not flagd's."""
        resolver = provider.resolver
        assert isinstance(resolver, InProcessResolver)
        flagd = resolver.connector
        assert isinstance(flagd, FileWatcher)
        store, ready, error = flagd.flag_store, flagd.emit_provider_ready, flagd.emit_provider_error
        resolver.connector = cls(flagd.file_path, poll_seconds, store, ready, error)

    def __init__(
        self,
        path: str,
        poll_seconds: float,
        flag_store: _FlagStore,
        emit_ready: Callable[[ProviderEventDetails, dict[str, Any]], None],
        emit_error: Callable[[ProviderEventDetails], None],
    ) -> None:
        self.path, self.poll_seconds, self.flag_store = path, poll_seconds, flag_store
        self.emit_ready, self.emit_error = emit_ready, emit_error
        self._seen: bytes | None = None  # the SHA-256 of the bytes last read
        self._problem: str | None = None  # what is wrong with them, if anything
        self._stop = threading.Event()

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Read the file, then watch it; a bad file leaves the provider not ready."""
        self.check()
        threading.Thread(target=self._watch, daemon=True, name="FlagFileWatcher").start()
        if self._problem is not None:
            raise ProviderNotReadyError(self._problem)

    def shutdown(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()

    def check(self) -> None:
        """Apply the file if its bytes changed; say again what is wrong while it is bad."""
        try:
            content = read_bounded(self.path)
        except Refused as refused:
            self._seen, self._problem = None, str(refused)  # a later good file is a change
        else:
            digest = hashlib.sha256(content).digest()
            if digest != self._seen:
                failing, self._seen = self._problem is not None, digest
                self._problem = self._apply(content)
                if failing and self._problem is None:
                    self.emit_ready(ProviderEventDetails(message="The flag file is good again"), {})
        if self._problem is not None:
            details = ProviderEventDetails(message=self._problem, error_code=ErrorCode.PARSE_ERROR)
            self.emit_error(details)

    def _apply(self, content: bytes) -> str | None:
        """Hand the file's flags to flagd; what is wrong with them, if anything."""
        try:
            document = json.loads(content)
        except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, too deep
            return f"Could not parse JSON flag data from file: {error}"
        try:
            if not isinstance(document, dict):
                raise ParseError("the file is not a JSON object")
            self.flag_store.update(document)
        except ParseError as error:
            why = error.error_message or "not flagd's flag format"
            return f"Could not parse flag data using flagd syntax: {why}"[:_LONGEST_MESSAGE]
        except Exception as error:  # anything flagd's parser did not expect
            return f"Could not read flags from file: {error!r}"[:_LONGEST_MESSAGE]
        return None

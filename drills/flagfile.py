"""The flag file the service watches: read it, switch flags, and put its bytes back.

The file is flagd's JSON format (stack/flags/flags.json): each flag has named
`variants` and a `defaultVariant`, and the service evaluates the default variant
unless targeting says otherwise. A drill switches a flag by naming another variant
as its default, which is what a person editing the file would do.

Every write is atomic: the new text goes to a temporary file in the same folder,
then `os.replace` swaps it in, so the service's watcher never reads half a file.
(Compose mounts the folder, not the file, for this reason: an atomic replace makes
a new inode, which a single-file bind mount would never show the container.)

`switched_flags` puts the exact original bytes back when its block ends, however
it ends: normally, on an exception, on Ctrl-C or SIGTERM (turned into
KeyboardInterrupt by the CLI). The restore runs with SIGINT and SIGTERM blocked, so
a second Ctrl-C cannot cut it short.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FlagFile",
    "FlagFileError",
    "read_flag_file",
    "restore_bytes",
    "switched_flags",
    "write_atomically",
]


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
"""What the CLI turns into KeyboardInterrupt: held back while the file is being written."""


class FlagFileError(Exception):
    """The flag file is missing, unreadable, not flagd's format, or lacks a flag or variant."""


@dataclass(frozen=True)
class FlagFile:
    """A flag file as read: its path, its exact bytes, and the parsed document."""

    path: Path
    raw: bytes
    document: dict[str, Any]

    @property
    def flags(self) -> dict[str, Any]:
        flags: dict[str, Any] = self.document["flags"]
        return flags

    def default_variant(self, key: str) -> str:
        """The variant `key` currently evaluates to (its `defaultVariant`)."""
        return str(self._flag(key)["defaultVariant"])

    def variants(self, key: str) -> dict[str, Any]:
        variants: dict[str, Any] = self._flag(key)["variants"]
        return variants

    def _flag(self, key: str) -> dict[str, Any]:
        flag = self.flags.get(key)
        if flag is None:
            known = ", ".join(sorted(self.flags)) or "none"
            raise FlagFileError(f"{self.path} has no flag {key!r} (it has: {known})")
        flag_dict: dict[str, Any] = flag
        return flag_dict

    def with_defaults(self, choices: Mapping[str, str]) -> bytes:
        """The file's text with each flag of `choices` defaulting to the variant named.

        Raises FlagFileError naming the flag and its variants when one does not exist.
        """
        document = json.loads(self.raw)  # a fresh copy to change
        for key, variant in choices.items():
            variants = self.variants(key)
            if variant not in variants:
                raise FlagFileError(
                    f"flag {key!r} in {self.path} has no variant {variant!r} "
                    f"(it has: {', '.join(variants)})"
                )
            document["flags"][key]["defaultVariant"] = variant
        return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def read_flag_file(path: Path) -> FlagFile:
    """Read and check `path`: flagd's `{"flags": {KEY: {"variants": {...},
    "defaultVariant": NAME}}}`, every default naming one of its variants."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FlagFileError(f"the flag file {path} does not exist") from None
    except IsADirectoryError:
        raise FlagFileError(f"the flag file {path} is a folder, not a file") from None
    except OSError as error:
        raise FlagFileError(f"cannot read the flag file {path}: {error.strerror}") from None
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FlagFileError(f"the flag file {path} is not valid JSON: {error}") from None
    flags = document.get("flags") if isinstance(document, dict) else None
    if not isinstance(flags, dict):
        raise FlagFileError(
            f'the flag file {path} is not in flagd\'s format: expected {{"flags": {{...}}}}'
        )
    for key, flag in flags.items():
        if not isinstance(flag, dict) or not isinstance(flag.get("variants"), dict):
            raise FlagFileError(f"flag {key!r} in {path} has no variants object")
        if flag.get("defaultVariant") not in flag["variants"]:
            raise FlagFileError(
                f"flag {key!r} in {path} defaults to {flag.get('defaultVariant')!r}, "
                f"which is not one of its variants ({', '.join(flag['variants'])})"
            )
    return FlagFile(path, raw, document)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path`'s content with `data` in one step, keeping its permission bits."""
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def restore_bytes(path: Path, original: bytes, written: bytes) -> Path | None:
    """Put `original` back into `path`, which we last left holding `written`.

    If someone else changed the file meanwhile, their version is kept beside it
    (`<name>.during-drill`, whose path is returned) before the original goes back:
    the promise is the original bytes, but nothing is lost.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        kept = None
        try:
            current = path.read_bytes()
        except OSError:
            current = None
        if current is not None and current not in (written, original):
            kept = path.with_name(path.name + ".during-drill")
            write_atomically(kept, current)
        if current != original:
            write_atomically(path, original)
        return kept
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def switched_flags(
    path: Path,
    choices: Mapping[str, str],
    on_restore: Callable[[Path | None], None] | None = None,
) -> Iterator[FlagFile]:
    """Set each flag of `choices` to its variant for the block; the original bytes after.

    Yields the file as it was before. `on_restore(kept)` is called once the original
    is back (`kept`: where someone else's concurrent edit was saved, or None).
    """
    original = read_flag_file(path)
    changed = original.with_defaults(choices)
    # A Ctrl-C between the write and the `try` would skip the restore: hold it back
    # until the `try` is entered, where it raises like any other.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        try:
            write_atomically(path, changed)
        except OSError as error:
            raise FlagFileError(f"cannot write the flag file {path}: {error}") from None
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        yield original
    finally:
        # Held back from here until the original is back: a Ctrl-C now would skip it.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            kept = restore_bytes(path, original.raw, changed)
        except OSError as error:
            text = original.raw.decode(errors="replace")
            raise FlagFileError(
                f"could not put the flag file {path} back ({error}); "
                f"write this, its original content, back into it:\n{text}"
            ) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if on_restore is not None:
            on_restore(kept)

"""Flag files for the tests: copies of the shipped one, switched as a user or a drill would.

A switch rewrites the file atomically (a temporary file in the same folder, then
`os.replace`), the way stack/flags/README.md tells users to, so the watcher never
reads half a file unless a test writes one on purpose (`write_raw`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .paths import ROOT

__all__ = [
    "SHIPPED_FLAGS",
    "copy_shipped",
    "edit_flags",
    "select_variants",
    "write_many_flags",
    "write_raw",
]

SHIPPED_FLAGS = ROOT / "stack" / "flags" / "flags.json"


def copy_shipped(directory: Path, variants: Mapping[str, str] | None = None) -> Path:
    """A copy of the shipped flag file in `directory`, with `variants` selected."""
    path = directory / "flags.json"
    write_raw(path, SHIPPED_FLAGS.read_text(encoding="utf-8"))
    if variants:
        select_variants(path, variants)
    return path


def select_variants(path: Path, variants: Mapping[str, str]) -> None:
    """Select flag key -> variant name, as a user editing `defaultVariant` does."""

    def select(document: dict[str, Any]) -> None:
        for key, variant in variants.items():
            document["flags"][key]["defaultVariant"] = variant

    edit_flags(path, select)


def edit_flags(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change(document)` to the file's JSON and write it back atomically."""
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    write_raw(path, json.dumps(document, indent=2))


def write_raw(path: Path, text: str) -> None:
    """Replace the file's content with `text`, whatever it is, atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_many_flags(path: Path, count: int) -> int:
    """Replace the file with the shipped flags and `count` more of no use, written a
    flag at a time so the writer never holds the whole text; returns the file's size."""
    shipped = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as file:
        file.write('{"flags": {')
        for key, definition in shipped["flags"].items():
            file.write(f"{json.dumps(key)}: {json.dumps(definition)},\n")
        for number in range(count):
            comma = "," if number < count - 1 else ""
            file.write(
                f'"filler-{number:06d}": {{"state": "ENABLED", "defaultVariant": "off", '
                f'"variants": {{"on": 1.0, "off": 0.0}}}}{comma}\n'
            )
        file.write("}}\n")
    os.replace(temporary, path)
    return path.stat().st_size

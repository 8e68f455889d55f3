"""A Dockerfile read as its instructions, for the tests that hold images to their rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

__all__ = ["Instruction", "instructions"]


class Instruction(NamedTuple):
    keyword: str
    """Upper case: FROM, RUN, COPY..."""
    arguments: str


def instructions(dockerfile: Path) -> list[Instruction]:
    """The Dockerfile's instructions, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip()))
    return found

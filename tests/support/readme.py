"""The README read as data: its shell lines and its tables, for tests that hold the
document to what the code does."""

from __future__ import annotations

import re

from tests.support.paths import ROOT

__all__ = ["README", "code_spans", "readme_text", "shell_lines", "table"]

README = ROOT / "README.md"

_FENCE = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.M | re.S)


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def shell_lines(containing: str) -> list[str]:
    """Lines of the README's shell blocks that mention `containing`, comments cut off."""
    lines = []
    for block in _FENCE.findall(readme_text()):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if containing in command:
                lines.append(command)
    return lines


def table(first_header: str) -> dict[str, list[str]]:
    """The README table whose first column is headed `first_header`: its rows by first cell."""
    rows: dict[str, list[str]] = {}
    lines = readme_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def code_spans(text: str) -> list[str]:
    """The `code` spans of a piece of Markdown, in order."""
    return re.findall(r"`([^`]+)`", text)

"""The checklist on screen (ticks, crosses and hints) or as JSON for scripts.

On screen, the summary of `summary.py` comes first; a box crossed only because a
component could not be reached then takes one line, and a box ticked from the
repository's files alone says so under its detail.

JSON shape (`--json`), stable for scripts, with the same summary and folding:

    {"passed": bool, "total": int, "passed_count": int, "failed_count": int,
     "answered": [str], "unreachable": {component: message},
     "how_to_start": str | null,
     "groups": [{"name": str, "checks": [{"title": str, "passed": bool,
                 "detail": str, "hint": str | null, "seconds": float,
                 "blocked_by": component | null, "read_from_files": [str]}]}]}

`blocked_by` names the unreachable component a crossed box failed for alone (its
message is in `unreachable`); `read_from_files` lists the repository files a box was
ticked from when no running component answered it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from .context import ROOT
from .model import GROUPS, Result, Run
from .summary import HOW_TO_START, summary_lines

__all__ = ["render_json", "render_text", "to_json"]

TICK, CROSS = "✅", "❌"
ASCII_TICK, ASCII_CROSS = "[x]", "[ ]"


def _grouped(run: Run) -> list[tuple[str, list[Result]]]:
    """Results in the checklist's group order; within a group, in the order they ran."""
    return [
        (group, [r for r in run.results if r.group == group])
        for group in GROUPS
        if any(r.group == group for r in run.results)
    ]


def to_json(run: Run) -> dict[str, Any]:
    passed = sum(1 for r in run.results if r.passed)
    return {
        "passed": run.passed,
        "total": len(run.results),
        "passed_count": passed,
        "failed_count": len(run.results) - passed,
        "answered": run.answered,
        "unreachable": {component.name: message for component, message in run.unreachable.items()},
        "how_to_start": HOW_TO_START if run.unreachable else None,
        "groups": [
            {
                "name": group,
                "checks": [
                    {
                        "title": r.title,
                        "passed": r.passed,
                        "detail": r.detail,
                        "hint": None if r.passed else r.hint,
                        "seconds": round(r.seconds, 3),
                        "blocked_by": None if r.blocked_by is None else r.blocked_by.name,
                        "read_from_files": (
                            [_shown_path(path) for path in r.files] if r.from_files_only else []
                        ),
                    }
                    for r in results
                ],
            }
            for group, results in _grouped(run)
        ],
    }


def render_json(run: Run) -> str:
    return json.dumps(to_json(run), indent=2, ensure_ascii=False)


def render_text(run: Run, ascii_only: bool = False, notes: list[str] | None = None) -> str:
    tick, cross = (ASCII_TICK, ASCII_CROSS) if ascii_only else (TICK, CROSS)
    lines: list[str] = summary_lines(run)
    for group, results in _grouped(run):
        lines.append(f"### {group}")
        lines.append("")
        hinted: set[str] = set()
        for r in results:
            if r.blocked_by is not None:
                lines.append(f"{cross} {r.title} ({r.blocked_by.name} did not answer)")
                continue
            lines.append(f"{tick if r.passed else cross} {r.title}")
            lines.append(textwrap.indent(r.detail, "      "))
            if r.from_files_only:
                lines.append(_from_files(r))
            if not r.passed and r.hint in hinted:
                lines.append("      fix: as above")
            elif not r.passed:
                hinted.add(r.hint)
                wrapped = textwrap.fill(
                    r.hint, width=88, initial_indent="      fix: ", subsequent_indent="           "
                )
                lines.append(wrapped)
        lines.append("")
    lines.extend(notes or [])
    passed = sum(1 for r in run.results if r.passed)
    verdict = "all passed" if run.passed else f"{len(run.results) - passed} failed"
    lines.append(f"{passed}/{len(run.results)} checks passed ({verdict})")
    return "\n".join(lines)


def _from_files(result: Result) -> str:
    """Two lines under the detail: where the box's answer came from instead."""
    shown = "\n".join(f"        {_shown_path(path)}" for path in result.files)
    return f"      (read from the repository, not from a running component:\n{shown})"


def _shown_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

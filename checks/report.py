"""The checklist on screen (ticks, crosses and hints) or as JSON for scripts.

JSON shape (`--json`), stable for scripts:

    {"passed": bool, "total": int, "passed_count": int, "failed_count": int,
     "groups": [{"name": str, "checks": [{"title": str, "passed": bool,
                 "detail": str, "hint": str | null, "seconds": float}]}]}
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from .model import GROUPS, Result, Run

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
    lines: list[str] = []
    for group, results in _grouped(run):
        lines.append(f"### {group}")
        lines.append("")
        hinted: set[str] = set()
        for r in results:
            lines.append(f"{tick if r.passed else cross} {r.title}")
            lines.append(textwrap.indent(r.detail, "      "))
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

"""Printing the figures, judging the ratios against their targets, and a JSON copy.

Quick runs (`--quick`) are too short to judge anything: they print every figure but
mark each target "not judged", so the smoke test checks the bench runs, not the machine.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Check", "Report"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Check:
    part: str
    name: str
    value: float
    target: str  # e.g. ">= 0.60"
    verdict: str  # PASS, MISS, or "not judged" in quick runs


@dataclass
class Report:
    quick: bool
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def section(self, part: str, title: str) -> None:
        self.figures.setdefault(part, {})
        print(f"\n== {part}: {title}", flush=True)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def figure(self, part: str, name: str, value: Any) -> None:
        """Keep a figure for the JSON copy (the printed tables show it to people)."""
        self.figures.setdefault(part, {})[name] = value

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        print(flush=True)

    def check(
        self, part: str, name: str, value: float, op: str, threshold: float, unit: str = ""
    ) -> Check:
        """Print `name: value` with its target `op threshold` and PASS or MISS."""
        target = f"{op} {threshold:g}{unit}"
        if self.quick:
            verdict = "not judged (--quick)"
        else:
            verdict = "PASS" if _COMPARE[op](value, threshold) else "MISS"
        result = Check(part, name, round(value, 4), target, verdict)
        self.checks.append(result)
        print(f"  {name}: {value:.3g}{unit}   target {target}   {verdict}", flush=True)
        return result

    def summary(self) -> None:
        if not self.checks:
            return
        print("\n== summary")
        width = max(len(f"{c.part}: {c.name}") for c in self.checks)
        for c in self.checks:
            label = f"{c.part}: {c.name}".ljust(width)
            print(f"  {label}  {c.value:<10g} target {c.target:<10} {c.verdict}")
        print(flush=True)

    def write_json(self, path: Path, machine: dict[str, str], command: str) -> None:
        data = {
            "machine": machine,
            "command": command,
            "quick": self.quick,
            "figures": self.figures,
            "checks": [asdict(c) for c in self.checks],
        }
        path.write_text(json.dumps(data, indent=2) + "\n")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)

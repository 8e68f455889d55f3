"""docs/checklist.md lists exactly the boxes `verify` ticks, group by group, in order.

Every box is produced whether or not the stack answers (the dashboard's panels and the
data sources come from the repository's own files), so a run against a closed port,
with the traffic boxes on, yields the whole checklist without a stack.
"""

from __future__ import annotations

import re

from tests.support.paths import ROOT
from tests.support.tools import closed_url
from tests.support.verify_stack import nothing_running
from verify.cli import run_checks
from verify.model import GROUPS

CHECKLIST = ROOT / "docs" / "checklist.md"


def documented_boxes() -> dict[str, list[str]]:
    """Each `## Group` heading of the page and the `- **box**` items under it."""
    boxes: dict[str, list[str]] = {}
    group = None
    for line in CHECKLIST.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            group = line[3:].strip()
            boxes[group] = []
        elif (item := re.match(r"^- \*\*(.+?)\*\*", line)) is not None:
            assert group is not None, f"a box before any group: {line}"
            boxes[group].append(item.group(1))
    return boxes


def checked_boxes() -> dict[str, list[str]]:
    settings = nothing_running(
        frontend_url=closed_url(),
        stage=5,
        with_traffic=True,
        traffic_args=("--users", "1", "--rolls", "1"),
    )
    run = run_checks(settings)
    return {group: [r.title for r in run.results if r.group == group] for group in GROUPS}


def test_the_page_lists_the_boxes_verify_checks() -> None:
    documented = documented_boxes()
    assert list(documented) == list(GROUPS)
    assert documented == checked_boxes()

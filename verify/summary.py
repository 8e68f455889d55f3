"""The report's opening: which components answered, which did not, and how to start them.

With nothing running, every box fails for the same few reasons. Saying each reason
once, with the way to start what is missing (with Docker or without), lets the boxes
below fold to one line each.
"""

from __future__ import annotations

import textwrap

from .model import Run

__all__ = ["HOW_TO_START", "summary_lines"]

HOW_TO_START = (
    "To start them: with Docker, `docker compose up -d --build` (the service and the whole "
    "stack); without Docker, `python3 tasks.py nativestack`, as root (the service and the "
    "stack as plain processes; docs/native-stack.md says which components it runs) or "
    "`python3 tasks.py run` (the service alone). Running elsewhere? Give verify their URLs "
    "(--service-url, --prometheus-url, ...; see --help)."
)


def summary_lines(run: Run, width: int = 88) -> list[str]:
    """The summary, a few lines long; no more than the answered line when all answered."""
    answered = ", ".join(run.answered) or "none"
    if not run.unreachable:
        return [f"Answered: {answered}.", ""]
    lines = [f"Answered: {answered}.", "Did not answer:"]
    lines.extend(f"  - {message}" for message in run.unreachable.values())
    lines.extend(textwrap.wrap(HOW_TO_START, width=width))
    folded = sum(1 for result in run.results if result.blocked_by is not None)
    lines.append(
        f"The {folded} box{'es' if folded != 1 else ''} that failed only for this "
        f"{'are' if folded != 1 else 'is'} folded to one line each below."
    )
    lines.append("")
    return lines

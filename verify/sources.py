"""What a check relied on: the components that answered it, the repository files it read.

`Run.check` records both around each check. A box ticked from this repository's own
files says nothing about what is running, so the report says where such a box got
its answer; the components that answered also make the report's opening summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sources", "answered", "read", "recording"]


@dataclass
class Sources:
    """What one check relied on, in the order it first did."""

    components: list[str] = field(default_factory=list)
    """Names of the components that answered it, whatever their answer said."""
    files: list[Path] = field(default_factory=list)
    """Files of the repository it read (provisioning, dashboard)."""


_current: ContextVar[Sources | None] = ContextVar("checks_sources", default=None)


@contextmanager
def recording() -> Iterator[Sources]:
    """Collect what the code run inside the block relies on."""
    sources = Sources()
    token = _current.set(sources)
    try:
        yield sources
    finally:
        _current.reset(token)


def answered(component: str) -> None:
    """`component` answered the check being run (outside a check, nothing is kept)."""
    sources = _current.get()
    if sources is not None and component not in sources.components:
        sources.components.append(component)


def read(path: Path) -> None:
    """The check being run read `path`, one of the repository's files."""
    sources = _current.get()
    if sources is not None and path not in sources.files:
        sources.files.append(path)

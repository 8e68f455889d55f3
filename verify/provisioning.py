"""The stack's own files the checks read: Grafana's data source provisioning.

The checks compare the live stack with what this repository configures, so a link
query or a data source list is read from `stack/grafana/provisioning/datasources/`
rather than copied into the checks. Each file read is noted (`sources.read`): a box ticked
from it alone says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .model import Failed
from .sources import read as note_read

__all__ = ["provisioned_datasources"]


def provisioned_datasources(directory: Path) -> list[dict[str, Any]]:
    """Every data source declared in the provisioning files of `directory`."""
    sources: list[dict[str, Any]] = []
    paths = sorted(directory.glob("*.y*ml"))
    if not paths:
        raise Failed(f"no provisioning files (*.yaml) in {directory}")
    for path in paths:
        note_read(path)
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise Failed(f"cannot read {path}: {first_line}") from None
        if not isinstance(document, dict):
            raise Failed(f"{path} is not a provisioning file (no top-level mapping)")
        sources.extend(s for s in document.get("datasources") or [] if isinstance(s, dict))
    return sources

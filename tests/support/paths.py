"""Where the repository is, for tests that read its files (configs, rules, dashboards).

Tests run from any working directory (pytest's rootdir, an IDE, a single file), so
paths are taken from this file's place in the tree, never from the current directory.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ALLOY_CONFIG", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: tests/support/paths.py is two folders below it."""

ALLOY_CONFIG = ROOT / "stack" / "alloy" / "config.alloy"

"""Running `python -m bench` as users do, for the smoke tests, and reading its figures."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "positive", "run_bench"]

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0

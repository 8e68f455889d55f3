"""The README's traffic-generator line works as written on a machine that has only run
the README's own commands: from the repository's root, no environment activated, no
uv on PATH (a fresh machine's pip puts it in ~/.local/bin, which PATH often lacks)."""

from __future__ import annotations

import subprocess

from tests.support.paths import ROOT
from tests.support.readme import shell_lines
from tests.support.service import RunningService

BARE_PATH = "/usr/bin:/bin"
"""The system's own directories only: no virtual environment, no uv, no pyenv shims."""


def test_the_traffic_generator_line_runs_as_written(dice_service: RunningService) -> None:
    lines = shell_lines("generate_traffic.py")
    assert len(lines) == 1, f"expected one generator line in README.md, found {lines}"
    # A short run against a real service; the line itself is run by a shell, unchanged.
    bounded = f"{lines[0]} --url {dice_service.url} --users 2 --rolls 2 --think 0"
    done = subprocess.run(
        ["/bin/sh", "-c", bounded],
        cwd=ROOT,
        env={"PATH": BARE_PATH, "HOME": "/nonexistent", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{lines[0]!r} failed:\n{done.stdout}\n{done.stderr}"
    assert "User 1 roll 1/2" in done.stdout
    assert "Traffic generation complete" in done.stdout

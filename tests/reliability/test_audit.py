"""pip-audit over every locked dependency: no known vulnerability in what we ship.

`uv export` turns uv.lock into pinned requirements (the service's, the generator's
and the dev tools'); pip-audit checks each pin against a vulnerability database,
without installing anything (`--no-deps --disable-pip`).

pip-audit reports a package it could not look up as *skipped*, and still says "No
known vulnerabilities found". A run where the database was unreachable is therefore
no evidence at all: here it counts as the tool being unavailable, which skips on a
laptop and fails under CI=true.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import report
from tests.support.tools import in_ci, require_tool

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("pypi", "osv")
"""pip-audit's databases, tried in turn: PyPI's JSON API, then OSV."""


def export_requirements(path: Path) -> int:
    """Write the locked pins to `path`; return how many there are."""
    uv = require_tool("uv", "uv export turns uv.lock into pinned requirements")
    command = [uv, "export", "--frozen", "--no-hashes", "--all-packages", "--no-emit-workspace"]
    exported = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    path.write_text(exported.stdout)
    return sum("==" in line for line in exported.stdout.splitlines())


def audit(requirements: Path, service: str) -> dict[str, Any]:
    pip_audit = shutil.which("pip-audit") or require_tool("pip-audit", "the dev group installs it")
    command = [
        pip_audit, "-r", str(requirements), "--no-deps", "--disable-pip",
        "--vulnerability-service", service, "--format", "json",
        "--progress-spinner", "off", "--timeout", "20",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    # Exit 1 means "vulnerabilities found"; the JSON on stdout says which.
    if not done.stdout.strip().startswith("{"):
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        return {"error": lines[-1][:300]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_no_known_vulnerability_in_the_locked_dependencies(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    pins = export_requirements(requirements)
    assert pins > 20  # the export really holds the lock

    reasons = []
    for service in SERVICES:
        result = audit(requirements, service)
        dependencies = result.get("dependencies", [])
        skipped = [d for d in dependencies if "skip_reason" in d]
        if "error" in result or not dependencies or skipped:
            detail = result.get("error") or (skipped[0]["skip_reason"] if skipped else "no output")
            reasons.append(f"{service}: {len(skipped)}/{pins} not looked up ({detail})")
            continue
        vulnerable = {
            f"{d['name']}=={d['version']}": [v["id"] for v in d["vulns"]]
            for d in dependencies
            if d.get("vulns")
        }
        report("pip-audit", database=service, pins=pins, audited=len(dependencies),
               vulnerable=len(vulnerable))  # fmt: skip
        assert len(dependencies) == pins
        assert vulnerable == {}, vulnerable
        return

    message = "no vulnerability database reachable: " + "; ".join(reasons)
    report("pip-audit", pins=pins, audited=0, unavailable=message)
    if in_ci():
        pytest.fail(f"CI=true, but pip-audit could not check anything: {message}")
    pytest.skip(message)

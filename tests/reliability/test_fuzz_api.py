"""Schemathesis fuzzes the service from its own OpenAPI document, every check on.

Two runs, because the risky die fails on purpose:

- with the failure rate at 0, any 5xx is a bug, and schemathesis's default
  expectations apply unchanged;
- with the failure rate at 1, every risky roll answers the 500 that `/roll`
  documents, and the run proves schemathesis accepts it: status code, content type
  and body conform to the declared response. Only for `GET /roll` is 500 an
  expected status; anywhere else it is still a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.figures import report
from tests.support.service import running_service
from tests.support.tools import require_tool

SCHEMATHESIS_CONFIG = """
[[operations]]
include-path = "/roll"
include-method = "GET"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "500"]
"""


def schemathesis_run(url: str, tmp_path: Path, max_examples: int) -> dict[str, object]:
    """Run `schemathesis run --checks all` and return its JSON report."""
    executable = require_tool("schemathesis", "the dev group installs it")
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    report_path = tmp_path / "report.json"
    command = [
        executable, "--config-file", str(config), "--no-color",
        "run", url + "/openapi.json",
        "--checks", "all",
        "--max-examples", str(max_examples),
        "--workers", "2",
        "--generation-database", "none",
        "--report", "json", "--report-json-path", str(report_path),
    ]  # fmt: skip
    # In tmp_path: schemathesis keeps a cache of crashes in the working directory.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path
    )
    sys.stdout.write(done.stdout[-4000:])
    assert report_path.exists(), done.stdout + done.stderr
    result: dict[str, object] = json.loads(report_path.read_text())
    assert done.returncode == 0, done.stdout[-6000:]
    return result


@pytest.mark.parametrize(
    ("failure_rate", "label"), [("0", "no deliberate failure"), ("1", "every risky roll fails")]
)
def test_schemathesis_finds_nothing(failure_rate: str, label: str, tmp_path: Path) -> None:
    env = {"DICE_MAX_DELAY_SECONDS": "0", "DICE_RISKY_FAILURE_RATE": failure_rate}
    with running_service(env) as service:
        result = schemathesis_run(service.url, tmp_path, max_examples=300)
        service.stop()
        records = service.log_records()  # every line parses as JSON, or this fails
    cases = result["test_cases"]
    operations = result["operations"]
    assert isinstance(cases, dict) and isinstance(operations, dict)
    failed_roll = sum(r.get("message") == "Roll failed" for r in records)
    report(
        f"schemathesis ({label})",
        operations=operations["tested"],
        cases=cases["generated"],
        failures=cases["with_failures"],
        errors=cases["errored"],
        deliberate_500s=failed_roll,
        log_lines=len(records),
    )
    assert result["failures"] == [] and result["errors"] == []
    assert cases["with_failures"] == cases["errored"] == 0
    assert operations["tested"] == operations["total"] == 2  # "/" and "/roll"
    assert cases["generated"] >= 100
    if failure_rate == "1":
        assert failed_roll > 0  # the documented 500 was met, and accepted
    else:
        assert failed_roll == 0

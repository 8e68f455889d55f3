"""A healthy stack: every box ticked, exit code 0, in text and in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nativestack.pins import pin
from stackclient import Tempo
from tests.support.verify_stack import Stack
from verify.cli import main, run_checks
from verify.context import ROOT
from verify.model import GROUPS

pytestmark = pytest.mark.slow

STAGE1_GROUPS = [g for g in GROUPS if g != "Traffic Generation" and not g.startswith("Stage ")]
"""What a plain run checks: no traffic without the flag, no later stage without --stage."""


def test_every_box_is_ticked_and_the_exit_code_is_0(
    live: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(live.argv())
    out = capsys.readouterr().out
    items = [line for line in out.splitlines() if line.startswith(("✅", "❌"))]
    assert code == 0, out
    assert items and all(line.startswith("✅") for line in items), out
    assert "fix:" not in out
    assert out.rstrip().endswith(f"{len(items)}/{len(items)} checks passed (all passed)")
    headings = [line[4:] for line in out.splitlines() if line.startswith("### ")]
    assert headings == STAGE1_GROUPS  # in the checklist's order


def test_the_checks_cover_the_spec_checklist(live: Stack) -> None:
    run = run_checks(live.settings())
    titles = " | ".join(result.title for result in run.results)
    assert run.passed, [(r.title, r.detail) for r in run.results if not r.passed]
    for words in (
        "Root endpoint",
        "Metrics endpoint",
        "Fair die roll",
        "Risky die roll",
        "target dice-roller-stage1 is UP",
        'http_requests_total{job="dice-roller-stage1"}',
        "dice_rolls_total",
        "dice_roll_value_bucket",
        "Exemplars",
        "Alloy discovering container",
        "Logs in Loki",
        "trace_id",
        "span_id",
        "JSON parsing",
        "Traces in Tempo",
        "within seconds",
        "die.type and die.result",
        "duration matches",
        "Logs for this span",
        "matching trace_id",
        "Dashboard appears",
        "All 12 panels",
        'Panel "Trace Count" shows a count above 0',
    ):
        assert words in titles
    panels = [r for r in run.results if r.title.startswith('Panel "')]
    sources = [r for r in run.results if r.title.startswith("Data source ")]
    assert len(panels) == 12
    assert {r.title.split()[2] for r in sources} == {"Prometheus", "Loki", "Tempo", "Alertmanager"}
    [alertmanager] = [r for r in sources if r.title.split()[2] == "Alertmanager"]
    version = pin("alertmanager").tag.removeprefix("v")
    assert alertmanager.detail == f"Alertmanager {version} answers through Grafana"


def test_the_fresh_request_is_followed_from_trace_to_its_logs(live: Stack) -> None:
    run = run_checks(live.settings())
    by_title = {r.title: r for r in run.results}
    fair = next(r for t, r in by_title.items() if t.startswith("Fair die roll"))
    trace_id = fair.detail.rsplit("trace ", 1)[1]
    linked = next(r for t, r in by_title.items() if t.startswith("Logs with the matching"))
    assert linked.passed and trace_id in linked.detail
    # The trace really is the service's: Tempo itself, not only the proxy, has its spans.
    stored = Tempo(live.api, live.native.tempo_url).trace(trace_id)
    assert stored["trace"]["resourceSpans"]


def test_a_trace_that_arrives_a_second_late_ticks_its_boxes(live: Stack) -> None:
    """Tempo makes a fresh trace readable up to about a second after its request: until
    then it answers `{"trace": {}, "metrics": {}}`, which verify must wait through."""
    live.tempo.withhold_seconds = 1.0
    run = run_checks(live.settings())
    assert run.passed, [(r.title, r.detail) for r in run.results if not r.passed]
    fair = next(r for r in run.results if r.title.startswith("Fair die roll"))
    trace_id = fair.detail.rsplit("trace ", 1)[1]
    assert live.tempo.withheld[trace_id] > 0  # Tempo really said "not yet" first


def test_json_output_from_the_command_line(live: Stack) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = subprocess.run(
        [sys.executable, "-m", "verify", "--json", *live.argv()],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = json.loads(finished.stdout)
    assert set(report) == {
        "passed", "total", "passed_count", "failed_count",
        "answered", "unreachable", "how_to_start", "groups",
    }  # fmt: skip
    assert report["passed"] is True and report["failed_count"] == 0
    assert report["unreachable"] == {} and report["how_to_start"] is None
    assert set(report["answered"]) == {
        "the dice roller", "Prometheus", "Loki", "Tempo", "Alloy", "Grafana",
    }  # fmt: skip
    checks = [check for group in report["groups"] for check in group["checks"]]
    assert report["total"] == report["passed_count"] == len(checks)
    assert [group["name"] for group in report["groups"]] == STAGE1_GROUPS
    for check in checks:
        assert set(check) == {
            "title", "passed", "detail", "hint", "seconds", "blocked_by", "read_from_files",
        }  # fmt: skip
        assert check["passed"] is True and check["hint"] is None
        assert check["blocked_by"] is None
        assert isinstance(check["detail"], str) and check["seconds"] >= 0


def test_with_traffic_runs_the_generator_first(live: Stack) -> None:
    if not (ROOT / "traffic-gen" / "generate_traffic.py").is_file():
        pytest.fail("traffic-gen/generate_traffic.py is missing")
    # Seed 6: user 1 rolls the fair die, user 2 the risky one. Unseeded, both users
    # rolled the native service's risky die (failing half the time, NATIVE_FLAGS) and
    # all six rolls failed one run in 256; a run where every roll fails exits 1.
    args = ("--users", "2", "--rolls", "3", "--think", "0", "--seed", "6")
    settings = live.settings(with_traffic=True, traffic_args=args)
    printed_before = len(live.native.service_lines())
    run = run_checks(settings)
    traffic = [r for r in run.results if r.group == "Traffic Generation"]
    assert [r.passed for r in traffic] == [True] * 4, traffic
    assert "6 requests" in traffic[0].detail
    assert "6 lines" in traffic[1].detail
    assert len(live.native.service_lines()) >= printed_before + 6
    assert run.passed, [(r.title, r.detail) for r in run.results if not r.passed]

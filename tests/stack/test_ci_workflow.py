"""The workflows: the one that boots the real stack on a hosted runner, and the live
dependency audit. They can't run here, so they are checked against GitHub's workflow
schema, and the stack's against the compose files it drives."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.support.compose import ROOT, ROOT_COMPOSE, load_project

WORKFLOW = ROOT / ".github" / "workflows" / "stack.yml"
AUDIT_WORKFLOW = ROOT / ".github" / "workflows" / "audit.yml"
LINT_WORKFLOW = ROOT / ".github" / "workflows" / "lint.yml"


def steps() -> list[dict[str, str]]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    (job,) = document["jobs"].values()
    found: list[dict[str, str]] = job["steps"]
    return found


def test_workflows_match_githubs_schema() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
            str(AUDIT_WORKFLOW),
            str(LINT_WORKFLOW),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_waits_for_health_sends_traffic_verifies_and_cleans_up() -> None:
    commands = [step.get("run", "") for step in steps()]
    assert any("docker compose up" in c and "--wait" in c for c in commands)
    traffic = next(c for c in commands if "traffic-gen" in c)
    service = load_project(ROOT_COMPOSE).services["dice-roller"]
    port = service.spec["environment"]["DICE_PORT"]
    assert f"--url http://{service.name}:{port}" in traffic
    assert any("tasks.py verify" in c for c in commands)
    last = steps()[-1]
    assert last.get("if") == "always()" and "down" in last["run"]


def test_workflow_signs_in_with_the_generated_admin_password() -> None:
    """CI sets no GRAFANA_ADMIN_PASSWORD: the random one must work, Grafana's `admin` not."""
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert "GRAFANA_ADMIN_PASSWORD" not in WORKFLOW.read_text(encoding="utf-8")
    assert "env" not in document and all("env" not in job for job in document["jobs"].values())
    commands = [step.get("run", "") for step in steps()]
    (check,) = [c for c in commands if "python3 tasks.py compose grafana-password" in c]
    assert '-u "admin:$password"' in check and "/api/admin/" in check
    assert "-u admin:admin" in check and '"$refused" = 401' in check
    sign_in = commands.index(check)
    assert any("docker compose up" in c for c in commands[:sign_in])
    assert "python3 tasks.py compose reload" in commands[sign_in + 1 :]


def test_workflow_sees_an_alert_reach_the_receivers_stream_in_loki() -> None:
    """Alertmanager's pinned image, the receiver's image and Alloy, for real, together."""
    commands = [step.get("run", "") for step in steps()]
    (check,) = [c for c in commands if "/api/v2/alerts" in c]
    assert "http://127.0.0.1:9093/api/v2/alerts" in check
    assert '{compose_service=\\"alert-receiver\\"}' in check
    assert "/loki/api/v1/query_range" in check
    up = next(i for i, c in enumerate(commands) if "docker compose up" in c)
    assert commands.index(check) > up


def test_the_audit_workflow_checks_every_pin_strictly_and_weekly() -> None:
    """Where PyPI and OSV answer, an unchecked pin fails too; and a new advisory is found
    even in a week with no push."""
    document = yaml.safe_load(AUDIT_WORKFLOW.read_text(encoding="utf-8"))
    triggers = document[True]  # YAML 1.1 reads the key `on` as true
    assert "schedule" in triggers and "pull_request" in triggers
    (job,) = document["jobs"].values()
    commands = [step.get("run", "") for step in job["steps"]]
    assert "python3 tasks.py audit --strict" in commands
    assert "python3 tasks.py audit --strict --dev" in commands


def test_the_lint_runs_in_the_workflow_in_ci_and_before_each_commit() -> None:
    """One lint, `python3 tasks.py lint`, wherever code is checked; pre-commit runs its ruff."""
    document = yaml.safe_load(LINT_WORKFLOW.read_text(encoding="utf-8"))
    (job,) = document["jobs"].values()
    assert [s.get("run") for s in job["steps"] if "run" in s] == ["python3 tasks.py lint"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci.index("python3 tasks.py lint") < ci.index("python3 tasks.py test")
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    entries = [hook["entry"] for repo in hooks["repos"] for hook in repo["hooks"]]
    assert entries == [
        "uv run --frozen ruff check --force-exclude",
        "uv run --frozen ruff format --force-exclude",
    ]

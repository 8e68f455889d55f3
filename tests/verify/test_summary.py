"""The report opens with which components answered and how to start the others; a box
crossed only because a component did not answer takes one line; a box ticked from the
repository's files says so; hints that name Docker also give the way without it."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from tests.support.tools import closed_url
from tests.support.verify_stack import Stack
from verify import dashboard, logs, metrics, service, traces, traffic
from verify.cli import main, run_checks
from verify.summary import summary_lines

COMPONENTS = {
    "service": "the dice roller",
    "prometheus": "Prometheus",
    "loki": "Loki",
    "tempo": "Tempo",
    "alloy": "Alloy",
    "grafana": "Grafana",
}
LINK_BOX = '"Logs for this span" is configured'
BOX = re.compile(r"^(✅|❌) ")


def report(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    main(argv)
    return capsys.readouterr().out.splitlines()


def opening(lines: list[str]) -> list[str]:
    """The lines before the first group heading."""
    return lines[: next(i for i, line in enumerate(lines) if line.startswith("### "))]


def test_nothing_running_is_said_once_at_the_top(capsys: pytest.CaptureFixture[str]) -> None:
    urls = {name: closed_url() for name in COMPONENTS}
    argv = [arg for name, url in urls.items() for arg in (f"--{name}-url", url)]
    lines = report([*argv, "--timeout", "1", "--wait", "0"], capsys)
    top = opening(lines)
    assert top[0] == "Answered: none."
    assert top[1] == "Did not answer:"
    for name, what in COMPONENTS.items():
        assert any(line.startswith(f"  - {what} is unreachable at {urls[name]}") for line in top)
    said = " ".join(top)
    assert "`docker compose up -d --build`" in said
    assert "`python3 tasks.py nativestack`" in said and "`python3 tasks.py run`" in said

    below = lines[len(top) :]
    crosses = [line for line in below if line.startswith("❌")]
    assert len(crosses) >= 30
    for line in crosses:
        assert re.search(
            r"\((the dice roller|Prometheus|Loki|Tempo|Alloy|Grafana) did not answer\)$", line
        ), line
    assert not any("fix:" in line or "unreachable" in line for line in below)
    for index, line in enumerate(below):  # one line each: no detail, no hint under it
        if line.startswith("❌"):
            after = below[index + 1]
            assert after == "" or BOX.match(after), (line, after)


def test_a_box_ticked_from_the_repositorys_files_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead = closed_url()
    argv = [arg for name in COMPONENTS for arg in (f"--{name}-url", dead)]
    lines = report([*argv, "--timeout", "1", "--wait", "0"], capsys)
    box = next(i for i, line in enumerate(lines) if LINK_BOX in line)
    assert lines[box].startswith("✅")
    assert lines[box + 2] == "      (read from the repository, not from a running component:"
    assert lines[box + 3].strip() == "stack/grafana/provisioning/datasources/datasources.yaml)"


def test_one_component_down_folds_its_boxes_and_no_others(
    live: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = closed_url()
    lines = report(live.argv("--tempo-url", dead, "--wait", "2"), capsys)
    top = opening(lines)
    answered = top[0].removeprefix("Answered: ").rstrip(".").split(", ")
    assert sorted(answered) == sorted(set(COMPONENTS.values()) - {"Tempo"})
    assert top[1:3] == [
        "Did not answer:",
        f"  - Tempo is unreachable at {dead} (connection refused: is it running?)",
    ]
    crosses = [line for line in lines if line.startswith("❌")]
    assert crosses, "with Tempo down, the trace boxes must fail"
    # The trace-to-logs boxes fail too, only because the trace was not found: Tempo's.
    assert all(line.endswith("(Tempo did not answer)") for line in crosses), crosses


def test_with_everything_answering_the_summary_is_one_line(live: Stack) -> None:
    run = run_checks(live.settings())
    assert run.passed, [(r.title, r.detail) for r in run.results if not r.passed]
    first, *rest = summary_lines(run)
    assert sorted(first.removeprefix("Answered: ").rstrip(".").split(", ")) == sorted(
        COMPONENTS.values()
    )
    assert rest == [""]
    link = next(r for r in run.results if r.title.startswith(LINK_BOX))
    assert link.from_files_only  # still from the file, with Grafana up: said so, not hidden


@pytest.mark.parametrize("module", [service, metrics, logs, traces, dashboard, traffic])
def test_hints_that_name_docker_also_give_the_way_without_it(module: ModuleType) -> None:
    hints = {name: value for name, value in vars(module).items() if name.startswith("HINT_")}
    assert hints
    for name, hint in hints.items():
        if "docker compose" in hint or "make " in hint:
            assert "tasks.py" in hint or ".venv/bin/python" in hint, f"{module.__name__}.{name}"

"""The committed JSON is exactly what the generator writes: edit the generator, not the JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dashboard_model import DASHBOARD_PATH, load_generator


def test_committed_json_is_the_generated_one() -> None:
    committed = DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == load_generator().render(), (
        "grafana-dashboards/stage1-dashboard.json is stale: "
        "run `uv run python grafana-dashboards/generate_dashboard.py`"
    )


def test_check_mode_tells_stale_from_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = load_generator()
    copy = tmp_path / "stage1-dashboard.json"
    copy.write_text(DASHBOARD_PATH.read_text(encoding="utf-8").replace("Stage 1", "Stage 0"))
    monkeypatch.setattr(generator, "DASHBOARD_PATH", copy)
    assert generator.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert generator.main([]) == 0  # rewrites the copy
    assert generator.main(["--check"]) == 0

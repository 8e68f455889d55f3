"""The committed JSON is exactly what the generator writes: edit the generator, not the JSON."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.dashboard.model import DASHBOARD_PATH, GENERATOR_PATH


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_dashboard", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_the_generated_one() -> None:
    committed = DASHBOARD_PATH.read_text(encoding="utf-8")
    assert committed == _generator().render(), (
        "grafana-dashboards/stage1-dashboard.json is stale: "
        "run `uv run python grafana-dashboards/generate_dashboard.py`"
    )


def test_check_mode_tells_stale_from_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = _generator()
    copy = tmp_path / "stage1-dashboard.json"
    copy.write_text(DASHBOARD_PATH.read_text(encoding="utf-8").replace("Stage 1", "Stage 0"))
    monkeypatch.setattr(generator, "DASHBOARD_PATH", copy)
    assert generator.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert generator.main([]) == 0  # rewrites the copy
    assert generator.main(["--check"]) == 0

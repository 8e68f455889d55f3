"""The readers in `tests/support/dashboard_model.py` that the other checks rely on, on
small known inputs.

(The Alloy relabel reader they use is checked in tests/stack/test_alloy_config.py.)"""

from __future__ import annotations

from tests.support.dashboard_model import rows


def test_rows_group_the_panels_that_follow_them() -> None:
    dashboard = {
        "panels": [
            {"type": "row", "title": "A"},
            {"type": "stat", "title": "1"},
            {"type": "row", "title": "B"},
            {"type": "text", "title": "2"},
            {"type": "text", "title": "3"},
        ]
    }
    assert [(title, [p["title"] for p in ps]) for title, ps in rows(dashboard)] == [
        ("A", ["1"]),
        ("B", ["2", "3"]),
    ]

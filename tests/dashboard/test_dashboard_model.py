"""The readers in `model.py` that the other checks rely on, on small known inputs."""

from __future__ import annotations

from tests.dashboard.model import alloy_relabel_rules, apply_replace, rows

ALLOY = """
// rule { target_label = "commented_out" }
discovery.relabel "containers" {
  targets = discovery.docker.local.targets
  rule {
    source_labels = ["__meta_docker_container_name"]
    regex         = "/(.*)"
    target_label  = "container_name"
  }
  rule {
    source_labels = ["__meta_docker_container_log_stream"]
    target_label  = "stream"
  }
}
"""


def test_alloy_rules_are_read_with_prometheus_defaults() -> None:
    first, second = alloy_relabel_rules(ALLOY)
    assert (first.target_label, first.regex, first.source_labels) == (
        "container_name",
        "/(.*)",
        ("__meta_docker_container_name",),
    )
    assert (second.regex, second.replacement, second.action) == ("(.*)", "$1", "replace")


def test_replace_strips_the_leading_slash_of_docker_names() -> None:
    rule = alloy_relabel_rules(ALLOY)[0]
    assert apply_replace(rule, {"__meta_docker_container_name": "/dice"}) == "dice"
    assert apply_replace(rule, {"__meta_docker_container_name": "dice"}) is None  # anchored


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

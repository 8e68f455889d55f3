"""Read the dashboard, and the stack files it depends on, into plain Python values.

The tests check the dashboard against what the rest of the project really provides:
the data source uids Grafana provisions, the labels Alloy attaches to log streams,
the container name compose gives the service. This module reads those files, so
the tests themselves read as statements about the dashboard.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.support.paths import ALLOY_CONFIG as ALLOY_CONFIG  # re-exported for the tests
from tests.support.paths import ROOT as ROOT

DASHBOARD_PATH = ROOT / "grafana-dashboards" / "stage1-dashboard.json"
STAGE2_DASHBOARD_PATH = ROOT / "grafana-dashboards" / "stage2-dashboard.json"
GENERATOR_PATH = ROOT / "grafana-dashboards" / "generate_dashboard.py"
DATASOURCES_DIR = ROOT / "stack" / "grafana" / "provisioning" / "datasources"
DASHBOARD_PROVIDERS_DIR = ROOT / "stack" / "grafana" / "provisioning" / "dashboards"
COMPOSE_FILE = ROOT / "docker-compose.yml"

JSON = dict[str, Any]

# Which query language each data source type speaks.
LANGUAGE_OF = {"prometheus": "promql", "loki": "logql", "tempo": "traceql"}


def load_dashboard(path: Path = DASHBOARD_PATH) -> JSON:
    """A dashboard file: stage 1's unless `path` names another."""
    data: JSON = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_generator() -> ModuleType:
    """grafana-dashboards/generate_dashboard.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("generate_dashboard", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(dashboard: JSON) -> list[tuple[str, list[JSON]]]:
    """Each row's title with the panels under it. With every row open (not collapsed),
    Grafana stores a row's panels after it at the top level, up to the next row."""
    result: list[tuple[str, list[JSON]]] = []
    for item in dashboard["panels"]:
        if item["type"] == "row":
            result.append((item["title"], list(item.get("panels", []))))
        elif result:
            result[-1][1].append(item)
        else:
            result.append(("", [item]))  # a panel above the first row
    return result


def panels(dashboard: JSON) -> list[JSON]:
    """Every panel that is not a row, top to bottom."""
    return [panel for _, row_panels in rows(dashboard) for panel in row_panels]


def panel_by_title(dashboard: JSON, title: str) -> JSON:
    matches = [panel for panel in panels(dashboard) if panel["title"] == title]
    assert len(matches) == 1, f"expected one panel titled {title!r}, found {len(matches)}"
    return matches[0]


@dataclass(frozen=True)
class Query:
    """One query the dashboard sends, and where it comes from."""

    panel: str
    source: str  # "target A", "link 'Search...'"
    language: str
    text: str
    target: JSON


def _explore_queries(panel: JSON) -> list[Query]:
    """Queries inside the panel's links to Explore (`/explore?...&panes={...}`)."""
    found: list[Query] = []
    links = panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    for link in [*links, *panel.get("links", [])]:
        url = urlsplit(link["url"])
        if not url.path.endswith("/explore"):
            continue
        for pane_json in parse_qs(url.query).get("panes", []):
            for pane in json.loads(pane_json).values():
                for query in pane["queries"]:
                    language = LANGUAGE_OF[query["datasource"]["type"]]
                    text = query.get("expr") or query.get("query") or ""
                    found.append(
                        Query(panel["title"], f"link {link['title']!r}", language, text, query)
                    )
    return found


def queries(dashboard: JSON) -> list[Query]:
    """Every query of every panel: its targets and the queries in its Explore links.

    A Tempo `serviceMap` target has no query text (Grafana itself reads the service
    graph series from Prometheus), so it is not one of them."""
    found: list[Query] = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("queryType") == "serviceMap":
                continue
            datasource = target.get("datasource") or panel["datasource"]
            language = LANGUAGE_OF[datasource["type"]]
            text = target.get("expr") if language != "traceql" else target.get("query")
            found.append(Query(panel["title"], f"target {target['refId']}", language, text, target))
        found.extend(_explore_queries(panel))
    return found


# --- The stack's side -------------------------------------------------------------------


def provisioned_datasources() -> list[JSON]:
    """The data sources Grafana provisions from stack/grafana/provisioning/datasources."""
    found: list[JSON] = []
    for path in sorted(DATASOURCES_DIR.glob("*.y*ml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found.extend(document.get("datasources", []))
    return found


def compose_container_name(service: str) -> str:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    name: str = compose["services"][service]["container_name"]
    return name

"""Where the stack is: one URL per component, the same for verify and the drills.

The defaults are the ports compose publishes on 127.0.0.1 (README.md); each URL has
one command-line option and one environment variable, spelled the same in every
tool, so a stack that `python3 tasks.py verify` finds, a drill finds too.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["URL_OPTIONS", "Addresses"]


@dataclass(frozen=True)
class Addresses:
    """The base URL of each component (no trailing slash needed)."""

    service_url: str = "http://localhost:8100"
    frontend_url: str = "http://localhost:8200"
    prometheus_url: str = "http://localhost:9090"
    loki_url: str = "http://localhost:3100"
    tempo_url: str = "http://localhost:3200"
    alloy_url: str = "http://localhost:12345"
    grafana_url: str = "http://localhost:3000"
    alertmanager_url: str = "http://localhost:9093"


URL_OPTIONS = {
    # option: (Addresses field, environment variable, what it is)
    "--service-url": ("service_url", "VERIFY_SERVICE_URL", "the dice roller"),
    "--frontend-url": ("frontend_url", "VERIFY_FRONTEND_URL", "the frontend (stage 2)"),
    "--prometheus-url": ("prometheus_url", "VERIFY_PROMETHEUS_URL", "Prometheus"),
    "--loki-url": ("loki_url", "VERIFY_LOKI_URL", "Loki"),
    "--tempo-url": ("tempo_url", "VERIFY_TEMPO_URL", "Tempo"),
    "--alloy-url": ("alloy_url", "VERIFY_ALLOY_URL", "Alloy"),
    "--grafana-url": ("grafana_url", "VERIFY_GRAFANA_URL", "Grafana"),
    "--alertmanager-url": ("alertmanager_url", "VERIFY_ALERTMANAGER_URL", "Alertmanager"),
}
"""Each tool offers the options of the components it calls, as spelled here."""

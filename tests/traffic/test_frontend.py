"""`--target frontend`: visitors load the page, then roll through /api/roll.

A real dice-roller and a real frontend run as processes; each summary figure is held
against what the servers themselves counted (the frontend's `http_requests_total`, the
dice-roller's `dice_rolls_total`), and a dice-roller that is down or hangs must show up
as the frontend's 503s and 504s, by reason, in a run that still ends on time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from traffic_gen.cli import parse_settings
from traffic_gen.frontend import asset_urls

from tests.support.frontend import RunningFrontend, running_frontend
from tests.support.metrics import dice_rolls_total, http_requests_total
from tests.support.misbehaving import hanging_server
from tests.support.service import RunningService
from tests.support.tools import free_port
from tests.support.traffic_gen import page_lines, roll_lines, run_gen

FAST = ("--think", "0")
#: The frontend's own routes; every other request it answered was one of the page's
#: assets, or the generator's start-up check (`GET /openapi.json`, counted as "none").
ROUTES = {"/", "/api/roll"}


@pytest.fixture(scope="module")
def frontend(dice_service: RunningService) -> Iterator[RunningFrontend]:
    with running_frontend(dice_service.url) as frontend:
        yield frontend


@contextmanager
def failing_dice_roller(how: str) -> Iterator[str]:
    """The URL of a dice-roller that is "down" (nothing listens) or "hanging" (never answers)."""
    if how == "down":
        yield f"http://127.0.0.1:{free_port()}"
        return
    with hanging_server(answer_root=False) as server:
        yield server.url


def _assets(counts: Counter[tuple[str, str]]) -> Counter[str]:
    """The requests for the page's assets, by status class."""
    found: Counter[str] = Counter()
    for (handler, status), n in counts.items():
        if handler not in ROUTES:
            found[status] += n
    return found


def test_summary_counts_equal_the_servers_own(
    frontend: RunningFrontend, dice_service: RunningService
) -> None:
    page_assets = len(asset_urls(httpx.get(frontend.url + "/")))
    before = http_requests_total(frontend.url)
    rolls_before = dice_rolls_total(dice_service.url)
    run = run_gen(
        "--target", "frontend", "--url", frontend.url, "--users", "5", "--rolls", "6", *FAST,
        "--json",
    )  # fmt: skip
    after = http_requests_total(frontend.url)
    rolls_after = dice_rolls_total(dice_service.url)
    assert run.returncode == 0, run.stderr
    seen = after - before
    summary = run.summary()
    assert summary["target"] == "frontend"
    assert summary["service"] == "frontend 0.1.0"

    # Page loads, counted apart from the rolls: one per visitor, each with its assets.
    pages = summary["pages"]
    assert pages["loads"] == pages["outcomes"]["success"] == 5
    assert seen[("/", "2xx")] == 5
    assert sum(n for (handler, _), n in seen.items() if handler == "/") == 5
    assets = _assets(seen)
    assets["2xx"] -= 1  # the start-up check
    assert pages["assets"]["fetched"] == assets.total() == 5 * page_assets > 0
    assert pages["assets"]["failed"] == assets.total() - assets["2xx"]
    assert {"/static/page.css", "/static/page.js"} <= set(pages["assets"]["by_path"])
    assert pages["latency_seconds"]["count"] == 5

    # The rolls: what the frontend answered on /api/roll, and what the dice-roller rolled.
    requests = summary["requests"]
    assert requests["sent"] == requests["finished"] == 5 * 6
    assert sum(n for (handler, _), n in seen.items() if handler == "/api/roll") == 30
    outcomes = requests["outcomes"]
    assert outcomes["success"] == seen[("/api/roll", "2xx")]
    assert outcomes["http_error"] == seen[("/api/roll", "5xx")]
    assert outcomes["timeout"] == outcomes["connection_error"] == outcomes["invalid_response"] == 0
    for die in ("fair", "risky"):
        info = summary["dice"][die]
        rolled = rolls_after.get((die, "success"), 0) - rolls_before.get((die, "success"), 0)
        failed = rolls_after.get((die, "error"), 0) - rolls_before.get((die, "error"), 0)
        assert info["outcomes"]["success"] == rolled == sum(info["values"].values())
        # A risky die's 500 reaches the visitor as the frontend's 502, reason error_status.
        assert info["outcomes"]["http_error"] == failed
        assert info["failure_reasons"] == ({"502 error_status": failed} if failed else {})
        assert info["status_codes"].get("502", 0) == failed

    # The log lines tell the same story: five page loads, thirty rolls.
    assert len(page_lines(run.stderr)) == 5
    assert len(roll_lines(run.stderr)) == 30
    assert {m["result"] for m in roll_lines(run.stderr) if not m["result"].isdigit()} <= {
        "HTTP 502 error_status"
    }


def test_text_summary_shows_the_page_loads(frontend: RunningFrontend) -> None:
    run = run_gen("--target", "frontend", "--url", frontend.url, "--users", "2", "--rolls", "2")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert f"Service frontend 0.1.0 is up at {frontend.url}" in out
    assert "Starting 2 visitors: the page, then 2 rolls each" in out
    assert "Page loads: 2, 2 loaded (100.0%); the requests below are the rolls" in out
    assert "  GET / answered: 200 (2x)" in out
    assert "Requests: 4 sent, 4 finished" in out
    assert out.rstrip().splitlines()[-1].startswith("Traffic generation complete in ")
    # Each visitor loads the page once, before its first roll.
    for user in ("1", "2"):
        lines = [line for line in out.splitlines() if line.startswith(f"User {user} ")]
        assert lines[0].startswith(f"User {user} page: HTTP 200 + ")
        assert sum(" page: " in line for line in lines) == 1


def test_duration_brings_visitors_back_for_new_visits(frontend: RunningFrontend) -> None:
    before = http_requests_total(frontend.url)
    run = run_gen(
        "--target", "frontend", "--url", frontend.url, "--users", "2", "--rolls", "1", *FAST,
        "--duration", "1", "--json",
    )  # fmt: skip
    seen = http_requests_total(frontend.url) - before
    assert run.returncode == 0, run.stderr
    pages = run.summary()["pages"]
    assert pages["loads"] > 2  # a visit per roll: each new session loads the page again
    assert seen[("/", "2xx")] == pages["loads"]
    assert any(m["session"] for m in page_lines(run.stderr))


@pytest.mark.parametrize(
    ("upstream", "status", "reason"),
    [("down", "503", "unreachable"), ("hanging", "504", "timeout")],
)
def test_a_failing_dice_roller_shows_as_the_frontends_failures_by_reason(
    upstream: str, status: str, reason: str
) -> None:
    duration = 2.0
    with (
        failing_dice_roller(upstream) as dice_roller_url,
        running_frontend(dice_roller_url, {"FRONTEND_UPSTREAM_TIMEOUT_SECONDS": "0.3"}) as frontend,
    ):
        began = time.monotonic()
        run = run_gen(
            "--target", "frontend", "--url", frontend.url, "--users", "3", "--think", "0.05",
            "--duration", str(duration), "--json",
        )  # fmt: skip
        wall = time.monotonic() - began
        seen = http_requests_total(frontend.url)
    summary = run.summary()
    # Every roll failed, each counted by the status and the reason the frontend gave.
    assert run.returncode == 1
    assert "Every roll failed: see the summary above." in run.stderr
    assert "Traceback" not in run.output
    sent = summary["requests"]["sent"]
    assert sent == summary["requests"]["finished"] > 0
    assert summary["requests"]["outcomes"]["http_error"] == sent
    assert summary["failure_reasons"] == {f"{status} {reason}": sent}
    assert seen[("/api/roll", "5xx")] == sent
    for info in summary["dice"].values():
        assert info["status_codes"] == ({status: info["requests"]} if info["requests"] else {})
    assert {m["result"] for m in roll_lines(run.stderr)} == {f"HTTP {status} {reason}"}
    # The page itself still loads: the frontend is up, only the dice-roller is not.
    assert summary["pages"]["loads"] == summary["pages"]["outcomes"]["success"] > 0
    # And the run ends on time: the frontend gives up on the dice-roller, so do we.
    assert summary["completed"]
    assert duration <= summary["elapsed_seconds"] < duration + 1.0
    assert wall < duration + 20  # the generator's own start and stop included


def test_text_summary_lists_failures_by_status_and_reason() -> None:
    with running_frontend(f"http://127.0.0.1:{free_port()}") as frontend:
        run = run_gen(
            "--target", "frontend", "--url", frontend.url, "--users", "2", "--rolls", "3",
            *FAST, "--risky-share", "0",
        )  # fmt: skip
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    heading = lines.index("Failures by status and reason:")
    assert lines[heading + 1].split() == ["503", "unreachable", "6", "(fair", "6)"]


def test_the_dice_roller_is_not_a_frontend(dice_service: RunningService) -> None:
    """`--target frontend` pointed at the dice-roller: its `/` is no page, so no visit
    gets to roll, and the run says so rather than counting 404s as rolls."""
    run = run_gen("--target", "frontend", "--url", dice_service.url, "--users", "2", *FAST)
    assert run.returncode == 1
    assert "Every page load failed: see the summary above." in run.stderr
    assert len(page_lines(run.stdout)) == 2
    assert {m["result"] for m in page_lines(run.stdout)} == {
        "INVALID RESPONSE (HTTP 200, not a page)"
    }
    assert roll_lines(run.stdout) == []
    assert "Traceback" not in run.output


def test_frontend_down_at_start_is_exit_1_with_a_clear_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = run_gen("--target", "frontend", "--url", url)
    assert run.returncode == 1
    assert f"Cannot reach the frontend at {url}: connection refused." in run.stderr
    assert "Is it running?" in run.stderr
    assert "Traceback" not in run.output


def test_each_target_has_its_own_default_url() -> None:
    assert parse_settings([]).url == "http://localhost:8100"
    assert parse_settings(["--target", "dice-roller"]).url == "http://localhost:8100"
    assert parse_settings(["--target", "frontend"]).url == "http://localhost:8200"
    assert parse_settings(["--target", "frontend", "--url", "http://x:1/"]).url == "http://x:1"


def test_assets_are_the_pages_own_stylesheets_and_scripts_once_each() -> None:
    html = b"""<html><head>
      <link rel="stylesheet" href="/static/a.css"><link rel="icon" href="/favicon.ico">
      <script src="static/b.js"></script><script>inline()</script>
      <script src="/static/a.css"></script><script src="https://cdn.example/c.js"></script>
      <link rel="Preload StyleSheet" href="//localhost:8200/d.css">
    </head></html>"""
    page = httpx.Response(
        200, content=html, request=httpx.Request("GET", "http://localhost:8200/app/")
    )
    assert [str(url) for url in asset_urls(page)] == [
        "http://localhost:8200/static/a.css",
        "http://localhost:8200/app/static/b.js",
        "http://localhost:8200/d.css",
    ]

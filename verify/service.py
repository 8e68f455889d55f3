"""Service Health: the dice roller answers, through its own HTTP API.

The fair roll made here is also the "fresh request" the trace and trace-to-logs
checks follow: its W3C `traceresponse` header (`00-<trace id>-<span id>-<flags>`,
from the Trace Context Level 2 draft) names the trace the service recorded for it.
"""

from __future__ import annotations

import re
import time

import httpx

from stackclient import decode_json

from .context import Context, FreshRequest
from .model import Failed, Run

__all__ = ["parse_traceresponse", "run_service_checks"]

GROUP = "Service Health"

HINT_DOWN = (
    "Is the service running? With Docker, `docker compose ps` should show dice-roller-stage1 "
    "healthy and `docker compose logs dice-roller` says why not; start it with "
    "`docker compose up -d --build`. Without Docker, start it with `python3 tasks.py run` "
    "(or the whole stack with `python3 tasks.py nativestack`); its terminal says why it "
    "stopped. Port 8100 taken by another program (`lsof -i :8100`)?"
)
HINT_ROLL = (
    "Unreachable? See the first box. Otherwise the service answers, but not as "
    "docs/checklist.md says: its log says why (`docker compose logs dice-roller`, or the "
    "terminal of `python3 tasks.py run`). `docker compose up -d --build` rebuilds its image "
    "from this checkout; `python3 tasks.py run` always runs the checkout as it is."
)

_TRACERESPONSE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def parse_traceresponse(header: str | None) -> tuple[str, str] | None:
    """(trace id, span id) from a `traceresponse` header; None if absent, invalid or zero."""
    match = _TRACERESPONSE.match((header or "").strip().lower())
    if match is None or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return match.group(1), match.group(2)


def run_service_checks(ctx: Context, run: Run) -> None:
    run.check(GROUP, "Root endpoint responds: GET /", HINT_DOWN, lambda: _root(ctx))
    run.check(GROUP, "Metrics endpoint accessible: GET /metrics", HINT_DOWN, lambda: _metrics(ctx))
    run.check(GROUP, "Fair die roll works: GET /roll?die=fair", HINT_ROLL, lambda: _fair(ctx))
    run.check(
        GROUP,
        "Risky die roll works (a 500 counts): GET /roll?die=risky",
        HINT_ROLL,
        lambda: _risky(ctx),
    )


def _root(ctx: Context) -> str:
    body = ctx.api.get_json(ctx.service, "/")
    if not isinstance(body, dict) or "service" not in body:
        raise Failed(f"GET / answered 200 but not the service's description: {body!r:.120}")
    return f"service {body['service']!r}, version {body.get('version', '?')}"


def _metrics(ctx: Context) -> str:
    text = ctx.api.request(ctx.service, "GET", "/metrics").text
    missing = [name for name in ("dice_rolls", "http_requests") if f"# TYPE {name}" not in text]
    if missing:
        raise Failed(f"/metrics answered, but has no {' or '.join(missing)} family")
    families = sum(1 for line in text.splitlines() if line.startswith("# TYPE "))
    return f"{families} metric families"


def _roll(ctx: Context, die: str, ok: tuple[int, ...]) -> tuple[httpx.Response, float, float]:
    started = time.time()
    clock = time.perf_counter()
    response = ctx.api.request(ctx.service, "GET", "/roll", params={"die": die}, ok=ok)
    return response, started, time.perf_counter() - clock


def _fair(ctx: Context) -> str:
    response, started, seconds = _roll(ctx, "fair", ok=(200,))
    value = decode_json(ctx.service, "/roll?die=fair", response)
    roll = value.get("roll") if isinstance(value, dict) else None
    if not isinstance(roll, int) or not 1 <= roll <= 6:
        raise Failed(f"expected {{'roll': 1..6}}, got {value!r:.120}")
    ids = parse_traceresponse(response.headers.get("traceresponse"))
    if ids is None:
        return f"rolled {roll} in {seconds:.2f} s (no valid traceresponse header)"
    ctx.fresh = FreshRequest("/roll?die=fair", 200, ids[0], ids[1], started, seconds)
    return f"rolled {roll} in {seconds:.2f} s, trace {ids[0]}"


def _risky(ctx: Context) -> str:
    response, _, seconds = _roll(ctx, "risky", ok=(200, 500))
    value = decode_json(ctx.service, "/roll?die=risky", response)
    if response.status_code == 500:
        if not isinstance(value, dict) or "detail" not in value:
            raise Failed(f"a 500 should explain itself in 'detail', got {value!r:.120}")
        return f"failed on purpose (HTTP 500: {value['detail']})"
    roll = value.get("roll") if isinstance(value, dict) else None
    if not isinstance(roll, int) or not 2 <= roll <= 7:
        raise Failed(f"expected {{'roll': 2..7}}, got {value!r:.120}")
    return f"rolled {roll} in {seconds:.2f} s"

"""Running the benchmark (`python -m bench`) as users do, for the smoke tests, and
reading its figures; driving one bench build in process, through its ASGI app."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support.paths import ROOT

__all__ = ["positive", "roll_and_scrape", "run_bench"]


def run_bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


async def roll_and_scrape(app: FastAPI) -> tuple[httpx.Response, httpx.Response]:
    """A fair roll and a scrape, inside the app's lifespan (its end flushes the spans)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        return await client.get("/roll", params={"die": "fair"}), await client.get("/metrics")

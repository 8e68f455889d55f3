"""Driving a bench build in process, through its ASGI app, for the builds' smoke tests."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

__all__ = ["roll_and_scrape"]


async def roll_and_scrape(app: FastAPI) -> tuple[httpx.Response, httpx.Response]:
    """A fair roll and a scrape, inside the app's lifespan (its end flushes the spans)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        return await client.get("/roll", params={"die": "fair"}), await client.get("/metrics")

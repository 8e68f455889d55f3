"""What both services answer from the client's own words: redirects and the API docs.

- The trailing-slash redirect (`/roll/` to `/roll`) must not echo the `Host` header
  back as the place to go: its `Location` is a path on the service itself.
- `/docs` loads everything it needs from the service: no script from a CDN that could
  change under it, and a page that works with no internet at all. (`/redoc` is off:
  ReDoc fetches its logo from its CDN whatever it is told.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Route

from tests.support.browser import chromium
from tests.support.figures import report
from tests.support.frontend import running_frontend
from tests.support.raw_http import exchange
from tests.support.service import running_service
from tests.support.tools import free_port

SLASHED = {"dice-roller": "/roll/?die=fair", "frontend": "/api/roll/?die=fair"}
ASSET = re.compile(rb"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*['"]([^"']+)['"]""")


@pytest.fixture(scope="module", params=["dice-roller", "frontend"])
def service(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """(name, port) of the real service, run as a process."""
    if request.param == "dice-roller":
        with running_service() as dice_roller:
            yield "dice-roller", dice_roller.port
    else:
        with running_frontend(f"http://127.0.0.1:{free_port()}") as frontend:
            yield "frontend", frontend.port


@pytest.mark.parametrize("host", [b"attacker.example", b"127.0.0.1:1", None])
def test_trailing_slash_redirect_stays_on_the_service(
    service: tuple[str, int], host: bytes | None
) -> None:
    name, port = service
    target = SLASHED[name].encode()
    host_line = b"Host: " + host + b"\r\n" if host is not None else b""
    answer = asyncio.run(exchange(port, b"GET " + target + b" HTTP/1.1\r\n" + host_line + b"\r\n"))
    assert answer is not None
    report(f"{name}: redirect with Host {host!r}", location=answer.headers.get("location"))
    assert answer.status == 307
    assert answer.headers["location"] == target.decode().replace("/?", "?")


def test_api_docs_load_only_from_the_service(service: tuple[str, int]) -> None:
    name, port = service
    page = "/docs"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        assert client.get("/redoc").status_code == 404
        html = client.get(page)
        assert html.status_code == 200
        urls = [a.decode() or b.decode() for a, b in ASSET.findall(html.content)]
        outside = [url for url in urls if not url.startswith("/") or url.startswith("//")]
        assert not outside, f"{page} loads from outside the service: {outside}"
        fetched = {url: client.get(url) for url in urls}
    report(
        f"{name}: {page}",
        loads=urls,
        bytes={url: len(answer.content) for url, answer in fetched.items()},
    )
    assert "/openapi.json" in urls  # the page still reads the service's own schema
    assert all(answer.status_code == 200 for answer in fetched.values()), fetched
    scripts = [url for url in urls if url.endswith(".js")]
    assert scripts, f"{page} loads no script at all"
    for url in scripts:
        assert len(fetched[url].content) > 100_000  # the real bundle, not a stub
        assert b"SwaggerUIBundle" in fetched[url].content


def test_api_docs_render_with_no_way_out() -> None:
    """In a real browser that refuses every request leaving the service, `/docs`
    still shows the API: nothing it needs lives elsewhere."""
    with running_service() as dice_roller, chromium() as browser:
        context = browser.new_context()
        refused: list[str] = []

        def only_the_service(route: Route) -> None:
            if route.request.url.startswith(dice_roller.url + "/"):
                route.continue_()
            else:
                refused.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_service)
        tab = context.new_page()
        tab.goto(dice_roller.url + "/docs")
        tab.get_by_text("Roll a die").first.wait_for(timeout=20_000)  # /roll's summary
        context.close()
    report("dice-roller: /docs in a browser, offline", refused=refused)
    assert refused == []

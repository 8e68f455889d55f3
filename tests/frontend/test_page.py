"""The page: its HTML, with the Grafana address its trace links open, and its assets."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser

import httpx
import pytest
from frontend.settings import Settings, load_settings

from tests.support.frontend import in_process_frontend


class PageParts(HTMLParser):
    """The grafana-url meta's content (unescaped, as the browser reads it) and the
    addresses of the scripts and style sheets the page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.grafana_urls: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name") == "grafana-url":
            self.grafana_urls.append(values.get("content") or "")
        elif tag == "script" and values.get("src"):
            self.assets.append(values["src"] or "")
        elif tag == "link" and values.get("rel") == "stylesheet":
            self.assets.append(values.get("href") or "")


def get(settings: Settings, *paths: str) -> list[httpx.Response]:
    async def scenario() -> list[httpx.Response]:
        async with in_process_frontend(settings) as frontend:
            return [await frontend.client.get(path) for path in paths]

    return asyncio.run(scenario())


def page_parts(settings: Settings) -> tuple[str, PageParts]:
    [page] = get(settings, "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parts = PageParts()
    parts.feed(page.text)
    return page.text, parts


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "http://localhost:3000"),  # the default
        ("http://grafana.example:3000/", "http://grafana.example:3000"),  # no "//explore"
        ("https://example.org/grafana", "https://example.org/grafana"),
    ],
)
def test_the_page_names_grafana_from_frontend_grafana_url(given: str | None, expected: str) -> None:
    settings = load_settings({"FRONTEND_GRAFANA_URL": given} if given else {})
    text, parts = page_parts(settings)
    assert parts.grafana_urls == [expected]
    assert "{{GRAFANA_URL}}" not in text


def test_the_grafana_url_is_html_escaped() -> None:
    url = "http://grafana.example:3000/g/'x'?orgId=1&refresh=5s"
    settings = load_settings({"FRONTEND_GRAFANA_URL": url})
    assert str(settings.grafana_url) == url  # pydantic keeps these characters as they are
    text, parts = page_parts(settings)
    assert parts.grafana_urls == [url]  # what the browser reads back
    assert "'x'" not in text
    assert "&refresh" not in text
    assert "&#x27;x&#x27;?orgId=1&amp;refresh=5s" in text


def test_every_asset_the_page_loads_is_served() -> None:
    _, parts = page_parts(Settings())
    assert set(parts.assets) == {"/static/tracing.js", "/static/page.js", "/static/page.css"}
    answers = get(Settings(), *parts.assets)
    for path, answer in zip(parts.assets, answers, strict=True):
        assert answer.status_code == 200, path
        assert answer.content, path
        kind = "text/css" if path.endswith(".css") else "javascript"
        assert kind in answer.headers["content-type"], (path, answer.headers)


def test_an_unknown_static_file_is_a_404() -> None:
    [answer] = get(Settings(), "/static/nothing-here.js")
    assert answer.status_code == 404

"""What every service's app is built with besides its telemetry: API docs that work
offline, and redirects that stay on the service.

    app = FastAPI(title=..., telemetry=server_spans(provider), **web_defaults())

FastAPI's own `/docs` and `/redoc` load Swagger UI and ReDoc from a CDN, unpinned and
without integrity checks, so the pages show nothing offline and run whatever the CDN
serves that day. `/docs` here is FastAPI's documented self-hosted page
(`get_swagger_ui_html`) with the Swagger UI files the `fastapi-offline` package ships,
served from `/docs/assets`. `/redoc` is off: ReDoc's bundle fetches its logo from
redoc.ly whatever it is told, and one page of docs is enough.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import fastapi_offline
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import URL, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASSETS_PATH", "RelativeRedirects", "docs_routes", "web_defaults"]

ASSETS_PATH = "/docs/assets"
_ASSETS = files(fastapi_offline) / "static"
"""swagger-ui-bundle.js, swagger-ui.css and favicon.png (and ReDoc's, unused)."""


def web_defaults() -> dict[str, Any]:
    """Keyword arguments for `FastAPI(...)`: `/docs` from installed files rather than
    FastAPI's CDN pages, no `/redoc`, and `RelativeRedirects`."""
    return {
        "docs_url": None,
        "redoc_url": None,
        "routes": docs_routes(),
        "middleware": [Middleware(RelativeRedirects)],
    }


def docs_routes() -> list[BaseRoute]:
    """`/docs` (Swagger UI) and the files it loads."""
    return [
        Route("/docs", _swagger_ui, include_in_schema=False),
        Mount(ASSETS_PATH, StaticFiles(directory=str(_ASSETS)), name="docs-assets"),
    ]


async def _swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


class RelativeRedirects:
    """Makes a redirect to the service itself name a path, not `http://<Host>/path`.

    Starlette's trailing-slash redirect (`/roll/` to `/roll`) writes an absolute URL
    built from the request's `Host` header, which the client chooses: behind a cache
    or a proxy that passes the header on, anyone could make the service point others
    elsewhere. A path means the same to every honest client (RFC 9110, section 10.2.2).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                location = URL(headers.get("location", ""))
                here = URL(scope=scope)
                if location.netloc and (location.scheme, location.netloc) == (
                    here.scheme,
                    here.netloc,
                ):
                    # Never "//x": a browser would read that as another host.
                    path = "/" + location.path.lstrip("/")
                    headers["location"] = path + (f"?{location.query}" if location.query else "")
            await send(message)

        await self.app(scope, receive, send_relative)

"""One HTTP client for every component, with timeouts and errors a person can read.

Every call verify's checks, the drills' probes and the tests make to the stack goes
through `Api` (mostly through the clients of `backends`). It turns whatever can go wrong on the
wire (refused connection, timeout, a 500, an answer that is not JSON) into one
exception, `ApiError`, whose message names the component and the URL: the checks
report it under their cross instead of a traceback.

When a component cannot be reached at all, `Api` remembers it and fails every later
call to it at once: a stopped Tempo costs one timeout, not one per trace check. Such
an error names the component in `unreachable`, so verify's report can fold every box
that failed for that one reason. Every answer, whatever its status, is passed to
`answered` (verify notes there which components a check relied on).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Api", "ApiError", "Component", "decode_json"]


@dataclass(frozen=True)
class Component:
    """A component of the stack: its name, for messages, and its base URL."""

    name: str
    url: str


class ApiError(Exception):
    """A call to a component's HTTP API did not give a usable answer.

    `unreachable` is the component when it could not be reached at all (refused,
    timed out, no route), rather than answering something unusable.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        body: str = "",
        unreachable: Component | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.unreachable = unreachable


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Api:
    """Calls components' HTTP APIs; each call is bounded by `timeout` seconds."""

    timeout: float
    auth: dict[str, httpx.BasicAuth] = field(default_factory=dict)
    answered: Callable[[str], None] = lambda name: None
    """Told the name of every component that answered, whatever its answer said."""
    _unreachable: dict[Component, str] = field(default_factory=dict)
    _client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # No proxies from the environment: the stack runs on this machine.
        self._client = httpx.Client(timeout=self.timeout, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def retry_unreachable(self) -> None:
        """Call again the components found unreachable so far: for callers that poll a
        stack for minutes (the drills), where a component may come back."""
        self._unreachable.clear()

    def request(
        self,
        component: Component,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The response to `method path`, or ApiError if it failed or its status isn't `ok`."""
        url = component.url.rstrip("/") + path
        if component in self._unreachable:
            raise ApiError(self._unreachable[component], unreachable=component)
        try:
            response = self._client.request(
                method,
                url,
                params=params,
                json=json_body,
                headers=headers,
                auth=self.auth.get(component.url),
            )
        except httpx.TimeoutException:
            message = f"{component.name} did not answer within {self.timeout:g} s ({url})"
            self._unreachable[component] = message
            raise ApiError(message, unreachable=component) from None
        except httpx.TransportError as error:
            message = f"{component.name} is unreachable at {component.url} ({_describe(error)})"
            self._unreachable[component] = message
            raise ApiError(message, unreachable=component) from None
        self.answered(component.name)
        if response.status_code not in ok:
            body = response.text
            detail = f": {_shorten(body)}" if body.strip() else ""
            raise ApiError(
                f"{component.name} answered HTTP {response.status_code} to {method} {path}{detail}",
                status=response.status_code,
                body=body,
            )
        return response

    def get_json(
        self,
        component: Component,
        path: str,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """GET `path` and decode its JSON answer."""
        return decode_json(
            component, path, self.request(component, "GET", path, params=params, ok=ok)
        )

    def post_json(
        self, component: Component, path: str, body: Any, ok: tuple[int, ...] = (200,)
    ) -> Any:
        """POST `body` as JSON to `path` and decode the JSON answer."""
        response = self.request(component, "POST", path, json_body=body, ok=ok)
        return decode_json(component, path, response)


def decode_json(component: Component, path: str, response: httpx.Response) -> Any:
    """`response`'s JSON; an `ApiError` naming `component` and `path` when it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(
            f"{component.name} answered {path} with something that is not JSON: "
            f"{_shorten(response.text, 80)!r}",
            status=response.status_code,
        ) from None


def _describe(error: httpx.TransportError) -> str:
    text = str(error) or type(error).__name__
    if "refused" in text.lower():
        return "connection refused: is it running?"
    return _shorten(text, 120)

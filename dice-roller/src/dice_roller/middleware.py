"""One middleware observes every request once, for all three signals.

Around each request it:

- traces: publishes the server span's ids, formatted once (`dice_roller.ids`), and
  names the trace in a W3C `traceresponse` header, so `curl -i` shows the trace id
  to look up in Tempo (with `Access-Control-Expose-Headers`, so a browser script can
  read it too);
- metrics: counts and times the request in `http_requests_total` and
  `http_request_duration_seconds`, labelled by the route template the router chose;
- logs: writes the request's one line (`dice_roller.request_log`) once the answer
  has gone.

One layer rather than one per signal: the status is caught by one wrapper of `send`,
and the route, the method and the ids are looked up once for every signal that wants
them.

The server span itself is FastAPI's (`dice_roller.tracing`), opened outside this
middleware, so it is current here. A scrape of `/metrics` gets no span, no
measurement and no header, but still its log line: every request has one.
"""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .ids import publish_current, unpublish
from .metrics import HTTP_METHODS, OTHER_METHOD, SCRAPE_PATH, DiceMetrics
from .request_log import begin_request, end_request, write_request_line

__all__ = ["RequestTelemetryMiddleware"]


class RequestTelemetryMiddleware:
    """Traces, measures and logs each request; each signal is optional (the benchmark's
    builds turn them on one at a time).

    `route_templates` are the only values the `handler` label may take: a request no
    route took (a 404, a redirect of `/roll/` to `/roll`) is `handler="none"`, so no
    path can become a label. Unusual methods are `method="_OTHER"`. An answer that
    never started (an exception) counts, and is logged, as a 500.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: DiceMetrics | None,
        traced: bool,
        logged: bool,
        route_templates: frozenset[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.traced = traced
        self.logged = logged
        self.route_templates = route_templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scrape = scope["path"] == SCRAPE_PATH
        if scrape and not self.logged:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ids, ids_token = publish_current() if self.traced and not scrape else (None, None)
        outcome, outcome_token = begin_request() if self.logged else (None, None)
        traceresponse = None if ids is None else ids.traceresponse
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if traceresponse is not None:
                    headers = MutableHeaders(scope=message)
                    headers["traceresponse"] = traceresponse
                    headers["access-control-expose-headers"] = "traceresponse"
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            method = scope["method"]
            if self.metrics is not None and not scrape:
                handler = route if route in self.route_templates else "none"
                self.metrics.observe_request(
                    handler,
                    method if method in HTTP_METHODS else OTHER_METHOD,
                    f"{str(status)[0]}xx",
                    seconds,
                )
            if outcome is not None and outcome_token is not None:
                write_request_line(
                    outcome,
                    method=method,
                    route=route,
                    path=scope["path"],
                    query=scope["query_string"],
                    status=status,
                    seconds=seconds,
                    client=scope.get("client"),
                )
                end_request(outcome_token)
            if ids_token is not None:
                unpublish(ids_token)

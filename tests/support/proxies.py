"""Proxies in front of the native stack's Loki, Tempo and Alloy, for the checks' sick-stack
scenarios (tests/verify/test_sick_stack.py).

The checks' tests run against the real components (nativestack/), which answer
truthfully and cannot be told to break. Each proxy forwards every request to its
component and hands back the real answer unchanged, unless a scenario tells it to
misbehave (`fail[prefix] = mode`, tests/support/misbehaving.py) or sets one of the
proxy's knobs. Then the real answer is replaced (500, 404, malformed JSON, hang) or
transformed:

- `LokiProxy`: "empty" keeps the answer and drops its `data.result`;
- `TempoProxy`: "empty" answers a trace as not yet ingested and a search as finding
  nothing; `withhold_seconds` says "not yet" for that long after a trace first has
  spans, as Tempo does for about a second; `drop_attributes` and `stretch_seconds`
  take span attributes away and lengthen spans;
- `AlloyProxy`: "empty" or `hidden_containers` take targets out of
  `discovery.docker`'s exports, as if Alloy had not found those containers.

Nothing here computes an answer of its own: what is not taken away came from the
real component.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any, ClassVar

import httpx

from tests.support.misbehaving import Answer, MisbehavingServer, Request, text_answer

__all__ = ["AlloyProxy", "LokiProxy", "MisbehavingProxy", "TempoProxy"]

NOT_FORWARDED = {"host", "content-length", "connection", "accept-encoding", "keep-alive"}


class MisbehavingProxy(MisbehavingServer):
    """Forwards to `upstream`; a subclass's `transform` may change a real answer."""

    def __init__(self, upstream: str, timeout: float = 30.0) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self._client = httpx.Client(timeout=timeout, trust_env=False)

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def answer(self, request: Request, mode: str | None) -> Answer:
        headers = {k: v for k, v in request.headers.items() if k not in NOT_FORWARDED}
        try:
            response = self._client.request(
                request.method,
                self.upstream + request.target,
                content=request.body,
                headers=headers,
            )
        except httpx.HTTPError as error:
            return text_answer(f"{self.name}: {self.upstream} did not answer: {error!r}", 502)
        # Not every component says its JSON is JSON (Alloy's UI API is text/plain).
        content_type = response.headers.get("content-type", "")
        answer = (response.status_code, content_type, response.content)
        if response.status_code != 200:
            return answer
        try:
            body = response.json()
        except ValueError:
            return answer
        changed = self.transform(request, body, mode)
        if changed is None:
            return answer
        return 200, content_type, json.dumps(changed).encode()

    def transform(self, request: Request, body: Any, mode: str | None) -> Any:
        """What replaces `body`, a real 200 answer in JSON; None to pass it on unchanged."""
        return None


class LokiProxy(MisbehavingProxy):
    """Loki's HTTP API, emptied on demand."""

    name = "Loki proxy"

    def transform(self, request: Request, body: Any, mode: str | None) -> Any:
        if mode == "empty" and isinstance(body, dict) and isinstance(body.get("data"), dict):
            body["data"]["result"] = []
            return body
        return None


def _spans(body: Any) -> list[dict[str, Any]]:
    trace = body.get("trace") if isinstance(body, dict) else None
    return [
        span
        for resource in (trace or {}).get("resourceSpans") or []
        for scope in resource.get("scopeSpans") or []
        for span in scope.get("spans") or []
    ]


class TempoProxy(MisbehavingProxy):
    """Tempo's trace-by-id and search, with spans changed or held back on demand.

    A real Tempo makes a fresh trace readable 0.2 to 1.1 s after its request and
    answers `{"trace": {}, "metrics": {}}` until then (issue 16). `withhold_seconds`
    gives that answer for a trace until that long after the proxy first saw its spans;
    `withheld` counts those answers per trace id.
    """

    name = "Tempo proxy"
    NOT_YET: ClassVar[dict[str, Any]] = {"trace": {}, "metrics": {}}

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.drop_attributes: set[str] = set()
        self.stretch_seconds = 0.0
        self.withhold_seconds = 0.0
        self.withheld: Counter[str] = Counter()
        self._first_found: dict[str, float] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        self.drop_attributes.clear()
        self.stretch_seconds = 0.0
        self.withhold_seconds = 0.0
        with self._lock:
            self.withheld.clear()
            self._first_found.clear()

    def transform(self, request: Request, body: Any, mode: str | None) -> Any:
        if request.path.startswith("/api/v2/traces/"):
            return self._trace(request.path.rsplit("/", 1)[1].lower(), body, mode)
        if request.path == "/api/search" and mode == "empty" and isinstance(body, dict):
            body.pop("traces", None)  # protobuf JSON leaves out an empty list
            return body
        return None

    def _trace(self, trace_id: str, body: Any, mode: str | None) -> Any:
        spans = _spans(body)
        if mode == "empty" or (spans and self._withholding(trace_id)):
            return self.NOT_YET
        stretch = int(self.stretch_seconds * 1e9)
        for span in spans:
            span["attributes"] = [
                attribute
                for attribute in span.get("attributes") or []
                if attribute.get("key") not in self.drop_attributes
            ]
            span["endTimeUnixNano"] = str(int(span["endTimeUnixNano"]) + stretch)
        return body

    def _withholding(self, trace_id: str) -> bool:
        with self._lock:
            found = self._first_found.setdefault(trace_id, time.monotonic())
            if time.monotonic() - found < self.withhold_seconds:
                self.withheld[trace_id] += 1
                return True
            return False


def _container_name(target: Any) -> str:
    """`__meta_docker_container_name` of one target, in Alloy's encoding of values."""
    for item in (target or {}).get("value") or []:
        if isinstance(item, dict) and item.get("key") == "__meta_docker_container_name":
            return str((item.get("value") or {}).get("value", ""))
    return ""


class AlloyProxy(MisbehavingProxy):
    """Alloy's readiness and UI API, with discovered containers taken away on demand."""

    name = "Alloy proxy"

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.hidden_containers: set[str] = set()
        """Docker names ("/dice-roller-stage1") left out of every component's targets."""

    def reset(self) -> None:
        super().reset()
        self.hidden_containers.clear()

    def transform(self, request: Request, body: Any, mode: str | None) -> Any:
        if not request.path.startswith("/api/v0/web/components/") or not isinstance(body, dict):
            return None
        for statement in body.get("exports") or []:
            if isinstance(statement, dict) and statement.get("name") == "targets":
                value = statement.get("value") or {}
                value["value"] = [
                    target
                    for target in value.get("value") or []
                    if mode != "empty" and _container_name(target) not in self.hidden_containers
                ]
        return body

"""OpenTelemetry's JSON form of a trace, read into the few fields the trace checks compare.

A trace arrives as `{"resourceSpans": [{"resource": {"attributes": [...]}, "scopeSpans":
[{"spans": [...]}]}]}` (older writers say `instrumentationLibrarySpans`). Ids are hex in
OTLP/JSON but base64 in what Tempo writes (its protobuf JSON, grafana/tempo#5437), so both
are read. Anything of the wrong type is skipped rather than trusted: a trace that is not
shaped as expected then has no spans, and the checks say so instead of failing on a
missing key.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .model import Failed

__all__ = ["ERROR_STATUSES", "SERVER_KINDS", "server_span", "spans_of"]

SERVER_KINDS = ("SPAN_KIND_SERVER", "2")
"""A server span's `kind`, as an enum name (protobuf JSON) or its number."""
ERROR_STATUSES = ("STATUS_CODE_ERROR", "2")
"""A failed span's `status.code`, as an enum name (protobuf JSON) or its number."""


def _hex_id(value: Any, length: int) -> str:
    """An OTLP id as hex: OTLP/JSON writes hex, Tempo's JSON base64; accept both."""
    text = str(value or "")
    if re.fullmatch(f"[0-9a-fA-F]{{{length}}}", text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text


def _attribute_value(value: Any) -> Any:
    """The Python value of an OTLP AnyValue (`{"stringValue": "x"}`, `{"intValue": "3"}`)."""
    if not isinstance(value, dict) or not value:
        return None
    kind, inner = next(iter(value.items()))
    if kind == "intValue":
        return int(inner)
    return inner


def _attributes_of(items: Any) -> dict[str, Any]:
    return {
        str(item.get("key")): _attribute_value(item.get("value"))
        for item in _list(items)
        if isinstance(item, dict)
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]


def spans_of(trace: Any) -> list[dict[str, Any]]:
    """Every span of an OTLP JSON trace, flattened, with the fields the checks use."""
    spans = []
    resource_spans_list = _dicts(trace.get("resourceSpans")) if isinstance(trace, dict) else []
    for resource_spans in resource_spans_list:
        resource_part = resource_spans.get("resource")
        resource = _attributes_of(
            resource_part.get("attributes") if isinstance(resource_part, dict) else None
        )
        scopes = resource_spans.get("scopeSpans") or resource_spans.get(
            "instrumentationLibrarySpans"
        )
        for scope in _dicts(scopes):
            for span in _dicts(scope.get("spans")):
                start = int(span.get("startTimeUnixNano") or 0)
                end = int(span.get("endTimeUnixNano") or 0)
                status = span.get("status")
                spans.append(
                    {
                        "span_id": _hex_id(span.get("spanId"), 16),
                        "parent_id": _hex_id(span.get("parentSpanId"), 16),
                        "name": str(span.get("name", "")),
                        "kind": str(span.get("kind", "")),
                        "service": str(resource.get("service.name", "?")),
                        "attributes": _attributes_of(span.get("attributes")),
                        "start": start / 1e9,
                        "end": end / 1e9,
                        "seconds": (end - start) / 1e9,
                        "status": str(status.get("code", "")) if isinstance(status, dict) else "",
                        "events": [
                            {
                                "name": str(event.get("name", "")),
                                "attributes": _attributes_of(event.get("attributes")),
                            }
                            for event in _dicts(span.get("events"))
                        ],
                    }
                )
    return spans


def server_span(trace: Any, span_id: str) -> dict[str, Any]:
    """The request's span: the one the traceresponse header named, else the server span."""
    spans = spans_of(trace)
    for span in spans:
        if span["span_id"] == span_id:
            return span
    for span in spans:
        if span["kind"] in SERVER_KINDS:
            return span
    raise Failed(f"no span {span_id} and no server span among {len(spans)} span(s)")

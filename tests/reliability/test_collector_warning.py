"""Hostile trace headers cannot silence the warning that the collector is down.

OpenTelemetry logs a warning for a `traceparent` longer than 512 characters, for a
malformed `tracestate` and for malformed `baggage`: a client chooses to cause them, on
every request. The service lets OpenTelemetry's warnings through at most once a
minute, or a sick collector would write one line per failed batch; that budget must
not be one a client can spend, or the one line saying spans are being lost is never
written.
"""

from __future__ import annotations

import httpx

from stackclient import wait_until
from tests.support.figures import report
from tests.support.service import running_service
from tests.support.tools import free_port

HOSTILE = 50
CLIENT_CAUSED = (  # the loggers of those warnings
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.trace.span",  # parses tracestate
    "opentelemetry.baggage.propagation",
)
VALID_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def hostile_headers(index: int) -> dict[str, str]:
    """Each of the three bad headers the propagators warn about, in turn."""
    kind = index % 3
    if kind == 0:
        return {"traceparent": "00-" + "a" * 600}
    if kind == 1:
        return {"traceparent": VALID_PARENT, "tracestate": "k=" + "v" * 600}
    return {"baggage": "no equals sign;" * 100}


def test_collector_down_is_reported_after_hostile_trace_headers() -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nobody there
        # The first export (and its failure) comes 5 s after start: the hostile
        # requests are in before it, as an attacker's would be.
        "OTEL_BSP_SCHEDULE_DELAY": "5000",
        "DICE_MAX_DELAY_SECONDS": "0",
    }
    with running_service(env) as service:
        with httpx.Client(base_url=service.url, timeout=10) as client:
            statuses = {
                client.get("/roll?die=fair", headers=hostile_headers(i)).status_code
                for i in range(HOSTILE)
            }
        early_export_warning = '"opentelemetry.exporter' in service.output()
        wait_until(lambda: '"opentelemetry.exporter' in service.output() or None, 30)
        service.stop()
        records = service.log_records()

    otel = [r for r in records if r["logger"].startswith("opentelemetry")]
    client_caused = [r for r in otel if r["logger"] in CLIENT_CAUSED]
    export = [r for r in otel if r["logger"].startswith("opentelemetry.exporter")]
    report(
        "hostile trace headers, then the collector down",
        hostile_requests=HOSTILE,
        statuses=sorted(statuses),
        header_warnings=len(client_caused),
        export_warnings=len(export),
        other_otel_lines=len(otel) - len(client_caused) - len(export),
    )
    assert statuses == {200}  # a bad header only loses the caller's own parent
    assert not early_export_warning, "the collector failed before the hostile requests"
    assert 1 <= len(client_caused) <= len(CLIENT_CAUSED)  # said, once per logger at most
    assert len(export) == 1, "a collector that is down went unreported"
    assert "127.0.0.1" in export[0]["message"]  # it names the endpoint that failed
    assert len(otel) == len(client_caused) + len(export)

"""`/metrics` as prometheus_client serves it: the format the scraper asks for, and the
library's extras (compression, `name[]` filters) that a hand-written endpoint lacks."""

from __future__ import annotations

import gzip

import httpx

from tests.support.metrics import OPENMETRICS
from tests.support.service import RunningService


def get_metrics(service: RunningService, **headers: str) -> httpx.Response:
    response = httpx.get(service.url + "/metrics", headers=headers)
    assert response.status_code == 200
    return response


def test_prometheus_gets_openmetrics_and_curl_the_text_format(
    dice_service: RunningService,
) -> None:
    httpx.get(dice_service.url + "/roll", params={"die": "fair"})
    openmetrics = get_metrics(dice_service, Accept=OPENMETRICS)
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")
    assert ' # {trace_id="' in openmetrics.text  # exemplars travel in OpenMetrics only

    plain = get_metrics(dice_service)
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in plain.text and " # {" not in plain.text


def test_a_scrape_is_compressed_when_the_scraper_accepts_gzip(
    dice_service: RunningService,
) -> None:
    with httpx.Client() as client:
        request = client.build_request(
            "GET", dice_service.url + "/metrics", headers={"Accept-Encoding": "gzip"}
        )
        response = client.send(request, stream=True)
        raw = b"".join(response.iter_raw())
    assert response.headers.get("content-encoding") == "gzip"
    assert b"# TYPE dice_rolls_total counter" in gzip.decompress(raw)


def test_name_filters_restrict_the_families_served(dice_service: RunningService) -> None:
    response = httpx.get(dice_service.url + "/metrics", params={"name[]": "dice_rolls_total"})
    types = [line for line in response.text.splitlines() if line.startswith("# TYPE")]
    assert types == ["# TYPE dice_rolls_total counter"]

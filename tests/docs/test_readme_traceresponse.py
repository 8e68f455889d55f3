"""The README's promise about `traceresponse` headers, held against the service.

The README says which answers name their trace ("Every answer except `/metrics` ...").
Each path it documents, plus an error and an unknown path, is asked: the header is
there exactly when the README does not list the path as an exception.
"""

from __future__ import annotations

import re

import httpx

from tests.support.readme import code_spans, readme_text, table
from tests.support.service import RunningService

PROMISE = re.compile(r"Every answer except (.+?) names its trace in a \[W3C `traceresponse`")


def documented_exceptions() -> set[str]:
    match = PROMISE.search(readme_text())
    assert match is not None, "README.md no longer says which answers carry traceresponse"
    return set(code_spans(match.group(1)))


def documented_paths() -> list[str]:
    row = table("What")["dice-roller API"]
    return [span for span in code_spans(row[0]) if span.startswith("/")]


def test_the_answers_the_readme_promises_name_their_trace(dice_service: RunningService) -> None:
    exceptions = documented_exceptions()
    paths = [*documented_paths(), "/", "/roll?die=loaded", "/no/such/path"]
    assert "/metrics" in paths
    for path in paths:
        response = httpx.get(dice_service.url + path)
        has_header = "traceresponse" in response.headers
        expected = path.split("?")[0] not in exceptions
        assert has_header == expected, (
            f"{path} answered {response.status_code} "
            f"{'with' if has_header else 'without'} a traceresponse header; README.md "
            f"says {'it has one' if expected else 'it has none'}"
        )

"""Check PromQL, LogQL and TraceQL syntax with the grammars Grafana itself uses.

Grafana's query editors parse queries with Lezer grammars published on npm
(``@prometheus-io/lezer-promql``, ``@grafana/lezer-logql``, ``@grafana/lezer-traceql``).
``tests/grammars/parse.mjs`` runs them under node; this module feeds it queries.
Starting node costs a good fraction of a second, so ``parse_errors_batch`` parses
any number of queries in one process.

Install the grammars with ``npm ci --prefix tests/grammars``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import pytest

Language = Literal["promql", "logql", "traceql"]
LANGUAGES: tuple[Language, ...] = ("promql", "logql", "traceql")

GRAMMARS_DIR = Path(__file__).resolve().parents[1] / "grammars"
PARSE_SCRIPT = GRAMMARS_DIR / "parse.mjs"
INSTALL_COMMAND = "npm ci --prefix tests/grammars"


class GrammarToolError(RuntimeError):
    """node is missing, the grammars aren't installed, or the parse script failed."""


def missing_requirement() -> str | None:
    """Why the grammar tool can't run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    packages = ("@prometheus-io/lezer-promql", "@grafana/lezer-logql", "@grafana/lezer-traceql")
    for package in packages:
        if not (GRAMMARS_DIR / "node_modules" / package).is_dir():
            return f"{package} is not installed: run `{INSTALL_COMMAND}`"
    return None


def require_grammars() -> None:
    """Fail the calling test when the grammar tool can't run, saying why: a skipped
    syntax check would be a check that never runs. `python3 tasks.py test` installs it."""
    reason = missing_requirement()
    if reason is not None:
        pytest.fail(f"the grammar tool can't run: {reason} (`python3 tasks.py test` installs it)")


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a LogQL stream selector, e.g. ``container_name="x"``."""

    label: str
    op: str
    value: str


@dataclass(frozen=True)
class ParseResult:
    """What the grammar found in one query."""

    errors: list[str]
    """One message per syntax error, naming its offset; empty when the query is valid."""
    selectors: list[list[Matcher]]
    """LogQL only: the matchers of each stream selector ``{...}``."""


def _unquote(literal: str) -> str:
    """The value of a LogQL string literal: "double-quoted" (escapes as in JSON) or `raw`."""
    if literal.startswith("`"):
        return literal[1:-1]
    return cast(str, json.loads(literal))


def parse_batch(queries: Sequence[tuple[str, str]]) -> list[ParseResult]:
    """Parse each ``(language, query)`` in one node process; results in the same order."""
    for language, _ in queries:
        if language not in LANGUAGES:
            raise ValueError(f"unknown query language {language!r}; expected one of {LANGUAGES}")
    reason = missing_requirement()
    if reason is not None:
        raise GrammarToolError(reason)
    payload = json.dumps([{"language": lang, "query": query} for lang, query in queries])
    node = cast(str, shutil.which("node"))
    result = subprocess.run(
        [node, str(PARSE_SCRIPT)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise GrammarToolError(f"{PARSE_SCRIPT.name} failed: {result.stderr.strip()}")
    answers = json.loads(result.stdout)
    return [
        ParseResult(
            errors=list(answer["errors"]),
            selectors=[
                [Matcher(m["label"], m["op"], _unquote(m["value"])) for m in selector]
                for selector in answer["selectors"]
            ],
        )
        for answer in answers
    ]


def parse_errors_batch(queries: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Syntax errors of each ``(language, query)``, in order; an empty list means valid.

    Each error names its offset in the query, e.g. ``syntax error at offset 15 near "])"``.
    """
    return [result.errors for result in parse_batch(queries)]


def parse_errors(language: str, query: str) -> list[str]:
    """Syntax errors of one query; prefer ``parse_errors_batch`` for many."""
    return parse_errors_batch([(language, query)])[0]

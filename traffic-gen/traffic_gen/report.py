"""The end-of-run summary, as a plain dict (``--json``) and as text for people.

The text is rendered from the dict, so the two can never disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from .config import Settings, Target
from .load import RunTiming
from .stats import (
    DIE_FACES,
    EXPECTED_SUCCESS_RATE,
    DieStats,
    LatencyHistogram,
    Outcome,
    PageStats,
    RunStats,
    chi_square_uniform,
)

__all__ = ["UNLIKELY_P_VALUE", "closing_line", "render_text", "summarize"]

#: Below this many rolls per face, a chi-square test says little; we say so instead.
MIN_ROLLS_PER_FACE = 5
#: Below this p-value, the summary calls a die's values "unlikely from a uniform die".
UNLIKELY_P_VALUE = 0.001
#: How far (in standard errors) a success rate may stray before we call it unexpected.
SIGMAS = 3.0


def _latency(histogram: LatencyHistogram) -> dict[str, Any]:
    return {
        "count": histogram.count,
        "mean": histogram.mean_seconds,
        "p50": histogram.percentile(0.50),
        "p95": histogram.percentile(0.95),
        "p99": histogram.percentile(0.99),
        "max": histogram.max_seconds if histogram.count else None,
    }


def _success_verdict(successes: int, total: int, expected: float) -> str | None:
    """Whether a success rate is within ``SIGMAS`` binomial standard errors of expected."""
    if total == 0:
        return None
    spread = SIGMAS * math.sqrt(expected * (1 - expected) / total)
    return "as expected" if abs(successes / total - expected) <= spread else "unexpected"


def _die(die: str, stats: DieStats) -> dict[str, Any]:
    faces = DIE_FACES[die]
    expected = EXPECTED_SUCCESS_RATE[die]
    total = stats.total
    chi = chi_square_uniform(dict(stats.values), faces)
    enough = sum(stats.values[f] for f in faces) >= MIN_ROLLS_PER_FACE * len(faces)
    return {
        "requests": total,
        "outcomes": {outcome.value: stats.outcomes[outcome] for outcome in Outcome},
        "status_codes": {str(code): n for code, n in sorted(stats.status_codes.items())},
        "failure_reasons": dict(sorted(stats.reasons.items())),
        "success_rate": stats.successes / total if total else None,
        "expected_success_rate": expected,
        "success_verdict": _success_verdict(stats.successes, total, expected),
        "values": {str(face): stats.values[face] for face in faces},
        "unexpected_values": {
            str(value): n for value, n in sorted(stats.values.items()) if value not in faces
        },
        "chi_square": None
        if chi is None
        else {
            "statistic": chi.statistic,
            "degrees_of_freedom": chi.degrees_of_freedom,
            "p_value": chi.p_value,
            "enough_rolls": enough,
        },
        "latency_seconds": _latency(stats.latency),
    }


def _pages(stats: PageStats) -> dict[str, Any]:
    """The frontend's page loads: ``GET /`` itself, its assets by path, the whole load's time."""
    by_path: dict[str, dict[str, int]] = {}
    for (path, result), n in sorted(stats.assets.items()):
        by_path.setdefault(path, {})[result] = n
    return {
        "loads": stats.total,
        "outcomes": {outcome.value: stats.outcomes[outcome] for outcome in Outcome},
        "status_codes": {str(code): n for code, n in sorted(stats.status_codes.items())},
        "success_rate": stats.successes / stats.total if stats.total else None,
        "assets": {
            "fetched": sum(stats.assets.values()),
            "failed": stats.asset_failures,
            "by_path": by_path,
        },
        "latency_seconds": _latency(stats.latency),
    }


def summarize(
    settings: Settings,
    stats: RunStats,
    timing: RunTiming,
    service: str,
    *,
    cpu_seconds: float | None = None,
) -> dict[str, Any]:
    """Everything a script needs to judge the run; the JSON shape of ``--json``.

    ``cpu_seconds`` is the generator's own CPU time during the run: near one second per
    second, the generator rather than the service may be what limits the rate. The
    requests are the rolls; with the frontend as target, ``pages`` counts the page loads.
    """
    finished_at = timing.finished_at if timing.finished_at is not None else timing.started_at
    elapsed = finished_at - timing.started_at
    sending_stopped = timing.sending_stopped_at or finished_at
    sending_seconds = sending_stopped - timing.started_at
    achieved = stats.started / sending_seconds if sending_seconds > 0 else None
    target = settings.rate
    shortfall = 1 - achieved / target if target and achieved is not None else None
    reasons: Counter[str] = Counter()
    for die_stats in stats.dice.values():
        reasons.update(die_stats.reasons)
    return {
        "url": settings.url,
        "service": service,
        "target": settings.target.value,
        "mode": "open-loop" if settings.open_loop else "users",
        "completed": not timing.interrupted,
        "elapsed_seconds": elapsed,
        "sending_seconds": sending_seconds,
        "requests": {
            "sent": stats.started,
            "finished": stats.finished,
            "abandoned": stats.started - stats.finished,
            "skipped": stats.skipped,
            "outcomes": {outcome.value: stats.count(outcome) for outcome in Outcome},
        },
        "success_rate": stats.successes / stats.finished if stats.finished else None,
        "target_rate": target,
        "achieved_rate": achieved,
        "shortfall": shortfall,
        "generator_cpu_seconds": cpu_seconds,
        "latency_seconds": _latency(stats.latency()),
        "failure_reasons": dict(sorted(reasons.items())),
        "dice": {die: _die(die, die_stats) for die, die_stats in stats.dice.items()},
        "pages": _pages(stats.pages) if settings.target is Target.FRONTEND else None,
    }


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    millis = seconds * 1000
    return f"{millis:.1f} ms" if millis < 10 else f"{millis:.0f} ms"


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.1%}"


def _latency_line(latency: dict[str, Any]) -> str:
    return (
        f"p50 {_ms(latency['p50'])}, p95 {_ms(latency['p95'])}, "
        f"p99 {_ms(latency['p99'])}, max {_ms(latency['max'])}"
    )


_COLUMNS = [  # (heading, outcome key)
    ("success", Outcome.SUCCESS),
    ("HTTP error", Outcome.HTTP_ERROR),
    ("timeout", Outcome.TIMEOUT),
    ("conn. error", Outcome.CONNECTION_ERROR),
    ("invalid", Outcome.INVALID_RESPONSE),
]


def render_text(summary: dict[str, Any]) -> str:
    """The summary as aligned plain text, ending with the closing line the checklist looks for."""
    requests = summary["requests"]
    lines = ["", f"Summary for {summary['service']} at {summary['url']}", ""]
    if summary["pages"] is not None:
        lines += [*_page_lines(summary["pages"]), ""]

    rate = summary["achieved_rate"]
    sent = f"Requests: {requests['sent']} sent, {requests['finished']} finished"
    if rate is not None:
        sent += f", {rate:.1f} requests/s achieved"
    lines.append(sent)
    if summary["target_rate"] is not None:
        lines.append(
            f"  target {summary['target_rate']:g} requests/s, shortfall "
            f"{_pct(summary['shortfall'])}; {requests['skipped']} skipped "
            "(too many requests in flight)"
        )
        if requests["skipped"]:
            lines.append(
                "  requests were skipped: the service answers too slowly for this rate "
                "(raise --max-in-flight), or the generator lacked CPU (see below)"
            )
    cpu = summary["generator_cpu_seconds"]
    if cpu is not None and summary["elapsed_seconds"] > 0:
        share = cpu / summary["elapsed_seconds"]
        lines.append(f"  the generator used {cpu:.1f} s of CPU ({share:.0%} of one core)")
    if requests["abandoned"]:
        lines.append(f"  {requests['abandoned']} were still in flight when stopped")

    header = f"  {'die':<6}{'requests':>9}" + "".join(f"{h:>12}" for h, _ in _COLUMNS)
    lines += ["", header + f"{'success rate':>14}{'expected':>10}"]
    for die, info in summary["dice"].items():
        counts = "".join(f"{info['outcomes'][o.value]:>12}" for _, o in _COLUMNS)
        verdict = f"  {info['success_verdict']}" if info["success_verdict"] else ""
        lines.append(
            f"  {die:<6}{info['requests']:>9}{counts}{_pct(info['success_rate']):>14}"
            f"{info['expected_success_rate']:>10.0%}{verdict}"
        )
    total = summary["requests"]["outcomes"]
    counts = "".join(f"{total[o.value]:>12}" for _, o in _COLUMNS)
    lines.append(
        f"  {'all':<6}{requests['finished']:>9}{counts}{_pct(summary['success_rate']):>14}"
    )

    if summary["failure_reasons"]:
        lines += ["", "Failures by status and reason:"]
        for reason, n in summary["failure_reasons"].items():
            per_die = ", ".join(
                f"{die} {info['failure_reasons'][reason]}"
                for die, info in summary["dice"].items()
                if reason in info["failure_reasons"]
            )
            lines.append(f"  {reason:<24}{n:>6}  ({per_die})")

    latency = summary["latency_seconds"]
    lines += ["", f"Latency of answered requests (n={latency['count']}): {_latency_line(latency)}"]
    for die, info in summary["dice"].items():
        die_latency = info["latency_seconds"]
        if die_latency["count"]:
            lines.append(f"  {die:<6}(n={die_latency['count']}): {_latency_line(die_latency)}")

    lines += ["", "Rolled values, against a uniform die:"]
    for die, info in summary["dice"].items():
        counts = "  ".join(f"{face}:{n:>4}" for face, n in info["values"].items())
        lines.append(f"  {die:<6}{counts}   {_chi_text(info['chi_square'])}")
        if info["unexpected_values"]:
            odd = ", ".join(f"{v} ({n}x)" for v, n in info["unexpected_values"].items())
            lines.append(f"         values this die cannot show: {odd}")

    lines += ["", closing_line(summary)]
    return "\n".join(lines)


def _page_lines(pages: dict[str, Any]) -> list[str]:
    """The page loads, ahead of the rolls: how many loaded, their assets, how long."""
    outcomes = pages["outcomes"]
    lines = [
        f"Page loads: {pages['loads']}, {outcomes[Outcome.SUCCESS.value]} loaded "
        f"({_pct(pages['success_rate'])}); the requests below are the rolls"
    ]
    failed = [f"{heading} {outcomes[o.value]}" for heading, o in _COLUMNS[1:] if outcomes[o.value]]
    if failed:
        lines.append(f"  not loaded: {', '.join(failed)}")
    if pages["status_codes"]:
        codes = ", ".join(f"{code} ({n}x)" for code, n in pages["status_codes"].items())
        lines.append(f"  GET / answered: {codes}")
    assets = pages["assets"]
    line = f"  assets: {assets['fetched']} fetched, {assets['failed']} failed"
    failures = [
        f"{path} {result} ({n}x)"
        for path, results in assets["by_path"].items()
        for result, n in results.items()
        if not result.startswith("2")  # a 2xx status: fetched fine
    ]
    lines.append(line + (f": {', '.join(failures)}" if failures else ""))
    latency = pages["latency_seconds"]
    lines.append(
        f"  load time, the page then its assets (n={latency['count']}): {_latency_line(latency)}"
    )
    return lines


def closing_line(summary: dict[str, Any]) -> str:
    """The last words `verify` looks for (docs/checklist.md): "Traffic generation complete",
    and how long it took."""
    word = "complete" if summary["completed"] else "interrupted"
    return f"Traffic generation {word} in {summary['elapsed_seconds']:.1f} s"


def _chi_text(chi: dict[str, Any] | None) -> str:
    if chi is None:
        return "no rolls"
    text = f"chi² {chi['statistic']:.2f} (df {chi['degrees_of_freedom']}, p {chi['p_value']:.3f})"
    if not chi["enough_rolls"]:
        return text + ": too few rolls to judge"
    if chi["p_value"] < UNLIKELY_P_VALUE:
        return text + ": unlikely from a uniform die"
    return text + ": consistent with uniform"

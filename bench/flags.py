"""What the fault flags cost per request: the real service with and without them.

Three builds of the real service (`python -m dice_roller`) take their turns in the
overhead part's rounds, on the same `/roll?die=fair` route:

- `full`: no flag file, the faults fixed by the settings;
- `full-flags`: the shipped stack/flags/flags.json, as compose runs the service. Every
  flag is at its default, so nothing is evaluated per request: the figure to show is
  that this costs nothing measurable;
- `full-drill`: the same file with `loaded-die-bias` at `loaded`, as the loaded-die
  drill sets it: one OpenFeature evaluation, with its OpenTelemetry hook, per fair
  roll, and nothing else changed (no failure, no extra latency).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path

from .report import Report
from .servers import FULL, FULL_DRILL, FULL_FLAGS, Memory
from .wrk import WrkResult

__all__ = ["DRILL_FLAG", "SHIPPED_FLAGS", "TARGET_AT_DEFAULT", "flag_environments", "report_flags"]

SHIPPED_FLAGS = Path(__file__).resolve().parents[1] / "stack" / "flags" / "flags.json"
DRILL_FLAG = ("loaded-die-bias", "loaded")
TARGET_AT_DEFAULT = 1.05
"""CPU per request, shipped flags / no flag file. The work per roll is one dictionary
look-up, far below what this machine can resolve: 5% is the noise between two runs
of one build here, so a miss means real per-request work, not bad luck."""


def flag_environments(directory: Path) -> dict[str, dict[str, str]]:
    """Each service build's `DICE_FLAGS_FILE` (empty: none, whatever the caller's
    environment says); the drill's copy of the shipped file is written in `directory`."""
    document = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    key, variant = DRILL_FLAG
    document["flags"][key]["defaultVariant"] = variant
    drill = directory / "drill-flags.json"
    drill.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return {
        FULL: {"DICE_FLAGS_FILE": ""},
        FULL_FLAGS: {"DICE_FLAGS_FILE": str(SHIPPED_FLAGS)},
        FULL_DRILL: {"DICE_FLAGS_FILE": str(drill)},
    }


def report_flags(
    report: Report,
    part: str,
    runs: Mapping[str, list[WrkResult]],
    cpu: Mapping[str, list[float]],
    memory: Mapping[str, Memory],
) -> None:
    """The flag builds against `full`, per round (they ran minutes apart at most)."""

    def per_round(build: str) -> tuple[float, float]:
        cpu_ratio = statistics.median(b / f for b, f in zip(cpu[build], cpu[FULL], strict=True))
        rate_ratio = statistics.median(
            b.requests_per_second / f.requests_per_second
            for b, f in zip(runs[build], runs[FULL], strict=True)
        )
        return cpu_ratio, rate_ratio

    full_cpu = statistics.median(cpu[FULL])
    at_default, at_default_rate = per_round(FULL_FLAGS)
    drill, drill_rate = per_round(FULL_DRILL)
    drill_cpu = statistics.median(cpu[FULL_DRILL])
    extra_rss = (memory[FULL_FLAGS].rss_bytes - memory[FULL].rss_bytes) / 2**20
    key, variant = DRILL_FLAG
    report.say(
        f"  Fault flags (bench/flags.py), against the full service without a flag file "
        f"({full_cpu:.0f} µs): the shipped file, every flag at its default, "
        f"{at_default:.3f} of its CPU per request and {at_default_rate:.3f} of its "
        f"throughput; RSS {extra_rss:+.1f} MB (OpenFeature, flagd, gRPC loaded)"
    )
    report.say(
        f"  During a drill ({key}={variant}, one evaluation with the tracing hook per "
        f"roll): {drill_cpu:.0f} µs per request, {drill_cpu - full_cpu:+.0f} µs, "
        f"{drill:.3f} of the CPU and {drill_rate:.3f} of the throughput"
    )
    report.figure(
        part,
        "flags",
        {
            "at_default_cpu_ratio": at_default,
            "at_default_throughput_ratio": at_default_rate,
            "drill_cpu_ratio": drill,
            "drill_throughput_ratio": drill_rate,
            "drill_extra_cpu_microseconds": drill_cpu - full_cpu,
            "extra_rss_mb": extra_rss,
        },
    )
    report.check(
        part, "CPU per request, shipped flags/no flag file", at_default, "<=", TARGET_AT_DEFAULT
    )

"""What the fault flags cost per request: the real service with and without them.

Three builds of the real service (`python -m dice_roller`) take their turns in the
overhead part's rounds, on the same `/roll?die=fair` route:

- `full`: no flag file, so every flag keeps its default and nothing is evaluated;
- `full-flags`: the shipped stack/flags/flags.json, as compose runs the service. Every
  flag is at its default, yet OpenFeature evaluates each flag a fair roll reads, on
  every roll, each evaluation with the OpenTelemetry hook's event on the span (the
  service evaluates them per roll for readability, not because it is free);
- `full-drill`: the same file with `loaded-die-bias` at `loaded`, as the loaded-die
  drill sets it: the same evaluations, one of them away from its default (so the log
  line names it too), and nothing else changed (no failure, no extra latency).

Between rounds of one build, CPU per request moves by 10-15% here, as much as the
flags cost; so the evaluations themselves are also timed in process, on the same
files, as a share of the full service's CPU per request in the same run. That share
is reported, not judged: the service's whole budget, flags included, is judged as its
CPU per request against the common recipe's (`bench.overhead`).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping
from pathlib import Path

from .report import Report
from .servers import FULL, FULL_DRILL, FULL_FLAGS, Memory
from .wrk import WrkResult

__all__ = [
    "DRILL_FLAG",
    "SHIPPED_FLAGS",
    "flag_environment",
    "flag_files",
    "report_flags",
    "time_flag_layer",
]

SHIPPED_FLAGS = Path(__file__).resolve().parents[1] / "stack" / "flags" / "flags.json"
DRILL_FLAG = ("loaded-die-bias", "loaded")
TIMED_ROLLS = 2_000


def flag_files(directory: Path) -> dict[str, Path]:
    """The flag file of each flag build; the drill's, a copy of the shipped one with
    `DRILL_FLAG` selected, is written in `directory`."""
    document = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    key, variant = DRILL_FLAG
    document["flags"][key]["defaultVariant"] = variant
    drill = directory / "drill-flags.json"
    drill.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return {FULL_FLAGS: SHIPPED_FLAGS, FULL_DRILL: drill}


def flag_environment(build: str, files: Mapping[str, Path]) -> dict[str, str]:
    """`DICE_FLAGS_FILE` of a build: its flag file, else empty (no flags, whatever the
    caller's environment says)."""
    return {"DICE_FLAGS_FILE": str(files[build]) if build in files else ""}


def time_flag_layer(flags_file: Path, rolls: int = TIMED_ROLLS) -> float:
    """Microseconds per fair roll for the service's flag evaluations on `flags_file`:
    `FaultFlags.for_roll`, then each flag a fair roll reads, inside a recording span so
    that the OpenTelemetry hook's events cost what they cost in the service."""
    from dice_roller.dice import DieType
    from dice_roller.flags import (
        EXTRA_LATENCY_SECONDS,
        FAIR_FAILURE_RATE,
        LOADED_DIE_BIAS,
        FaultFlags,
    )
    from dice_roller.settings import Settings
    from opentelemetry.sdk.trace import TracerProvider

    # What `roll_die` reads with every flag at its default: no extra latency, so no share.
    fair_roll_flags = (FAIR_FAILURE_RATE, EXTRA_LATENCY_SECONDS, LOADED_DIE_BIAS)
    flags = FaultFlags(Settings(flags_file=flags_file))
    tracer = TracerProvider().get_tracer("bench.flags")
    try:
        best = float("inf")
        for _ in range(3):  # the best of three: the least disturbed by the neighbours
            with tracer.start_as_current_span("GET /roll"):
                started = time.perf_counter()
                for _ in range(rolls):
                    roll_flags = flags.for_roll(DieType.FAIR)
                    for flag in fair_roll_flags:
                        roll_flags.number(flag)
                best = min(best, time.perf_counter() - started)
    finally:
        flags.close()
    return best / rolls * 1e6


def report_flags(
    report: Report,
    part: str,
    runs: Mapping[str, list[WrkResult]],
    cpu: Mapping[str, list[float]],
    memory: Mapping[str, Memory],
    files: Mapping[str, Path],
) -> None:
    """The flag builds against `full`, per round, and the flag layer timed in process."""

    def per_round(build: str) -> tuple[float, float]:
        cpu_ratio = statistics.median(b / f for b, f in zip(cpu[build], cpu[FULL], strict=True))
        rate_ratio = statistics.median(
            b.requests_per_second / f.requests_per_second
            for b, f in zip(runs[build], runs[FULL], strict=True)
        )
        return cpu_ratio, rate_ratio

    full_cpu = statistics.median(cpu[FULL])
    at_default, at_default_rate = per_round(FULL_FLAGS)
    at_default_cpu = statistics.median(cpu[FULL_FLAGS])
    drill, drill_rate = per_round(FULL_DRILL)
    drill_cpu = statistics.median(cpu[FULL_DRILL])
    extra_rss = (memory[FULL_FLAGS].rss_bytes - memory[FULL].rss_bytes) / 2**20
    layer_at_default = time_flag_layer(files[FULL_FLAGS])
    layer_in_drill = time_flag_layer(files[FULL_DRILL])
    share = layer_at_default / full_cpu
    key, variant = DRILL_FLAG
    report.say(
        f"  Fault flags (bench/flags.py), against the full service without a flag file "
        f"({full_cpu:.0f} µs): with the shipped file, every flag at its default and "
        f"evaluated per roll, {at_default_cpu:.0f} µs per request "
        f"({at_default_cpu - full_cpu:+.0f}), {at_default:.3f} of its CPU and "
        f"{at_default_rate:.3f} of its throughput (rounds of one build differ by 10-15% "
        f"here); RSS {extra_rss:+.1f} MB (the flag libraries are loaded either way)"
    )
    report.say(
        f"  Timed in process, a fair roll's flag evaluations with the tracing hook take "
        f"{layer_at_default:.0f} µs: {share:.3f} of a full request (not judged: the "
        f"service's budget, flags included, is its CPU against the recipe's)"
    )
    report.say(
        f"  During a drill ({key}={variant}): {layer_in_drill:.0f} µs a roll in process; "
        f"the service {drill_cpu:.0f} µs per request ({drill_cpu - full_cpu:+.0f}), "
        f"{drill:.3f} of the CPU and {drill_rate:.3f} of the throughput"
    )
    report.figure(
        part,
        "flags",
        {
            "at_default_cpu_ratio": at_default,
            "at_default_throughput_ratio": at_default_rate,
            "at_default_extra_cpu_microseconds": at_default_cpu - full_cpu,
            "drill_cpu_ratio": drill,
            "drill_throughput_ratio": drill_rate,
            "drill_extra_cpu_microseconds": drill_cpu - full_cpu,
            "extra_rss_mb": extra_rss,
            "layer_at_default_microseconds": layer_at_default,
            "layer_in_drill_microseconds": layer_in_drill,
            "layer_at_default_share_of_request": share,
        },
    )

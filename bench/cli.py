"""`python -m bench`: run the benchmark parts and print their figures against the targets.

    python -m bench                       # everything, about 11 minutes
    python -m bench --quick               # a smoke run: seconds per part, nothing judged
    python -m bench --only overhead,memory
    python -m bench --only hop            # the hops, stage 2's to stage 5's whole path, ~5 min
    python -m bench --only limits         # the server's limits against none, under a minute
    python -m bench --json results.json   # also write the figures as JSON

Figures are compared only with a baseline measured in the same run: on a shared
2-core machine the absolute numbers move from one minute to the next, ratios much less.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .concurrency import ConcurrencyPlan, MemorySamples, run_concurrency
from .hop import HopPlan, run_hop
from .limits import LimitsPlan, run_limits
from .machine import describe_machine, raise_file_limit
from .memory import SoakPlan, run_memory
from .overhead import OverheadPlan, run_overhead
from .report import Report
from .traffic import run_traffic
from .visibility import VisibilityPlan, run_visibility
from .wrk import WrkError, find_wrk

__all__ = ["PARTS", "main"]

PARTS = ("overhead", "concurrency", "memory", "visibility", "traffic", "hop", "limits")


@dataclass(frozen=True)
class Plans:
    overhead: OverheadPlan
    concurrency: ConcurrencyPlan
    soak: SoakPlan
    visibility: VisibilityPlan
    traffic_seconds: float
    hop: HopPlan
    limits: LimitsPlan


FULL_PLANS = Plans(
    overhead=OverheadPlan(rounds=3, seconds=5),
    concurrency=ConcurrencyPlan(seconds=10, levels=(200, 400, 500, 600, 800, 1000, 1200, 1600)),
    soak=SoakPlan(clients=200, warmup_seconds=10, seconds=150, interval_seconds=1.0),
    visibility=VisibilityPlan(requests=20),
    traffic_seconds=10,
    hop=HopPlan(rounds=3, seconds=3),
    limits=LimitsPlan(rounds=3, seconds=5),
)
QUICK_PLANS = Plans(
    overhead=OverheadPlan(rounds=1, seconds=1, pause_seconds=0.5),
    concurrency=ConcurrencyPlan(seconds=2, levels=(200,), pause_seconds=0),
    soak=SoakPlan(clients=200, warmup_seconds=1, seconds=2, interval_seconds=0.1),
    visibility=VisibilityPlan(requests=3, max_gap_seconds=0.3),
    traffic_seconds=1,
    hop=HopPlan(rounds=1, seconds=1, pause_seconds=0.2),
    limits=LimitsPlan(rounds=1, seconds=1, pause_seconds=0.2),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        # How it was run: `python3 tasks.py bench` names itself in SANDBOX_PROG.
        prog=os.environ.pop("SANDBOX_PROG", "") or "python -m bench",
        description="Benchmarks of the dice-roller: telemetry overhead, concurrency, memory, "
        "time to visible, traffic generator accuracy, and the hops of the frontend in front "
        "of it and of the die-service behind it. "
        "Needs wrk.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: a second or two per part, targets not judged",
    )
    parser.add_argument(
        "--only",
        type=_parts,
        default=PARTS,
        metavar="PART[,PART...]",
        help=f"run only these parts, among: {', '.join(PARTS)}",
    )
    parser.add_argument(
        "--json", type=_json_path, metavar="FILE", help="also write the figures here"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        find_wrk()
    except WrkError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    plans = QUICK_PLANS if args.quick else FULL_PLANS
    report = Report(quick=args.quick)
    machine = describe_machine()
    command = "python3 tasks.py bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    _print_header(machine, command.strip(), raise_file_limit())
    try:
        with tempfile.TemporaryDirectory(prefix="dice-bench-") as tmp:
            _run(report, plans, args.only, Path(tmp))
    except KeyboardInterrupt:
        print("\nbench: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    except (WrkError, RuntimeError, OSError) as error:
        print(f"\nbench: {error}", file=sys.stderr)
        return 1
    report.summary()
    if args.json is not None:
        report.write_json(args.json, machine, command)
    return 0


def _run(report: Report, plans: Plans, parts: tuple[str, ...], tmp: Path) -> None:
    under_load: MemorySamples | None = None
    if "overhead" in parts:
        run_overhead(report, plans.overhead, tmp)
    if "concurrency" in parts:
        under_load = run_concurrency(report, plans.concurrency, tmp)
    if "memory" in parts:
        run_memory(report, plans.soak, tmp, under_load)
    if "visibility" in parts:
        run_visibility(report, plans.visibility, tmp)
    if "traffic" in parts:
        run_traffic(report, plans.traffic_seconds, tmp)
    if "hop" in parts:
        run_hop(report, plans.hop, tmp)
    if "limits" in parts:
        run_limits(report, plans.limits, tmp)


def _print_header(machine: dict[str, str], command: str, open_files: int) -> None:
    print("dice-roller benchmarks")
    for name, value in machine.items():
        print(f"  {name}: {value}")
    print(f"  open files allowed: {open_files}")
    print(f"  reproduce: {command}  (from the repository root; needs wrk)", flush=True)


def _json_path(text: str) -> Path:
    """Checked before the run, not after minutes of measuring."""
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory")
    return path


def _parts(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose among: {', '.join(PARTS)}"
        )
    return names

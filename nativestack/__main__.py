"""`python3 tasks.py nativestack`: the stack as plain processes, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .build import BuildError
from .network import NetworkError
from .postgres import PostgresError
from .stack import NativeStackError, build_all, native_stack, stop_on_sigterm


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        # How it was run: `python3 tasks.py nativestack` names itself in SANDBOX_PROG.
        prog=os.environ.pop("SANDBOX_PROG", "") or "python -m nativestack",
        description=(
            "Build Prometheus, Alertmanager, Loki and Alloy at the versions stack/compose.yml "
            "pins, and node_exporter at stages/stage5.yml's (once; cached), then run them, a "
            "Tempo stand-in, the alert-receiver and the dice roller (from stage 2 the "
            "frontend too, from stage 3 the die-service, from stage 5 Debian's PostgreSQL "
            "and postgres_exporter, and node_exporter) as plain "
            "processes on the shipped "
            "configs, each in a network namespace of its own (needs root). See "
            "docs/native-stack.md."
        ),
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build and cache the binaries, then exit"
    )
    parser.add_argument(
        "--stage",
        type=int,
        choices=(1, 2, 3, 4, 5),
        default=1,
        help="which stage of the sandbox to run (docs/stages.md); 2 adds the frontend, "
        "3 the die-service, 4 the same as 3 (its new part is an endpoint), 5 PostgreSQL",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="keep data, copied configs and logs here (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    try:
        if args.build_only:
            build_all(lambda line: print(line, file=sys.stderr))
            return 0
        stop_on_sigterm()
        with native_stack(args.state_dir, stage=args.stage) as stack:
            print("The stack is up (Ctrl-C stops it):", flush=True)
            print(stack.describe())
            print(f"Logs: {stack.state_dir / 'logs'}", flush=True)
            stage_options = [
                *([("stage", str(args.stage))] if args.stage >= 2 else []),
                *([("frontend-url", stack.frontend_url)] if args.stage >= 2 else []),
            ]
            print(
                "Check it box by box:  python3 tasks.py verify "
                + " ".join(
                    f"--{name} {value}"
                    for name, value in (
                        *stage_options,
                        ("service-url", stack.service_url),
                        ("prometheus-url", stack.prometheus_url),
                        ("loki-url", stack.loki_url),
                        ("tempo-url", stack.tempo_url),
                        ("alloy-url", stack.alloy_url),
                    )
                ),
                flush=True,
            )
            threading.Event().wait()
    except (BuildError, NetworkError, NativeStackError, PostgresError) as error:
        print(f"nativestack: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nativestack: stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The project's commands, runnable on a fresh machine with nothing but Python 3.11+.

    python3 tasks.py run      # the service alone, on http://127.0.0.1:8100
    python3 tasks.py test     # the whole test suite
    python3 tasks.py lint     # ruff and mypy
    python3 tasks.py bench    # the benchmarks (see docs/performance.md)
    python3 tasks.py verify   # check a running stack, box by box (see README)

Each command first makes sure uv is there (installing it with pip if not) and that
the virtual environment matches uv.lock, so there is no separate set-up step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GRAMMARS = ROOT / "tests" / "grammars"


class SetupError(Exception):
    """A set-up step failed; the message says what to do about it."""


def main(argv: list[str]) -> int:
    commands = {
        "run": run,
        "test": test,
        "lint": lint,
        "bench": bench,
        "verify": verify,
    }
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    try:
        return commands[name](rest)
    except SetupError as error:
        print(f"tasks.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(args: list[str]) -> int:
    """Serve the API; with no collector running, traces fail quietly (a line a minute)."""
    uv = ensure_environment()
    return call([uv, "run", "--frozen", "dice-roller", *args])


def test(args: list[str]) -> int:
    uv = ensure_environment()
    install_grammars()
    code = call([uv, "run", "--frozen", "pytest", *args])
    return code


def lint(args: list[str]) -> int:
    uv = ensure_environment()
    checks = [
        [uv, "run", "--frozen", "ruff", "check", "."],
        [uv, "run", "--frozen", "ruff", "format", "--check", "."],
        [uv, "run", "--frozen", "mypy"],
    ]
    return max(call(check) for check in checks)


def bench(args: list[str]) -> int:
    uv = ensure_environment()
    return call([uv, "run", "--frozen", "python", "-m", "bench", *args])


def verify(args: list[str]) -> int:
    uv = ensure_environment()
    return call([uv, "run", "--frozen", "python", "-m", "checks", *args])


def ensure_environment() -> str:
    """uv on PATH (or installed now), and the workspace synced exactly to uv.lock."""
    uv = shutil.which("uv") or _install_uv()
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    sync = [uv, "sync", "--frozen", "--all-packages", "--quiet"]
    if subprocess.run(sync, cwd=ROOT).returncode != 0:
        raise SetupError(
            "`uv sync` could not build the environment from uv.lock (its error is above); "
            "it needs PyPI and Python 3.11 or newer on PATH"
        )
    return uv


def _install_uv() -> str:
    print("tasks.py: uv not found, installing it with pip ...", file=sys.stderr)
    in_virtualenv = sys.prefix != sys.base_prefix  # pip refuses --user there
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if not in_virtualenv:
        pip.append("--user")
    if subprocess.run([*pip, "uv"]).returncode != 0 and not in_virtualenv:
        # A distribution's own Python refuses user installs without this (PEP 668).
        subprocess.run([*pip, "--break-system-packages", "uv"])
    scheme = None if in_virtualenv else ("nt_user" if os.name == "nt" else "posix_user")
    uv = shutil.which("uv") or _script_path("uv", scheme)
    if not Path(uv).is_file():
        raise SetupError(
            f"could not install uv with {Path(sys.executable).name} -m pip. Install pip "
            "(e.g. `apt install python3-pip`) or uv itself (https://docs.astral.sh/uv/), "
            "then run this command again"
        )
    return uv


def install_grammars() -> None:
    """Grafana's PromQL/LogQL/TraceQL grammars for the query tests, when npm is there.

    Without node the grammar tests skip on a laptop (and fail under CI=true).
    """
    npm = shutil.which("npm")
    if npm is None or (GRAMMARS / "node_modules").is_dir():
        return
    command = [npm, "ci", "--prefix", str(GRAMMARS), "--silent", "--no-audit"]
    if subprocess.run(command).returncode != 0:
        print(
            "tasks.py: `npm ci` failed (its error is above); the grammar tests will skip, "
            "or fail under CI=true",
            file=sys.stderr,
        )


def call(command: list[str]) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


def _script_path(name: str, scheme: str | None) -> str:
    """Where pip put the script `name`: the user scheme's scripts, or this Python's own."""
    import sysconfig

    scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
    suffix = ".exe" if os.name == "nt" else ""
    return str(Path(scripts) / f"{name}{suffix}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

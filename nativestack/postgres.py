"""Debian's PostgreSQL as compose's `postgres` image runs it: one cluster, one user, one
database, made fresh in a folder and thrown away with it.

The image reads `POSTGRES_USER`, `POSTGRES_PASSWORD` and `POSTGRES_DB` from its
environment (stages/stage5.yml) and creates that superuser and database on first
start. Here `initdb` makes the user, `createdb` the database. The password is not
needed: only this machine's namespaces reach the server, and it trusts them
(`-A trust`), as the image trusts its own socket.

PostgreSQL refuses to run as root, so every command runs as the `postgres` user the
Debian package creates, on a folder that user owns. The same functions start the
native stack's database (nativestack/stack.py) and the tests' (tests/support/postgres.py).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "BIN",
    "EXPORTER",
    "PostgresError",
    "create_database",
    "init_cluster",
    "require_postgres",
    "server_argv",
]

BIN = Path("/usr/lib/postgresql/15/bin")
"""Debian 12's PostgreSQL 15 (package postgresql-15): not on PATH, on purpose."""
EXPORTER = "prometheus-postgres-exporter"
"""Debian's postgres_exporter (the Go module proxy refuses the upstream module)."""
OS_USER = "postgres"


class PostgresError(RuntimeError):
    """PostgreSQL cannot be run here; the message says what to install or what failed."""


def require_postgres() -> None:
    """Stop with what to install when Debian's PostgreSQL or its exporter is missing."""
    missing = [
        package
        for package, present in (
            ("postgresql-15", (BIN / "postgres").is_file()),
            (EXPORTER, shutil.which(EXPORTER) is not None),
        )
        if not present
    ]
    if missing:
        raise PostgresError(
            f"stage 5 runs Debian's {', '.join(missing)}: "
            f"`sudo apt-get install -y --no-install-recommends {' '.join(missing)}`"
        )


def _as_postgres(argv: Sequence[str]) -> list[str]:
    """`argv` run as the postgres user when we are root (otherwise as we are)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", OS_USER, "--", *argv]
    return list(argv)


def init_cluster(data_dir: Path, user: str) -> None:
    """A new cluster in `data_dir` (created, owned by the postgres user) whose superuser
    is `user`; fsync off, as the cluster lives no longer than its run."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(OS_USER)
        for path in (data_dir, data_dir.parent):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    command = _as_postgres(
        [str(BIN / "initdb"), "-D", str(data_dir), "-U", user, "-A", "trust", "--no-sync"]
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")


def server_argv(data_dir: Path, host: str, port: int) -> list[str]:
    """The server's command line: listening on `host`:`port`, its socket in `data_dir`."""
    return _as_postgres(
        [
            str(BIN / "postgres"),
            "-D",
            str(data_dir),
            "-k",
            str(data_dir),
            "-h",
            host,
            "-p",
            str(port),
        ]
    )


def create_database(
    host: str, port: int, user: str, database: str, prefix: Sequence[str] = ()
) -> None:
    """`CREATE DATABASE database` on the running server (`prefix`: where to run it from,
    e.g. `ip netns exec NS`)."""
    command = [
        *prefix,
        *_as_postgres([str(BIN / "createdb"), "-h", host, "-p", str(port), "-U", user, database]),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")

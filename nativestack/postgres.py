"""Debian's PostgreSQL as compose's `postgres` image runs it: one cluster, one user, one
database, made fresh in a folder and thrown away with it.

The image reads `POSTGRES_USER`, `POSTGRES_PASSWORD` and `POSTGRES_DB` from its
environment (stages/stage5.yml) and creates that superuser and database on first
start. Here `initdb` makes the user with that password, `createdb` the database, and
the server asks a password of every connection over the network, as the image's
does (`host all all all scram-sha-256`); its own socket it trusts, as the image.

PostgreSQL refuses to run as root, so every command runs as the `postgres` user the
Debian package creates, on a folder that user owns. `setpriv` becomes that user and
then is the server (it execs, it does not fork), so a signal sent to the process
reaches PostgreSQL itself: SIGINT is its fast shutdown, compose's `stop_signal`.

The same functions start the native stack's database (nativestack/stack.py);
`temporary_server` puts them together for the bench and the tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stackclient import wait_until

__all__ = [
    "BIN",
    "EXPORTER",
    "PostgresError",
    "Server",
    "accepts",
    "create_database",
    "init_cluster",
    "require_postgres",
    "server_argv",
    "temporary_server",
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
        return ["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups", *argv]
    return list(argv)


def init_cluster(data_dir: Path, user: str, password: str) -> None:
    """A new cluster in `data_dir` whose superuser is `user`. `data_dir`'s parent is a
    folder of its own: both are handed to the postgres user. fsync is off, as the
    cluster lives no longer than its run."""
    data_dir.mkdir(parents=True, exist_ok=True)
    password_file = data_dir.parent / "password"
    password_file.write_text(password, encoding="utf-8")
    if os.geteuid() == 0:
        owner = pwd.getpwnam(OS_USER)
        for path in (data_dir.parent, data_dir, password_file):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    command = _as_postgres(
        [
            str(BIN / "initdb"),
            f"--pgdata={data_dir}",
            f"--username={user}",
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ]
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    password_file.unlink()
    if done.returncode != 0:
        raise PostgresError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")
    with (data_dir / "pg_hba.conf").open("a", encoding="utf-8") as rules:
        rules.write("host all all all scram-sha-256\n")


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


def accepts(host: str, port: int) -> bool | None:
    """True once the server at `host`:`port` accepts connections; None while it does not
    (a probe for stackclient's `wait_until`)."""
    command = [str(BIN / "pg_isready"), "-q", "-h", host, "-p", str(port), "-t", "1"]
    return subprocess.run(command, check=False).returncode == 0 or None


def create_database(host: str, port: int, user: str, password: str, database: str) -> None:
    """`CREATE DATABASE database` on the running server, over the network as the
    services connect."""
    command = [str(BIN / "createdb"), "-h", host, "-p", str(port), "-U", user, database]
    env = {**os.environ, "PGPASSWORD": password}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise PostgresError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")


@dataclass
class Server:
    """A PostgreSQL server of its own on `host`:`port`, on `data_dir`, whose superuser
    `user` owns `database`. It can be stopped and started again on the same data: a
    database that goes down and comes back."""

    data_dir: Path
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "server.log"

    @property
    def url(self) -> str:
        """`database`'s URL, as DIE_SERVICE_DATABASE_URL and asyncpg take it."""
        return self.url_of(self.database)

    def url_of(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What the server printed, every run of it."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def start(self, timeout: float = 30.0) -> None:
        """Run the server; return once it accepts connections."""
        assert not self.running, "running already"
        with self.log_path.open("ab") as sink:
            process = subprocess.Popen(
                server_argv(self.data_dir, self.host, self.port), stdout=sink, stderr=sink
            )
        self.process = process

        def accepting() -> bool | None:
            if process.poll() is not None:
                raise PostgresError(f"PostgreSQL exited while starting:\n{self.output()}")
            return accepts(self.host, self.port)

        if wait_until(accepting, timeout) is None:
            self.stop()
            raise PostgresError(f"PostgreSQL was not ready within {timeout:g} s:\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT, PostgreSQL's fast shutdown (compose's `stop_signal`); killed if it
        does not exit in time."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def create_database(self, database: str) -> str:
        """A new, empty database on this server; its URL."""
        create_database(self.host, self.port, self.user, self.password, database)
        return self.url_of(database)


@contextmanager
def temporary_server(
    user: str, password: str, database: str, port: int, host: str = "127.0.0.1"
) -> Iterator[Server]:
    """A fresh cluster serving `database` until the block ends, then stopped and its
    folder removed, however the block ends: for the bench and the tests."""
    require_postgres()
    home = Path(tempfile.mkdtemp(prefix="dice-sandbox-postgres-"))
    try:
        server = Server(home / "data", host, port, user, password, database)
        init_cluster(server.data_dir, user, password)
        try:
            server.start()
            server.create_database(database)
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)

"""A real PostgreSQL for a test: Debian's, made and run as the native stack runs it
(nativestack/postgres.py), on a free port of 127.0.0.1, in a fresh folder thrown away
at the end. It can be stopped and started again on the same data, for a database that
goes down and comes back."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from nativestack.postgres import Server, temporary_server

from .tools import free_port

__all__ = ["RunningPostgres", "running_postgres"]

RunningPostgres = Server
"""A PostgreSQL server of the test's (nativestack/postgres.py)."""


@contextmanager
def running_postgres(user: str = "dice", password: str | None = None) -> Iterator[Server]:
    """A fresh cluster with `user` (a random password unless given) and its database
    `dice`, running until the block ends."""
    with temporary_server(user, password or secrets.token_hex(8), "dice", free_port()) as server:
        yield server

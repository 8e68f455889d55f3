"""Where the dice are kept, behind the two questions the service asks: one die, or all.

In memory at stage 3. Stage 5 moves the table into PostgreSQL (database.py): a
catalogue reading rows answers the same two questions, asynchronously as a database
does, and nothing else in the service changes. It can also fail to answer, which is
what `CatalogueUnavailable` says, and it has a connection pool to open and close.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sandbox_telemetry.flags import RequestFlags

from .dice import SHIPPED_DICE, DieSpec
from .metrics import DatabaseFailure

__all__ = ["Catalogue", "CatalogueUnavailable", "InMemoryCatalogue"]


class CatalogueUnavailable(Exception):
    """The catalogue cannot answer now: its database is down, slow or broken. The app
    answers 503 and the next request asks again."""

    def __init__(self, reason: DatabaseFailure, detail: str) -> None:
        super().__init__(detail)
        self.reason: DatabaseFailure = reason
        self.detail = detail


class Catalogue(Protocol):
    """What the routes need of a store of dice."""

    async def open(self) -> None:
        """Get ready to answer (the app's start)."""
        ...

    async def close(self) -> None:
        """Let go of what `open` took (the app's end)."""
        ...

    async def get(self, name: str, flags: RequestFlags | None = None) -> DieSpec | None:
        """The die called `name`, or None when there is none; `flags` are the lookup's
        fault flags, for a catalogue that has one of its own (database.py's)."""
        ...

    async def all(self) -> list[DieSpec]:
        """Every die, in the order the catalogue lists them."""
        ...


class InMemoryCatalogue:
    """The dice held in a dict, `SHIPPED_DICE` unless told otherwise."""

    def __init__(self, dice: Iterable[DieSpec] = SHIPPED_DICE) -> None:
        self._dice: dict[str, DieSpec] = {}
        for die in dice:
            if die.name in self._dice:  # two specs for one name: which would a roll use?
                raise ValueError(f"the die {die.name!r} is in the catalogue twice")
            self._dice[die.name] = die

    async def open(self) -> None:
        pass  # nothing to connect to

    async def close(self) -> None:
        pass

    async def get(self, name: str, flags: RequestFlags | None = None) -> DieSpec | None:
        return self._dice.get(name)  # no query: nothing for database-latency-seconds to slow

    async def all(self) -> list[DieSpec]:
        return list(self._dice.values())

"""Where the dice are kept, behind the two questions the service asks: one die, or all.

In memory for now. Stage 5 moves the table into PostgreSQL: a catalogue reading
rows answers the same two questions, asynchronously as a database does, and nothing
else in the service changes. That is why the questions are `async` already.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .dice import SHIPPED_DICE, DieSpec

__all__ = ["Catalogue", "InMemoryCatalogue"]


class Catalogue(Protocol):
    """What the routes need of a store of dice."""

    async def get(self, name: str) -> DieSpec | None:
        """The die called `name`, or None when there is none."""
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

    async def get(self, name: str) -> DieSpec | None:
        return self._dice.get(name)

    async def all(self) -> list[DieSpec]:
        return list(self._dice.values())

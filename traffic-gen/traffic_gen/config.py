"""The settings of one run, already validated: the rest of the package trusts them."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

__all__ = ["DEFAULT_URLS", "FloatRange", "IntRange", "Settings", "Target"]


class Target(enum.StrEnum):
    """Whom the simulated users talk to."""

    DICE_ROLLER = "dice-roller"  # GET /roll?die=..., straight to the service
    FRONTEND = "frontend"  # the page at /, then GET /api/roll?die=..., as a browser would


#: Where each target listens when run as the README says.
DEFAULT_URLS: dict[Target, str] = {
    Target.DICE_ROLLER: "http://localhost:8100",
    Target.FRONTEND: "http://localhost:8200",
}


@dataclass(frozen=True)
class IntRange:
    """A whole number drawn uniformly from ``low..high`` (inclusive); fixed when equal."""

    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class FloatRange:
    """A number of seconds drawn uniformly from ``low..high``; fixed when equal."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return self.low if self.low == self.high else rng.uniform(self.low, self.high)

    def __str__(self) -> str:
        return f"{self.low:g}" if self.low == self.high else f"{self.low:g}-{self.high:g}"


@dataclass(frozen=True)
class Settings:
    """What to send, where, and how fast.

    With ``rate`` set the run is open-loop: requests leave on a fixed schedule however
    slowly the service answers, and ``users``, ``rolls`` and ``think`` do not apply.
    Without it, ``users`` simulated users each roll, wait for the answer, think, and
    roll again: a closed loop, which slows down when the service does. With ``target``
    the frontend, those users are visitors of its page (see ``frontend.py``).

    ``max_in_flight`` bounds the sockets and memory a stalled service can tie up. A run
    needs about its rate times the service's latency: 256 covers 500 requests/s at the
    default half-second mean delay.
    """

    url: str = DEFAULT_URLS[Target.DICE_ROLLER]
    target: Target = Target.DICE_ROLLER
    users: int = 10
    rolls: IntRange = IntRange(1, 20)
    think: FloatRange = FloatRange(0.1, 1.0)
    duration: float | None = None
    rate: float | None = None
    max_in_flight: int = 256
    risky_share: float = 0.5
    timeout: float = 5.0
    wait: float = 0.0
    seed: int | None = None
    quiet: bool = False
    json: bool = False

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

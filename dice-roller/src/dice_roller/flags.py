"""The feature flags that break the service on purpose: keys, types, ranges, defaults.

Each flag sets one field of `dice.Faults` and is defined once, here, the way a
metric is: its key in the flag file, what it does, the numbers it accepts, and the
variant the shipped file selects (stack/flags/flags.json, whose variants are the
menu a user or a drill picks from). Every flag is a float flag in flagd's JSON
format; its shipped default is `dice.Faults`'s default, the spec's behaviour.

`check_document` holds a parsed flag file against these definitions and names
each flag that is wrong, with what it allows: the service keeps that flag's last
good value rather than guess (see `dice_roller.faults`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .dice import SPEC, DieType, Faults

__all__ = [
    "EXTRA_LATENCY_SECONDS",
    "EXTRA_LATENCY_SHARE",
    "FAIR_FAILURE_RATE",
    "FLAGS",
    "FLAGS_BY_KEY",
    "LOADED_DIE_BIAS",
    "RISKY_FAILURE_RATE",
    "DocumentCheck",
    "FaultFlag",
    "check_document",
]

BOTH_DICE = frozenset(DieType)


@dataclass(frozen=True)
class FaultFlag:
    """A float flag that sets the `Faults` field `fault` of the rolls of `dice`."""

    key: str
    description: str
    fault: str
    minimum: float
    maximum: float
    default_variant: str
    dice: frozenset[DieType] = BOTH_DICE
    only_with: str | None = None
    """The key of a flag that must be non-zero for this one to change anything."""
    default: float = field(init=False)

    def __post_init__(self) -> None:
        if self.fault not in Faults.__dataclass_fields__:
            raise ValueError(f"{self.key}: Faults has no field {self.fault!r}")
        object.__setattr__(self, "default", float(getattr(SPEC, self.fault)))

    @property
    def allowed(self) -> str:
        return f"a number from {self.minimum:g} to {self.maximum:g}"

    def accepts(self, value: object) -> bool:
        """A JSON number (not a boolean) within the flag's range."""
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and self.minimum <= value <= self.maximum
        )


RISKY_FAILURE_RATE = FaultFlag(
    "risky-failure-rate",
    "Probability that a risky roll fails with HTTP 500. Shipped: spec 0.1.",
    fault="risky_failure_rate",
    minimum=0.0,
    maximum=1.0,
    default_variant="spec",
    dice=frozenset({DieType.RISKY}),
)
FAIR_FAILURE_RATE = FaultFlag(
    "fair-failure-rate",
    "Probability that a fair roll fails with HTTP 500. Shipped: spec 0.0.",
    fault="fair_failure_rate",
    minimum=0.0,
    maximum=1.0,
    default_variant="spec",
    dice=frozenset({DieType.FAIR}),
)
EXTRA_LATENCY_SECONDS = FaultFlag(
    "extra-latency-seconds",
    "Seconds added to a roll's random delay. Shipped: off 0.0.",
    fault="extra_latency_seconds",
    minimum=0.0,
    maximum=30.0,
    default_variant="off",
)
EXTRA_LATENCY_SHARE = FaultFlag(
    "extra-latency-share",
    "Share of rolls that get the extra latency; matters only while it is on. Shipped: all 1.0.",
    fault="extra_latency_share",
    minimum=0.0,
    maximum=1.0,
    default_variant="all",
    only_with=EXTRA_LATENCY_SECONDS.key,
)
LOADED_DIE_BIAS = FaultFlag(
    "loaded-die-bias",
    "Share of rolls that show the die's top face (6 fair, 7 risky) instead of a uniform "
    "draw. Shipped: off 0.0.",
    fault="loaded_die_bias",
    minimum=0.0,
    maximum=1.0,
    default_variant="off",
)

FLAGS: tuple[FaultFlag, ...] = (
    RISKY_FAILURE_RATE,
    FAIR_FAILURE_RATE,
    EXTRA_LATENCY_SECONDS,
    EXTRA_LATENCY_SHARE,
    LOADED_DIE_BIAS,
)
"""Every flag, in the order a roll evaluates them (a flag after the one it needs)."""
FLAGS_BY_KEY: Mapping[str, FaultFlag] = {flag.key: flag for flag in FLAGS}


@dataclass(frozen=True)
class DocumentCheck:
    """What is wrong with a parsed flag file, by our rules (flagd's own come first)."""

    problems: Mapping[str, str]
    """Flag key -> what is wrong with it; such a flag keeps its last good value."""
    missing: tuple[str, ...]
    """Our flags the file does not define: they take their shipped default."""
    unknown: tuple[str, ...]
    """Flags in the file that the service does not know (a typo in a key?)."""


def check_document(document: Mapping[str, Any]) -> DocumentCheck:
    """Check each of our flags in a document that flagd has accepted.

    flagd takes any JSON value as a variant (and `true` as the float 1.0), and a
    `defaultVariant` that names no variant fails only when evaluated; here each
    variant must be a number in the flag's range, and `defaultVariant` one of them.
    Every variant is checked, not only the selected one, so a bad value is reported
    when it is written rather than when a drill or a targeting rule picks it.
    """
    flags = document.get("flags") or {}
    problems: dict[str, str] = {}
    for flag in FLAGS:
        definition = flags.get(flag.key)
        if isinstance(definition, Mapping):
            problem = _check_flag(flag, definition)
            if problem is not None:
                problems[flag.key] = problem
    return DocumentCheck(
        problems=problems,
        missing=tuple(flag.key for flag in FLAGS if flag.key not in flags),
        unknown=tuple(key for key in flags if key not in FLAGS_BY_KEY),
    )


def _check_flag(flag: FaultFlag, definition: Mapping[str, Any]) -> str | None:
    variants = definition.get("variants")
    if not isinstance(variants, Mapping):
        return "its variants must be an object of name: number"
    for name, value in variants.items():
        if not flag.accepts(value):
            return f"variant {name!r} is {_json(value)}, not {flag.allowed}"
    selected = definition.get("defaultVariant")
    if selected not in variants:
        names = ", ".join(repr(name) for name in variants)
        return f"defaultVariant {_json(selected)} is not one of its variants ({names})"
    return None


def _json(value: object) -> str:
    """A value as the file spells it: "0.5" quoted, true, null, 1.5."""
    return json.dumps(value)

"""The shipped dice and the catalogue that holds them: stage 1's two dice exactly as the
dice-roller has them, the polyhedral dice with faces 1..n, every spec within bounds,
and a catalogue that answers the two questions and refuses a name twice."""

from __future__ import annotations

import asyncio

import pytest
from dice_roller.dice import DieType, stage1_dice
from dice_roller.settings import load_settings as dice_roller_settings
from die_service.catalogue import InMemoryCatalogue
from die_service.dice import SHIPPED_DICE, DieSpec
from pydantic import ValidationError

SHIPPED = {die.name: die for die in SHIPPED_DICE}


def test_the_shipped_dice_are_stage_1s_two_and_six_polyhedral_ones_in_this_order() -> None:
    assert list(SHIPPED) == ["fair", "risky", "d4", "d6", "d8", "d10", "d12", "d20"]


@pytest.mark.parametrize("die", list(DieType), ids=str)
def test_fair_and_risky_are_exactly_the_dice_rollers(die: DieType) -> None:
    """Same faces, same failure rate and delay as the dice-roller's defaults: stage 1's
    dashboards and alerts keep their meaning when the roller asks here instead."""
    defaults = dice_roller_settings({})
    known = stage1_dice(defaults.max_delay_seconds, defaults.risky_failure_rate)[die]
    assert SHIPPED[die.value].model_dump() == known.model_dump()


@pytest.mark.parametrize("sides", [4, 6, 8, 10, 12, 20])
def test_a_polyhedral_die_shows_1_to_its_number_of_sides(sides: int) -> None:
    assert SHIPPED[f"d{sides}"].faces == tuple(range(1, sides + 1))


def test_the_polyhedral_dice_grow_slower_and_less_reliable_with_their_size() -> None:
    """Each die's signals differ from its neighbours', and the d20 is the worst of them;
    none fails more than the risky die or waits past the 1.5 s latency objective."""
    polyhedral = [SHIPPED[f"d{sides}"] for sides in (4, 6, 8, 10, 12, 20)]
    rates = [die.failure_rate for die in polyhedral]
    delays = [die.max_delay_seconds for die in polyhedral]
    assert rates == sorted(rates) and len(set(rates)) >= 5, rates
    assert delays == sorted(delays) and len(set(delays)) == len(delays), delays
    assert max(rates) < SHIPPED["risky"].failure_rate
    assert max(delays) < 1.5


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("name", "D20", "should match pattern"),
        ("name", "d" * 33, "should match pattern"),
        ("name", "", "should match pattern"),
        ("faces", (), "at least 1 item"),
        ("faces", tuple(range(101)), "at most 100 items"),
        ("failure_rate", 1.5, "less than or equal to 1"),
        ("failure_rate", float("nan"), "finite number"),
        ("max_delay_seconds", -0.1, "greater than or equal to 0"),
        ("max_delay_seconds", 6.0, "less than or equal to 5"),
    ],
)
def test_a_spec_out_of_bounds_is_refused_saying_what_is_allowed(
    field: str, value: object, allowed: str
) -> None:
    good = {"name": "d3", "faces": (1, 2, 3), "failure_rate": 0.0, "max_delay_seconds": 0.1}
    with pytest.raises(ValidationError) as raised:
        DieSpec.model_validate({**good, field: value})
    assert allowed in str(raised.value)


def test_a_spec_writes_its_faces_as_a_json_list() -> None:
    assert SHIPPED["d4"].to_json() == {
        "name": "d4",
        "faces": [1, 2, 3, 4],
        "failure_rate": 0.0,
        "max_delay_seconds": 0.2,
    }


def test_the_catalogue_answers_one_die_or_all_of_them() -> None:
    async def ask() -> tuple[DieSpec | None, DieSpec | None, list[DieSpec]]:
        catalogue = InMemoryCatalogue()
        return await catalogue.get("d20"), await catalogue.get("d7"), await catalogue.all()

    d20, d7, every = asyncio.run(ask())
    assert d20 == SHIPPED["d20"]
    assert d7 is None
    assert every == list(SHIPPED_DICE)


def test_the_catalogue_refuses_two_dice_of_one_name() -> None:
    twice = [SHIPPED["fair"], SHIPPED["d6"], SHIPPED["fair"]]
    with pytest.raises(ValueError, match="'fair' is in the catalogue twice"):
        InMemoryCatalogue(twice)

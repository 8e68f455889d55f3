"""stack/flags/README.md says what the flag file and the service do."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from dice_roller.flags import FLAGS

from tests.support.flags import SHIPPED_FLAGS

README = SHIPPED_FLAGS.parent / "README.md"


def rows() -> dict[str, list[str]]:
    """Flag key -> the cells of its row in the README's table."""
    found = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z-]+)`", cells[0]) if len(cells) == 4 else None
        if match:
            found[match.group(1)] = cells[1:]
    return found


def test_the_table_lists_each_flag_with_its_variants_and_range() -> None:
    document = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    table = rows()
    assert list(table) == [flag.key for flag in FLAGS]
    for flag in FLAGS:
        variants_cell, allowed_cell, _ = table[flag.key]
        listed = re.findall(r"`([a-z]+)` ([0-9.]+)", variants_cell)
        variants = document["flags"][flag.key]["variants"]
        assert [(name, float(value)) for name, value in listed] == list(variants.items())
        assert listed[0][0] == flag.default_variant, "the shipped default comes first"
        assert allowed_cell == f"{flag.minimum:g} to {flag.maximum:g}"


def test_the_sed_line_flips_the_flag_it_names_and_nothing_else(tmp_path: Path) -> None:
    [command] = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("sed -i")
    ]
    copy = tmp_path / "stack" / "flags" / "flags.json"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(SHIPPED_FLAGS.read_bytes())
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=30)

    before = json.loads(SHIPPED_FLAGS.read_text(encoding="utf-8"))
    after = json.loads(copy.read_text(encoding="utf-8"))
    before["flags"]["risky-failure-rate"]["defaultVariant"] = "half"
    assert after == before
    for flag in FLAGS:  # and the file it leaves is one the service takes whole
        definition = after["flags"][flag.key]
        assert definition["defaultVariant"] in definition["variants"]
        assert all(flag.accepts(value) for value in definition["variants"].values())

"""dice-roller/README.md says how big the service is, with the command that counts it:
the command runs as written, and its figures are the ones the README states."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.paths import ROOT

README = ROOT / "dice-roller" / "README.md"
LIMIT = 625
"""The whole service, in lines of code, stays under this: it is read in one sitting.
(600 until the flag file needed a watcher of our own, flag_file.py, 104 lines: flagd's
applies a file only when its mtime grows, and blocks on a FIFO; docs/reliability.md.
650 until stage 3 made the dice data from another service: catalogue.py and the
die-service's failure path in app.py, about 100 lines. 750 until stage 4's batches,
batch.py, 97 lines. 875 until the flag machinery moved into sandbox_telemetry, shared
with the die-service's flags: the dice-roller keeps its flags' definitions.)"""
PATH_LIMIT = 375
"""One `/roll` in app.py, dice.py and the shared HTTP telemetry (300 before stage 3's
failure path in app.py; 350 before `find_die` and `wait_and_roll`, which stage 4's
batches share with it)."""


def count(*folders: str) -> dict[str, int]:
    """Lines of code per file (and "in all"), by the README's own command."""
    text = README.read_text(encoding="utf-8")
    [block] = re.findall(
        r"```bash\npython3 - dice-roller/src/dice_roller <<'PY'\n(.*?)\nPY\n```", text, re.S
    )
    done = subprocess.run(
        [sys.executable, "-", *folders],
        input=block,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = {}
    for line in done.stdout.splitlines():
        number, _, name = line.strip().partition(" ")
        counts[name] = int(number)
    return counts


def test_the_readme_states_the_size_its_command_counts_and_it_is_under_the_limit() -> None:
    text = README.read_text(encoding="utf-8")
    service = count("dice-roller/src/dice_roller")
    stated = re.search(r"The whole service is (\d+) lines of code", text)
    assert stated and int(stated.group(1)) == service["in all"], service
    assert service["in all"] < LIMIT

    shared = count("telemetry/src/sandbox_telemetry")
    assert f"for the shared set-up: {shared['in all']} lines" in text


def test_one_request_is_followed_in_under_375_lines() -> None:
    """app.py, dice.py and the shared HTTP telemetry, as the README counts them."""
    text = README.read_text(encoding="utf-8")
    files = count("dice-roller/src/dice_roller", "telemetry/src/sandbox_telemetry")
    path = sum(
        number
        for name, number in files.items()
        if name.endswith(("dice_roller/app.py", "dice_roller/dice.py", "sandbox_telemetry/http.py"))
    )
    stated = re.search(r"(\d+) lines for the three files", text)
    assert stated and int(stated.group(1)) == path
    assert path < PATH_LIMIT

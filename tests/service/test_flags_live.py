"""An edit of the flag file changes a running service, started as users start it.

The test edits the file the way stack/flags/README.md says (atomically), then polls
the service until its answers change; the same process serves before and after.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.flags import copy_shipped, select_variants, write_raw
from tests.support.processes import eventually
from tests.support.service import running_service

WAIT = 20.0  # seconds: the watcher polls every 0.5 s; a busy machine may take longer


def fair_roll(url: str) -> httpx.Response:
    return httpx.get(url + "/roll", params={"die": "fair"})


def test_an_edit_changes_the_running_service_and_a_broken_file_changes_nothing(
    tmp_path: Path,
) -> None:
    path = copy_shipped(tmp_path)
    shipped = path.read_text(encoding="utf-8")
    env = {"DICE_FLAGS_FILE": str(path), "DICE_MAX_DELAY_SECONDS": "0"}
    with running_service(env) as service:
        assert {fair_roll(service.url).status_code for _ in range(10)} == {200}

        select_variants(path, {"fair-failure-rate": "always"})
        eventually(lambda: fair_roll(service.url).status_code == 500, "a failed fair roll", WAIT)
        assert {fair_roll(service.url).status_code for _ in range(10)} == {500}

        write_raw(path, '{"flags": ')  # a broken file: the last good values stay
        eventually(lambda: "Could not parse JSON" in service.output(), "the error line", WAIT)
        assert {fair_roll(service.url).status_code for _ in range(10)} == {500}

        write_raw(path, shipped)
        eventually(lambda: fair_roll(service.url).status_code == 200, "a fair roll again", WAIT)
        assert service.stop() == 0
        output = service.output()
        records = service.log_records()  # every line is JSON

    assert "Traceback" not in output
    started = f"Started server process [{service.process.pid}]"
    assert [r["message"] for r in records].count(started) == 1, "one process throughout"
    errors = [r for r in records if r["logger"] == "dice_roller.flags" and r["level"] == "ERROR"]
    assert len(errors) == 1 and "Could not parse JSON" in errors[0]["message"]
    changes = [r.get("feature_flags") for r in records if r["message"] == "Feature flags changed"]
    assert changes == [{"fair-failure-rate": "always"}, None]

    rolls = [r for r in records if r.get("die_type") == "fair"]
    failed = [r for r in rolls if r["message"] == "Roll failed"]
    assert failed and all(r["feature_flags"] == {"fair-failure-rate": "always"} for r in failed)
    completed = [r for r in rolls if r["message"] == "Roll completed"]
    assert len(completed) >= 11 and not any("feature_flags" in r for r in completed)

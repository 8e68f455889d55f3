"""A drill's outage: the service it stops is started again however the block ends, and
the commands that stop and start it fail as one message naming what ran."""

from __future__ import annotations

import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drills.catalogue import DRILLS
from drills.outage import CommandControl, OutageError, compose_command, stopped_service
from tests.support.drills import python_command
from tests.support.paths import ROOT


@dataclass
class FakeControl:
    calls: list[str] = field(default_factory=list)
    stop_fails: bool = False
    start_fails: bool = False

    def describe(self, verb: str, service: str) -> str:
        return f"{verb} {service}"

    def stop(self, service: str) -> None:
        self.calls.append(f"stop {service}")
        if self.stop_fails:
            raise OutageError("cannot stop it")

    def start(self, service: str) -> None:
        self.calls.append(f"start {service}")
        if self.start_fails:
            raise OutageError("cannot start it")


def test_the_service_is_started_once_when_the_block_ends_or_sooner() -> None:
    control, said = FakeControl(), []
    with stopped_service(control, "dice-roller", lambda: said.append("started")):
        assert control.calls == ["stop dice-roller"]
    assert control.calls == ["stop dice-roller", "start dice-roller"]
    assert said == ["started"]

    control = FakeControl()
    with stopped_service(control, "dice-roller") as outage:
        outage.end()
        assert control.calls == ["stop dice-roller", "start dice-roller"]
        outage.end()
    assert control.calls == ["stop dice-roller", "start dice-roller"]


@pytest.mark.parametrize("error", [RuntimeError("a probe's bug"), KeyboardInterrupt()])
def test_an_error_or_ctrl_c_in_the_block_starts_the_service_and_passes_on(
    error: BaseException,
) -> None:
    control = FakeControl()
    with pytest.raises(type(error)), stopped_service(control, "dice-roller"):
        raise error
    assert control.calls == ["stop dice-roller", "start dice-roller"]


def test_a_failed_stop_is_reported_after_starting_it_in_case_it_half_stopped() -> None:
    control = FakeControl(stop_fails=True, start_fails=True)
    with (
        pytest.raises(OutageError, match="cannot stop it"),
        stopped_service(control, "dice-roller"),
    ):
        pytest.fail("the block ran although the stop failed")
    assert control.calls == ["stop dice-roller", "start dice-roller"]


def test_a_failed_start_is_reported() -> None:
    control = FakeControl(start_fails=True)
    with (
        pytest.raises(OutageError, match="cannot start it"),
        stopped_service(control, "dice-roller"),
    ):
        pass


def test_commands_run_in_their_folder_with_the_service_named(tmp_path: Path) -> None:
    write = "import pathlib, sys; pathlib.Path(sys.argv[1] + '.' + sys.argv[2]).touch()"
    control = CommandControl(
        python_command(write) + " stopped {service}",
        python_command(write) + " started {service}",
        tmp_path,
    )
    assert control.describe("stop", "dice-roller").endswith(" stopped dice-roller`")
    with stopped_service(control, "dice-roller"):
        assert sorted(p.name for p in tmp_path.iterdir()) == ["stopped.dice-roller"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "started.dice-roller",
        "stopped.dice-roller",
    ]


def test_a_command_that_fails_is_one_message_with_what_it_said() -> None:
    fails = (
        python_command(
            "import sys; print('no such service: ' + sys.argv[1], file=sys.stderr); sys.exit(3)"
        )
        + " {service}"
    )
    with pytest.raises(OutageError) as failed:
        CommandControl(stop_command=fails).stop("dice-roller")
    message = str(failed.value)
    assert message.startswith("cannot stop the dice-roller: `")
    assert "exited with code 3: no such service: dice-roller" in message

    with pytest.raises(OutageError, match="no such command"):
        CommandControl(start_command="no-such-command-here {service}").start("dice-roller")


def test_ctrl_c_during_the_stop_waits_for_it_then_starts_the_service() -> None:
    control = FakeControl()

    class Interrupted(FakeControl):
        def stop(self, service: str) -> None:
            signal.raise_signal(signal.SIGINT)  # as if Ctrl-C came while compose ran
            control.calls.append("stop finished")

        def start(self, service: str) -> None:
            control.calls.append("start")

    with pytest.raises(KeyboardInterrupt), stopped_service(Interrupted(), "dice-roller"):
        pytest.fail("the block ran although Ctrl-C came first")
    assert control.calls == ["stop finished", "start"]


def test_a_service_started_while_signals_are_held_can_be_stopped(tmp_path: Path) -> None:
    """Held by a handler, not by the signal mask, which the service would inherit."""
    mask = tmp_path / "mask"
    report = "import pathlib, signal, sys; "
    report += "pathlib.Path(sys.argv[1]).write_text(repr(signal.pthread_sigmask(0, [])))"
    control = CommandControl("true", python_command(report) + f" {shlex.quote(str(mask))}")
    with stopped_service(control, "dice-roller"):
        pass
    assert mask.read_text() == "set()"


def test_compose_commands_name_the_compose_files_of_the_drill_s_stage() -> None:
    """compose knows the die-service from stages/stage3.yml alone: `docker compose stop
    die-service` without it would find no such service."""
    assert compose_command("stop") == "docker compose stop {service}"
    assert compose_command("start", DRILLS["upstream-down"].stage) == (
        "docker compose start {service}"
    )
    drill = DRILLS["die-service-down"]
    assert drill.stops is not None
    control = CommandControl(compose_command("stop", drill.stage), compose_command("start", 3))
    files = ["-f", "docker-compose.yml", "-f", "stages/stage3.yml"]
    assert control.argv("stop", drill.stops) == ["docker", "compose", *files, "stop", "die-service"]
    assert control.argv("start", drill.stops) == [
        "docker", "compose", *files, "start", "die-service",
    ]  # fmt: skip
    assert all((ROOT / name).is_file() for name in files[1::2])
    assert "die-service:" in (ROOT / "stages" / "stage3.yml").read_text(encoding="utf-8")

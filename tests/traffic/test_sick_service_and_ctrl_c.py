"""A service that is down, failing, hanging or dying, and a user pressing Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.support.misbehaving import hanging_server
from tests.support.processes import eventually
from tests.support.service import RunningService, running_service
from tests.support.tools import free_port
from tests.support.traffic_gen import gen_command, roll_lines, run_gen

FAST = ("--think", "0")


def test_service_down_at_start_is_exit_1_with_a_clear_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = run_gen("--url", url)
    assert run.returncode == 1
    assert f"Cannot reach the dice-roller service at {url}: connection refused." in run.stderr
    assert "Is it running?" in run.stderr
    assert "Traceback" not in run.output
    assert roll_lines(run.output) == []


def test_service_hanging_at_start_is_exit_1() -> None:
    with hanging_server(answer_root=False) as server:
        url = server.url
        run = run_gen("--url", url, "--timeout", "0.5")
    assert run.returncode == 1
    assert f"Cannot reach the dice-roller service at {url}: GET / got no answer" in run.stderr
    assert "Traceback" not in run.output


def test_rolls_hanging_past_the_timeout_are_counted_as_timeouts() -> None:
    with hanging_server(answer_root=True) as server:
        run = run_gen(
            "--url", server.url, "--users", "2", "--rolls", "2", *FAST, "--timeout", "0.3"
        )
    lines = roll_lines(run.stdout)
    assert len(lines) == 4
    assert {m["result"] for m in lines} == {"TIMEOUT"}
    # Every request failed: the summary is still there, and the exit code says so.
    assert run.returncode == 1
    assert "Every request failed" in run.stderr
    assert "Traffic generation complete" in run.stdout
    assert "Traceback" not in run.output


def test_open_loop_never_queues_past_max_in_flight() -> None:
    with hanging_server(answer_root=True) as server:
        run = run_gen(
            "--url", server.url, "--rate", "100", "--duration", "1", "--max-in-flight", "20",
            "--timeout", "5", "--json",
        )  # fmt: skip
        connections = server.connections
    requests = run.summary()["requests"]
    assert requests["sent"] == 20  # nothing answers, so the first twenty stay in flight
    assert requests["sent"] + requests["skipped"] == 100
    assert requests["outcomes"]["timeout"] == 20
    # Each request in flight had a connection of its own (plus the start-up check's and
    # the warm-up's, which may be reused): none waited for one inside the generator.
    assert connections >= 20


def test_http_errors_are_counted_not_fatal() -> None:
    # A hundred rolls: over forty, a 50 % die passed for the expected 90 % (31 successes
    # or more) one run in 3,000; over a hundred (81 or more), one in 7 billion.
    with running_service({"DICE_RISKY_FAILURE_RATE": "0.5"}) as service:
        run = run_gen(
            "--url", service.url, "--users", "4", "--rolls", "25", *FAST,
            "--risky-share", "1", "--json",
        )  # fmt: skip
    assert run.returncode == 0
    risky = run.summary()["dice"]["risky"]
    assert risky["outcomes"]["http_error"] > 0
    assert risky["outcomes"]["success"] > 0
    assert risky["status_codes"]["500"] == risky["outcomes"]["http_error"]
    assert risky["success_verdict"] == "unexpected"  # 50 % is far from the expected 90 %
    assert any(m["result"] == "HTTP 500" for m in roll_lines(run.stderr))


def test_every_request_failing_is_exit_1() -> None:
    with running_service({"DICE_RISKY_FAILURE_RATE": "1"}) as service:
        run = run_gen(
            "--url", service.url, "--users", "2", "--rolls", "3", *FAST, "--risky-share", "1"
        )
    assert run.returncode == 1
    assert {m["result"] for m in roll_lines(run.stdout)} == {"HTTP 500"}
    assert "Every request failed" in run.stderr
    assert "Traceback" not in run.output


def test_service_dying_mid_run_gives_connection_errors() -> None:
    # The fair die only: the few rolls answered before the service stops could all be
    # risky failures (one run in a few thousand), leaving no value to find.
    with running_service() as service:
        gen = subprocess.Popen(
            gen_command("--url", service.url, "--users", "2", "--rolls", "10000", "--think",
                        "0.01", "--duration", "600", "--risky-share", "0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert gen.stdout is not None
            _read_until_a_roll(gen.stdout)
            service.stop()
            time.sleep(1)  # some rolls now meet a closed port
            gen.send_signal(signal.SIGINT)
            out, err = gen.communicate(timeout=60)
        finally:
            gen.kill()
    results = {m["result"] for m in roll_lines(out)}
    assert "CONNECTION ERROR (connection refused)" in results
    assert any(r.isdigit() for r in results)
    assert "Traceback" not in err


def _read_until_a_roll(stream: object) -> None:
    for line in stream:  # type: ignore[attr-defined]
        if roll_lines(line):
            return
    pytest.fail("the generator ended before any roll")


@pytest.mark.parametrize(
    ("sig", "mode"),
    [
        (signal.SIGINT, ("--users", "3", "--rolls", "10000", "--think", "0.05")),
        (signal.SIGINT, ("--rate", "20")),  # open loop runs until interrupted
        (signal.SIGTERM, ("--users", "3", "--rolls", "10000", "--think", "0.05")),
    ],
)
def test_ctrl_c_stops_cleanly_with_a_summary(
    dice_service: RunningService, sig: signal.Signals, mode: tuple[str, ...]
) -> None:
    gen = subprocess.Popen(
        gen_command("--url", dice_service.url, *mode),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gen.stdout is not None
        _read_until_a_roll(gen.stdout)
        gen.send_signal(sig)
        out, err = gen.communicate(timeout=60)
    finally:
        gen.kill()
    assert gen.returncode == 130
    assert "Traceback" not in err
    assert "Requests: " in out
    assert "Latency of answered requests" in out
    assert out.rstrip().splitlines()[-1].startswith("Traffic generation interrupted in ")


def test_ctrl_c_while_waiting_for_the_service() -> None:
    # A service that never answers `GET /`, so the test sees each try: a fixed sleep
    # could end before a loaded machine has even imported the generator.
    with hanging_server(answer_root=False) as server:
        gen = subprocess.Popen(
            gen_command("--url", server.url, "--wait", "120", "--timeout", "0.5"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            eventually(
                lambda: server.connections >= 2 or gen.poll() is not None,
                "the generator trying twice",
                timeout=60,
                interval=0.05,
            )
            assert gen.poll() is None, f"the generator ended first: {gen.communicate()}"
            gen.send_signal(signal.SIGINT)
            out, err = gen.communicate(timeout=60)
        finally:
            gen.kill()
    assert gen.returncode == 130
    assert "Interrupted before any traffic was sent." in err
    assert "Traceback" not in err
    assert out == ""


def test_answers_that_are_not_rolls_are_counted_as_invalid() -> None:
    with hanging_server(answer_root=True, roll_body=b"<html>maintenance</html>") as server:
        run = run_gen("--url", server.url, "--users", "2", "--rolls", "2", *FAST, "--json")
    assert run.returncode == 1  # not one roll succeeded
    assert {m["result"] for m in roll_lines(run.stderr)} == {"INVALID RESPONSE (HTTP 200)"}
    assert run.summary()["requests"]["outcomes"]["invalid_response"] == 4


def test_values_a_die_cannot_show_are_reported() -> None:
    with hanging_server(answer_root=True, roll_body=b'{"roll": 9}') as server:
        run = run_gen(
            "--url", server.url, "--users", "1", "--rolls", "3", *FAST, "--risky-share", "0"
        )
    assert run.returncode == 0
    assert "values this die cannot show: 9 (3x)" in run.stdout

"""The traffic generator against a service that answers garbage, dies, or comes back.

`tests/traffic/test_sick_service_and_ctrl_c.py` (the generator's own tests) covers a
service down at start, hanging, failing with 500s, dying once, and Ctrl-C. This adds
what a broken or restarting service can do besides: answers that are not HTTP, not
JSON or not a roll, connections cut mid-answer, and a service killed and restarted
under a running generator. Each is counted and summarised, and nothing ends in a traceback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from stackclient import wait_until
from tests.support.figures import report
from tests.support.metrics import dice_rolls_total
from tests.support.service import running_service, service_command
from tests.support.tcp_server import serving_tcp
from tests.support.tools import free_port
from tests.support.traffic_gen import gen_command, roll_lines, run_gen

ROOT_ANSWER = b'{"service": "dice-roller", "version": "0.1.0", "endpoints": {}}'


def _http(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


# What a broken service may answer to a roll, and how the generator should count it.
GARBAGE: list[tuple[str, bytes | None, str]] = [
    ("not JSON", _http("200 OK", b"<html>rolled</html>", b"text/html"), "invalid_response"),
    ("JSON, no roll", _http("200 OK", b'{"result": 3}'), "invalid_response"),
    ("roll is text", _http("200 OK", b'{"roll": "six"}'), "invalid_response"),
    ("roll is true", _http("200 OK", b'{"roll": true}'), "invalid_response"),
    ("a list", _http("200 OK", b"[3]"), "invalid_response"),
    ("JSON null", _http("200 OK", b"null"), "invalid_response"),
    ("huge number", _http("200 OK", b'{"roll": ' + b"9" * 5000 + b"}"), "invalid_response"),
    ("empty 204", b"HTTP/1.1 204 No Content\r\n\r\n", "invalid_response"),
    ("teapot", _http("418 I'm a teapot", b'{"roll": 3}'), "http_error"),
    ("not HTTP", b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "connection_error"),
    ("closed at once", None, "connection_error"),
    (
        "cut mid-body",
        b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"ro',
        "connection_error",
    ),
    (
        "bad gzip",
        b'HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 11\r\n\r\n{"roll": 3}',
        "connection_error",
    ),
    ("a good roll", _http("200 OK", b'{"roll": 3}'), "success"),
]


@contextmanager
def garbage_server() -> Iterator[tuple[str, Counter[str]]]:
    """Answers `GET /` like the service, then each roll with the next kind of garbage.

    Yields the URL and a tally of the kinds served (one roll per connection, so a
    garbage answer never leaves a connection in an unknown state for the next roll).
    """
    served: Counter[str] = Counter()
    turn = iter(range(10**9))

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopped: asyncio.Event
    ) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET / "):
                writer.write(_http("200 OK", ROOT_ANSWER))
                await writer.drain()
                continue
            name, answer, _ = GARBAGE[next(turn) % len(GARBAGE)]
            served[name] += 1
            if answer is not None:
                writer.write(answer)
                await writer.drain()
            return

    with serving_tcp(handle) as url:
        yield url, served


def outcomes(summary: dict[str, Any]) -> Counter[str]:
    total: Counter[str] = Counter()
    for die in ("fair", "risky"):
        total.update(summary["dice"][die]["outcomes"])
    return total


def test_garbage_answers_are_counted_never_a_crash() -> None:
    rounds = 4
    count = rounds * len(GARBAGE)
    with garbage_server() as (url, served):
        run = run_gen(
            "--url", url, "--users", "1", "--rolls", str(count), "--think", "0",
            "--timeout", "3", "--json",
        )  # fmt: skip
    assert "Traceback" not in run.output
    summary = run.summary()
    counted = outcomes(summary)
    expected: Counter[str] = Counter()
    for name, _, outcome in GARBAGE:
        expected[outcome] += served[name]
    report(
        "traffic-gen against garbage",
        kinds=len(GARBAGE),
        rolls=count,
        served=sum(served.values()),
        counted=dict(sorted(counted.items())),
        exit_code=run.returncode,
    )
    assert sum(served.values()) == count
    assert summary["requests"]["sent"] == summary["requests"]["finished"] == count
    assert +counted == expected, run.stderr[-2000:]
    assert run.returncode == 0  # some rolls succeeded: a bad service, not a failed run


def wait_for_rolls(url: str, at_least: int, timeout: float = 60) -> None:
    """Until the service has counted `at_least` rolls (however slow the machine is today)."""

    def counted() -> bool | None:
        try:
            return sum(dice_rolls_total(url).values()) >= at_least or None
        except httpx.HTTPError:
            return None

    if wait_until(counted, timeout):
        return
    raise AssertionError(f"no {at_least} rolls at {url} within {timeout} s")


def test_service_killed_and_restarted_mid_run() -> None:
    """SIGKILL (no goodbye at all), two seconds down, then the service is back.

    The generator counts the gap as connection errors, keeps going, and rolls again
    once the service is back; its summary adds up to what it sent.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_service() as reference:
        env = dict(reference.env)  # the test environment, to start the service by hand
    first = subprocess.Popen(service_command(port), env=env, stdout=subprocess.DEVNULL)
    # Twenty seconds: the new process must be up before the schedule ends, and the two
    # seconds down plus a cold start of the service can take most of ten on a busy machine.
    gen = subprocess.Popen(
        gen_command("--url", url, "--wait", "30", "--rate", "50", "--duration", "20",
                    "--timeout", "2", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for_rolls(url, at_least=20)  # the generator is up and rolling
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(2)
        second = subprocess.Popen(service_command(port), env=env, stdout=subprocess.DEVNULL)
        out, err = gen.communicate(timeout=60)
    finally:
        gen.kill()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(20)
    assert "Traceback" not in err
    summary = json.loads(out)
    counted = outcomes(summary)
    lines = roll_lines(err)
    results = [m["result"] for m in lines]
    errors = [i for i, r in enumerate(results) if r.startswith("CONNECTION ERROR")]
    assert errors, f"no connection error while the service was down: {Counter(results)}"
    first_error = errors[0]
    back = next((i for i in range(first_error, len(results)) if results[i].isdigit()), -1)
    report(
        "traffic-gen with the service killed and restarted",
        sent=summary["requests"]["sent"],
        counted=dict(sorted(counted.items())),
        rolls_lost_while_down=back - first_error,
        # At 50 rolls a second: the 2 s gap plus the new process's start-up.
        seconds_without_answers=round((back - first_error) / 50, 1),
        exit_code=gen.returncode,
    )
    assert gen.returncode == 0
    assert sum(counted.values()) == summary["requests"]["finished"]
    assert summary["requests"]["sent"] == summary["requests"]["finished"]
    assert counted["connection_error"] > 0
    assert counted["success"] > 0
    assert back > first_error  # rolling resumed after the gap
    assert all(r.isdigit() or r == "HTTP 500" for r in results[back:])

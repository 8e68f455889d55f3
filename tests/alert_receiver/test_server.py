"""The receiver as it runs: a real process on a free port, spoken to over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.alert_receiver import PACKAGE_DIR, Receiver, raw_request, start, stop, wait_ready
from tests.support.alertmanager_payloads import alert, payload
from tests.support.tools import free_port


def test_it_says_what_it_is(receiver: Receiver) -> None:
    answer = httpx.get(f"{receiver.url}/", timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["service"] == "alert-receiver"
    assert {"POST /alerts", "GET /ready", "GET /"} == set(body["endpoints"])


def test_it_is_ready(receiver: Receiver) -> None:
    answer = httpx.get(f"{receiver.url}/ready", timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"status": "ready"})


def test_a_notification_prints_one_line_per_alert_on_stdout(receiver: Receiver) -> None:
    before, logs_before = len(receiver.alert_lines()), len(receiver.log_lines())
    notification = payload(
        alert(die_type="fair", fingerprint="1111111111111111"),
        alert(die_type="risky", fingerprint="2222222222222222", status="resolved"),
    )
    answer = httpx.post(f"{receiver.url}/alerts", json=notification, timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"alerts": 2})
    new = receiver.alert_lines()[before:]
    assert [(line["fingerprint"], line["status"], line["die_type"]) for line in new] == [
        ("1111111111111111", "firing", "fair"),
        ("2222222222222222", "resolved", "risky"),
    ]
    assert len(receiver.log_lines()) == logs_before, "stderr is for the receiver's own lines"


def test_a_bad_payload_gets_400_one_log_line_and_prints_nothing(receiver: Receiver) -> None:
    before, logs_before = len(receiver.alert_lines()), len(receiver.log_lines())
    broken = payload(alert(), alert())
    del broken["alerts"][1]["fingerprint"]
    answer = httpx.post(f"{receiver.url}/alerts", json=broken, timeout=5)
    assert answer.status_code == 400
    assert answer.json() == {"error": "alerts[1].fingerprint should be a string, got nothing"}
    assert receiver.alert_lines()[before:] == [], "not even the good alert of a bad payload"
    [log] = receiver.log_lines()[logs_before:]
    assert log["level"] == "warning"
    assert log["message"] == (
        "refused a notification: alerts[1].fingerprint should be a string, got nothing"
    )
    assert "Traceback" not in receiver.stderr.read_text()


def test_unknown_paths_and_methods_say_what_there_is(receiver: Receiver) -> None:
    missing = httpx.post(f"{receiver.url}/webhook", json=payload(alert()), timeout=5)
    assert missing.status_code == 404
    assert "POST /alerts" in missing.json()["endpoints"]
    wrong_method = httpx.get(f"{receiver.url}/alerts", timeout=5)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")


def test_a_body_without_length_or_too_long_is_refused_unread(receiver: Receiver) -> None:
    logs_before = len(receiver.log_lines())
    no_length = raw_request(
        receiver.url, b"POST /alerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert no_length.startswith(b"HTTP/1.1 411 ")
    too_long = raw_request(
        receiver.url,
        b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{",
    )
    assert too_long.startswith(b"HTTP/1.1 413 ")
    assert b"more than the 1048576 allowed" in too_long
    assert len(receiver.log_lines()) == logs_before + 2


def test_concurrent_notifications_never_mix_their_lines(receiver: Receiver) -> None:
    before = len(receiver.alert_lines())

    def send(sender: int) -> int:
        alerts = [alert(fingerprint=f"{sender:08x}{i:08x}") for i in range(5)]
        return httpx.post(f"{receiver.url}/alerts", json=payload(*alerts), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(send, range(20))) == {200}
    fingerprints = [line["fingerprint"] for line in receiver.alert_lines()[before:]]
    assert sorted(fingerprints) == sorted(f"{s:08x}{i:08x}" for s in range(20) for i in range(5))


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "http"], {}, "--port='http' is not a port: expected a whole number, 1 to"),
        (["--port", "70000"], {}, "--port='70000' is not a port"),
        ([], {"ALERT_RECEIVER_PORT": "-1"}, "ALERT_RECEIVER_PORT='-1' is not a port"),
    ],
)
def test_a_bad_port_is_one_line_and_exit_2(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alert_receiver", *args],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_DIR), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("alert-receiver: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_a_taken_port_is_one_line_and_exit_1(receiver: Receiver) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "alert_receiver", "--port", port],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_DIR)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"alert-receiver: cannot listen on 127.0.0.1:{port}: ")
    assert len(result.stderr.splitlines()) == 1


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    port = free_port()
    running = start(tmp_path, env={"ALERT_RECEIVER_PORT": str(port)})
    wait_ready(running)
    assert stop(running) == 0
    messages = [line["message"] for line in running.log_lines()]
    assert messages == [f"listening on http://127.0.0.1:{port}", "stopped"]

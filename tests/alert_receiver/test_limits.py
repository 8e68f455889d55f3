"""Every input bounded: what a client can make the receiver hold, echo or print.

The receiver runs as a real process on 127.0.0.1, as Alertmanager meets it. Stalled
connections must not each get a thread, nor keep one forever; whatever a client
chooses (a `version`, an annotation, a path) comes back or reaches a log line cut as
the services cut theirs; a body nested too deep is refused, not a crash. Times are
asserted only loosely: what is measured goes to the report (tests/reliability's, so
RELIABILITY_FIGURES collects it too).
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from alert_receiver.limits import (
    MAX_FIELD_CHARS,
    MAX_HANDLERS,
    MAX_MESSAGE_CHARS,
    MAX_NESTING,
    TIMEOUT_SECONDS,
)

from tests.support.alert_receiver import Receiver, raw_request, start, stop, wait_ready
from tests.support.alertmanager_payloads import alert, payload
from tests.support.figures import report
from tests.support.processes import eventually
from tests.support.sockets import unread_connections
from tests.support.tools import free_port

DOCKER_LINE_BYTES = 16 * 1024
"""Docker splits a longer stdout or stderr line in two, and Loki gets two halves of JSON."""
STALLED_CLIENTS = 400
GENEROUS_SECONDS = 60.0
"""Every wait below ends long before this; it only stops a broken receiver hanging the
suite."""


def connect(receiver: Receiver) -> socket.socket:
    return socket.create_connection(("127.0.0.1", receiver.port), timeout=GENEROUS_SECONDS)


def until_closed(sock: socket.socket, since: float) -> tuple[float, bytes]:
    """Read what the receiver sends until it closes the connection: the seconds since
    `since` when it did, and what it sent. TimeoutError if it is still open
    GENEROUS_SECONDS after `since`."""
    sock.settimeout(max(0.1, since + GENEROUS_SECONDS - time.monotonic()))
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # closed with bytes of ours unread: closed all the same
    return time.monotonic() - since, received


def post(receiver: Receiver, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{receiver.url}/alerts",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def new_lines(path: Path, before: int) -> list[bytes]:
    return path.read_bytes().splitlines()[before:]


def test_stalled_clients_get_no_thread_each_and_a_notification_still_gets_through(
    tmp_path: Path,
) -> None:
    running = start(tmp_path, "--port", str(free_port()))
    wait_ready(running)
    stalled: list[socket.socket] = []
    answers: list[int | str] = []
    try:
        for index in range(STALLED_CLIENTS):
            sock = connect(running)
            if index % 2:  # half start a notification and never finish it, half say nothing
                sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{")
            stalled.append(sock)
        eventually(
            lambda: unread_connections(running.port) == 0,
            "the receiver took every stalled connection off the backlog",
            timeout=GENEROUS_SECONDS,
        )
        peak_threads = running.threads()
        # The main thread, and one per connection served: never one per connection made.
        assert peak_threads <= MAX_HANDLERS + 1, f"{peak_threads} threads"
        started = time.monotonic()
        notification = json.dumps(payload(alert(fingerprint="5a11ed0000000001"))).encode()
        while not answers or answers[-1] != 200:
            try:
                answers.append(post(running, notification).status_code)
            except httpx.TransportError as error:
                answers.append(type(error).__name__)
            peak_threads = max(peak_threads, running.threads())
            if time.monotonic() - started > GENEROUS_SECONDS:
                break
            time.sleep(0.5)
        seconds_to_200 = time.monotonic() - started
        closed = [until_closed(sock, started) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
        stop(running)
    busy_lines = [line for line in running.log_lines() if "busy" in line["message"]]
    refused_at_once = sum(answer.startswith(b"HTTP/1.1 503 ") for _, answer in closed)
    report(
        "alert-receiver: 400 stalled clients",
        threads_peak=peak_threads,
        stalled_refused_503=refused_at_once,
        stalled_held=STALLED_CLIENTS - refused_at_once,
        all_closed_within=round(max(seconds for seconds, _ in closed), 1),
        notification_answers=dict(Counter(answers)),
        seconds_to_200=round(seconds_to_200, 1),
        busy_log_lines=len(busy_lines),
    )
    assert peak_threads <= MAX_HANDLERS + 1, f"{peak_threads} threads"
    assert answers[-1] == 200, answers
    assert set(answers[:-1]) <= {503}, "while busy, refused at once: never left hanging"
    # Each was refused at once, or held until the timeout closed it without a word
    # (more than MAX_HANDLERS over the run: a slot frees when a held one times out).
    assert refused_at_once > 0
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 503 ") for _, answer in closed)
    assert [line["fingerprint"] for line in running.alert_lines()] == ["5a11ed0000000001"]
    assert 1 <= len(busy_lines) <= 2, "the refusals are counted, not a line each"


def test_a_client_that_stalls_is_dropped_after_the_timeout(receiver: Receiver) -> None:
    silent, partial, idle = connect(receiver), connect(receiver), connect(receiver)
    partial.sendall(b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{")
    idle.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")  # then keeps the connection
    assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
    started = time.monotonic()
    with silent, partial, idle:
        closed_after = [until_closed(sock, started)[0] for sock in (silent, partial, idle)]
    report(
        "alert-receiver: stalled connections closed after (s)",
        silent=round(closed_after[0], 1),
        partial_request=round(closed_after[1], 1),
        idle_keep_alive=round(closed_after[2], 1),
    )
    assert max(closed_after) < TIMEOUT_SECONDS * 4


def test_a_megabyte_version_gets_a_short_400_and_a_short_log_line(receiver: Receiver) -> None:
    logs_before = len(new_lines(receiver.stderr, 0))
    document = payload(alert())
    document["version"] = "4" * 1_000_000
    answer = post(receiver, json.dumps(document).encode())
    assert answer.status_code == 400
    message = answer.json()["error"]
    shown = "'" + "4" * (MAX_FIELD_CHARS - 1)  # the value as repr() quotes it, cut
    assert message == (
        f"payload version {shown}... [{1_000_002 - MAX_FIELD_CHARS} more characters]: "
        "this receiver reads Alertmanager's webhook payload version '4'"
    )
    [log_line] = new_lines(receiver.stderr, logs_before)
    assert json.loads(log_line)["message"] == f"refused a notification: {message}"
    report(
        "alert-receiver: 1 MB version",
        answer_bytes=len(answer.content),
        log_line_bytes=len(log_line),
    )
    assert len(answer.content) < MAX_MESSAGE_CHARS
    assert len(log_line) < MAX_MESSAGE_CHARS


def test_a_900_kb_annotation_or_12000_labels_make_a_short_stdout_line(
    receiver: Receiver,
) -> None:
    lines_before = len(new_lines(receiver.stdout, 0))
    annotated = alert(fingerprint="a1a1a1a1a1a1a1a1")
    annotated["annotations"]["summary"] = "s" * 900_000
    labelled = alert(fingerprint="b2b2b2b2b2b2b2b2")
    labelled["labels"] |= {f"label_{index:05d}": "v" * 16 for index in range(12_000)}
    for one in (annotated, labelled):
        assert post(receiver, json.dumps(payload(one)).encode()).status_code == 200
    lines = new_lines(receiver.stdout, lines_before)
    report(
        "alert-receiver: 900 KB annotation, 12,000 labels",
        stdout_line_bytes=[len(line) for line in lines],
    )
    assert all(len(line) < DOCKER_LINE_BYTES for line in lines)
    summarised, labels_cut = (json.loads(line) for line in lines)
    assert summarised["summary"] == "s" * MAX_FIELD_CHARS + (
        f"... [{900_000 - MAX_FIELD_CHARS} more characters]"
    )
    assert labels_cut["labels"]["alertname"] == "DiceErrorBudgetFastBurn"
    assert labels_cut["labels_cut"] == len(labelled["labels"]) - len(labels_cut["labels"])


DEEP = 100_000


@pytest.mark.parametrize(
    ("where", "body"),
    [
        ("bare", b"[" * DEEP + b"]" * DEEP),
        (
            "inside a payload",
            json.dumps(payload(alert()))
            .replace('"commonAnnotations": {}', '"commonAnnotations": ' + "[" * DEEP + "]" * DEEP)
            .encode(),
        ),
    ],
    ids=["bare", "inside-a-payload"],
)
def test_json_nested_100000_deep_gets_400_and_the_receiver_answers_on(
    receiver: Receiver, where: str, body: bytes
) -> None:
    started = time.monotonic()
    answer = post(receiver, body)
    report(
        f"alert-receiver: JSON nested {DEEP:,} deep ({where})",
        status=answer.status_code,
        seconds=round(time.monotonic() - started, 3),
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": (
                f"the body nests lists and objects more than {MAX_NESTING} deep "
                "(Alertmanager's payload nests 4)"
            )
        },
    )
    assert httpx.get(f"{receiver.url}/ready", timeout=5).status_code == 200
    assert "Traceback" not in receiver.stderr.read_text()


def test_a_payload_nested_as_deep_as_allowed_is_read(receiver: Receiver) -> None:
    depth_left = MAX_NESTING - 1  # the payload itself is one level
    deep_enough = json.dumps(payload(alert())).replace(
        '"commonAnnotations": {}',
        '"commonAnnotations": ' + "[" * depth_left + "]" * depth_left,
    )
    assert post(receiver, deep_enough.encode()).status_code == 200


@pytest.mark.parametrize(
    ("request_bytes", "beginning"),
    [
        (b"GET /" + b"p" * 60_000 + b" HTTP/1.1\r\nConnection: close\r\n\r\n", b"HTTP/1.1 404 "),
        # A request line it cannot read (a bad version, a fourth word): answered as
        # HTTP/0.9 would be, a body alone.
        (b"GET / HTTP/1.1" + b"v" * 60_000 + b"\r\n\r\n", b"<!DOCTYPE HTML>"),
        (b"GET / HTTP/1.1 " + b"w" * 60_000 + b"\r\n\r\n", b"<!DOCTYPE HTML>"),
        (b"M" * 60_000 + b" / HTTP/1.1\r\n\r\n", b"HTTP/1.1 501 "),
    ],
    ids=["path", "version", "request-line", "method"],
)
def test_a_long_request_line_is_echoed_cut(
    receiver: Receiver, request_bytes: bytes, beginning: bytes
) -> None:
    answer = raw_request(receiver.url, request_bytes)
    assert answer.startswith(beginning), answer[:200]
    assert b"more characters]" in answer
    assert len(answer) < 3 * MAX_FIELD_CHARS, answer[:200]


@pytest.mark.parametrize(
    ("length", "status", "message"),
    [
        ("\N{SUPERSCRIPT TWO}", b"411", b"the request needs a Content-Length"),
        ("-1", b"411", b"the request needs a Content-Length"),
        ("9" * 5000, b"413", b"more than the 1048576 allowed"),
    ],
    ids=["superscript-digit", "negative", "5000-digits"],
)
def test_an_odd_content_length_is_answered(
    receiver: Receiver, length: str, status: bytes, message: bytes
) -> None:
    request = f"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{"
    answer = raw_request(receiver.url, request.encode("latin-1"))
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
    assert message in answer
    assert len(answer) < 3 * MAX_FIELD_CHARS


def test_a_lone_surrogate_is_printed_as_a_replacement_character(receiver: Receiver) -> None:
    """Valid JSON, not valid Unicode: Go's encoder (Alertmanager's) writes U+FFFD for it."""
    lines_before = len(new_lines(receiver.stdout, 0))
    odd = alert(fingerprint="c3c3c3c3c3c3c3c3")
    odd["annotations"]["summary"] = "half a \ud83d smile"
    odd["labels"]["\udc00"] = "\ud800"
    answer = post(receiver, json.dumps(payload(odd)).encode())  # ASCII: \ud83d escaped
    assert answer.status_code == 200
    [line] = (json.loads(line) for line in new_lines(receiver.stdout, lines_before))
    assert line["summary"] == "half a \N{REPLACEMENT CHARACTER} smile"
    assert line["labels"]["\N{REPLACEMENT CHARACTER}"] == "\N{REPLACEMENT CHARACTER}"

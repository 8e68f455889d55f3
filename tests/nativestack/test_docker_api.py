"""The Docker Engine API stand-in answers as the engine does, for the calls Alloy makes."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nativestack.docker_api import API_VERSION, Container, DockerApi, serving_docker_api

OURS = Container(
    id="a" * 64,
    name="/dice-roller-stage1",
    image="dice-sandbox-dice-roller",
    labels={
        "com.docker.compose.project": "dice-sandbox",
        "com.docker.compose.service": "dice-roller",
    },
    network="dice-sandbox_monitoring",
    address="10.254.0.14",
    ports=(8000,),
)
THEIRS = Container(
    id="b" * 64,
    name="/web",
    image="nginx",
    labels={"com.docker.compose.project": "other"},
    network="other_default",
    address="10.254.0.15",
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    api = DockerApi("dice-sandbox_monitoring")
    for container in (OURS, THEIRS):
        container.log = type(container.log)()
        api.add(container)
    with (
        serving_docker_api(api, tmp_path / "docker.sock"),
        httpx.Client(
            transport=httpx.HTTPTransport(uds=str(tmp_path / "docker.sock")),
            base_url="http://docker",
            timeout=10,
        ) as client,
    ):
        yield client


def frames(payload: bytes) -> list[tuple[int, bytes]]:
    """Split the engine's multiplexed stream back into (stream, bytes)."""
    found = []
    while payload:
        stream, size = struct.unpack(">BxxxI", payload[:8])
        found.append((stream, payload[8 : 8 + size]))
        payload = payload[8 + size :]
    return found


def test_ping_names_the_api_version_for_negotiation(client: httpx.Client) -> None:
    for method in ("HEAD", "GET"):
        response = client.request(method, "/_ping")
        assert response.status_code == 200
        assert response.headers["api-version"] == API_VERSION


def test_the_label_filter_keeps_only_the_compose_project(client: httpx.Client) -> None:
    filters = json.dumps({"label": {"com.docker.compose.project=dice-sandbox": True}})
    listed = client.get("/v1.51/containers/json", params={"filters": filters}).json()
    assert [c["Names"] for c in listed] == [["/dice-roller-stage1"]]
    [network] = listed[0]["NetworkSettings"]["Networks"].values()
    assert network["IPAddress"] == "10.254.0.14"
    assert listed[0]["Ports"] == [{"PrivatePort": 8000, "Type": "tcp"}]
    everything = client.get("/v1.51/containers/json").json()
    assert len(everything) == 2


def test_an_unknown_filter_is_refused_as_the_engine_does(client: httpx.Client) -> None:
    response = client.get("/v1.51/containers/json", params={"filters": '{"colour": ["red"]}'})
    assert response.status_code == 400
    assert "invalid filter" in response.json()["message"]


def test_inspect_says_running_without_a_tty(client: httpx.Client) -> None:
    inspected = client.get(f"/v1.51/containers/{OURS.id[:12]}/json").json()
    assert inspected["Config"]["Tty"] is False
    assert inspected["State"]["Running"] is True
    assert client.get("/v1.51/containers/nope/json").status_code == 404


def test_logs_are_framed_per_stream_with_timestamps_and_since(client: httpx.Client) -> None:
    OURS.log.append(1, b'{"message": "old"}\n', at_ns=1_000_000_000)
    OURS.log.append(1, b'{"message": "out"}\n', at_ns=2_000_000_000)
    OURS.log.append(2, b"a warning\n", at_ns=2_500_000_000)
    params = {"stdout": "1", "stderr": "1", "timestamps": "1", "since": "1.5"}
    body = client.get(f"/v1.51/containers/{OURS.id}/logs", params=params).content
    assert frames(body) == [
        (1, b'1970-01-01T00:00:02.000000000Z {"message": "out"}\n'),
        (2, b"1970-01-01T00:00:02.500000000Z a warning\n"),
    ]
    stdout_only = client.get(f"/v1.51/containers/{OURS.id}/logs", params={"stdout": "1"}).content
    assert [stream for stream, _ in frames(stdout_only)] == [1, 1]


def test_following_streams_lines_as_they_are_written(client: httpx.Client) -> None:
    params = {"stdout": "1", "follow": "1", "timestamps": "1", "since": "0"}
    received: list[bytes] = []

    def write_later() -> None:
        time.sleep(0.3)
        OURS.log.append(1, b"first\n")
        OURS.log.append(1, b"second\n")

    threading.Thread(target=write_later, daemon=True).start()
    with client.stream("GET", f"/v1.51/containers/{OURS.id}/logs", params=params) as response:
        assert response.headers["content-type"] == "application/vnd.docker.multiplexed-stream"
        buffer = b""
        for chunk in response.iter_raw():
            buffer += chunk
            received = (
                [line.split(b" ", 1)[1] for _, line in frames(buffer)] if len(buffer) >= 8 else []
            )
            if len(received) == 2:
                break
    assert received == [b"first\n", b"second\n"]

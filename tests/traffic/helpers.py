"""Running the traffic generator as users do, as a process, and reading what it says."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.tcp_server import serving_tcp

__all__ = [
    "PAGE_LINE",
    "REPO",
    "ROLL_LINE",
    "GenRun",
    "HangingServer",
    "dice_rolls_total",
    "hanging_server",
    "http_requests_total",
    "page_lines",
    "roll_lines",
    "run_gen",
]

REPO = Path(__file__).resolve().parents[2]

#: "User 3 roll 5/12: risky -> 6 (12 ms)", "... -> HTTP 500 (3 ms)", "... -> TIMEOUT"
ROLL_LINE = re.compile(
    r"^(?P<who>User (?P<user>\d+)(?: \(session (?P<session>\d+)\))?|Request (?P<request>\d+))"
    r"(?: roll (?P<number>\d+)/(?P<of>\d+))?: (?P<die>fair|risky) -> (?P<result>.+?)"
    r"(?: \((?P<ms>\d+) ms\))?$"
)

#: A frontend visitor's page load: "User 3 page: HTTP 200 + 3 assets (25 ms)", "... -> TIMEOUT"
PAGE_LINE = re.compile(
    r"^User (?P<user>\d+)(?: \(session (?P<session>\d+)\))? page: (?P<result>.+?)"
    r"(?: \((?P<ms>\d+) ms\))?$"
)


@dataclass
class GenRun:
    """A finished run: exit code and both streams."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary (stdout must be exactly one JSON document)."""
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed


def gen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "traffic_gen", *args]


def run_gen(*args: str, timeout: float = 120.0) -> GenRun:
    """Run ``traffic-gen ARGS`` to the end (stdout is a pipe, so output is plain lines)."""
    done = subprocess.run(gen_command(*args), capture_output=True, text=True, timeout=timeout)
    return GenRun(done.returncode, done.stdout, done.stderr)


def roll_lines(text: str) -> list[re.Match[str]]:
    """Every per-roll log line in ``text``, parsed."""
    return [m for line in text.splitlines() if (m := ROLL_LINE.match(line.strip()))]


def page_lines(text: str) -> list[re.Match[str]]:
    """Every page-load log line of the frontend's visitors in ``text``, parsed."""
    return [m for line in text.splitlines() if (m := PAGE_LINE.match(line.strip()))]


def http_requests_total(url: str) -> Counter[tuple[str, str]]:
    """A service's own ``http_requests_total`` by (handler, status class), from ``/metrics``."""
    text = httpx.get(url + "/metrics").text
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                counts[(sample.labels["handler"], sample.labels["status"])] += int(sample.value)
    return counts


def dice_rolls_total(url: str) -> dict[tuple[str, str], float]:
    """The service's own ``dice_rolls_total`` by (die_type, result), from ``/metrics``."""
    text = httpx.get(url + "/metrics").text
    return {
        (sample.labels["die_type"], sample.labels["result"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "dice_rolls_total"
    }


@dataclass
class HangingServer:
    url: str
    connections: int = 0  # accepted so far


@contextmanager
def hanging_server(*, answer_root: bool, roll_body: bytes | None = None) -> Iterator[HangingServer]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers a roll.

    With ``answer_root`` it answers ``GET /`` like the service, so the generator gets
    past its start-up check and then waits on every roll; without it, even the check
    hangs. With ``roll_body`` it answers rolls after all: 200, with that body, as a
    misconfigured proxy or a bug would. Stopped when the block ends.
    """
    server_info = HangingServer(url="")
    root = b'{"service": "hanging", "version": "0"}'

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stopped: asyncio.Event
    ) -> None:
        server_info.connections += 1
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if answer_root and head.startswith(b"GET / "):
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(root), root)
                )
                await writer.drain()
                continue
            if roll_body is not None:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(roll_body), roll_body)
                )
                await writer.drain()
                continue
            await stopped.wait()  # hold the connection open, say nothing
            return

    with serving_tcp(handle) as url:
        server_info.url = url
        yield server_info

"""The receiver as a real process on a free port, and ways to speak to it over TCP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT
from tests.support.processes import wait_until_ready

__all__ = ["PACKAGE_DIR", "Receiver", "raw_request", "start", "stop", "wait_ready"]

PACKAGE_DIR = ROOT / "alert-receiver"


@dataclass
class Receiver:
    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def alert_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.read_text().splitlines()]

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.read_text().splitlines()]

    def threads(self) -> int:
        """How many threads the process runs now, as the kernel counts them."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise RuntimeError(f"no thread count for process {self.process.pid}")


def start(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Receiver:
    stdout, stderr = tmp / "stdout", tmp / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "alert_receiver", *args],
            env={**os.environ, "PYTHONPATH": str(PACKAGE_DIR), **(env or {})},
            stdout=out,
            stderr=err,
        )
    port = (
        args[args.index("--port") + 1] if "--port" in args else (env or {})["ALERT_RECEIVER_PORT"]
    )
    return Receiver(process, f"http://127.0.0.1:{port}", stdout, stderr)


def stop(receiver: Receiver) -> int:
    receiver.process.send_signal(signal.SIGTERM)
    try:
        return receiver.process.wait(timeout=10)
    finally:
        if receiver.process.poll() is None:
            receiver.process.kill()


def wait_ready(receiver: Receiver) -> None:
    wait_until_ready(
        receiver.process,
        f"{receiver.url}/ready",
        name="alert-receiver",
        output=receiver.stderr.read_text,
        timeout=20,
    )


def raw_request(url: str, request: bytes, timeout: float = 5) -> bytes:
    """Send `request` as it is and return every byte of the answer, up to the close."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)

"""Finding the real tools a test needs, and refusing to skip silently in CI."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

__all__ = ["free_port", "in_ci", "require_tool"]


def in_ci() -> bool:
    """CI sets CI=true; there a missing tool is a broken set-up, not a reason to skip."""
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str, why: str = "") -> str:
    """The path of executable `name`; skips the test without it, but fails under CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed{': ' + why if why else ''}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: .ci/run must install it)")
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""Finding the real tools a test needs: a missing one fails the test, never skips it.

`python3 tasks.py test` installs every tool the suite runs before pytest starts, so
a missing tool means the suite was started some other way; the failure says how to
get it.
"""

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
    """The path of executable `name`; without it the test fails, saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed{': ' + why if why else ''}. Run the suite with "
            "`python3 tasks.py test`, which installs it first"
        )
    return path


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

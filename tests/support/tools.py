"""Finding the real tools a test needs: a missing one fails the test, never skips it.

`python3 tasks.py test` installs every tool the suite runs before pytest starts, so
a missing tool means the suite was started some other way; the failure says how to
get it.
"""

from __future__ import annotations

import os
import shutil

import pytest

from stackclient import free_port  # the benches start servers too

__all__ = ["closed_url", "free_port", "in_ci", "require_tool"]


def closed_url() -> str:
    """A URL where nothing listens (a port that was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


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

"""The native stack, started once for the tests of this package, with some traffic.

The stack is the session's (`native`, tests/conftest.py); tests/support/live_stack.py
says how the tests here read it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nativestack.stack import NativeStack
from tests.support.live_stack import LiveStack, roll


@pytest.fixture(scope="package")
def live(native: NativeStack) -> Iterator[LiveStack]:
    """The session's native stack, and some rolls of each die made through it."""
    rolls = roll(native.service_url, ["fair", "risky"] * 15)
    stack = LiveStack(native, rolls, native.started)
    yield stack
    stack.api.close()

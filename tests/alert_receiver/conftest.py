"""One receiver process per test module, for the tests that only talk to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.alert_receiver import Receiver, start, stop, wait_ready
from tests.support.tools import free_port


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    running = start(tmp_path_factory.mktemp("receiver"), "--port", str(free_port()))
    wait_ready(running)
    yield running
    stop(running)

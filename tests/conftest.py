"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.service import RunningService, running_service


@pytest.fixture(scope="module")
def dice_service() -> Iterator[RunningService]:
    """One real service per test module, with a short delay and tracing off."""
    with running_service() as service:
        yield service

"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nativestack.stack import NativeStack, native_stack
from tests.support.native import DECOY, NATIVE_SERVICE_ENV
from tests.support.service import RunningService, running_service


@pytest.fixture(scope="module")
def dice_service() -> Iterator[RunningService]:
    """One real service per test module, with a short delay and tracing off."""
    with running_service() as service:
        yield service


@pytest.fixture(scope="session")
def native() -> Iterator[NativeStack]:
    """The native stack (nativestack/), started once for every test that asks for it.

    Prometheus, Alertmanager, Loki and Alloy at the pinned versions on the shipped
    configs, the Tempo stand-in, the alert-receiver, and the service with
    `NATIVE_SERVICE_ENV`; the Docker API stand-in also lists `DECOY`, a container of
    another compose project.
    """
    with native_stack(service_env=NATIVE_SERVICE_ENV, extra_containers=[DECOY]) as stack:
        yield stack

"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nativestack.stack import NativeStack, native_stack
from tests.support.native import DECOY, native_service_env
from tests.support.service import RunningService, running_service


@pytest.fixture(scope="module")
def dice_service() -> Iterator[RunningService]:
    """One real service per test module, with a short delay and tracing off."""
    with running_service() as service:
        yield service


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """The native stack (nativestack/), started once for every test that asks for it.

    Prometheus, Alertmanager, Loki and Alloy at the pinned versions on the shipped
    configs, the Tempo stand-in, the alert-receiver, and the service with
    `NATIVE_SERVICE_ENV` and a flag file selecting `NATIVE_FLAGS`; the Docker API
    stand-in also lists `DECOY`, a container of another compose project.
    """
    env = native_service_env(tmp_path_factory.mktemp("native-flags"))
    with native_stack(service_env=env, extra_containers=[DECOY]) as stack:
        yield stack

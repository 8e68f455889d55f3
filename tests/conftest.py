"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nativestack.stack import NativeStack, native_stack
from tests.support.native import DECOY, NATIVE_SERVICE_ENV, native_service_env
from tests.support.service import RunningService, running_service


@pytest.fixture(scope="module")
def dice_service() -> Iterator[RunningService]:
    """One real service per test module, with a short delay and tracing off."""
    with running_service() as service:
        yield service


@pytest.fixture(scope="session")
def native_flags_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flag file the native stack's service reads (its DICE_FLAGS_FILE): a copy of
    the shipped one selecting `NATIVE_FLAGS`. A test that switches flags in it (a
    drill) puts its bytes back; the repository's own file is never touched."""
    return Path(native_service_env(tmp_path_factory.mktemp("native-flags"))["DICE_FLAGS_FILE"])


@pytest.fixture(scope="session")
def native(native_flags_file: Path) -> Iterator[NativeStack]:
    """The native stack (nativestack/), started once for every test that asks for it.

    Prometheus, Alertmanager, Loki and Alloy at the pinned versions on the shipped
    configs, the Tempo stand-in, the alert-receiver, and the service with
    `NATIVE_SERVICE_ENV` and `native_flags_file`; the Docker API stand-in also lists
    `DECOY`, a container of another compose project.
    """
    env = {**NATIVE_SERVICE_ENV, "DICE_FLAGS_FILE": str(native_flags_file)}
    with native_stack(service_env=env, extra_containers=[DECOY]) as stack:
        yield stack

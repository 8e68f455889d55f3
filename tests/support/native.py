"""What the tests' native stack runs with, besides compose's own settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from nativestack.build import binary_path
from nativestack.docker_api import Container

from .flags import copy_shipped

__all__ = ["DECOY", "NATIVE_FLAGS", "NATIVE_SERVICE_ENV", "built", "native_service_env"]


def built(service: str, program: str | None = None) -> str:
    """A component's binary (or its other `program`), as `python3 tasks.py test` built it
    at the version compose pins."""
    path = binary_path(service, program)
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: run the suite with `python3 tasks.py test`, which builds "
            "it first (or build it alone: `python3 tasks.py nativestack --build-only`)"
        )
    return str(path)


NATIVE_FLAGS: Mapping[str, str] = {"risky-failure-rate": "half"}
"""Half the risky rolls fail, deterministically: error panels and boxes have data.
Compose points the service at a flag file, which wins over DICE_RISKY_FAILURE_RATE;
the tests select the variant in a copy of the shipped file, as a user would."""

NATIVE_SERVICE_ENV: Mapping[str, str] = {
    "DICE_SEED": "7",
    # Quick rolls and quick span batches keep the tests short.
    "DICE_MAX_DELAY_SECONDS": "0.2",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
}


def native_service_env(directory: Path) -> dict[str, str]:
    """`NATIVE_SERVICE_ENV`, and a flag file in `directory` that selects `NATIVE_FLAGS`."""
    return {**NATIVE_SERVICE_ENV, "DICE_FLAGS_FILE": str(copy_shipped(directory, NATIVE_FLAGS))}


DECOY = Container(
    id="d" * 64,
    name="/someone-elses-app",
    image="nginx:1.27",
    labels={"com.docker.compose.project": "another-project", "com.docker.compose.service": "web"},
    network="another-project_default",
    address="10.254.255.9",
)
"""A container of another compose project on the same engine: Alloy must leave it alone."""
DECOY.log.append(1, b'{"message": "a line that is not ours"}\n')

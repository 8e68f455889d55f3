"""What the tests' native stack runs with, besides compose's own settings."""

from __future__ import annotations

from collections.abc import Mapping

from nativestack.docker_api import Container

__all__ = ["DECOY", "NATIVE_SERVICE_ENV"]

NATIVE_SERVICE_ENV: Mapping[str, str] = {
    # Half the risky rolls fail, deterministically: error panels and boxes have data.
    "DICE_RISKY_FAILURE_RATE": "0.5",
    "DICE_SEED": "7",
    # Quick rolls and quick span batches keep the tests short.
    "DICE_MAX_DELAY_SECONDS": "0.2",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
}

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

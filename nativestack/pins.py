"""Which version of each component the stack runs: read from the compose file, nowhere else.

stack/compose.yml pins every image to an exact tag. The native stack builds the same
release from its Go module, so the tag is the one source of truth, and this module
only knows how each project spells a release as a Go module version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["COMPOSE_FILE", "Pin", "PinError", "image_pins", "pin"]

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "stack" / "compose.yml"


class PinError(ValueError):
    """The compose file does not pin a component the way the native stack expects."""


@dataclass(frozen=True)
class Pin:
    """One compose service's image, e.g. `grafana/loki:3.7.6`."""

    service: str
    image: str
    tag: str

    @property
    def release(self) -> tuple[int, int, int]:
        """The tag as numbers: `v3.14.0` and `3.14.0` are both (3, 14, 0)."""
        match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", self.tag)
        if match is None:
            raise PinError(f"{self.service}: image tag {self.tag!r} is not an exact release")
        major, minor, patch = (int(part) for part in match.groups())
        return major, minor, patch


def image_pins(compose_file: Path = COMPOSE_FILE) -> dict[str, Pin]:
    """Every service of `compose_file` that names an image, by service name."""
    document = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    pins: dict[str, Pin] = {}
    for service, spec in (document.get("services") or {}).items():
        image = (spec or {}).get("image")
        if not image:
            continue
        name, _, tag = str(image).rpartition(":")
        if not name:
            raise PinError(f"{compose_file}: service {service} has no tag in {image!r}")
        pins[service] = Pin(service, name, tag)
    return pins


def pin(service: str, compose_file: Path = COMPOSE_FILE) -> Pin:
    """The pin of one compose service; a clear error if it has none."""
    pins = image_pins(compose_file)
    if service not in pins:
        raise PinError(f"{compose_file}: no service {service!r} with an image")
    return pins[service]

"""Which version of each component the stack runs: read from the compose files, nowhere else.

stack/compose.yml pins every image to an exact tag, and so does each stage file for the
images it adds (stages/stage5.yml: node_exporter). The native stack builds the same
release from its Go module, so the tag is the one source of truth, and this module
only knows how each project spells a release as a Go module version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .substitutions import _ComposeLoader

__all__ = ["COMPOSE_FILE", "STAGE_COMPOSE_FILES", "Pin", "PinError", "image_pins", "pin"]

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "stack" / "compose.yml"
STAGE_COMPOSE_FILES = (ROOT / "stages" / "stage3.yml", ROOT / "stages" / "stage5.yml")
"""The stage files, whose services a `pin` finds when stack/compose.yml has no such service."""


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
    # The stage files' `!reset` read as compose reads it.
    document = yaml.load(compose_file.read_text(encoding="utf-8"), _ComposeLoader) or {}
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


def pin(service: str, compose_file: Path | None = None) -> Pin:
    """The pin of one compose service; a clear error if it has none.

    Without `compose_file`: stack/compose.yml's, else the first stage file's that names it."""
    files = (compose_file,) if compose_file is not None else (COMPOSE_FILE, *STAGE_COMPOSE_FILES)
    for path in files:
        pins = image_pins(path)
        if service in pins:
            return pins[service]
    raise PinError(f"{', '.join(map(str, files))}: no service {service!r} with an image")

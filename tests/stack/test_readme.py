"""stack/README.md against the compose files it documents: every published port and
every pinned image, so the document can't drift from what runs."""

from __future__ import annotations

import re

from tests.support.compose import ROOT, ROOT_COMPOSE, image_reference, load_project, ports

README = ROOT / "stack" / "README.md"


def test_every_published_port_is_documented() -> None:
    text = README.read_text(encoding="utf-8")
    for service in load_project(ROOT_COMPOSE).services.values():
        for mapping in ports(service):
            assert f"localhost:{mapping.host_port}" in text, (
                f"{service.name}'s port {mapping.host_port} is missing from {README.name}"
            )


def test_versions_table_lists_the_pinned_images() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Versions", 1)[1]
    documented = dict(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section, re.M))
    pinned = {}
    for service in load_project(ROOT_COMPOSE).services.values():
        reference = image_reference(service)
        if reference is not None:
            pinned[reference[0]] = reference[1]
    assert documented == pinned

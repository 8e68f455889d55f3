"""One source of truth for versions: the image tags of stack/compose.yml."""

from __future__ import annotations

import re

import pytest

from nativestack.build import PROGRAMS
from nativestack.pins import COMPOSE_FILE, ROOT, STAGE_COMPOSE_FILES, PinError, image_pins, pin

DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "stack" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]


def test_every_built_component_is_pinned_by_compose_to_an_exact_release() -> None:
    for service, program in PROGRAMS.items():
        p = pin(service)
        assert p.image == program.image
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", p.tag), p


def test_the_module_versions_follow_from_the_tags() -> None:
    assert PROGRAMS["prometheus"].module_version(pin("prometheus")) == "v0.314.0"
    assert PROGRAMS["alertmanager"].module_version(pin("alertmanager")) == "v0.35.0"
    assert PROGRAMS["loki"].module_version(pin("loki")) == "v3.7.6"
    assert PROGRAMS["alloy"].module_version(pin("alloy")) == "v1.18.1"
    assert PROGRAMS["tempo"].module_version(pin("tempo")).endswith("-1900ed7bb5ca")
    assert PROGRAMS["node-exporter"].module_version(pin("node-exporter")) == "v1.12.1"


def test_a_stage_files_image_is_pinned_there() -> None:
    """node_exporter is stage 5's alone: its pin is stages/stage5.yml's."""
    assert "node-exporter" not in image_pins(COMPOSE_FILE)
    assert pin("node-exporter") == image_pins(STAGE_COMPOSE_FILES[-1])["node-exporter"]
    assert pin("node-exporter").image == "prom/node-exporter"
    with pytest.raises(PinError, match=r"stage5\.yml: no service 'nothing'"):
        pin("nothing")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_names_another_version_of_a_pinned_image(document: object) -> None:
    """`grafana/loki:3.7.5` or a versions table saying so would contradict compose."""
    pins = {
        p.image: p.tag
        for path in (COMPOSE_FILE, *STAGE_COMPOSE_FILES)
        for p in image_pins(path).values()
    }
    text = document.read_text(encoding="utf-8")  # type: ignore[attr-defined]
    for image, tag in pins.items():
        for named in re.findall(rf"{re.escape(image)}`?\s*[:|]\s*`?(v?\d+\.\d+\.\d+)", text):
            assert named == tag, f"{document} names {image} {named}, compose pins {tag}"

"""PSD export, checked by reading the file back with psd-tools."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from psd_tools import PSDImage
from psd_tools.constants import BlendMode as PsdBlend
from sfumato.canvas.blend import BlendMode
from sfumato.canvas.composite import flatten
from sfumato.canvas.document import Document
from sfumato.canvas.file_errors import SaveError
from sfumato.canvas.layers import GroupLayer, PixelLayer, Role
from sfumato.canvas.psd import save_psd
from sfumato.canvas.tiles import TiledSurface


def noise(w: int, h: int, seed: int, opaque: bool = False) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    pixels[..., 3] = 255 if opaque else np.maximum(pixels[..., 3], 1)
    return pixels


def layer(pixels: np.ndarray, name: str, sx: int = 0, sy: int = 0, **props: object) -> PixelLayer:
    return PixelLayer(name, TiledSurface.from_array(pixels, sx, sy), **props)  # type: ignore[arg-type]


def test_layers_groups_and_properties(tmp_path: Path) -> None:
    doc = Document(60, 40)
    spot = noise(10, 8, 1)
    inner = GroupLayer("Gruppe – ü", [layer(spot, "spot", 3, 4, x=5, y=6)], x=7, y=1, opacity=0.5, blend=BlendMode.SCREEN)
    doc.root.append(layer(noise(12, 12, 2), "名前 top", 20, 10, blend=BlendMode.MULTIPLY, opacity=0.25, locked=True))
    doc.root.append(inner)
    doc.root.append(layer(noise(60, 40, 3, opaque=True), "bg", visible=False))
    save_psd(doc, tmp_path / "a.psd")

    psd = PSDImage.open(tmp_path / "a.psd")
    assert psd.size == (60, 40)
    top_level = list(psd)  # bottom first
    assert [x.name for x in top_level] == ["bg", "Gruppe – ü", "名前 top"]
    bg, group, top = top_level
    assert not bg.visible and group.visible and top.visible
    assert top.blend_mode is PsdBlend.MULTIPLY and top.opacity == round(0.25 * 255)
    assert top.offset == (20, 10) and top.locks is not None
    assert group.is_group() and group.blend_mode is PsdBlend.SCREEN and group.opacity == 128
    (child,) = list(group)
    assert child.name == "spot"
    assert child.offset == (3 + 5 + 7, 4 + 6 + 1)  # surface + layer + group offsets
    np.testing.assert_array_equal(np.asarray(child.topil().convert("RGBA")), spot)


def test_ai_role_layers_are_hidden(tmp_path: Path) -> None:
    doc = Document(16, 16)
    for role in Role:
        doc.root.append(layer(noise(4, 4, 0), role.value, role=role))
    save_psd(doc, tmp_path / "r.psd")
    visible = {x.name: x.visible for x in PSDImage.open(tmp_path / "r.psd")}
    assert visible == {role.value: role.is_image for role in Role}


@pytest.mark.parametrize("mode", [m for m in BlendMode if not m.is_porter_duff])
def test_composite_matches_flatten_for_photoshop_modes(tmp_path: Path, mode: BlendMode) -> None:
    doc = Document(24, 24)
    doc.root.append(layer(noise(16, 16, 1, opaque=True), "a", 4, 4, blend=mode, opacity=0.8))
    doc.root.append(layer(noise(24, 24, 2, opaque=True), "b"))
    save_psd(doc, tmp_path / "m.psd")
    stored = np.rint(PSDImage.open(tmp_path / "m.psd").numpy()[..., :3] * 255).astype(int)
    assert np.abs(stored - flatten(doc)[..., :3].astype(int)).max() <= 1


def test_modes_without_photoshop_equivalent_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    doc = Document(8, 8)
    doc.root.append(layer(noise(4, 4, 0), "cut", blend=BlendMode.DST_OUT))
    with caplog.at_level(logging.WARNING):
        save_psd(doc, tmp_path / "w.psd")
    assert "cut" in caplog.text and PSDImage.open(tmp_path / "w.psd")[0].blend_mode is PsdBlend.NORMAL


def test_empty_layer_and_empty_document(tmp_path: Path) -> None:
    doc = Document(8, 8)
    doc.root.append(PixelLayer("empty"))
    save_psd(doc, tmp_path / "e.psd")
    assert [x.name for x in PSDImage.open(tmp_path / "e.psd")] == ["empty"]
    save_psd(Document(8, 8), tmp_path / "none.psd")
    assert len(PSDImage.open(tmp_path / "none.psd")) == 0


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.psd"
    save_psd(Document(8, 8), path)
    before = path.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    doc = Document(8, 8)
    doc.root.append(layer(noise(4, 4, 0), "x"))
    with pytest.raises(SaveError, match="No space"):
        save_psd(doc, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.psd"]

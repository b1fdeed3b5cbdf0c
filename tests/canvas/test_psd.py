"""PSD export, checked by reading the file back with psd-tools."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from psd_tools import PSDImage
from psd_tools.constants import BlendMode as PsdBlend
from sfumato.canvas.files.file_errors import SaveError
from sfumato.canvas.files.psd import save_psd
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import GroupLayer, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.render.composite import flatten


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
    assert top.offset == (20, 10) and top.locks is not None and top.locks.complete
    assert group.locks is None or not group.locks.complete
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


# -- import ------------------------------------------------------------------------------------
def test_export_then_import_round_trips(tmp_path: Path) -> None:
    from sfumato.canvas.files.psd import load_psd

    doc = Document(50, 40)
    spot, top_pixels = noise(10, 8, 1), noise(12, 12, 2)
    doc.root.append(layer(top_pixels, "名前 top", 20, 10, blend=BlendMode.OVERLAY, locked=True))
    doc.root.append(GroupLayer("group", [layer(spot, "spot", 3, 4)], visible=False, blend=BlendMode.SCREEN))
    doc.root.append(layer(noise(50, 40, 3, opaque=True), "bg", opacity=0.6))
    save_psd(doc, tmp_path / "a.psd")
    back = load_psd(tmp_path / "a.psd")
    assert (back.width, back.height) == (50, 40)
    assert [(x.name, x.is_group) for x in back.layers()] == [("名前 top", False), ("group", True), ("spot", False), ("bg", False)]
    top = back.find("名前 top")
    assert isinstance(top, PixelLayer) and top.blend is BlendMode.OVERLAY and top.locked
    np.testing.assert_array_equal(top.surface.read(top.surface.bounds()), top_pixels)
    assert top.surface.bounds().x == 20 and top.surface.bounds().y == 10
    group = back.find("group")
    assert group is not None and not group.visible and group.blend is BlendMode.SCREEN
    bg = back.find("bg")
    assert bg is not None and abs(bg.opacity - 0.6) <= 1 / 255
    np.testing.assert_allclose(flatten(back).astype(int), flatten(doc).astype(int), atol=2)


def test_import_applies_layer_masks(tmp_path: Path) -> None:
    from PIL import Image
    from sfumato.canvas.files.psd import load_psd

    psd = PSDImage.new("RGBA", (16, 16))
    pixels = np.zeros((8, 10, 4), np.uint8)
    pixels[...] = (200, 10, 10, 255)
    masked = psd.create_pixel_layer_from_array(pixels, name="masked", top=2, left=3)
    mask = np.zeros((8, 10), np.uint8)
    mask[:, :5] = 255
    masked.create_mask(Image.fromarray(mask), top=2, left=3)
    psd.save(tmp_path / "m.psd")
    layer_ = load_psd(tmp_path / "m.psd").find("masked")
    assert isinstance(layer_, PixelLayer)
    alpha = layer_.surface.read(layer_.surface.bounds())[..., 3]
    assert layer_.surface.bounds().w == 5 and (alpha == 255).all()  # the masked half is gone


def test_import_warns_about_what_the_model_cannot_hold(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sfumato.canvas.files.psd import load_psd

    psd = PSDImage.new("RGBA", (8, 8))
    psd.create_pixel_layer_from_array(noise(4, 4, 0), name="burn", blend_mode=PsdBlend.LINEAR_BURN)
    clipped = psd.create_pixel_layer_from_array(noise(4, 4, 1), name="clipped")
    clipped.clipping = True
    psd.create_group(name="passes")  # Photoshop's default pass-through group
    psd.save(tmp_path / "w.psd")
    with caplog.at_level(logging.WARNING):
        doc = load_psd(tmp_path / "w.psd")
    burn, passes = doc.find("burn"), doc.find("passes")
    assert burn is not None and burn.blend is BlendMode.NORMAL and passes is not None
    assert "linear burn" in caplog.text and "clipping" in caplog.text


def test_import_bad_files(tmp_path: Path) -> None:
    import struct

    from sfumato.canvas.files.file_errors import (
        CorruptImageError,
        FileFormatError,
        ImageTooLargeError,
        UnsupportedFormatError,
    )
    from sfumato.canvas.files.psd import load_psd

    (tmp_path / "text.psd").write_text("not a psd")
    with pytest.raises(UnsupportedFormatError):
        load_psd(tmp_path / "text.psd")
    with pytest.raises(FileFormatError, match="not found"):
        load_psd(tmp_path / "missing.psd")
    doc = Document(16, 16)
    doc.root.append(layer(noise(16, 16, 0), "x"))
    save_psd(doc, tmp_path / "ok.psd")
    data = (tmp_path / "ok.psd").read_bytes()
    huge = data[:14] + struct.pack(">II", 100_000, 100_000) + data[22:]
    (tmp_path / "huge.psd").write_bytes(huge)
    with pytest.raises(ImageTooLargeError):
        load_psd(tmp_path / "huge.psd")
    (tmp_path / "cut.psd").write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptImageError):
        load_psd(tmp_path / "cut.psd")


def test_import_random_damage_never_crashes(tmp_path: Path) -> None:
    import random
    import warnings

    from sfumato.canvas.files.file_errors import FileFormatError
    from sfumato.canvas.files.psd import load_psd

    doc = Document(24, 24)
    doc.root.append(GroupLayer("g", [layer(noise(10, 10, 0), "a", 2, 2)]))
    doc.root.append(layer(noise(24, 24, 1), "b"))
    save_psd(doc, tmp_path / "ok.psd")
    base = (tmp_path / "ok.psd").read_bytes()
    rng = random.Random(99)
    for _ in range(150):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        (tmp_path / "f.psd").write_bytes(bytes(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(FileFormatError):
                load_psd(tmp_path / "f.psd")

"""Image import (PNG/JPEG/WebP, EXIF orientation, modes, limits) and flattened PNG export."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from sfumato.canvas.files.file_errors import (
    CorruptImageError,
    FileFormatError,
    ImageTooLargeError,
    SaveError,
    UnsupportedFormatError,
)
from sfumato.canvas.files.image_parameters import read_png_parameters
from sfumato.canvas.files.imageio import (
    export_png,
    image_to_rgba,
    load_image_document,
    load_image_layer,
    save_png,
)
from sfumato.canvas.files.parameters import format_parameters
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.render.composite import flatten


def quadrants(w: int = 8, h: int = 4) -> np.ndarray:
    """Four distinct colours, one per quadrant, so orientation is visible; straight RGBA."""
    out = np.zeros((h, w, 4), np.uint8)
    out[: h // 2, : w // 2] = (255, 0, 0, 255)
    out[: h // 2, w // 2 :] = (0, 255, 0, 255)
    out[h // 2 :, : w // 2] = (0, 0, 255, 200)
    out[h // 2 :, w // 2 :] = (255, 255, 0, 100)
    return out


def test_png_reads_exactly_including_colour_under_zero_alpha(tmp_path: Path) -> None:
    pixels = quadrants()
    pixels[0, 0] = (12, 34, 56, 0)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(image_to_rgba(tmp_path / "a.png"), pixels)


def test_lossless_webp_reads_exactly(tmp_path: Path) -> None:
    pixels = quadrants()
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.webp", lossless=True, exact=True)
    np.testing.assert_array_equal(image_to_rgba(tmp_path / "a.webp"), pixels)


def test_jpeg_reads_opaque_and_close(tmp_path: Path) -> None:
    pixels = quadrants(32, 16)
    Image.fromarray(pixels[..., :3], "RGB").save(tmp_path / "a.jpg", quality=95)
    out = image_to_rgba(tmp_path / "a.jpg")
    assert out.shape == (16, 32, 4) and (out[..., 3] == 255).all()
    assert np.abs(out[4, 4, :3].astype(int) - pixels[4, 4, :3]).max() < 12


@pytest.mark.parametrize(
    ("orientation", "transform"),
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # stored rotated: display turns it 90° clockwise
        (8, lambda a: np.rot90(a, 1)),
        (2, lambda a: a[:, ::-1]),
    ],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, transform: object) -> None:
    pixels = quadrants()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels, "RGBA").save(tmp_path / "o.webp", lossless=True, exact=True, exif=exif)
    np.testing.assert_array_equal(image_to_rgba(tmp_path / "o.webp"), transform(pixels))  # type: ignore[operator]


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (4, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putdata([0, 1, 0, 1])
    image.save(tmp_path / "p.png", transparency=1)
    out = image_to_rgba(tmp_path / "p.png")
    assert out[0, 0].tolist() == [255, 0, 0, 255]
    assert out[0, 1, 3] == 0


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("L", 77, [77, 77, 77, 255]), ("LA", (77, 10), [77, 77, 77, 10]), ("RGB", (1, 2, 3), [1, 2, 3, 255])],
)
def test_8bit_modes(tmp_path: Path, mode: str, value: object, expected: list[int]) -> None:
    Image.new(mode, (2, 2), value).save(tmp_path / "m.png")  # type: ignore[arg-type]
    assert image_to_rgba(tmp_path / "m.png")[1, 1].tolist() == expected


def test_16bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert image_to_rgba(tmp_path / "g16.png")[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # red in CMYK
    out = image_to_rgba(tmp_path / "c.jpg")
    assert out[0, 0, 0] > 200 and out[0, 0, 1] < 60 and out[0, 0, 3] == 255


def test_embedded_srgb_profile_keeps_colours_and_bad_profile_is_ignored(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = quadrants()
    Image.fromarray(pixels, "RGBA").save(tmp_path / "s.png", icc_profile=srgb)
    out = image_to_rgba(tmp_path / "s.png")
    assert np.abs(out.astype(int) - pixels).max() <= 2
    Image.fromarray(pixels, "RGBA").save(tmp_path / "bad.png", icc_profile=b"not a profile")
    np.testing.assert_array_equal(image_to_rgba(tmp_path / "bad.png"), pixels)


# -- bad input -------------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="not found"):
        image_to_rgba(tmp_path / "none.png")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_refused(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    Image.new("RGB", (2, 2)).save(path, fmt)
    with pytest.raises(UnsupportedFormatError, match="PNG, JPEG or WebP"):
        image_to_rgba(path)


def test_text_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.png").write_text("hello")
    with pytest.raises(UnsupportedFormatError):
        image_to_rgba(tmp_path / "t.png")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_images_are_corrupt(tmp_path: Path, cut: float) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for name in ("t.png", "t.jpg"):
        Image.fromarray(pixels).save(tmp_path / name)
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(CorruptImageError):
            image_to_rgba(tmp_path / name)


def test_png_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 6, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(ImageTooLargeError):
        image_to_rgba(tmp_path / "bomb.png")


def test_jpeg_with_absurd_dimensions_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    (tmp_path / "big.jpg").write_bytes(bytes(data))
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLargeError):
        image_to_rgba(tmp_path / "big.jpg")
    assert limit_before == Image.MAX_IMAGE_PIXELS  # Pillow's process-wide setting is restored


# -- layers and documents --------------------------------------------------------------------
def test_load_image_layer(tmp_path: Path) -> None:
    pixels = quadrants()
    Image.fromarray(pixels, "RGBA").save(tmp_path / "photo.png")
    layer = load_image_layer(tmp_path / "photo.png")
    assert layer.name == "photo" and layer.role is Role.PAINT
    np.testing.assert_array_equal(layer.surface.read(Rect(0, 0, 8, 4)), pixels)


def test_load_image_document_takes_the_recipe_from_parameters(tmp_path: Path) -> None:
    text = format_parameters({"prompt": "a boat", "negative": "fog", "seed": 11, "steps": 9, "sampler": "euler"})
    save_png(quadrants(), tmp_path / "gen.png", text)
    doc = load_image_document(tmp_path / "gen.png")
    assert (doc.width, doc.height) == (8, 4)
    assert doc.recipe == Recipe(prompt="a boat", negative="fog", seed=11, steps=9, sampler="euler")
    assert isinstance(doc.active, PixelLayer)


def test_fully_transparent_image_keeps_its_size(tmp_path: Path) -> None:
    Image.new("RGBA", (5, 3)).save(tmp_path / "clear.png")
    doc = load_image_document(tmp_path / "clear.png")
    assert (doc.width, doc.height) == (5, 3)


# -- export ------------------------------------------------------------------------------------
def two_layer_doc() -> Document:
    doc = Document(8, 4, recipe=Recipe(prompt="x"))
    doc.root.append(PixelLayer("mask", TiledSurface.from_array(np.full((4, 8, 4), 255, np.uint8)), role=Role.INPAINT_MASK))
    doc.root.append(PixelLayer("paint", TiledSurface.from_array(quadrants()), opacity=0.5))
    return doc


def test_export_png_is_the_flatten_with_parameters(tmp_path: Path) -> None:
    doc = two_layer_doc()
    export_png(doc, tmp_path / "out.png", "a prompt\nSteps: 3, Seed: 4, CFG scale: 5")
    with Image.open(tmp_path / "out.png") as image:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image), flatten(doc))
        assert image.text["parameters"].startswith("a prompt")
    params = read_png_parameters(tmp_path / "out.png")
    assert params is not None and params["seed"] == 4


def test_export_without_parameters_writes_no_chunk(tmp_path: Path) -> None:
    export_png(two_layer_doc(), tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as image:
        image.load()
        assert "parameters" not in image.text


def test_non_latin1_parameters_use_itxt(tmp_path: Path) -> None:
    save_png(quadrants(), tmp_path / "u.png", "猫\nSteps: 1, Seed: 2, CFG scale: 3")
    assert b"iTXt" in (tmp_path / "u.png").read_bytes()
    params = read_png_parameters(tmp_path / "u.png")
    assert params is not None and params["prompt"] == "猫"


def test_failed_export_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.png"
    export_png(two_layer_doc(), path)
    before = path.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(SaveError, match="No space"):
        save_png(np.zeros((4, 4, 4), np.uint8), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_jpeg_document_takes_the_recipe_from_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    text = "a lantern\nNegative prompt: dark\nSteps: 14, Sampler: DDIM, CFG scale: 6, Seed: 99, Size: 8x4"
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + text.encode("utf-16-be")
    Image.new("RGB", (8, 4), (5, 6, 7)).save(tmp_path / "gen.jpg", exif=exif)
    doc = load_image_document(tmp_path / "gen.jpg")
    assert doc.recipe == Recipe(prompt="a lantern", negative="dark", seed=99, steps=14, cfg=6.0, sampler="ddim")

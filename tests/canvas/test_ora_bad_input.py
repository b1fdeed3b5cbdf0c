"""Bad and hostile OpenRaster files: each gets its specific error (or documented fallback).

Every test loads from a fresh temporary folder with the working directory set to an empty
folder beside it, and checks afterwards that nothing was written anywhere.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from orazip import png_bytes, solid, write_ora_zip
from sfumato.canvas.files import ora_archive, ora_read
from sfumato.canvas.files.file_errors import (
    BadAttributeError,
    CorruptImageError,
    FileFormatError,
    ImageTooLargeError,
    MalformedXmlError,
    MissingEntryError,
    NotAnArchiveError,
    UnsafePathError,
)
from sfumato.canvas.files.ora import SFUMATO_NS, load_ora, save_ora
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface

RED = png_bytes(solid(2, 2, (255, 0, 0, 255)))
NS = f'xmlns:sfumato="{SFUMATO_NS}"'


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder for the test's files; the cwd is an empty sibling; nothing else may appear."""
    files = tmp_path / "files"
    cwd = tmp_path / "cwd"
    files.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield files
    assert os.listdir(cwd) == [], "something was written to the working directory"
    assert sorted(os.listdir(tmp_path)) == ["cwd", "files"], "something was written beside the file"
    for path in files.rglob("*"):
        assert path.suffix == ".ora" and path.parent == files, f"unexpected file {path}"


def one_layer(src: str = "data/a.png", extra: str = "", image_extra: str = "") -> str:
    return f'<image w="8" h="8" {NS} {image_extra}><stack><layer name="l" src="{src}" {extra}/></stack></image>'


def load_error(path: Path, kind: type[Exception]) -> FileFormatError:
    with pytest.raises(kind) as info:
        load_ora(path)
    error = info.value
    assert isinstance(error, FileFormatError)
    assert str(path) in str(error), "the message names the file"
    assert "\n" not in str(error)
    return error


def valid_file(folder: Path) -> Path:
    doc = Document(32, 32)
    doc.root.append(PixelLayer("a", TiledSurface.from_array(np.full((20, 20, 4), 200, np.uint8))))
    save_ora(doc, folder / "ok.ora")
    return folder / "ok.ora"


# -- not an OpenRaster archive -------------------------------------------------------------
def test_missing_file(folder: Path) -> None:
    load_error(folder / "nope.ora", FileFormatError)


def test_not_a_zip(folder: Path) -> None:
    path = folder / "text.ora"
    path.write_text("this is not a zip file\n" * 10)
    assert "not a zip" in str(load_error(path, NotAnArchiveError))


def test_empty_file(folder: Path) -> None:
    path = folder / "empty.ora"
    path.write_bytes(b"")
    load_error(path, NotAnArchiveError)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_zip(folder: Path, keep: float) -> None:
    data = valid_file(folder).read_bytes()
    path = folder / "cut.ora"
    path.write_bytes(data[: int(len(data) * keep)])
    load_error(path, NotAnArchiveError)


def test_damaged_member_data_fails_its_checksum(folder: Path) -> None:
    path = valid_file(folder)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("data/layer0001.png")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 40] ^= 0xFF  # flip a byte inside the stored PNG
    path.write_bytes(bytes(data))
    assert "damaged" in str(load_error(path, NotAnArchiveError))


def test_zip_with_another_mimetype(folder: Path) -> None:
    path = write_ora_zip(folder / "kra.ora", one_layer(), {"data/a.png": RED}, mimetype=b"application/x-krita")
    assert "application/x-krita" in str(load_error(path, NotAnArchiveError))


def test_duplicate_entry_names(folder: Path) -> None:
    path = folder / "dup.ora"
    with pytest.warns(UserWarning):  # zipfile itself warns about the duplicate
        write_ora_zip(path, one_layer(), {"data/a.png": RED, "stack.xml": b"<image/>"})
    load_error(path, NotAnArchiveError)


def test_missing_stack_xml(folder: Path) -> None:
    path = write_ora_zip(folder / "nostack.ora", None, {"data/a.png": RED})
    assert "stack.xml" in str(load_error(path, MissingEntryError))


# -- XML ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "xml",
    [
        "<image w='8' h='8'><stack>",  # unclosed
        "<image w='8' h='8'><stack></image>",  # mismatched
        "not xml at all",
        "",
        "<image w='8' h='8'><stack/></image><image/>",  # two roots
        "<image w='8' h='8'><stack><layer src='a' name='&nbsp;'/></stack></image>",  # undefined entity
        "<?xml version='1.0' encoding='utf-99'?><image w='8' h='8'><stack/></image>",  # no such encoding
        b"<image w='8' h='8' name='\xff\xfe'><stack/></image>",  # not UTF-8
    ],
)
def test_malformed_xml(folder: Path, xml: str | bytes) -> None:
    path = write_ora_zip(folder / "bad.ora", xml)
    assert "stack.xml" in str(load_error(path, MalformedXmlError))


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<image w="8" h="8"><stack><layer src="data/a.png" name="&lol3;"/></stack></image>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE image [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<image w="8" h="8"><stack><layer src="data/a.png" name="&xxe;"/></stack></image>"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_dtd_and_entities_are_refused(folder: Path, xml: str) -> None:
    path = write_ora_zip(folder / "dtd.ora", xml, {"data/a.png": RED})
    assert "refused" in str(load_error(path, MalformedXmlError))


def test_dtd_is_refused_in_utf16_too(folder: Path) -> None:
    """The byte scan cannot see a UTF-16 DOCTYPE; the parser's handler still refuses it."""
    data = EXTERNAL_ENTITY.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    path = write_ora_zip(folder / "dtd16.ora", data.encode("utf-16"), {"data/a.png": RED})
    load_error(path, MalformedXmlError)


def test_undeclared_sfumato_prefix_is_read_with_a_warning(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    xml = (
        '<image w="8" h="8" sfumato:prompt="x" sfumato:seed="3" other:thing="1">'
        '<stack><layer src="a.png" name="r" sfumato:role="region" sfumato:prompt="sky"/></stack></image>'
    )
    path = write_ora_zip(folder / "ns.ora", xml, {"a.png": RED})
    with caplog.at_level(logging.WARNING):
        doc = load_ora(path)
    assert 'xmlns:sfumato="urn:sfumato:1"' in caplog.text
    assert (doc.recipe.prompt, doc.recipe.seed) == ("x", 3)
    layer = doc.find("r")
    assert isinstance(layer, PixelLayer) and (layer.role, layer.prompt) == (Role.REGION, "sky")
    assert doc.extra_attributes == {"other:thing": "1"}


def test_undeclared_prefix_on_broken_xml_is_still_malformed(folder: Path) -> None:
    path = write_ora_zip(folder / "ns.ora", '<image w="8" h="8" sfumato:prompt="x"><stack></image>')
    load_error(path, MalformedXmlError)


@pytest.mark.parametrize(
    ("xml", "needle"),
    [
        ("<document w='8' h='8'><stack/></document>", "<document>"),
        ("<image w='8' h='8'></image>", "root <stack>"),
        ("<image h='8'><stack/></image>", "'w'"),
        ("<image w='eight' h='8'><stack/></image>", "whole number"),
        ("<image w='0' h='8'><stack/></image>", "at least 1"),
        ("<image w='8' h='8'><stack><layer src='a.png' x='1e30'/></stack></image>", "x='1e30'"),
        ("<image w='8' h='8'><stack><layer src='a.png' y='nan'/></stack></image>", "y='nan'"),
    ],
)
def test_wrong_structure(folder: Path, xml: str, needle: str) -> None:
    path = write_ora_zip(folder / "s.ora", xml, {"a.png": RED})
    assert needle in str(load_error(path, MalformedXmlError))


def test_nesting_too_deep(folder: Path) -> None:
    depth = ora_archive.MAX_DEPTH + 5
    xml = "<image w='8' h='8'><stack>" + "<stack>" * depth + "</stack>" * depth + "</stack></image>"
    path = write_ora_zip(folder / "deep.ora", xml)
    assert "deeper" in str(load_error(path, MalformedXmlError))


def test_too_many_elements(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ora_archive, "MAX_ELEMENTS", 50)
    xml = "<image w='8' h='8'><stack>" + "<stack/>" * 60 + "</stack></image>"
    path = write_ora_zip(folder / "many.ora", xml)
    load_error(path, MalformedXmlError)


# -- paths ------------------------------------------------------------------------------------
UNSAFE = ["/etc/evil.png", "../evil.png", "data/../../evil.png", "C:/evil.png", "c:evil.png", "data\\evil.png"]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_zip_entry_names_are_refused(folder: Path, name: str) -> None:
    path = folder / "unsafe.ora"
    write_ora_zip(path, one_layer(), {"data/a.png": RED, name: RED})
    load_error(path, UnsafePathError)


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_src_is_refused(folder: Path, name: str) -> None:
    path = write_ora_zip(folder / "src.ora", one_layer(src=name), {"data/a.png": RED})
    load_error(path, UnsafePathError)


def test_src_not_in_the_zip(folder: Path) -> None:
    path = write_ora_zip(folder / "missing.ora", one_layer(src="data/gone.png"), {"data/a.png": RED})
    error = load_error(path, MissingEntryError)
    assert "data/gone.png" in str(error) and "'l'" in str(error)


# -- layer images -----------------------------------------------------------------------------
def jpeg_bytes() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, not an image", jpeg_bytes(), RED[:40], RED[:-20], RED[:33] + b"\x00" * 30 + RED[63:]],
    ids=["empty", "text", "jpeg", "header-only", "truncated", "garbled"],
)
def test_layer_that_is_not_a_valid_png(folder: Path, data: bytes) -> None:
    path = write_ora_zip(folder / "png.ora", one_layer(), {"data/a.png": data})
    error = load_error(path, CorruptImageError)
    assert "'l'" in str(error)


def crafted_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` (with a tiny, wrong IDAT)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("w", "h"), [(100_000, 10), (30_000, 30_000), (0, 5)])
def test_absurd_layer_png_dimensions_are_refused_before_decoding(folder: Path, w: int, h: int) -> None:
    path = write_ora_zip(folder / "bomb.ora", one_layer(), {"data/a.png": crafted_png(w, h)})
    load_error(path, CorruptImageError if w == 0 else ImageTooLargeError)


@pytest.mark.parametrize(("w", "h"), [(40_000, 10), (20_000, 20_000)])
def test_absurd_image_size_is_refused(folder: Path, w: int, h: int) -> None:
    xml = f"<image w='{w}' h='{h}'><stack/></image>"
    path = write_ora_zip(folder / "huge.ora", xml)
    load_error(path, ImageTooLargeError)


def test_total_layer_pixels_are_budgeted(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ora_read, "MAX_LAYER_PIXELS", 10)
    xml = "<image w='8' h='8'><stack><layer src='a.png'/><layer src='a.png'/><layer src='a.png'/></stack></image>"
    path = write_ora_zip(folder / "many.ora", xml, {"a.png": RED})  # 4 px each
    load_error(path, ImageTooLargeError)


def test_zip_bomb_by_declared_size_is_refused_without_reading(folder: Path) -> None:
    path = write_ora_zip(folder / "zbomb.ora", one_layer(), {"data/a.png": RED})
    data = bytearray(path.read_bytes())
    # Rewrite the layer's declared uncompressed size (local and central headers) to ~4 GiB.
    name = b"data/a.png"
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = 0
        while (at := data.find(signature, at)) >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                data[at + offset : at + offset + 4] = struct.pack("<I", 0xFFFFFFF0)
            at += 4
    path.write_bytes(bytes(data))
    assert "limit" in str(load_error(path, ImageTooLargeError))


def test_highly_compressed_entry_over_the_budget(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ora_archive, "MAX_TOTAL_BYTES", 1 << 20)
    path = write_ora_zip(folder / "pad.ora", one_layer(), {"data/a.png": RED, "pad.bin": b"\x00" * (4 << 20)})
    assert path.stat().st_size < 100_000
    load_error(path, ImageTooLargeError)


def test_too_many_entries(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ora_archive, "MAX_ENTRIES", 5)
    entries = {f"data/{i}.png": RED for i in range(6)}
    path = write_ora_zip(folder / "entries.ora", one_layer(src="data/0.png"), entries)
    load_error(path, ImageTooLargeError)


# -- fallbacks (documented) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [("-0.5", 0.0), ("1.7", 1.0), ("nan", 1.0), ("NaN", 1.0), ("inf", 1.0), ("-inf", 0.0), ("half", 1.0), (" 0.25 ", 0.25)],
)
def test_bad_opacity_falls_back(folder: Path, text: str, expected: float) -> None:
    path = write_ora_zip(folder / "op.ora", one_layer(extra=f'opacity="{text}"'), {"data/a.png": RED})
    layer = load_ora(path).find("l")
    assert layer is not None and layer.opacity == expected and not math.isnan(layer.opacity)


def test_unknown_role_is_read_as_paint_with_a_warning(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_ora_zip(folder / "role.ora", one_layer(extra='sfumato:role="hologram"'), {"data/a.png": RED})
    with caplog.at_level(logging.WARNING):
        layer = load_ora(path).find("l")
    assert isinstance(layer, PixelLayer) and layer.role is Role.PAINT
    assert "hologram" in caplog.text


BAD_ATTRIBUTES = [
    ("", 'sfumato:steps="many"', "steps"),
    ("", 'sfumato:steps="0"', "steps"),
    ("", 'sfumato:seed="-1"', "seed"),
    ("", 'sfumato:seed="1.5"', "seed"),
    ("", 'sfumato:cfg="nan"', "cfg"),
    ("", 'sfumato:strength="inf"', "strength"),
    ("", 'sfumato:sampler="warp drive"', "sampler"),
    ('sfumato:role="control" sfumato:control="telepathy"', "", "telepathy"),
    ('sfumato:role="control" sfumato:strength="strong"', "", "strength"),
    ('sfumato:role="control" sfumato:start="0.8" sfumato:end="0.2"', "", "start"),
    ("sfumato:role=\"generated\" sfumato:generation='{not json'", "", "generation"),
    ("sfumato:role=\"generated\" sfumato:generation='[1, 2]'", "", "generation"),
]


@pytest.mark.parametrize(("layer_attrs", "image_attrs", "needle"), BAD_ATTRIBUTES)
def test_bad_sfumato_attributes(folder: Path, layer_attrs: str, image_attrs: str, needle: str) -> None:
    xml = one_layer(extra=layer_attrs, image_extra=image_attrs)
    path = write_ora_zip(folder / "attr.ora", xml, {"data/a.png": RED})
    assert needle in str(load_error(path, BadAttributeError))
    # Non-strict reading opens the pixels and drops the bad value.
    doc = load_ora(path, strict=False)
    layer = doc.find("l")
    assert isinstance(layer, PixelLayer) and not layer.surface.is_empty()
    assert layer.generation is None
    assert doc.recipe.steps is None and doc.recipe.seed is None and doc.recipe.sampler is None


def test_missing_src_reads_an_empty_layer(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    xml = "<image w='8' h='8'><stack><layer name='nothing'/></stack></image>"
    path = write_ora_zip(folder / "nosrc.ora", xml)
    with caplog.at_level(logging.WARNING):
        layer = load_ora(path).find("nothing")
    assert isinstance(layer, PixelLayer) and layer.surface.is_empty()
    assert "no src" in caplog.text


def test_nothing_is_extracted_even_for_a_valid_file(folder: Path) -> None:
    """Reading a normal file writes nothing (checked by the fixture) and leaves it as it was."""
    path = valid_file(folder)
    before = path.read_bytes()
    load_ora(path)
    assert path.read_bytes() == before


def test_random_damage_never_crashes(folder: Path) -> None:
    """Seeded fuzzing: flipped bytes and truncations anywhere give a FileFormatError (or a
    document, when the damage hit nothing that matters), never another exception."""
    import random

    base = valid_file(folder).read_bytes()
    rng = random.Random(1234)
    path = folder / "fuzz.ora"
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        try:
            load_ora(path)
        except FileFormatError as error:
            assert str(path) in str(error)

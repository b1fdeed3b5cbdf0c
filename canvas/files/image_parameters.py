"""The generation parameters stored in image files: PNG text chunks and JPEG/WebP EXIF.

PNGs carry them in ``tEXt``/``zTXt``/``iTXt`` chunks: A1111/Forge/Sfumato write
``parameters`` text (:mod:`sfumato.canvas.files.parameters`), ComfyUI its ``prompt`` graph
(:mod:`sfumato.canvas.files.comfyui_prompt`). JPEG and WebP carry the ``parameters`` text in the
EXIF ``UserComment`` tag. Only headers and chunks are read, never the pixels, and
compressed text is inflated within :data:`MAX_TEXT_BYTES`.
"""

from __future__ import annotations

import logging
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

from sfumato.canvas.files.comfyui_prompt import parse_comfyui_prompt
from sfumato.canvas.files.parameters import parse_parameters

log = logging.getLogger(__name__)

MAX_TEXT_BYTES = 8 << 20  # one text chunk, decompressed

def read_png_text(path: str | Path, keys: tuple[str, ...] = ("parameters", "prompt")) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks named ``keys`` of a PNG, read without decoding pixels.

    Walks the chunk list and stops at ``IEND``; chunks whose CRC does not match are
    skipped; compressed text is inflated with a bound (:data:`MAX_TEXT_BYTES`). Returns ``{}`` for files that are not PNGs or are damaged.
    """
    found: dict[str, str] = {}
    try:
        with Path(path).open("rb") as handle:
            if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                return {}
            while True:
                header = handle.read(8)
                if len(header) < 8:
                    break
                length, kind = struct.unpack(">I4s", header)
                if kind == b"IEND":
                    break
                if kind in (b"tEXt", b"zTXt", b"iTXt") and length <= MAX_TEXT_BYTES:
                    body = handle.read(length)
                    crc = handle.read(4)
                    if len(crc) < 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
                        log.info("%s: damaged %s chunk skipped", path, kind.decode())
                        continue
                    item = _text_chunk(kind, body)
                    if item is not None and item[0] in keys and item[0] not in found:
                        found[item[0]] = item[1]
                else:
                    handle.seek(length + 4, 1)
    except (OSError, struct.error) as exc:
        log.info("could not read text chunks of %s: %s", path, exc)
    return found


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str] | None:
    key, sep, rest = data.partition(b"\x00")
    if not sep:
        return None
    name = key.decode("latin-1")
    try:
        if kind == b"tEXt":
            return name, rest.decode("latin-1")
        if kind == b"zTXt":
            return name, _inflate(rest[1:]).decode("latin-1")
        compressed = rest[0:1] == b"\x01"  # rest[1] is the method: 0 = zlib
        _lang, _, rest = rest[2:].partition(b"\x00")
        _translated, _, body = rest.partition(b"\x00")
        return name, (_inflate(body) if compressed else body).decode("utf-8")
    except (zlib.error, UnicodeDecodeError, ValueError, IndexError):
        return None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("text chunk is damaged or inflates beyond the limit")
    return out


def read_png_parameters(path: str | Path) -> dict[str, Any] | None:
    """The generation parameters stored in a PNG, or ``None`` if it carries none.

    Reads A1111/Forge/Sfumato ``parameters`` text first, then ComfyUI's ``prompt`` graph.
    """
    chunks = read_png_text(path)
    if "parameters" in chunks and chunks["parameters"].strip():
        return parse_parameters(chunks["parameters"])
    if "prompt" in chunks:
        return parse_comfyui_prompt(chunks["prompt"])
    return None


def read_image_parameters(path: str | Path) -> dict[str, Any] | None:
    """Generation parameters of a PNG, JPEG or WebP file, or ``None`` if it has none.

    PNGs: see :func:`read_png_parameters`. JPEG and WebP: A1111/Forge store the same
    text in the EXIF ``UserComment`` tag (``UNICODE\\0`` + UTF-16, or ``ASCII\\0\\0\\0``);
    only the EXIF header is read, never the pixels.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            magic = handle.read(8)
    except OSError:
        return None
    if magic.startswith(b"\x89PNG"):
        return read_png_parameters(path)
    text = _exif_user_comment(path)
    return parse_parameters(text) if text and text.strip() else None


def _exif_user_comment(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        # Only the header is read; its size was checked by the caller's decode, so
        # Pillow's own bomb check (at its default, lower than ours) must not refuse it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=["JPEG", "WEBP"]) as image:
                raw = image.getexif().get_ifd(0x8769).get(0x9286)
    except Image.DecompressionBombError as exc:
        log.info("no EXIF parameters read from %s: %s", path, exc)
        return None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        log.info("no EXIF parameters in %s: %s", path, exc)
        return None
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes) or len(raw) > MAX_TEXT_BYTES:
        return None
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        # piexif (A1111) writes big-endian; some tools write little-endian with a BOM.
        if body.startswith((b"\xff\xfe", b"\xfe\xff")):
            return body.decode("utf-16", "replace")
        # Mostly-ASCII text has its zero bytes first in each pair when big-endian.
        zeros_first, zeros_second = body[0::2].count(0), body[1::2].count(0)
        return body.decode("utf-16-be" if zeros_first >= zeros_second else "utf-16-le", "replace")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body.decode("latin-1").rstrip("\x00")
    return raw.decode("utf-8", "replace").rstrip("\x00")

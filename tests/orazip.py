"""Test helper: build OpenRaster zips by hand (as other programs, or attackers, write them)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG bytes of an ``(h, w, 4)`` uint8 RGBA array."""
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, "PNG")
    return out.getvalue()


def solid(w: int, h: int, rgba: tuple[int, int, int, int]) -> np.ndarray:
    pixels = np.zeros((h, w, 4), np.uint8)
    pixels[...] = rgba
    return pixels


def write_ora_zip(
    path: Path,
    stack_xml: str | bytes | None,
    entries: dict[str, bytes] | None = None,
    *,
    mimetype: bytes | None = b"image/openraster",
) -> Path:
    """Write a zip with ``mimetype`` (stored, first), ``stack.xml`` and ``entries``."""
    with zipfile.ZipFile(path, "w") as zf:
        if mimetype is not None:
            zf.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        if stack_xml is not None:
            data = stack_xml.encode("utf-8") if isinstance(stack_xml, str) else stack_xml
            zf.writestr("stack.xml", data, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in (entries or {}).items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path

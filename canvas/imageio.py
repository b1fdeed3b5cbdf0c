"""Raster images in and out: PNG/JPEG/WebP import as layers, flattened PNG export.

Everything here returns or takes **straight-alpha RGBA uint8** arrays of shape
``(height, width, 4)`` (the canvas's pixel format). Decoding never trusts the file:
the format is checked against an allow-list, image dimensions are checked from the
header *before* any pixel is decoded (:data:`MAX_SIDE` a side, :data:`MAX_PIXELS` in
all), and every decoder failure becomes a :class:`~sfumato.canvas.file_errors.CorruptImageError`.

PNG export writes the generation parameters as a ``parameters`` text chunk (tEXt, or
iTXt when the text is not Latin-1), the de-facto format other Stable Diffusion tools
show and re-import (see :mod:`sfumato.canvas.parameters`).
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError
from sfumato.canvas.atomic_file import atomic_write
from sfumato.canvas.composite import flatten
from sfumato.canvas.document import MAX_SIDE, Document
from sfumato.canvas.file_errors import (
    CorruptImageError,
    FileFormatError,
    ImageTooLargeError,
    SaveError,
    UnsupportedFormatError,
)
from sfumato.canvas.layers import PixelLayer
from sfumato.canvas.tiles import TiledSurface

log = logging.getLogger(__name__)

__all__ = [
    "IMPORT_FORMATS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "check_dimensions",
    "decode_png_bytes",
    "encode_png",
    "export_png",
    "image_to_rgba",
    "load_image_document",
    "load_image_layer",
    "png_size",
    "save_png",
]

MAX_PIXELS = 1 << 28
"""Largest image we decode: 2^28 pixels (1 GiB as RGBA). Also the document limit."""

IMPORT_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
"""Pillow format id -> name shown to users. Only these decoders ever run on user files."""

IMPORT_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".webp"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_pil_lock = threading.Lock()


# -- limits --------------------------------------------------------------------------------
def check_dimensions(width: int, height: int, *, path: str | Path | None, what: str) -> None:
    """Raise :class:`ImageTooLargeError` unless ``width``×``height`` is within the limits."""
    if width <= 0 or height <= 0:
        raise CorruptImageError(path, f"{what} has an impossible size {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            path,
            f"{what} is {width}x{height} pixels, beyond the safety limit "
            f"({MAX_SIDE} a side, {MAX_PIXELS:,} pixels in all); it may be a decompression "
            "bomb. Scale it down in another program first.",
        )


def png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR chunk, or ``None`` when ``data`` is no PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _open_image(source: IO[bytes], *, path: str | Path | None, what: str) -> Image.Image:
    """Open (not decode) an image with Pillow, allowing only :data:`IMPORT_FORMATS`.

    Pillow's own decompression-bomb check is set to our limit for the duration of the
    open (under a lock, since the setting is process-wide), and our own limit is checked
    on the header size before the caller decodes anything. PNGs get their chunk CRCs
    verified (cheap: no decompression) so damage is reported instead of decoded.
    """
    with _pil_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(source, formats=list(IMPORT_FORMATS))
                if image.format == "PNG":
                    # Check every chunk's CRC first: a damaged PNG must not decode to
                    # plausible garbage. verify() consumes the image, so open it again.
                    image.verify()
                    source.seek(0)
                    image = Image.open(source, formats=["PNG"])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(path, f"{what} is too large to open safely ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise UnsupportedFormatError(
                path,
                f"{what} is not a PNG, JPEG or WebP image (or it is damaged)",
            ) from exc
        except (OSError, SyntaxError, ValueError, struct.error) as exc:
            raise CorruptImageError(path, f"{what} cannot be read: {exc}") from exc
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    check_dimensions(image.width, image.height, path=path, what=what)
    return image


# -- decoding ------------------------------------------------------------------------------
def decode_png_bytes(data: bytes, *, path: str | Path | None, what: str) -> np.ndarray:
    """Decode PNG bytes to straight RGBA uint8 ``(h, w, 4)``.

    The PNG signature and IHDR size are checked before Pillow sees the data; anything
    that is not a PNG raises :class:`CorruptImageError` (even if it is another format
    Pillow could read: OpenRaster layers must be PNG).
    """
    size = png_size(data)
    if size is None:
        raise CorruptImageError(path, f"{what} is not a PNG image")
    check_dimensions(*size, path=path, what=what)
    try:
        image = _open_image(io.BytesIO(data), path=path, what=what)
    except UnsupportedFormatError as exc:  # it has a PNG signature: a damaged PNG
        raise CorruptImageError(path, f"{what} is a damaged PNG image") from exc
    if image.format != "PNG":
        raise CorruptImageError(path, f"{what} is not a PNG image")
    return _to_rgba_array(image, path=path, what=what, transpose=False)


def image_to_rgba(path: str | Path) -> np.ndarray:
    """Read a PNG, JPEG or WebP file as straight RGBA uint8 ``(h, w, 4)``.

    Applies the EXIF orientation (so phone photos stand upright), converts embedded ICC
    colour profiles to sRGB, and converts every mode (palette, greyscale, 16-bit, CMYK)
    to 8-bit RGBA. Animated images give their first frame.
    """
    path = Path(path)
    what = f"image {path.name!r}"
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise FileFormatError(path, "file not found") from exc
    except OSError as exc:
        raise FileFormatError(path, f"cannot open: {exc.strerror or exc}") from exc
    with handle:
        image = _open_image(handle, path=path, what=what)
        return _to_rgba_array(image, path=path, what=what, transpose=True)


def _to_rgba_array(
    image: Image.Image, *, path: str | Path | None, what: str, transpose: bool
) -> np.ndarray:
    try:
        image.load()
        if transpose:
            image = ImageOps.exif_transpose(image)
        image = _to_srgb(image)
        rgba = _convert_rgba(image)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise CorruptImageError(path, f"{what} is damaged and cannot be decoded ({exc})") from exc
    array = np.asarray(rgba, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 4:  # pragma: no cover - Pillow contract
        raise CorruptImageError(path, f"{what} decoded to an unexpected shape {array.shape}")
    return np.ascontiguousarray(array)


def _convert_rgba(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGBA, scaling (not clipping) 16-bit and float data."""
    mode = image.mode
    if mode == "RGBA":
        return image
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N") or mode.startswith("I;16"):
        values = np.asarray(image).astype(np.int64)
        grey = np.clip(values >> 8 if values.max(initial=0) > 255 else values, 0, 255)
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGBA")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGBA")
    if mode in ("P", "PA"):
        return image.convert("RGBA")  # palette transparency becomes alpha
    return image.convert("RGBA")


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert an embedded ICC profile to sRGB; images without one are assumed sRGB."""
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    try:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(image, source, target, outputMode=image.mode)
        return converted if converted is not None else image
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.warning("ignoring an unusable ICC profile: %s", exc)
        return image


def load_image_layer(path: str | Path, *, name: str | None = None) -> PixelLayer:
    """A new paint layer (named after the file) holding the image at ``(0, 0)``."""
    path = Path(path)
    pixels = image_to_rgba(path)
    return PixelLayer(name or path.stem, TiledSurface.from_array(pixels))


def load_image_document(path: str | Path) -> Document:
    """A document the size of the image, holding it as its one layer (active).

    Generation parameters stored in the file (a PNG's ``parameters`` chunk from Sfumato,
    A1111, Forge or ComfyUI; a JPEG's or WebP's EXIF UserComment from A1111/Forge) fill
    the document's recipe, so its prompt and seed can be reused.
    """
    from sfumato.canvas.parameters import read_image_parameters, recipe_from_parameters

    path = Path(path)
    pixels = image_to_rgba(path)
    layer = PixelLayer(path.stem, TiledSurface.from_array(pixels))
    doc = Document(pixels.shape[1], pixels.shape[0])
    doc.root.append(layer)
    doc.active = layer
    params = read_image_parameters(path)
    if params:
        doc.recipe = recipe_from_parameters(params)
    return doc


# -- encoding ------------------------------------------------------------------------------
def encode_png(rgba: np.ndarray, *, text: dict[str, str] | None = None, compress_level: int = 6) -> bytes:
    """PNG bytes of a straight RGBA uint8 ``(h, w, 4)`` array, with optional text chunks.

    Text is written as tEXt when it is Latin-1 and as iTXt (UTF-8) otherwise, as A1111
    does through Pillow.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected (h, w, 4) uint8 pixels, got {rgba.shape} {rgba.dtype}")
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(
        out, "PNG", pnginfo=info, compress_level=compress_level
    )
    return out.getvalue()


def save_png(rgba: np.ndarray, path: str | Path, parameters: str | None = None) -> None:
    """Atomically write ``rgba`` (straight RGBA uint8) as a PNG with a ``parameters`` chunk."""
    path = Path(path)
    data = encode_png(rgba, text={"parameters": parameters} if parameters else None)
    try:
        with atomic_write(path) as handle:
            handle.write(data)
    except OSError as exc:
        raise SaveError(path, f"could not save: {exc.strerror or exc}") from exc


def export_png(doc: Document, path: str | Path, parameters: str | None = None) -> None:
    """Flatten ``doc`` (image layers only, as the canvas composites it) and save it as PNG.

    ``parameters`` is the A1111-style text (see
    :func:`sfumato.canvas.parameters.format_parameters`); ``None`` writes no chunk.
    The write is atomic: a failure leaves any previous file at ``path`` as it was.
    """
    save_png(flatten(doc), path, parameters)


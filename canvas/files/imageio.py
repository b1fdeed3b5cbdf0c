"""Raster images in and out: PNG/JPEG/WebP import as layers, flattened PNG export.

Everything here returns or takes **straight-alpha RGBA uint8** arrays of shape
``(height, width, 4)`` (the canvas's pixel format). Decoding never trusts the file:
the format is checked against an allow-list, image dimensions and the memory the decode
will take are checked from the header *before* any pixel is decoded (:data:`MAX_SIDE` a
side, :func:`~sfumato.canvas.files.limits.max_image_pixels` in all, the memory budget of
:mod:`sfumato.canvas.files.limits`), and every decoder failure becomes a
:class:`~sfumato.canvas.files.file_errors.CorruptImageError`. Decoded pictures are converted
to RGBA a strip of rows at a time, straight into a layer's tiles
(:func:`decode_into_surface`), so no second full-size copy is ever made.

PNG export writes the generation parameters as a ``parameters`` text chunk (tEXt, or
iTXt when the text is not Latin-1), the de-facto format other Stable Diffusion tools
show and re-import (see :mod:`sfumato.canvas.files.parameters` and
:mod:`sfumato.canvas.files.image_parameters`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError
from sfumato.canvas.files.file_errors import (
    CorruptImageError,
    ImageTooLargeError,
    SaveError,
    UnsupportedFormatError,
)
from sfumato.canvas.files.image_parameters import read_image_parameters
from sfumato.canvas.files.limits import (
    DECODE_BYTES_PER_PIXEL,
    Budget,
    format_bytes,
    max_image_pixels,
    memory_budget,
    open_regular,
    tile_bytes,
)
from sfumato.canvas.files.recipe_parameters import recipe_from_parameters
from sfumato.canvas.model.document import MAX_SIDE, Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.atomic_file import atomic_write

log = logging.getLogger(__name__)

__all__ = [
    "IMPORT_FORMATS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "check_dimensions",
    "decode_into_surface",
    "decode_png_bytes",
    "encode_png",
    "export_png",
    "image_to_rgba",
    "load_image_document",
    "load_image_layer",
    "png_header",
    "png_size",
    "save_png",
]

MAX_PIXELS = 1 << 28
"""Largest image decoded under the default 4 GiB budget: 2^28 pixels (1 GiB as RGBA).
Also the document limit. The limit in force is :func:`~sfumato.canvas.files.limits.max_image_pixels`."""

STRIP_ROWS = 256  # rows converted to RGBA at a time

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
    limit = max_image_pixels()
    if width > MAX_SIDE or height > MAX_SIDE or width * height > limit:
        raise ImageTooLargeError(
            path,
            f"{what} is {width}x{height} pixels, beyond the safety limit "
            f"({MAX_SIDE} a side, {limit:,} pixels in all: a 16th of the "
            f"{format_bytes(memory_budget())} memory budget); it may be a decompression bomb. "
            "Scale it down in another program first.",
        )


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """``(width, height, bit depth, colour type)`` from a PNG's IHDR, or ``None``."""
    size = png_size(data)
    if size is None or len(data) < 26:
        return None
    return size[0], size[1], data[24], data[25]


def png_decode_bytes(bit_depth: int, colour_type: int) -> int:
    """Bytes a pixel takes in the picture Pillow decodes a PNG of this kind into."""
    if colour_type == 3 or (colour_type == 0 and bit_depth <= 8):
        return 1  # P, L (and 1-bit)
    if colour_type == 0:
        return 2  # I;16
    return DECODE_BYTES_PER_PIXEL  # RGB, LA, RGBA: four bytes in Pillow, 16-bit ones too


def _mode_bytes(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return DECODE_BYTES_PER_PIXEL


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
        # Pillow's own bomb check only past anything we could accept: ours (below) names the limit.
        Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
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
    header = png_header(data)
    if header is None:
        raise CorruptImageError(path, f"{what} is not a PNG image")
    surface = decode_into_surface(data, path=path, what=what)
    return surface.read(Rect(0, 0, header[0], header[1]))


def decode_into_surface(
    data: bytes,
    *,
    path: str | Path | None,
    what: str,
    x: int = 0,
    y: int = 0,
    keep: Rect | None = None,
    surface: TiledSurface | None = None,
) -> TiledSurface:
    """Decode PNG bytes into a surface, its top-left pixel at ``(x, y)`` (surface space).

    Only the pixels inside ``keep`` (surface space; everything when ``None``) are kept;
    the rest is dropped while converting, a strip of rows at a time. Signature and size
    are checked first, as :func:`decode_png_bytes` does.
    """
    header = png_header(data)
    if header is None:
        raise CorruptImageError(path, f"{what} is not a PNG image")
    check_dimensions(header[0], header[1], path=path, what=what)
    try:
        image = _open_image(io.BytesIO(data), path=path, what=what)
    except UnsupportedFormatError as exc:  # it has a PNG signature: a damaged PNG
        raise CorruptImageError(path, f"{what} is a damaged PNG image") from exc
    if image.format != "PNG":
        raise CorruptImageError(path, f"{what} is not a PNG image")
    out = TiledSurface() if surface is None else surface
    _decode_strips(image, out, x, y, keep, path=path, what=what, transpose=False)
    return out


def image_cost(path: str | Path) -> Budget:
    """What opening the image at ``path`` as a layer costs, from its header (not decoded)."""
    path = Path(path)
    what = f"image {path.name!r}"
    with open_regular(path) as handle:
        return _image_budget(_open_image(handle, path=path, what=what), path)


def _image_budget(image: Any, path: Path) -> Budget:
    """The tiles an opened (not decoded) picture fills and its largest decode."""
    budget = Budget(path)
    budget.add(tile_bytes(Rect(0, 0, image.width, image.height)), _decode_cost(image, path))
    return budget


def _decode_cost(image: Image.Image, path: Path | None) -> int:
    """Bytes the decode needs for a while: the compressed file and the decoded picture
    (twice that when an EXIF orientation turns it)."""
    pixels = image.width * image.height * _mode_bytes(image.mode)
    turned = image.format in ("JPEG", "WEBP") and _orientation(image) not in (None, 1)
    size = 0
    if path is not None:
        with contextlib.suppress(OSError):
            size = path.stat().st_size
    return size + pixels * (2 if turned else 1)


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a damaged EXIF block only loses the orientation
        return None
    return value if isinstance(value, int) else None


def image_to_rgba(path: str | Path) -> np.ndarray:
    """Read a PNG, JPEG or WebP file as straight RGBA uint8 ``(h, w, 4)``.

    Applies the EXIF orientation (so phone photos stand upright), converts embedded ICC
    colour profiles to sRGB, and converts every mode (palette, greyscale, 16-bit, CMYK)
    to 8-bit RGBA. Animated images give their first frame.
    """
    surface, width, height = image_to_surface(path)
    return surface.read(Rect(0, 0, width, height))


def image_to_surface(path: str | Path) -> tuple[TiledSurface, int, int]:
    """Read a PNG, JPEG or WebP file into a new surface at ``(0, 0)``: ``(surface, w, h)``.

    As :func:`image_to_rgba`, without a full-size array: the memory it takes is checked
    against the budget from the header first, then the picture is converted a strip at
    a time.
    """
    path = Path(path)
    what = f"image {path.name!r}"
    with open_regular(path) as handle:
        image = _open_image(handle, path=path, what=what)
        _image_budget(image, path).check()
        surface = TiledSurface()
        width, height = _decode_strips(image, surface, 0, 0, None, path=path, what=what, transpose=True)
    return surface, width, height


def _decode_strips(
    image: Image.Image,
    surface: TiledSurface,
    x: int,
    y: int,
    keep: Rect | None,
    *,
    path: str | Path | None,
    what: str,
    transpose: bool,
) -> tuple[int, int]:
    """Decode ``image`` and write it into ``surface`` at ``(x, y)`` as RGBA, strip by strip.

    Returns the (possibly EXIF-turned) size.
    """
    try:
        with _pillow_limit():
            image.load()
            if transpose:
                image = ImageOps.exif_transpose(image)
        width, height = image.size
        area = Rect(x, y, width, height) if keep is None else Rect(x, y, width, height).intersect(keep)
        if area.empty:
            return width, height
        to_srgb = _srgb_transform(image)
        scale = _scale_for(image)
        for top in range(area.y, area.y1, STRIP_ROWS):
            bottom = min(top + STRIP_ROWS, area.y1)
            strip = image.crop((area.x - x, top - y, area.x1 - x, bottom - y))
            if to_srgb is not None:
                strip = to_srgb(strip)
            rgba = np.asarray(_convert_rgba(strip, scale), dtype=np.uint8)
            if rgba.ndim != 3 or rgba.shape[2] != 4:  # pragma: no cover - Pillow contract
                raise CorruptImageError(path, f"{what} decoded to an unexpected shape {rgba.shape}")
            surface.write(area.x, top, rgba)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise CorruptImageError(path, f"{what} is damaged and cannot be decoded ({exc})") from exc
    return width, height


@contextlib.contextmanager
def _pillow_limit() -> Iterator[None]:
    """Pillow's process-wide bomb check, past anything our own limits accept, while a
    picture whose size we have already checked decodes (JPEG checks again on load)."""
    with _pil_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _scale_for(image: Image.Image) -> float | None:
    """16-bit and float pictures are scaled as a whole (the same factor for every strip)."""
    mode = image.mode
    if mode == "I" or mode.startswith("I;16"):
        high = image.getextrema()[1]
        return 1 / 256 if isinstance(high, int | float) and high > 255 else 1.0
    if mode == "F":
        high = image.getextrema()[1]
        return 255.0 if isinstance(high, int | float) and high <= 1.0 else 1.0
    return None


def _convert_rgba(image: Image.Image, scale: float | None = None) -> Image.Image:
    """Any Pillow mode -> 8-bit RGBA, scaling (not clipping) 16-bit and float data.

    ``scale`` multiplies 16-bit and float values (see :func:`_scale_for`); by default it
    is worked out from ``image`` itself.
    """
    mode = image.mode
    if mode == "RGBA":
        return image
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(image).astype(np.int64)
        if scale is None:
            scale = 1 / 256 if values.max(initial=0) > 255 else 1.0
        grey = np.clip(values >> 8 if scale < 1 else values, 0, 255)
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGBA")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if scale is None:
            scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        grey = np.rint(np.clip(values * scale if scale != 1.0 else values, 0, 255)).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGBA")
    if mode in ("P", "PA"):
        return image.convert("RGBA")  # palette transparency becomes alpha
    return image.convert("RGBA")


def _srgb_transform(image: Image.Image) -> Callable[[Image.Image], Image.Image] | None:
    """A function converting strips of ``image`` from its embedded ICC profile to sRGB,
    or ``None`` when it has none (images without one are assumed sRGB)."""
    icc = image.info.get("icc_profile")
    if not icc:
        return None
    mode = "RGBA" if "A" in image.mode or "transparency" in image.info else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        transform = ImageCms.buildTransform(source, target, mode, mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.warning("ignoring an unusable ICC profile: %s", exc)
        return None
    failed: list[bool] = []

    def convert(strip: Image.Image) -> Image.Image:
        if failed:
            return strip
        if strip.mode != mode:
            strip = strip.convert(mode)
        try:
            converted = ImageCms.applyTransform(strip, transform)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            log.warning("ignoring an unusable ICC profile: %s", exc)
            failed.append(True)
            return strip
        return converted if converted is not None else strip

    return convert


def load_image_layer(path: str | Path, *, name: str | None = None) -> PixelLayer:
    """A new paint layer (named after the file) holding the image at ``(0, 0)``."""
    path = Path(path)
    surface, _, _ = image_to_surface(path)
    return PixelLayer(name or path.stem, surface)


def load_image_document(path: str | Path) -> Document:
    """A document the size of the image, holding it as its one layer (active).

    Generation parameters stored in the file (a PNG's ``parameters`` chunk from Sfumato,
    A1111, Forge or ComfyUI; a JPEG's or WebP's EXIF UserComment from A1111/Forge) fill
    the document's recipe, so its prompt and seed can be reused.
    """
    path = Path(path)
    surface, width, height = image_to_surface(path)
    layer = PixelLayer(path.stem, surface)
    doc = Document(width, height)
    doc.root.append(layer)
    doc.active = layer
    params = read_image_parameters(path)
    if params:
        doc.recipe = recipe_from_parameters(params, source=path)
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
    :func:`sfumato.canvas.files.parameters.format_parameters`); ``None`` writes no chunk.
    The write is atomic: a failure leaves any previous file at ``path`` as it was.
    """
    save_png(flatten(doc), path, parameters)


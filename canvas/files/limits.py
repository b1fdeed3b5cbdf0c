"""The memory budget for reading files, the limits derived from it, and safe opening.

Every reader (OpenRaster, PNG/JPEG/WebP, PSD) works out from the file's headers what
opening it will cost *before* it decodes or allocates anything, and refuses a file whose
cost is over :func:`memory_budget` with an :class:`ImageTooLargeError` that names the
limit. The cost model (bytes; documented in ``docs/file-format.md``, "Limits"):

- a layer keeps its pixels in 256×256 RGBA tiles: :data:`TILE_BYTES` (256 KiB) for every
  tile its rectangle touches, counted once per use (four layers sharing one PNG cost four
  times), after cropping to the kept area (:func:`kept_area`);
- decoding one image needs, for the time it is decoded, its compressed bytes plus the
  decoder's own picture (:data:`DECODE_BYTES_PER_PIXEL` per pixel at most: Pillow holds
  every decoded PNG/JPEG/WebP in at most 4 bytes a pixel) — layers are converted into
  tiles a strip at a time, so no second full-size copy is made;
- opening a file costs the sum of what its layers keep plus the largest decode.

One image may hold at most :func:`max_image_pixels` pixels (the budget / 16: its decode
and its tiles together stay under half the budget). Sizes are also capped at
:data:`~sfumato.canvas.model.document.MAX_SIDE` a side.

The budget is 4 GiB unless the environment variable ``SFUMATO_MEMORY_BUDGET`` says
otherwise (``512M``, ``8G``, or bytes); the tests use a small one to exercise the limits
with small files.

:func:`open_regular` opens a user's file only when it is a regular file: a named pipe
would block forever and a device never ends.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sfumato.canvas.files.file_errors import FileFormatError, ImageTooLargeError
from sfumato.canvas.model.document import MAX_SIDE
from sfumato.canvas.model.geometry import Rect
from sfumato.vocabulary import regular_file
from sfumato.vocabulary.regular_file import NotRegularFileError, special_kind

__all__ = [
    "BUDGET_ENV",
    "DECODE_BYTES_PER_PIXEL",
    "DEFAULT_MEMORY_BUDGET",
    "KEEP_MARGIN",
    "TILE_BYTES",
    "Budget",
    "format_bytes",
    "kept_area",
    "max_image_pixels",
    "memory_budget",
    "open_regular",
    "require_regular_file",
    "tile_bytes",
]

DEFAULT_MEMORY_BUDGET = 4 << 30
"""The most memory reading one file may take, beyond the program's own (4 GiB)."""

BUDGET_ENV = "SFUMATO_MEMORY_BUDGET"
TILE = 256
TILE_BYTES = TILE * TILE * 4
DECODE_BYTES_PER_PIXEL = 4
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def memory_budget() -> int:
    """The budget in bytes: ``SFUMATO_MEMORY_BUDGET`` when set and valid, else 4 GiB."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        match = _SIZE.match(text)
        if match is not None:
            value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
            if value > 0:
                return value
    return DEFAULT_MEMORY_BUDGET


def max_image_pixels() -> int:
    """The most pixels one image (or the canvas) may have: the budget / 16, at most 32768²."""
    return min(memory_budget() // 16, MAX_SIDE * MAX_SIDE)


def format_bytes(count: int) -> str:
    """``4 GiB``, ``1.5 GiB``, ``640 MiB``: binary units, as the documentation states them."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"


KEEP_MARGIN = 2048
"""Layer pixels are kept up to this far beyond the canvas, or one canvas size if more."""


def kept_area(width: int, height: int) -> Rect:
    """What a reader keeps of a layer: the canvas and a margin beyond each edge.

    The margin is one canvas width (height), at least :data:`KEEP_MARGIN` pixels. Pixels
    farther out are dropped while decoding (with a warning), so a huge layer on a small
    canvas costs only what is kept.
    """
    mx, my = max(width, KEEP_MARGIN), max(height, KEEP_MARGIN)
    return Rect(-mx, -my, width + 2 * mx, height + 2 * my)


def tile_bytes(rect: Rect) -> int:
    """Bytes of the tiles ``rect`` (surface space) touches: what a layer there keeps."""
    if rect.empty:
        return 0
    columns = (rect.x1 - 1) // TILE - rect.x // TILE + 1
    rows = (rect.y1 - 1) // TILE - rect.y // TILE + 1
    return columns * rows * TILE_BYTES


@dataclass
class Budget:
    """Adds up what reading a file will cost, from its headers, before decoding anything.

    ``keep`` is what a layer keeps (its tiles), ``decode`` what decoding it needs for a
    while (compressed bytes and the decoder's picture); the file costs the sum of what
    its layers keep plus its largest decode. :meth:`check` raises when that is over the
    budget.
    """

    path: Path | None
    limit: int = 0
    kept: int = 0
    peak_decode: int = 0
    layers: int = 0

    def __post_init__(self) -> None:
        if self.limit <= 0:
            self.limit = memory_budget()

    @property
    def total(self) -> int:
        return self.kept + self.peak_decode

    def add(self, keep: int, decode: int) -> None:
        self.kept += keep
        self.peak_decode = max(self.peak_decode, decode)
        self.layers += 1

    def check(self, what: str = "opening it") -> None:
        if self.total <= self.limit:
            return
        raise ImageTooLargeError(
            self.path,
            f"{what} would take about {format_bytes(self.total)} of memory "
            f"({format_bytes(self.kept)} kept by {self.layers} layer(s), "
            f"{format_bytes(self.peak_decode)} to decode the largest), over the memory "
            f"budget of {format_bytes(self.limit)} (set {BUDGET_ENV} to change it)",
        )


def _kind(mode: int) -> str:
    return _kind_of(special_kind(mode))


def _kind_of(kind: str) -> str:
    if kind == "a folder":
        return "is a folder, not a file"
    if kind == "not a regular file":
        return "is not a regular file; Sfumato opens only regular files"
    return f"is {kind}, not a regular file; Sfumato opens only regular files"


def require_regular_file(path: str | Path) -> None:
    """Raise :class:`FileFormatError` unless ``path`` is a regular file (links followed)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileFormatError(path, "file not found") from None
    except OSError as exc:
        raise FileFormatError(path, f"cannot open: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise FileFormatError(path, _kind(mode))


def open_regular(path: str | Path) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything but a regular file, with the
    reason as a :class:`FileFormatError` (the rule itself is the vocabulary's
    :func:`~sfumato.vocabulary.regular_file.open_regular`: opened non-blocking, checked
    with ``fstat`` on the open descriptor, so a named pipe never blocks and a file swapped
    for a pipe in between is caught too)."""
    path = Path(path)
    try:
        return regular_file.open_regular(path)
    except NotRegularFileError as exc:
        raise FileFormatError(path, _kind_of(exc.kind)) from None
    except FileNotFoundError:
        raise FileFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise FileFormatError(path, "is a folder, not a file") from None
    except PermissionError:
        raise FileFormatError(path, "permission denied") from None
    except OSError as exc:
        raise FileFormatError(path, f"cannot open: {exc.strerror or exc}") from None

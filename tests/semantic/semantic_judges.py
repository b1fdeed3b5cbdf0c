"""Judges and document builders for the semantic tests of the built-in model.

The semantic tests drive the built-in model as a user would (document → planner →
engine → placed result) and judge the *meaning* of the pixels. Everything here is numpy
(plus OpenCV for edges): no torch, no model.

Colour judgement (the same rule ``tools/eval_builtin_model.py`` reports, so the trainer
and the tests speak of the same thing). A set of RGB pixels *reads as* a named colour of
the dataset's colour table (``tools/shapes_dataset.COLOURS``) when:

- chromatic colours: at least :data:`MIN_SATURATED` (50 %) of the pixels are saturated
  (HSV saturation > :data:`SATURATION` = 0.3 and value > 0.25) and the circular mean hue
  of those saturated pixels lies within :data:`HUE_TOLERANCE` (30°) of the colour's hue;
- white: mean value > 0.75 and mean saturation < 0.2;
- black: mean value < 0.3.

The colour table's hues are 22–72° apart (red 0°, orange 31°, yellow 53°, green 126°,
cyan 183°, blue 231°, purple 277°, pink 326°); the tests only pair colours at least 90°
apart, so a 30° tolerance can never accept the other colour of a pair.

Edges: a pixel is an edge pixel when the RGB gradient magnitude (central differences,
``sqrt(Σ_c (gx_c² + gy_c²))`` in 0..255 units) exceeds :data:`EDGE_THRESHOLD` (60), i.e.
a step of about 30 levels in one channel — every pair of table colours differs by far
more, while the model's flat areas stay well below it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.vocabulary.kinds import ControlKind

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import shapes_dataset as sd  # noqa: E402

__all__ = [
    "EDGE_THRESHOLD",
    "HUE_TOLERANCE",
    "MIN_SATURATED",
    "SATURATION",
    "ColourReading",
    "control_layer",
    "coverage_layer",
    "dilate",
    "document",
    "edge_map",
    "erode",
    "mask_layer",
    "paint_layer",
    "psnr",
    "rate",
    "read_colour",
    "reads_as",
    "region_layer",
    "sd",
    "stroke_recall",
]

HUE_TOLERANCE = 30.0
SATURATION = 0.3
MIN_SATURATED = 0.5
EDGE_THRESHOLD = 60.0


@dataclass(frozen=True)
class ColourReading:
    """Colour statistics of a set of pixels: ``hue`` is the circular mean hue (degrees)
    of the saturated pixels (``None`` when none is saturated), ``saturated`` their share,
    ``saturation``/``value`` the mean HSV saturation and value of all pixels (0..1)."""

    hue: float | None
    saturated: float
    saturation: float
    value: float

    def __str__(self) -> str:
        hue = "-" if self.hue is None else f"{self.hue:.0f}°"
        return f"hue {hue} sat {self.saturated:.0%} S {self.saturation:.2f} V {self.value:.2f}"


def read_colour(pixels: np.ndarray) -> ColourReading:
    """Statistics of uint8 RGB ``pixels`` of any leading shape (see the module doc)."""
    hsv = sd.rgb_to_hsv(np.asarray(pixels).reshape(-1, 3))
    if len(hsv) == 0:
        return ColourReading(None, 0.0, 0.0, 0.0)
    sat = (hsv[:, 1] > SATURATION) & (hsv[:, 2] > 0.25)
    hue: float | None = None
    if sat.any():
        h = np.deg2rad(hsv[sat, 0])
        hue = math.degrees(math.atan2(float(np.sin(h).mean()), float(np.cos(h).mean()))) % 360.0
    return ColourReading(hue, float(sat.mean()), float(hsv[:, 1].mean()), float(hsv[:, 2].mean()))


def reads_as(pixels: np.ndarray, name: str) -> bool:
    """Whether uint8 RGB ``pixels`` read as the table colour ``name`` (see the module doc)."""
    colour = sd.colour_of(name)
    r = read_colour(pixels)
    if np.asarray(pixels).size == 0:
        return False
    if colour.hue is None:
        if name == "white":
            return r.value > 0.75 and r.saturation < 0.2
        return r.value < 0.3
    if r.saturated < MIN_SATURATED or r.hue is None:
        return False
    return bool(sd.hue_distance(r.hue, colour.hue) <= HUE_TOLERANCE)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean erosion with a square of side ``2·radius + 1`` (outside the image counts as
    False, so regions touching the border shrink from it too)."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    padded = np.pad(mask.astype(np.uint8), radius)
    return cv2.erode(padded, kernel)[radius:-radius or None, radius:-radius or None].astype(bool)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean dilation with a square of side ``2·radius + 1``."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def edge_map(image: np.ndarray) -> np.ndarray:
    """Boolean edges of a uint8 RGB image: RGB gradient magnitude > :data:`EDGE_THRESHOLD`."""
    f = np.asarray(image, np.float32)
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:, 1:-1] = f[:, 2:] - f[:, :-2]
    gy[1:-1] = f[2:] - f[:-2]
    return np.sqrt((gx**2 + gy**2).sum(axis=-1)) > EDGE_THRESHOLD


def stroke_recall(image: np.ndarray, strokes: np.ndarray, radius: int = 2) -> float:
    """The share of ``strokes`` pixels (boolean, same size as ``image``) that have an edge
    of ``image`` within ``radius`` pixels (Chebyshev distance)."""
    total = int(strokes.sum())
    if total == 0:
        raise ValueError("no stroke pixels to measure")
    return float((dilate(edge_map(image), radius) & strokes).sum() / total)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (99 when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


# --------------------------------------------------------------------------- documents


def _rgba(rgb: np.ndarray, alpha: np.ndarray | int = 255) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = alpha
    return out


def paint_layer(name: str, rgb: np.ndarray) -> PixelLayer:
    """An opaque paint layer holding uint8 RGB ``rgb`` at the document origin."""
    return PixelLayer(name, TiledSurface.from_array(_rgba(rgb)), role=Role.PAINT)


def coverage_layer(name: str, coverage: np.ndarray, role: Role, **kw: object) -> PixelLayer:
    """A layer painted white where boolean/float ``coverage`` is set (its alpha), as the
    mask and region brushes paint."""
    alpha = np.rint(np.clip(np.asarray(coverage, np.float32), 0, 1) * 255).astype(np.uint8)
    rgb = np.full((*alpha.shape, 3), 255, np.uint8)
    return PixelLayer(name, TiledSurface.from_array(_rgba(rgb, alpha)), role=role, **kw)  # type: ignore[arg-type]


def mask_layer(coverage: np.ndarray) -> PixelLayer:
    return coverage_layer("inpaint mask", coverage, Role.INPAINT_MASK)


def region_layer(name: str, coverage: np.ndarray, prompt: str) -> PixelLayer:
    return coverage_layer(name, coverage, Role.REGION, prompt=prompt)


def control_layer(sketch: np.ndarray, kind: ControlKind = ControlKind.SCRIBBLE) -> PixelLayer:
    """A sketch layer as a user draws it: dark strokes on a transparent layer (the grey
    ``sketch``'s darkness is the alpha; unpainted parts are blank paper to the planner)."""
    grey = np.asarray(sketch)[..., 0]
    alpha = (255 - grey).astype(np.uint8)
    rgb = np.zeros((*grey.shape, 3), np.uint8)
    return PixelLayer(
        "sketch", TiledSurface.from_array(_rgba(rgb, alpha)), role=Role.CONTROL,
        control=ControlSettings(kind=kind),
    )


def document(size: int, *layers: PixelLayer, width: int | None = None) -> Document:
    """A ``size``-square (or ``width`` × ``size``) document holding ``layers`` (top first)."""
    doc = Document(width or size, size)
    for layer in layers:
        doc.root.append(layer)
    return doc


def rate(flags: Sequence[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}"

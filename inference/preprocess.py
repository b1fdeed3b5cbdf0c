"""Model-free ControlNet preprocessors for the artist's own sketches and maps.

This module imports no torch (numpy + OpenCV only), so the planner and the CLI can run
it without loading the engine.

Value conventions
-----------------
- Every function takes and returns ``uint8`` RGB arrays of shape ``(H, W, 3)`` (straight
  colour, no alpha); the output always has the input's height and width.
- Line-type outputs (invert, threshold, scribble, Canny, lineart, softedge) follow the
  ControlNet training convention: **white lines (255) on a black background (0)**, the
  three channels equal.  Binary outputs (threshold, scribble, Canny) hold only 0 and 255;
  lineart and softedge keep intermediate grey levels for faint/soft lines.
- A user sketch is usually dark strokes on a light (white) background; every line
  preprocessor auto-detects the background brightness (:func:`has_light_background`)
  and inverts such sketches first, so a sketch that is already white-on-black passes
  through unchanged in polarity.
- Depth, pose and segmentation maps cannot be made without a model; :func:`preprocess`
  passes an already-made map through unchanged (depth: white = near, the MiDaS
  convention; pose: OpenPose-coloured skeleton on black; segmentation: ADE20K palette).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from sfumato.vocabulary.kinds import ControlKind

__all__ = [
    "canny",
    "has_light_background",
    "invert_sketch",
    "lineart_standard",
    "passthrough",
    "preprocess",
    "softedge",
    "threshold",
    "to_gray",
    "xdog_scribble",
]

log = logging.getLogger(__name__)


def _check_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"control image must be uint8 RGB (H, W, 3), got {array.dtype} {array.shape}"
        )
    return array


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luma (Rec. 601, OpenCV's weights) of an RGB image: ``uint8 (H, W)``."""
    return cv2.cvtColor(_check_rgb(image), cv2.COLOR_RGB2GRAY)


def has_light_background(image: np.ndarray) -> bool:
    """True when the image looks like dark strokes on a light background.

    The background is whatever most pixels are: the median of the border pixels (where
    a sketch rarely reaches) and of the whole image both decide; a sketch on white has
    a median luma near 255.
    """
    gray = to_gray(image) if image.ndim == 3 else image
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return bool(float(np.median(border)) + float(np.median(gray)) >= 256.0)


def _white_on_black_gray(image: np.ndarray) -> np.ndarray:
    gray = to_gray(image)
    return 255 - gray if has_light_background(gray) else gray


def invert_sketch(image: np.ndarray) -> np.ndarray:
    """Turn a black-on-white sketch into white-on-black; leave a dark-background one as is.

    Grey levels are kept (a mid-grey stroke stays mid-grey in strength): the result is
    ``255 - luma`` for a light background and ``luma`` otherwise.  Idempotent.
    """
    return _gray_to_rgb(_white_on_black_gray(image))


def threshold(image: np.ndarray, level: int | None = None) -> np.ndarray:
    """Binary white-on-black lines: pixels whose (polarity-corrected) luma exceeds ``level``.

    ``level`` defaults to Otsu's threshold (at least 32, so a blank page stays blank).
    Idempotent.
    """
    gray = _white_on_black_gray(image)
    if level is None:
        otsu, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        level = max(int(otsu), 32)
    return _gray_to_rgb(np.where(gray > level, 255, 0).astype(np.uint8))


def xdog_scribble(
    image: np.ndarray, sigma: float = 1.0, k: float = 1.6, gamma: float = 0.98, epsilon: float = -0.1,
    phi: float = 200.0,
) -> np.ndarray:
    """Scribble map by extended difference of Gaussians (XDoG, Winnemöller 2012).

    Works on photos and on sketches alike: lines come out white (255) on black, one or
    two pixels wide, binary.  A sketch that is already a clean white-on-black line
    drawing maps (almost) to itself.
    """
    gray = _white_on_black_gray(image).astype(np.float32) / 255.0
    # On a white-on-black drawing the lines are bright: XDoG finds dark lines, so work on
    # the negative and flip back.
    src = 1.0 - gray
    g1 = cv2.GaussianBlur(src, (0, 0), sigma)
    g2 = cv2.GaussianBlur(src, (0, 0), sigma * k)
    dog = g1 - gamma * g2
    soft = np.where(dog >= epsilon, 1.0, 1.0 + np.tanh(phi * (dog - epsilon)))
    lines = soft < 0.5
    # Keep the original strokes too: a thick stroke's interior is not an edge but it is
    # part of the scribble.
    lines |= gray > 0.5
    return _gray_to_rgb(np.where(lines, 255, 0).astype(np.uint8))


def canny(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges (OpenCV), white edges on black; thresholds on the 0–255 luma gradient."""
    edges = cv2.Canny(to_gray(image), low, high)
    return _gray_to_rgb(edges)


def lineart_standard(image: np.ndarray, sigma: float = 6.0, intensity_threshold: float = 8.0) -> np.ndarray:
    """"Lineart standard": difference of Gaussians, as ControlNet's model-free lineart.

    On the dark-lines-on-light version of the image, a pixel's line strength is how much
    darker it is than its Gaussian-blurred surroundings (the smallest over the three
    channels), normalised so that the median strength of the real line pixels (those
    above ``intensity_threshold``) maps to 127.  Output: white lines with grey
    anti-aliasing on black.  The polarity is auto-detected like the other line maps, so
    a white-on-black sketch gives the same map as its black-on-white negative.
    """
    rgb = _check_rgb(image)
    if not has_light_background(rgb):
        rgb = 255 - rgb  # white-on-black sketch -> dark lines on light
    src = rgb.astype(np.float32)
    blurred = cv2.GaussianBlur(src, (0, 0), sigma)
    strength = np.clip(np.min(blurred - src, axis=2), 0, 255)
    lines = strength[strength > intensity_threshold]
    scale = max(16.0, float(np.median(lines))) if lines.size else 16.0
    out = np.clip(strength / scale * 127.0, 0, 255)
    return _gray_to_rgb(out.astype(np.uint8))


def softedge(image: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """Soft edges without a model (an HED/PiDiNet stand-in): blurred gradient magnitude.

    Sobel magnitude of the lightly blurred luma, normalised so that the strongest edge
    is 255, then a gamma lift and a blur so that lines are soft and a few pixels wide.
    White on black, grey levels kept.
    """
    gray = to_gray(image).astype(np.float32) / 255.0
    blur = cv2.GaussianBlur(gray, (0, 0), sigma)
    gx = cv2.Sobel(blur, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blur, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    peak = float(mag.max())
    if peak < 1e-6:
        return np.zeros_like(_check_rgb(image))
    soft = np.sqrt(mag / peak)
    soft = cv2.GaussianBlur(soft, (0, 0), sigma)
    soft = soft / max(float(soft.max()), 1e-6)
    return _gray_to_rgb(np.clip(soft * 255.0 + 0.5, 0, 255).astype(np.uint8))


def passthrough(image: np.ndarray) -> np.ndarray:
    """An already-made map (depth, pose, segmentation): returned as a contiguous copy."""
    return np.ascontiguousarray(_check_rgb(image)).copy()


def preprocess(kind: ControlKind, image: np.ndarray) -> np.ndarray:
    """The default preprocessor for a control kind: uint8 RGB (H, W, 3) in and out.

    - SCRIBBLE: :func:`xdog_scribble` (a drawn scribble keeps its strokes, inverted to
      white on black).
    - LINEART: :func:`lineart_standard`.
    - SOFTEDGE: :func:`softedge`.
    - CANNY: :func:`canny`.
    - DEPTH, POSE, SEGMENTATION: :func:`passthrough`; these need a model to compute, so
      the user paints or imports the map itself.
    """
    _check_rgb(image)
    if kind is ControlKind.SCRIBBLE:
        return xdog_scribble(image)
    if kind is ControlKind.LINEART:
        return lineart_standard(image)
    if kind is ControlKind.SOFTEDGE:
        return softedge(image)
    if kind is ControlKind.CANNY:
        return canny(image)
    if kind in (ControlKind.DEPTH, ControlKind.POSE, ControlKind.SEGMENTATION):
        return passthrough(image)
    raise ValueError(f"no preprocessor for control kind {kind!r}")

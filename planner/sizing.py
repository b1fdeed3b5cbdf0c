"""Area size → generation size: the family's native resolution, multiples of 8, scale back.

A model generates well only near the size it was trained at. The planner therefore never
asks for the area's own size: it asks for a *generation size* near the family's native
resolution with the area's aspect ratio, and the result is scaled back to the area.

The rules (numbers in :mod:`sfumato.planner.families`):

1. Pixel budget: an area with fewer pixels than ``min_pixels`` or more than
   ``max_pixels`` is scaled, by one factor that keeps the aspect ratio, to ``native²``
   pixels; an area within the budget keeps its size (scale 1, no resampling when its
   sides are already multiples of 8 and within the side range).
2. Side range, still keeping the aspect ratio: a short side below ``min_side`` is grown
   (as far as the long side allows), a long side above ``max_side`` is shrunk.
3. Each side is rounded to the nearest multiple of 8, then clamped into
   ``[min_side, max_side]``. Only for aspect ratios beyond ``max_side / min_side``
   (1.5 for SD 1.x, 2 for SDXL) does the clamp change the aspect ratio; the result is
   then stretched back to the area, which models tolerate far better than sizes they
   were never trained at.
4. Very large areas: generation stays at native size and the result is upscaled
   (Lanczos) onto the area — memory on the accelerator never grows with the area.
   Areas longer than :data:`MAX_AREA_SIDE` on a side, or that would need more than
   :data:`MAX_UPSCALE` times upscaling, are refused with :class:`AreaTooLargeError`
   (a clear message, never an out-of-memory surprise).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from sfumato.planner.errors import AreaTooLargeError
from sfumato.planner.families import MULTIPLE, FamilyInfo

log = logging.getLogger(__name__)

__all__ = ["MAX_AREA_SIDE", "MAX_UPSCALE", "Size", "generation_size", "round8", "round_to"]

#: Longest area side the planner accepts (its float masks alone are 256 MiB at this size).
MAX_AREA_SIDE = 8192
#: Largest factor by which a result may be scaled up onto its area (per side).
MAX_UPSCALE = 16.0


@dataclass(frozen=True)
class Size:
    """A width × height in pixels."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def round8(value: float) -> int:
    """The nearest positive multiple of 8."""
    return round_to(value, MULTIPLE)


def round_to(value: float, multiple: int) -> int:
    """The nearest positive multiple of ``multiple``."""
    return max(multiple, int(round(value / multiple)) * multiple)


def generation_size(width: int, height: int, family: FamilyInfo) -> Size:
    """The size to generate an area of ``width`` × ``height`` document pixels at.

    Always multiples of ``family.multiple`` (8, or 16 for the transformer families)
    within ``[family.min_side, family.max_side]`` a side. Raises
    :class:`AreaTooLargeError` beyond :data:`MAX_AREA_SIDE` / :data:`MAX_UPSCALE`.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"area {width}x{height} is empty")
    longest = max(width, height)
    if longest > MAX_AREA_SIDE:
        raise AreaTooLargeError(
            f"the area to generate is {width}x{height} pixels; the most Sfumato generates in "
            f"one go is {MAX_AREA_SIDE} pixels a side. Select or mask a smaller part of the "
            "canvas, or work on a smaller copy and scale it up."
        )
    pixels = width * height
    if pixels < family.min_pixels or pixels > family.max_pixels:
        scale = math.sqrt(family.native * family.native / pixels)
    else:
        scale = 1.0
    fw, fh = width * scale, height * scale
    short, long = min(fw, fh), max(fw, fh)
    if short < family.min_side:  # grow until the short side fits, if the long side allows
        grow = min(family.min_side / short, family.max_side / long)
        if grow > 1.0:
            fw, fh = fw * grow, fh * grow
    long = max(fw, fh)
    if long > family.max_side:
        fw, fh = fw * family.max_side / long, fh * family.max_side / long
    gw = min(max(round_to(fw, family.multiple), family.min_side), family.max_side)
    gh = min(max(round_to(fh, family.multiple), family.min_side), family.max_side)
    upscale = max(width / gw, height / gh)
    if upscale > MAX_UPSCALE:
        limit = int(MAX_UPSCALE * family.max_side)
        raise AreaTooLargeError(
            f"the area to generate is {width}x{height} pixels, {upscale:.0f}x the size this "
            f"{family.name} model generates; the most is {MAX_UPSCALE:.0f}x (about {limit} "
            "pixels a side). Select or mask a smaller part of the canvas, or use a model "
            "with a larger native size."
        )
    if (gw, gh) != (width, height):
        log.debug("area %dx%d generates at %dx%d (%s)", width, height, gw, gh, family.name)
    return Size(gw, gh)

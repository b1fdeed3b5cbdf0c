"""Generation sizes: from a requested area to the size the model actually denoises (no torch).

The engine always generates near the model's native resolution and scales the result to
the requested size, because diffusion models draw poorly far from the size they were
trained at (duplicated subjects above it, mush below it). The rule, in one place so the
planner can show the same numbers:

1. keep the requested aspect ratio;
2. scale so the area is ``native_side²``;
3. if the short side is then below ``min_side``, scale up until it is not, unless the long
   side would pass ``max_long_side`` (twice native by default), which caps it;
4. round each side to a multiple of ``multiple`` (8: the VAE's downsampling factor), at
   least one multiple.

All sizes are in pixels, ``(width, height)``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SizePlan", "plan_generation_size"]


@dataclass(frozen=True)
class SizePlan:
    """Requested (output) size and the size the model generates at, in pixels."""

    width: int
    height: int
    gen_width: int
    gen_height: int

    @property
    def scale(self) -> float:
        """Generation pixels per output pixel (along x)."""
        return self.gen_width / self.width


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def plan_generation_size(
    width: int,
    height: int,
    native_side: int,
    *,
    min_side: int | None = None,
    max_long_side: int | None = None,
    multiple: int = 8,
) -> SizePlan:
    """Choose the generation size for an output of ``width`` × ``height`` pixels.

    ``native_side`` is the model's training side (512 for SD 1.x, 1024 for SDXL);
    ``min_side`` defaults to ``native_side`` and ``max_long_side`` to twice native.

    >>> plan_generation_size(2048, 2048, 512)
    SizePlan(width=2048, height=2048, gen_width=512, gen_height=512)
    >>> plan_generation_size(1000, 500, 512)
    SizePlan(width=1000, height=500, gen_width=1024, gen_height=512)
    """
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {width}x{height}")
    min_side = native_side if min_side is None else min_side
    max_long = 2 * native_side if max_long_side is None else max_long_side
    aspect = width / height
    gh = native_side / aspect**0.5
    gw = gh * aspect
    short = min(gw, gh)
    if short < min_side:
        grow = min_side / short
        long = max(gw, gh)
        grow = min(grow, max(1.0, max_long / long))
        gw, gh = gw * grow, gh * grow
    long = max(gw, gh)
    if long > max_long:
        shrink = max_long / long
        gw, gh = gw * shrink, gh * shrink
    return SizePlan(width, height, _round_to(gw, multiple), _round_to(gh, multiple))

"""Inpainting geometry and pixels: context crop, fills, feathered paste-back exactness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from enginehelpers import Recorder, box_mask, noise_image, request
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.inference.events import Rect
from sfumato.inference.inpaint import (
    apply_fill,
    context_rect,
    join_thresholds,
    paste_alpha,
    paste_back,
)
from sfumato.inference.request import FillMode, InitImage, InpaintSpec


def test_large_image_small_mask_goes_through_a_crop_and_keeps_every_outside_byte(
    shared_engine: Any, tiny_sd15: Path
) -> None:
    """A 1000×700 area (not the native size) with a 30 px soft-edged mask near a corner."""
    w, h = 1000, 700
    init = noise_image(w, h, seed=21)
    mask = np.zeros((h, w), np.float32)
    mask[600:630, 900:930] = 1.0
    mask[598:600, 900:930] = 0.4  # a soft edge
    req = request(tiny_sd15, width=w, height=h, steps=3, init=InitImage(init, 1.0),
                  inpaint=InpaintSpec(mask, paste_feather=6.0))  # fmt: skip
    rec = Recorder()
    result = shared_engine.run(req, rec)
    assert result.ok, result.error
    out = result.images[0]
    assert out.shape == init.shape
    assert np.array_equal(out[mask == 0], init[mask == 0])
    assert not np.array_equal(out[mask == 1], init[mask == 1])
    x, y, cw, ch = rec.finished.metadata["rect"]
    assert cw * ch < w * h / 4  # the crop, not the whole image, went through the model
    assert x <= 900 and x + cw >= 930 and y <= 598 and y + ch >= 630


def test_context_rect_contains_mask_with_padding_and_native_size() -> None:
    mask = box_mask(2048, 2048, 1000, 1000, 1200, 1200)
    rect = context_rect(mask, 512)
    assert rect.x <= 1000 - 64 and rect.y <= 1000 - 64  # padding >= longest side / 16
    assert rect.x + rect.width >= 1200 + 64 and rect.y + rect.height >= 1200 + 64
    assert rect.width >= 512 and rect.height >= 512
    assert rect.width < 1000


def test_context_rect_clamped_at_the_border() -> None:
    mask = box_mask(600, 400, 0, 0, 20, 20)
    rect = context_rect(mask, 512)
    assert rect.x == 0 and rect.y == 0
    assert rect.width == 512 and rect.height == 400  # as native as the area allows


@settings(max_examples=60, deadline=None)
@given(
    w=st.integers(8, 96),
    h=st.integers(8, 96),
    feather=st.floats(0, 20),
    seed=st.integers(0, 10_000),
)
def test_paste_back_never_touches_pixels_outside_the_mask(w: int, h: int, feather: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    original = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.where(rng.random((h, w)) < 0.3, rng.random((h, w)), 0.0).astype(np.float32)
    x0, y0 = int(rng.integers(0, w // 2 + 1)), int(rng.integers(0, h // 2 + 1))
    rect = Rect(x0, y0, w - x0, h - y0)
    generated = rng.integers(0, 256, (rect.height, rect.width, 3), dtype=np.uint8)
    out = paste_back(original, generated, mask, rect, feather)
    keep = mask == 0
    assert np.array_equal(out[keep], original[keep])
    inside = np.zeros((h, w), bool)
    inside[rect.y :, rect.x :] = True
    assert np.array_equal(out[~inside], original[~inside])


def test_paste_alpha_fades_inside_the_mask() -> None:
    mask = box_mask(40, 40, 10, 10, 30, 30)
    alpha = paste_alpha(mask, feather=5.0)
    assert alpha[mask == 0].max() == 0.0
    assert alpha[20, 20] == pytest.approx(1.0)
    assert 0.0 < alpha[10, 20] < alpha[12, 20] < alpha[20, 20]
    assert np.array_equal(paste_alpha(mask, 0.0), mask)


def test_fill_modes() -> None:
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, :40] = (200, 0, 0)
    image[:, 40:] = (0, 0, 200)
    mask = box_mask(80, 40, 10, 10, 25, 30)
    assert apply_fill(image, mask, FillMode.KEEP) is image
    grey = apply_fill(image, mask, FillMode.NEUTRAL)
    assert (grey[15, 15] == 127).all() and np.array_equal(grey[mask == 0], image[mask == 0])
    blur = apply_fill(image, mask, FillMode.BLUR)
    r, _, b = blur[20, 17].astype(int)
    assert r > b  # filled from the red surroundings, not the blue side
    noisy = apply_fill(image, mask, FillMode.NOISE, seed=1)
    assert noisy[10:30, 10:25].std() > 40
    assert np.array_equal(noisy, apply_fill(image, mask, FillMode.NOISE, seed=1))


def test_join_thresholds_free_pixels_by_mask_value() -> None:
    th = join_thresholds(10)
    free_steps = {m: sum(m > t for t in th) for m in (1.0, 0.5, 0.05, 0.0)}
    assert free_steps == {1.0: 10, 0.5: 5, 0.05: 1, 0.0: 0}

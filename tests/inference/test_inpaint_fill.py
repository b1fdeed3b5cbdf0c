"""Inpainting pixels in the engine: fill modes and when each latent pixel joins.

(Where an inpaint happens and how its result is placed are the planner's: see
tests/planner/test_plan_masks.py, tests/planner/test_plan_placement.py and
tests/inference/test_generation_geometry.py.)"""

from __future__ import annotations

import numpy as np
from enginehelpers import box_mask
from sfumato.inference.inpaint import apply_fill, join_thresholds
from sfumato.inference.request import FillMode


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

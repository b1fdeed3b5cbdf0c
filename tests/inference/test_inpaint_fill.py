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


def _two_colours() -> np.ndarray:
    image = np.zeros((40, 80, 3), np.uint8)
    image[:20] = (200, 30, 0)  # top: red
    image[20:] = (0, 30, 200)  # bottom: blue
    return image


def test_outpaint_infills_continue_the_edges_into_a_border() -> None:
    """A 24-px border on the right, as an outpaint leaves it: each infill carries the
    picture's edge colours outwards (red beside the red half, blue beside the blue) and
    leaves every pixel outside the mask as it was."""
    image = _two_colours()
    image[:, 56:] = 0  # what a transparent border composites to
    mask = np.zeros((40, 80), np.float32)
    mask[:, 56:] = 1.0
    for fill in (FillMode.TELEA, FillMode.NAVIER_STOKES, FillMode.EDGE):
        out = apply_fill(image, mask, fill)
        assert np.array_equal(out[:, :56], image[:, :56]), fill
        top, bottom = out[2:16, 60:].reshape(-1, 3).mean(0), out[24:38, 60:].reshape(-1, 3).mean(0)
        assert top[0] > 150 and top[2] < 50, (fill, top)
        assert bottom[2] > 150 and bottom[0] < 50, (fill, bottom)
    edge = apply_fill(image, mask, FillMode.EDGE)
    assert np.array_equal(edge[5, 56:], np.tile(image[5, 55], (24, 1)))  # exactly the edge pixel, straight out


def test_infills_follow_a_soft_mask_and_survive_an_empty_picture() -> None:
    image = _two_colours()
    mask = np.zeros((40, 80), np.float32)
    mask[:, 60:] = 0.5  # half-way: half the filler, half the original
    image[:, 60:] = (0, 200, 0)  # under the mask: green, which the infill does not see
    telea = apply_fill(image, mask, FillMode.TELEA)
    assert np.array_equal(telea[:, :60], image[:, :60])
    # Half green, half the red continued from the left: (100, 115, 0) on the red rows.
    assert np.abs(telea[2:10, 64:].astype(int) - (100, 115, 0)).max() <= 8  # Telea diffuses a little blue in
    everything = np.ones((40, 80), np.float32)
    for fill in (FillMode.TELEA, FillMode.NAVIER_STOKES, FillMode.EDGE):
        assert (apply_fill(image, everything, fill) == 127).all()  # nothing known: neutral grey

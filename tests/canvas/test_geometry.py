"""``nonzero_bounds``: the one bounding box of non-zero pixels (surfaces, selections,
undo diffs, masks and the compositor all use it)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from sfumato.canvas.model.geometry import Rect, nonzero_bounds


def test_empty_and_full() -> None:
    assert nonzero_bounds(np.zeros((5, 7), np.float32)) == Rect(0, 0, 0, 0)
    assert nonzero_bounds(np.zeros((0, 0), bool)) == Rect(0, 0, 0, 0)
    assert nonzero_bounds(np.ones((5, 7), np.uint8)) == Rect(0, 0, 7, 5)


@given(st.integers(1, 20), st.integers(1, 20), st.data())
def test_the_box_holds_every_nonzero_pixel_and_touches_one_on_each_side(h: int, w: int, data: st.DataObject) -> None:
    cells = data.draw(st.lists(st.tuples(st.integers(0, h - 1), st.integers(0, w - 1)), min_size=1, max_size=6))
    array = np.zeros((h, w), np.float32)
    for y, x in cells:
        array[y, x] = 0.5
    box = nonzero_bounds(array)
    ys, xs = zip(*cells, strict=True)
    assert box == Rect.from_bounds(min(xs), min(ys), max(xs) + 1, max(ys) + 1)

"""Inpaint previews are drawn only where the result will go: ``masked_preview`` on its own,
and the canvas while an inpaint preview is shown (a scripted engine, no torch).

The window's canvas is white with an inpaint mask over :data:`genfixtures.MASK_RECT`;
the engine's previews are flat green over the whole generation area, which is much
larger than the mask. While a preview is on screen, every canvas pixel outside the mask
(away from the preview's dashed frame and a 2 px band at the mask's edge, where the
view's smoothing mixes the two) must be what it was before, and the mask's inside must
show the preview.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from genfixtures import MASK_RECT, FakeEngine, install_fake, paint_mask
from sfumato.canvas.model.geometry import Rect as DocRect
from sfumato.desktop.preview_overlay import PREVIEW_MAX_SIDE, masked_preview
from windowdocs import grab_widget

TIMEOUT = 10_000
GREEN = (0, 200, 0)


def test_without_alpha_the_preview_is_opaque_at_its_own_size() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    out = masked_preview(rgb, None)
    assert out.shape == (6, 10, 4) and out.dtype == np.uint8
    assert np.array_equal(out[..., :3], rgb)
    assert (out[..., 3] == 255).all()


def test_alpha_becomes_the_preview_alpha_at_the_alpha_size() -> None:
    """An 8 × 8 preview (a latent-sized one) over a 40 × 60 area with a soft mask."""
    alpha = np.zeros((40, 60), np.float32)
    alpha[10:30, 20:50] = 1.0
    alpha[10:30, 20:25] = 0.5
    rgb = np.full((8, 8, 3), GREEN, np.uint8)
    out = masked_preview(rgb, alpha)
    assert out.shape == (40, 60, 4)
    assert np.array_equal(out[..., 3], np.rint(alpha * 255).astype(np.uint8))
    assert (out[..., 3][alpha == 0] == 0).all()  # outside the mask: nothing is drawn
    assert (out[..., :3] == GREEN).all()  # a flat preview stays flat when scaled


def test_a_large_area_is_capped_and_the_mask_scales_along() -> None:
    h, w = PREVIEW_MAX_SIDE, 2 * PREVIEW_MAX_SIDE
    alpha = np.zeros((h, w), np.float32)
    alpha[:, w // 2 :] = 1.0  # right half masked
    out = masked_preview(np.full((16, 32, 3), GREEN, np.uint8), alpha)
    assert out.shape == (h // 2, w // 2, 4)
    assert (out[:, : w // 4 - 1, 3] == 0).all() and (out[:, w // 4 + 1 :, 3] == 255).all()


@pytest.fixture
def controller(window: Any) -> Any:
    installed = install_fake(window, FakeEngine(preview_rgb=GREEN), seed=1)
    yield installed
    installed.shutdown()


def _band(shape: tuple[int, int], rect: Any, width: int) -> np.ndarray:
    """Widget pixels within ``width`` of the outline of the QRectF ``rect``."""
    r = rect.toAlignedRect()
    inner = np.zeros(shape, bool)
    outer = np.zeros(shape, bool)
    outer[
        max(0, r.top() - width) : r.bottom() + width + 1,
        max(0, r.left() - width) : r.right() + width + 1,
    ] = True
    inner[r.top() + width : r.bottom() - width + 1, r.left() + width : r.right() - width + 1] = True
    return outer & ~inner


def test_pixels_outside_the_mask_are_unchanged_while_an_inpaint_preview_is_shown(
    window: Any, controller: Any, qtbot: Any
) -> None:
    view = window.view
    paint_mask(window.document)
    view.repaint()
    before = grab_widget(view)
    grabs: list[tuple[Any, np.ndarray]] = []

    def grab(rect: Any) -> None:
        if not grabs:
            view.repaint()
            grabs.append((rect, grab_widget(view)))

    controller.preview_shown.connect(grab)
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
    assert grabs, "no preview was shown"
    rect, during = grabs[0]
    x, y, w, h = MASK_RECT
    assert rect.w * rect.h > 4 * w * h, "the preview area should be much larger than the mask"
    mask_on_screen = view.document_rect_to_widget(DocRect(x, y, w, h))
    frame_on_screen = view.document_rect_to_widget(rect)
    shape = before.shape[:2]
    r = mask_on_screen.toAlignedRect()
    inside = np.zeros(shape, bool)
    inside[r.top() : r.bottom() + 1, r.left() : r.right() + 1] = True
    changed = np.abs(during.astype(int) - before.astype(int)).max(axis=2) > 0
    outside = ~inside & ~_band(shape, mask_on_screen, 2) & ~_band(shape, frame_on_screen, 3)
    assert outside.sum() > 4 * inside.sum()
    assert not changed[outside].any(), (
        f"{int(changed[outside].sum())} canvas pixels outside the mask changed under the preview"
    )
    core = inside & ~_band(shape, mask_on_screen, 3)
    green = during[core][:, :3].astype(int)
    assert (np.abs(green - GREEN).max(axis=1) <= 2).mean() > 0.99, (
        "the mask's inside does not show the preview"
    )

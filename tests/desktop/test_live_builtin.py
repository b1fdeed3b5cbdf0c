"""Live mode with the built-in model on this CPU: a red blob painted on a blue canvas,
the prompt "a red circle on a blue background" — a live frame arrives that shows a red
round shape where the blob is and blue around it (judged by hue, over several seeds)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from semantic.semantic_judges import reads_as
from sfumato.canvas import editing
from sfumato.canvas.model.layers import PixelLayer

pytestmark = pytest.mark.semantic

SIZE = 256
SEEDS = (11, 12, 13, 14, 15)
REQUIRED = 4  # of 5 seeds
TIMEOUT = 120_000  # ms: the model loads once (a few seconds), a frame is well under one


@pytest.fixture
def live_window(window: Any) -> Iterator[Any]:
    from sfumato.desktop.generation_controller import install_generation
    from windowdocs import small_document

    controller = install_generation(window)  # the default engine, as a user gets it
    window.generation = controller
    window.set_document(small_document(SIZE, SIZE))
    doc = window.document
    editing.set_recipe(doc, prompt="a red circle on a blue background", model="builtin", cfg=5.0)
    doc.history.mark_clean()
    yield window
    controller.shutdown()


CENTRE, RADIUS = (150, 110), 48


def _red_round_shape_at_the_blob(image: np.ndarray) -> bool:
    """The largest red region is round (circularity 4πA/P² > 0.7), about the blob's size
    (0.5–1.6 × its area) and centred within half its radius of it."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    red = ((r > 140) & (r > g + 60) & (r > b + 40)).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(red)
    if count < 2:
        return False
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    shape = (labels == biggest).astype(np.uint8)
    area = float(shape.sum())
    contours, _ = cv2.findContours(shape, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    perimeter = max(cv2.arcLength(c, True) for c in contours)
    circularity = 4 * np.pi * area / max(perimeter, 1.0) ** 2
    blob_area = np.pi * RADIUS**2
    off = float(np.hypot(*(centroids[biggest] - np.array(CENTRE))))
    return circularity > 0.7 and 0.5 * blob_area <= area <= 1.6 * blob_area and off <= RADIUS / 2


def _blob() -> np.ndarray:
    disk = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(disk, CENTRE, RADIUS, 1, -1)
    return disk.astype(bool)


def test_a_red_blob_on_blue_becomes_a_red_circle_on_blue(live_window: Any, qtbot: Any) -> None:
    doc = live_window.document
    live = live_window.generation.live
    paint = doc.active
    assert isinstance(paint, PixelLayer)
    pixels = np.zeros((SIZE, SIZE, 4), np.uint8)
    pixels[...] = (40, 70, 200, 255)
    blob = _blob()
    pixels[blob] = (210, 40, 40, 255)
    live.set_enabled(True)
    editing.put_pixels(doc, paint, pixels, 0, 0, label="Paint")
    outside = ~cv2.dilate(blob.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    verdicts = []
    for seed in SEEDS:
        with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT,
                              check_params_cb=lambda f, s=seed: f.plan.request.seed == s) as got:
            live.use_seed(seed)
        frame = got.args[0]
        assert frame.plan.area == doc.rect
        image = cv2.resize(frame.image, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        verdicts.append((_red_round_shape_at_the_blob(image), reads_as(image[outside], "blue")))
    report = ", ".join(f"seed {s}: red round shape at the blob {r}, blue around {b}" for s, (r, b) in zip(SEEDS, verdicts))
    print(report)
    assert sum(r and b for r, b in verdicts) >= REQUIRED, report


def test_apply_undo_prompt_and_rename_with_the_built_in_model(live_window: Any, qtbot: Any) -> None:
    """Apply is one undo step that restores the document byte for byte; a prompt edit
    alone renders a new frame, a rename does not."""
    from sfumato.canvas.render.composite import flatten

    doc = live_window.document
    live = live_window.generation.live
    pixels = np.zeros((SIZE, SIZE, 4), np.uint8)
    pixels[...] = (40, 70, 200, 255)
    pixels[_blob()] = (210, 40, 40, 255)
    editing.put_pixels(doc, doc.active, pixels, 0, 0, label="Paint")
    with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT):
        live.set_enabled(True)
    qtbot.waitUntil(lambda: not live.busy and not live.scheduler.pending, timeout=TIMEOUT)
    assert live.preset is not None and live.panel.steps.value() == live.preset.steps

    started = live.scheduler.started
    editing.set_properties(doc, doc.active, {"name": "Renamed"})
    qtbot.wait(300)
    assert live.scheduler.started == started
    with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT) as got:
        live_window.generation.dock.prompt.setPlainText("a red square on a blue background")
    assert got.args[0].plan.request.prompt == "a red square on a blue background"
    qtbot.waitUntil(lambda: not live.busy and not live.scheduler.pending, timeout=TIMEOUT)

    before = flatten(doc, doc.rect).copy()
    layer = live.apply()
    assert layer is not None and layer.generation["prompt"] == "a red square on a blue background"
    live.set_enabled(False)  # nothing more lands while the document is compared
    doc.undo()
    assert np.array_equal(flatten(doc, doc.rect), before)

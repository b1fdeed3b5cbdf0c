"""Live mode in the window with a tiny model (pytest-qt, offscreen): frames follow real
brush strokes, only picture changes start frames, Apply is one undo step, off clears, the
model loads once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from genfixtures import gen_window, tiny_engine_factory, tiny_model
from qtinput import mouse_drag
from sfumato.canvas import editing
from sfumato.canvas.model.layers import Role
from sfumato.canvas.render.composite import flatten
from sfumato.planner.plan import Mode

__all__ = ["gen_window", "tiny_engine_factory", "tiny_model"]  # fixtures used by name

TIMEOUT = 60_000  # ms
UI_TIMEOUT = 30_000


def _live(window: Any) -> Any:
    live = window.generation.live
    assert live is not None
    return live


def _start(window: Any, qtbot: Any) -> Any:
    live = _live(window)
    with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT) as first:
        window.actions["live"].trigger()  # the Generate menu's toggle (Ctrl+L)
    assert live.enabled and window.generation.dock.error_text == ""
    return first.args[0]


def _idle(window: Any, qtbot: Any) -> None:
    live = _live(window)
    qtbot.waitUntil(lambda: not live.busy and not live.scheduler.pending, timeout=TIMEOUT)


def _stroke(window: Any, points: list[tuple[int, int]]) -> None:
    view = window.view
    widget_points = []
    for x, y in points:
        p = view.document_rect_to_widget(editing_rect(x, y)).center()
        widget_points.append((p.x(), p.y()))
    mouse_drag(view, widget_points)


def editing_rect(x: int, y: int) -> Any:
    from sfumato.canvas.model.geometry import Rect

    return Rect(x, y, 1, 1)


def test_live_follows_a_brush_stroke_and_apply_is_one_undo_step(gen_window: Any, qtbot: Any) -> None:
    doc = gen_window.document
    live = _live(gen_window)
    first = _start(gen_window, qtbot)
    assert first.plan.area == doc.rect and first.plan.request.seed == live.seed
    assert live.overlay.visible and live.badge.isVisible()
    _idle(gen_window, qtbot)
    frames: list[Any] = []
    live.frame_finished.connect(frames.append)
    revision = live.scheduler.revision
    before_stroke = flatten(doc, doc.rect).copy()
    _stroke(gen_window, [(60, 60), (120, 90), (200, 120)])
    assert not np.array_equal(flatten(doc, doc.rect), before_stroke)  # the brush painted
    qtbot.waitUntil(lambda: bool(frames) and not live.busy and not live.scheduler.pending, timeout=TIMEOUT)
    assert live.scheduler.revision > revision
    last = frames[-1]
    assert last.plan.mode is Mode.IMG2IMG  # the stroke made a painted canvas: refine it
    # The last frame renders the document after the stroke: its init image shows it.
    assert last.plan.request.init is not None
    assert last.plan.request.seed == first.plan.request.seed  # coherent frames

    # Apply: one undoable generated layer; one undo restores the document byte for byte.
    before = flatten(doc, doc.rect).copy()
    undo_depth = len(doc.history.undo_labels())
    gen_window.actions["apply_live"].trigger()
    assert len(doc.history.undo_labels()) == undo_depth + 1
    added = [layer for layer in doc.pixel_layers(Role.GENERATED)]
    assert len(added) == 1 and added[0].generation["seed"] == live.seed
    gen_window.actions["live"].trigger()  # off: nothing more may land while we compare
    doc.undo()
    assert not list(doc.pixel_layers(Role.GENERATED))
    assert np.array_equal(flatten(doc, doc.rect), before)


def test_a_prompt_edit_starts_a_frame_a_rename_does_not(gen_window: Any, qtbot: Any) -> None:
    doc = gen_window.document
    live = _live(gen_window)
    _start(gen_window, qtbot)
    _idle(gen_window, qtbot)
    started = live.scheduler.started
    editing.set_properties(doc, doc.active, {"name": "Renamed"})
    editing.set_properties(doc, doc.active, {"locked": True})
    doc.active = next(iter(doc.pixel_layers()))
    gen_window.view.actual_pixels()  # zoom
    gen_window.actions["tool_fill"].trigger()  # tool choice
    gen_window.actions["tool_brush"].trigger()
    qtbot.wait(300)
    assert live.scheduler.started == started and not live.scheduler.pending
    with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT) as frame:
        gen_window.generation.dock.prompt.setPlainText("a blue ball")
    assert live.scheduler.started == started + 1
    assert frame.args[0].plan.request.prompt == "a blue ball"


def test_off_cancels_and_clears_and_new_seed_renders_again(gen_window: Any, qtbot: Any) -> None:
    live = _live(gen_window)
    first = _start(gen_window, qtbot)
    _idle(gen_window, qtbot)
    with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT) as frame:
        live.panel.new_seed_button.click()
    assert frame.args[0].plan.request.seed != first.plan.request.seed
    live.panel.live_button.click()  # the dock's toggle, off
    assert not live.enabled and not gen_window.actions["live"].isChecked()
    assert not live.overlay.visible and not live.preview.visible and live.frame is None
    assert not live.badge.isVisible() and not gen_window.actions["apply_live"].isEnabled()
    started = live.scheduler.started
    _stroke(gen_window, [(30, 30), (90, 40)])
    qtbot.wait(300)
    assert live.scheduler.started == started


def test_changing_the_model_never_leaves_the_old_models_frame(gen_window: Any, qtbot: Any, tmp_path: Any) -> None:
    live = _live(gen_window)
    _start(gen_window, qtbot)
    _idle(gen_window, qtbot)
    assert live.overlay.visible
    gen_window.generation.dock.choose_model(str(tmp_path / "another-model"))  # the user's pick
    assert not live.overlay.visible and live.frame is None  # at once, before any new frame
    _idle(gen_window, qtbot)  # the new model does not exist: the frame fails
    assert gen_window.generation.dock.error_text != "" and not live.overlay.visible


def test_a_normal_generation_stops_live_mode(gen_window: Any, qtbot: Any) -> None:
    controller = gen_window.generation
    live = _live(gen_window)
    _start(gen_window, qtbot)
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
        assert not live.enabled and not live.overlay.visible
    controller.staging.discard()


def test_the_model_loads_once_across_twenty_frames(gen_window: Any, qtbot: Any) -> None:
    live = _live(gen_window)
    _start(gen_window, qtbot)
    engine = gen_window.generation.worker.engine
    loads = engine.cache.load_count
    frames: list[Any] = []
    live.frame_finished.connect(frames.append)
    for i in range(20):
        with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT):
            live.panel.strength.setValue(0.3 + 0.02 * i)  # each a live setting change
        _idle(gen_window, qtbot)
    assert len(frames) >= 20
    assert engine.cache.load_count == loads  # not one reload between frames
    assert [f.plan.request.init.strength for f in frames[-3:]] == pytest.approx([0.64, 0.66, 0.68])


def test_a_failing_frame_says_so_and_waits_for_the_next_change(gen_window: Any, qtbot: Any) -> None:
    live = _live(gen_window)
    editing.set_recipe(gen_window.document, model="/no/such/model")
    gen_window.generation.dock.model.setCurrentIndex(-1)
    live.set_enabled(True)
    qtbot.waitUntil(lambda: gen_window.generation.dock.error_text != "", timeout=TIMEOUT)
    _idle(gen_window, qtbot)
    assert "stopped by an error" in live.panel.state.text()
    started = live.scheduler.started
    qtbot.wait(300)
    assert live.scheduler.started == started  # no retry loop


def test_record_keeps_finished_frames_and_saves_an_animation(gen_window: Any, qtbot: Any, tmp_path: Any) -> None:
    from PIL import Image

    live = _live(gen_window)
    _start(gen_window, qtbot)
    _idle(gen_window, qtbot)
    live.panel.record.setChecked(True)
    assert not live.panel.save_recording.isEnabled()
    for strength in (0.4, 0.5):
        with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT):
            live.panel.strength.setValue(strength)
        _idle(gen_window, qtbot)
    assert len(live.recorder) == 2 and live.panel.save_recording.isEnabled()
    frame = live.recorder.frames()[-1]
    doc = gen_window.document
    assert frame.shape == (doc.height, doc.width, 3)
    saved = live.save_recording(tmp_path / "live.webp")
    with Image.open(saved) as image:
        assert image.n_frames == 2

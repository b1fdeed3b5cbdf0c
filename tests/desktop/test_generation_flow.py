"""The whole generation flow in the window with a tiny model (pytest-qt, offscreen):
mask → Inpaint → previews drawn on the canvas → staged → accept → undo; cancel; an
injected out-of-memory error; closing mid-run."""

from __future__ import annotations

import threading
from typing import Any

import diffusers  # noqa: F401 - required dependencies (pyproject.toml): missing is a failure
import numpy as np
import pytest
import torch  # noqa: F401
from genfixtures import (
    MASK_RECT,
    gen_window,
    paint_mask,
    tiny_engine_factory,
    tiny_model,
    worker_threads,
)
from sfumato.canvas import editing
from sfumato.canvas.model.layers import Role
from sfumato.canvas.render.composite import flatten
from sfumato.desktop.files import qimage_to_rgba

__all__ = ["gen_window", "tiny_engine_factory", "tiny_model"]  # fixtures used by name

TIMEOUT = 60_000  # ms; a tiny run takes well under a second once the model is loaded
#: For a condition that follows from a queued signal (a label, a state after a run): it
#: usually holds within milliseconds; generous because CI machines are loaded.
UI_TIMEOUT = 30_000  # ms


def grab_widget(widget: Any) -> np.ndarray:
    """The widget's pixels as RGBA uint8 (h, w, 4). (Not imported from ``conftest``: with
    several test folders on the command line that name can resolve to another folder's.)"""
    return qimage_to_rgba(widget.grab().toImage())


def _widget_rect(view: Any, rect: Any) -> tuple[int, int, int, int]:
    r = view.document_rect_to_widget(rect).toAlignedRect()
    return r.left(), r.top(), r.right(), r.bottom()


def test_button_label_follows_the_document(gen_window: Any, qtbot: Any) -> None:
    controller = gen_window.generation
    assert controller.dock.mode_label == "Generate"
    paint_mask(gen_window.document)
    qtbot.waitUntil(lambda: controller.dock.mode_label == "Inpaint", timeout=UI_TIMEOUT)
    assert gen_window.actions["generate"].text().replace("&", "") == "Inpaint"
    gen_window.document.undo()  # the mask pixels
    gen_window.document.undo()  # the mask layer
    qtbot.waitUntil(lambda: controller.dock.mode_label == "Generate", timeout=UI_TIMEOUT)


def test_inpaint_preview_stage_accept_undo(gen_window: Any, qtbot: Any) -> None:
    controller = gen_window.generation
    doc = gen_window.document
    paint_mask(doc)
    before = flatten(doc).copy()
    view = gen_window.view
    view_before = grab_widget(view)
    previews: list[Any] = []
    controller.preview_shown.connect(previews.append)
    painted: dict[str, np.ndarray] = {}

    def grab_on_preview(rect: Any) -> None:
        if "pixels" not in painted:
            view.repaint()
            painted["pixels"] = grab_widget(view)
            painted["rect"] = rect

    controller.preview_shown.connect(grab_on_preview)
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
    assert previews, "no preview reached the canvas"
    # The preview overlay changed pixels inside the masked area (and the document did not).
    x0, y0, x1, y1 = _widget_rect(view, painted["rect"])
    mx, my, mw, mh = MASK_RECT
    inner = view.document_rect_to_widget(type(painted["rect"])(mx + 5, my + 5, mw - 10, mh - 10)).toAlignedRect()
    region = np.s_[inner.top() : inner.bottom(), inner.left() : inner.right()]
    assert np.abs(painted["pixels"][region].astype(int) - view_before[region].astype(int)).max() > 0
    assert np.array_equal(flatten(doc), before), "a preview must never touch the document"
    assert not controller.preview.visible, "the preview is cleared when the run ends"

    # Staged, not placed.
    assert controller.staging.active and controller.staging.count == 1
    assert controller.staging.bar.isVisible()
    assert not any(layer.role is Role.GENERATED for layer in doc.pixel_layers())
    assert controller.history.entries, "the result is in the history"

    layer = controller.staging.accept()
    assert layer is not None and layer.role is Role.GENERATED
    assert layer.generation["seed"] == 5 and layer.generation["prompt"] == "a red ball"
    after = flatten(doc)
    outside = np.ones(before.shape[:2], bool)
    outside[my : my + mh, mx : mx + mw] = False
    assert np.array_equal(after[outside], before[outside]), "pixels outside the mask changed"
    assert not np.array_equal(after[~outside], before[~outside]), "nothing was generated in the mask"
    assert not controller.staging.active

    doc.undo()
    assert not any(layer.role is Role.GENERATED for layer in doc.pixel_layers())
    assert np.array_equal(flatten(doc), before)


def test_cancel_from_the_first_progress(gen_window: Any, qtbot: Any) -> None:
    controller = gen_window.generation
    editing.set_recipe(gen_window.document, steps=200)
    steps: list[int] = []

    def on_progress(job: int, step: int, total: int) -> None:
        steps.append(step)
        if len(steps) == 1:
            gen_window.actions["cancel"].trigger()  # Esc

    controller.worker.progress.connect(on_progress)
    with qtbot.waitSignal(controller.cancelled, timeout=TIMEOUT):
        assert controller.generate()
    assert steps and max(steps) < 200
    qtbot.waitUntil(
        lambda: not controller.staging.active and not controller.busy and not controller.preview.visible,
        timeout=UI_TIMEOUT,
    )
    assert controller.dock.progress.format() == "Cancelled"


def test_out_of_memory_shows_a_message_and_the_next_run_works(
    gen_window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfumato.desktop.worker import FailureKind
    from sfumato.inference.engine import Engine

    controller = gen_window.generation
    real = Engine._denoise
    calls = {"n": 0}

    def oom_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "_denoise", oom_once)
    with qtbot.waitSignal(controller.failed, timeout=TIMEOUT) as blocker:
        controller.generate()
    message, kind = blocker.args
    assert kind is FailureKind.OUT_OF_MEMORY
    assert "out of memory" in message.lower()
    assert "out of memory" in controller.dock.error_text.lower()
    assert "out of memory" in gen_window.statusBar().currentMessage().lower()
    assert not controller.busy

    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
    assert controller.dock.error_text == "", "a new run clears the old error"
    assert controller.staging.count == 1


def test_closing_mid_run_leaves_no_thread(gen_window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    controller = gen_window.generation
    editing.set_recipe(gen_window.document, steps=500)
    before = {t.ident for t in worker_threads()}
    with qtbot.waitSignal(controller.worker.progress, timeout=TIMEOUT):
        controller.generate()
    worker = controller.worker
    assert worker.isRunning()
    monkeypatch.setattr(
        QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard)
    )
    gen_window.close()
    assert not worker.isRunning()
    leftover = [t for t in worker_threads() if t.ident not in before and t is not threading.current_thread()]
    assert not leftover, f"threads left running: {leftover}"


def test_bad_and_missing_model_files_are_messages_and_the_worker_recovers(
    gen_window: Any, qtbot: Any, tmp_path: Any, tiny_model: Any
) -> None:
    from sfumato.desktop.worker import FailureKind

    controller = gen_window.generation
    doc = gen_window.document
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    for source, kinds in (
        (str(broken), {FailureKind.BAD_MODEL}),
        (str(tmp_path / "missing.safetensors"), {FailureKind.MODEL_NOT_FOUND}),
    ):
        controller.dock.choose_model(source)
        assert doc.recipe.model == source
        with qtbot.waitSignal(controller.failed, timeout=TIMEOUT) as blocker:
            controller.generate()
        message, kind = blocker.args
        assert kind in kinds, (source, kind, message)
        assert controller.dock.error_text and not controller.busy
    controller.dock.choose_model(str(tiny_model))
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()

"""A result planned for one canvas size does not land on another: resizing the canvas
while a result is staged (or running) drops it and says so."""

from __future__ import annotations

from typing import Any

import diffusers  # noqa: F401 - required dependencies (pyproject.toml): missing is a failure
import torch  # noqa: F401
from genfixtures import gen_window, tiny_engine_factory, tiny_model

__all__ = ["gen_window", "tiny_engine_factory", "tiny_model"]  # fixtures used by name

TIMEOUT = 60_000  # ms


def test_a_staged_result_is_dropped_when_the_canvas_changes_size(gen_window: Any, qtbot: Any) -> None:
    from sfumato.canvas.edits.canvas_size import Anchor, resize_canvas_to

    controller = gen_window.generation
    doc = gen_window.document
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
    assert controller.staging.active
    shown: list[str] = []
    gen_window.statusBar().messageChanged.connect(shown.append)
    layers = len(list(doc.pixel_layers()))
    resize_canvas_to(doc, doc.width + 32, doc.height, Anchor.LEFT)
    assert not controller.staging.active
    assert any("changed size" in m and "generate again" in m for m in shown), shown
    assert controller.staging.accept(doc) is None and len(list(doc.pixel_layers())) == layers
    # undoing the resize after the drop does not bring the result back, and a new run stages again
    doc.undo()
    assert not controller.staging.active
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
    assert controller.staging.active


def test_other_resets_of_the_same_size_keep_the_result(gen_window: Any, qtbot: Any) -> None:
    from sfumato.canvas.model.document import DocumentReset

    controller = gen_window.generation
    doc = gen_window.document
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        assert controller.generate()
    doc.changed.emit(DocumentReset())
    assert controller.staging.active

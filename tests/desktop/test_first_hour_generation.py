"""Issue 17 in the generation flow: accepting from the prompt box, where results land."""

from __future__ import annotations

from typing import Any

from genfixtures import gen_window, tiny_engine_factory, tiny_model
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest
from sfumato.canvas import editing
from sfumato.canvas.model.layers import Role

__all__ = ["gen_window", "tiny_engine_factory", "tiny_model"]  # fixtures used by name

TIMEOUT = 60_000


def _generate_and_stage(window: Any, qtbot: Any) -> None:
    controller = window.generation
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        QTest.keyClick(window.generation.dock.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert controller.staging.active


def test_shift_return_in_the_prompt_box_accepts_a_staged_result(gen_window: Any, qtbot: Any) -> None:
    controller = gen_window.generation
    prompt = controller.dock.prompt
    gen_window.activateWindow()
    prompt.setFocus(Qt.FocusReason.MouseFocusReason)
    text = prompt.toPlainText()
    prompt.moveCursor(QTextCursor.MoveOperation.End)
    # Nothing staged: Shift+Return is a newline in the prompt, as in any text box.
    QTest.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert prompt.toPlainText() == text + "\n"
    prompt.setPlainText(text)

    _generate_and_stage(gen_window, qtbot)
    assert prompt.hasFocus()
    QTest.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert not controller.staging.active, "Shift+Return in the prompt box did not accept"
    assert prompt.toPlainText() == text, "Shift+Return typed a newline instead of accepting"
    assert any(layer.role is Role.GENERATED for layer in gen_window.document.pixel_layers())


def test_accepted_result_lands_above_the_paint_layer_which_stays_active(gen_window: Any, qtbot: Any) -> None:
    doc = gen_window.document
    paint = doc.find("Paint")
    assert doc.active is paint
    _generate_and_stage(gen_window, qtbot)
    QTest.keyClick(gen_window.view, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    names = [layer.name for layer in doc.root.children]
    result = next(layer for layer in doc.pixel_layers(Role.GENERATED))
    assert names.index(result.name) == names.index("Paint") - 1, names  # directly above Paint
    assert doc.active is paint, "the result took the artist's active layer"
    message = gen_window.statusBar().currentMessage()
    assert "above 'Paint'" in message and "painting goes on on 'Paint'" in message, message


def test_first_run_says_what_it_loads_and_cancel_while_loading_frees_the_window_at_once(
    window: Any, tiny_model: Any, tiny_engine_factory: Any, qtbot: Any
) -> None:
    """The engine takes a while to start (torch's import, here a sleep): the busy bar says
    so, then names the model; Esc during the start frees the window at once and the next
    run works (it waits for the start that went on in the background)."""
    import threading

    from sfumato.desktop.generation_controller import install_generation

    release = threading.Event()

    def slow_engine() -> Any:
        release.wait(30)
        return tiny_engine_factory()

    controller = install_generation(window, slow_engine)
    try:
        editing.set_recipe(window.document, prompt="a red ball", model=str(tiny_model), seed=5, steps=2, cfg=5.0)
        shown: list[str] = []
        controller.worker.loading.connect(lambda _job, text: shown.append(controller.dock.progress.format()))
        with qtbot.waitSignal(controller.worker.loading, timeout=TIMEOUT):
            assert controller.generate()
        assert controller.dock.progress.format() == "Starting the engine (PyTorch)…"
        window.actions["cancel"].trigger()  # Esc while the engine starts
        assert not controller.busy, "the window waits for the engine to start before cancelling"
        assert controller.dock.progress.format() == "Cancelled"
        assert not controller.dock.cancel_button.isEnabled()

        release.set()
        with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
            assert controller.generate()
        assert f"Loading {tiny_model.name}…" in shown, shown
        assert controller.staging.count == 1
    finally:
        release.set()
        controller.shutdown()

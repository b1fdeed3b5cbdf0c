"""Settings reach the disk when they change, not only at exit (issue 18): a crash keeps them."""

from __future__ import annotations

from sfumato.desktop.settings import AppSettings


def test_a_moved_dock_is_saved_without_closing_the_window(window, qtbot) -> None:  # noqa: ANN001
    assert not window.docks["layers"].isFloating()
    qtbot.wait(700)  # anything the window saved on being shown is on disk
    before = AppSettings().window_state()[1]
    window.docks["layers"].setFloating(True)
    # read back through a separate settings object, as the next start would
    qtbot.waitUntil(lambda: AppSettings().window_state()[1] != before, timeout=10_000)
    from sfumato.desktop.main_window import MainWindow

    again = MainWindow()  # restores the saved layout, like the next start after a crash
    qtbot.addWidget(again)
    try:
        assert again.docks["layers"].isFloating()
    finally:
        again.docks["layers"].setFloating(False)
        window.docks["layers"].setFloating(False)


def test_brush_colour_and_prompt_are_saved_without_closing(window, qtbot) -> None:  # noqa: ANN001
    window.tool_settings.update(color=(12, 34, 56), size=77)
    window.document.set_recipe(prompt="a lighthouse at night")
    qtbot.waitUntil(lambda: AppSettings().last_recipe().prompt == "a lighthouse at night", timeout=10_000)
    from sfumato.desktop.tool_settings import ToolSettings

    fresh = ToolSettings()
    fresh.load(AppSettings())
    assert fresh.values.color == (12, 34, 56) and fresh.values.size == 77

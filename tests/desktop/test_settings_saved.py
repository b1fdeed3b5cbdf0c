"""Settings reach the disk when they change, not only at exit (issue 18): a crash keeps them."""

from __future__ import annotations

from sfumato.canvas import editing
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
    editing.set_recipe(window.document, prompt="a lighthouse at night")
    qtbot.waitUntil(lambda: AppSettings().last_recipe().prompt == "a lighthouse at night", timeout=10_000)
    from sfumato.desktop.tool_settings import ToolSettings

    fresh = ToolSettings()
    fresh.load(AppSettings())
    assert fresh.values.color == (12, 34, 56) and fresh.values.size == 77


def test_window_settings_from_the_older_folder_are_adopted(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Up to 0.1 the window's INI file lived in ``user_config_dir("Sfumato", "Sfumato")``,
    the model settings in ``user_config_dir("sfumato")``; now both share one folder."""
    import platformdirs
    from sfumato.desktop import settings

    older_root, newer_root = tmp_path / "Older", tmp_path / "newer"
    monkeypatch.setattr(platformdirs, "user_config_dir", lambda *a, **k: str(older_root))
    monkeypatch.delenv("SFUMATO_CONFIG_DIR", raising=False)
    older = settings._settings_file(older_root)
    older.parent.mkdir(parents=True)
    older.write_text("[General]\nbrush\\size=42\n")
    settings._adopt_older_settings(newer_root)
    newer = settings._settings_file(newer_root)
    assert newer.read_text() == older.read_text()
    newer.write_text("[General]\n")
    settings._adopt_older_settings(newer_root)  # once only: a newer file is never replaced
    assert newer.read_text() == "[General]\n"
    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(tmp_path / "tests"))
    settings._adopt_older_settings(tmp_path / "tests")  # never into a named folder
    assert not settings._settings_file(tmp_path / "tests").exists()

"""Help ▸ User Guide: the README is found next to the package, and a missing one is said."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfumato.desktop import help_menu


def test_the_user_guide_is_the_readme_of_this_checkout() -> None:
    path = help_menu.user_guide_path()
    assert path is not None
    assert path == Path(__file__).resolve().parents[2] / "README.md"


def test_without_a_readme_the_user_guide_says_where_to_look(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(help_menu, "user_guide_path", lambda: None)
    messages: list[str] = []
    assert help_menu.open_user_guide(messages.append) is False
    assert messages and "Keyboard Shortcuts" in messages[0]

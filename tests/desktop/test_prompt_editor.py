"""The prompt boxes' syntax highlighting and Ctrl+Up/Down weight steps (desktop/prompt_editor.py)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QTextCharFormat, QTextCursor
from sfumato.canvas.model.document import Document
from sfumato.desktop.generation_dock import GenerationDock
from sfumato.desktop.layers_dock import _PromptEdit as RegionPromptEdit
from sfumato.desktop.prompt_editor import PromptHighlighter, SpanKind, prompt_spans, step_weight

CTRL = Qt.KeyboardModifier.ControlModifier
TYPED = "a (red:1.3) circle <lora:x:0.5> {a|b}"


@pytest.fixture
def dock(qtbot: Any) -> GenerationDock:
    dock = GenerationDock()
    qtbot.addWidget(dock)
    dock.set_document(Document(32, 32))
    return dock


def _formats(edit: Any, block: int = 0) -> dict[tuple[int, int], Any]:
    ranges = edit.document().findBlockByNumber(block).layout().formats()
    return {(r.start, r.start + r.length): QTextCharFormat(r.format) for r in ranges}


def _select(edit: Any, start: int, end: int) -> None:
    cursor = edit.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    edit.setTextCursor(cursor)


def _selected(edit: Any) -> str:
    return edit.textCursor().selectedText()


def test_typed_prompt_is_highlighted_at_the_right_ranges(dock: GenerationDock, qtbot: Any) -> None:
    qtbot.keyClicks(dock.prompt, TYPED)
    formats = _formats(dock.prompt)
    ranges = {TYPED[s:e]: fmt for (s, e), fmt in formats.items()}
    assert set(ranges) == {"(", "red", ":1.3", ")", "<lora:x:0.5>", "{a|b}"}
    assert formats[(3, 6)].fontWeight() == QFont.Weight.Bold  # red weighs 1.3: bold, warm
    assert formats[(3, 6)].foreground().color() == PromptHighlighter.weight_format(1.3).foreground().color()
    bracket = PromptHighlighter.FORMATS[SpanKind.BRACKET].foreground().color()
    assert formats[(2, 3)].foreground().color() == bracket == formats[(10, 11)].foreground().color()
    lora = PromptHighlighter.FORMATS[SpanKind.LORA].foreground().color()
    assert formats[(19, 31)].foreground().color() == lora
    wildcard = PromptHighlighter.FORMATS[SpanKind.WILDCARD].foreground().color()
    assert formats[(32, 37)].foreground().color() == wildcard
    assert len({lora.name(), wildcard.name(), bracket.name()}) == 3


def test_lighter_weights_are_dimmer_and_break_and_escapes_are_marked() -> None:
    text = r"[soft] BREAK \(lit\)"
    kinds = [(text[s.start : s.end], s.kind) for s in prompt_spans(text)]
    assert ("soft", SpanKind.WEIGHTED) in kinds and ("BREAK", SpanKind.BREAK) in kinds
    assert (r"\(", SpanKind.ESCAPE) in kinds and (r"\)", SpanKind.ESCAPE) in kinds
    assert PromptHighlighter.weight_format(0.9).fontWeight() != QFont.Weight.Bold
    # a stray closer and an unclosed choice are text, as the parsers read them
    assert prompt_spans("a) {b|c") == []


def test_a_bracket_on_one_line_weighs_the_next(dock: GenerationDock, qtbot: Any) -> None:
    dock.prompt.setPlainText("(a\nb")
    dock.prompt.moveCursor(QTextCursor.MoveOperation.End)
    weighted = PromptHighlighter.weight_format(1.5).foreground().color()
    assert _formats(dock.prompt, 0)[(1, 2)].foreground().color() != weighted  # unclosed: 1.1
    qtbot.keyClicks(dock.prompt, ":1.5)")  # typed on the second line
    qtbot.waitUntil(lambda: _formats(dock.prompt, 0)[(1, 2)].foreground().color() == weighted)
    assert _formats(dock.prompt, 1)[(0, 1)].foreground().color() == weighted


def test_ctrl_up_down_steps_the_selected_word(dock: GenerationDock, qtbot: Any) -> None:
    dock.prompt.setPlainText("a word here")
    _select(dock.prompt, 2, 6)
    qtbot.keyClick(dock.prompt, Qt.Key.Key_Up, CTRL)
    assert dock.prompt.toPlainText() == "a (word:1.1) here" and _selected(dock.prompt) == "word"
    qtbot.keyClick(dock.prompt, Qt.Key.Key_Up, CTRL)
    assert dock.prompt.toPlainText() == "a (word:1.2) here"
    qtbot.keyClick(dock.prompt, Qt.Key.Key_Down, CTRL)
    qtbot.keyClick(dock.prompt, Qt.Key.Key_Down, CTRL)
    assert dock.prompt.toPlainText() == "a word here" and _selected(dock.prompt) == "word"
    assert dock._doc is not None and dock._doc.recipe.prompt == "a word here"
    dock.prompt.undo()  # one undo step in the box per press
    assert dock.prompt.toPlainText() == "a (word:1.1) here"


def test_ctrl_down_on_an_existing_weight_and_the_recipe_follows(dock: GenerationDock, qtbot: Any) -> None:
    dock.prompt.setPlainText("(cat:1.5)")
    _select(dock.prompt, 1, 4)
    qtbot.keyClick(dock.prompt, Qt.Key.Key_Down, CTRL)
    assert dock.prompt.toPlainText() == "(cat:1.4)"
    assert dock._doc is not None and dock._doc.recipe.prompt == "(cat:1.4)"
    dock.negative.setPlainText("blurry")
    dock.negative.moveCursor(QTextCursor.MoveOperation.End)  # no selection: the word at the cursor
    qtbot.keyClick(dock.negative, Qt.Key.Key_Up, CTRL)
    assert dock._doc.recipe.negative == "(blurry:1.1)"


def test_region_prompt_box_steps_weights_too(qtbot: Any) -> None:
    edit = RegionPromptEdit("region")
    qtbot.addWidget(edit)
    edit.setPlainText("(red cat:1.3), sky")
    edit.moveCursor(QTextCursor.MoveOperation.Start)
    edit.moveCursor(QTextCursor.MoveOperation.Right)  # inside the group
    qtbot.keyClick(edit, Qt.Key.Key_Up, CTRL)
    assert edit.toPlainText() == "(red cat:1.4), sky"
    assert _formats(edit)  # highlighted


@pytest.mark.parametrize(
    ("text", "start", "end", "delta", "expected", "selected"),
    [
        ("x (cat:1.5)", 2, 11, 0.1, "x (cat:1.6)", "cat"),  # the whole wrapper selected
        ("a  b ", 1, 5, 0.1, "a  (b:1.1) ", "b"),  # spaces stay outside
        ("(a:0.1)", 1, 2, -0.1, "(a:0.0)", "a"),  # never below zero
        ("(a:0.1)", 1, 2, -0.1, "(a:0.0)", "a"),
        ("(x:1.05)", 1, 2, 0.1, "(x:1.15)", "x"),
        ("😀 cat", 2, 5, -0.1, "😀 (cat:0.9)", "cat"),
    ],
)
def test_step_weight_edges(text: str, start: int, end: int, delta: float, expected: str, selected: str) -> None:
    edit = step_weight(text, start, end, delta)
    assert edit is not None
    new = edit.apply(text)
    assert new == expected and new[edit.select_start : edit.select_end] == selected


def test_nothing_to_weigh() -> None:
    assert step_weight("a, ", 2, 2, 0.1) is None
    assert step_weight("   ", 0, 3, 0.1) is None


def test_emoji_before_the_selection_keeps_qt_positions_right(qtbot: Any) -> None:
    edit = RegionPromptEdit("region")
    qtbot.addWidget(edit)
    edit.setPlainText("😀 cat")
    _select(edit, 3, 6)  # UTF-16 positions: the emoji is two units
    qtbot.keyClick(edit, Qt.Key.Key_Up, CTRL)
    assert edit.toPlainText() == "😀 (cat:1.1)" and _selected(edit) == "cat"

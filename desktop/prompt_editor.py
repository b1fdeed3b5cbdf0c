"""Prompt boxes that show their syntax and step attention weights with Ctrl+Up/Down.

Two pieces, attached to any ``QPlainTextEdit`` by :func:`attach_prompt_editing`:

- :class:`PromptHighlighter` colours what the prompt parsers read: weighted text (above
  1.0 warmer and bold, below 1.0 dimmer), the brackets and ``:1.3`` weights, ``BREAK``,
  ``<lora:...>`` tags, ``{a|b}`` and ``__list__`` wildcards, and escapes. The spans come
  from :func:`prompt_spans`, which walks the text with the tokens of
  :mod:`sfumato.vocabulary.prompt_syntax` and :mod:`sfumato.vocabulary.prompt_tags` (one
  owner for the syntax) and keeps the character offsets those parsers drop.
- Ctrl+Up / Ctrl+Down, as in A1111 and ComfyUI: the selection (or, with none, the
  weighted group or the word at the cursor) becomes ``(text:1.1)`` / ``(text:0.9)``, or
  an existing ``(text:w)`` steps by 0.1 and loses its wrapper when it comes back to 1.0.
  The selection stays on the text, so repeated presses keep stepping; each press is one
  undo step of the box. :func:`step_weight` is the pure text edit behind it.

Offsets in this module are Python string indices; they are turned into Qt's UTF-16
positions only where a ``QTextCursor`` or a block format needs them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QKeyEvent, QSyntaxHighlighter, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

# The parsers' own tokens (private names: the parsers return no offsets yet, see the
# module docstring), so the highlighter reads exactly what generation reads.
from sfumato.vocabulary.prompt_syntax import BREAK, BREAK_PATTERN, TOKEN_PATTERN, finite_weight
from sfumato.vocabulary.prompt_tags import (
    LORA_PATTERN,
    WILDCARD_NAME_PATTERN,
    PromptTagError,
    wildcard_options,
)

log = logging.getLogger(__name__)

__all__ = [
    "PromptHighlighter",
    "SpanKind",
    "SyntaxSpan",
    "WeightEdit",
    "attach_prompt_editing",
    "prompt_spans",
    "step_weight",
]

#: how much one Ctrl+Up / Ctrl+Down changes a weight (A1111's default step)
WEIGHT_STEP = 0.1
_ROUND = 1.1
_SQUARE = 1 / 1.1
#: characters that end the word Ctrl+Up/Down takes when nothing is selected (A1111's list)
_DELIMITERS = frozenset(".,\\/!?%^*;:{}=`~()[]<>| \t\n")
_WEIGHT_CLOSER = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
_WRAPPED = re.compile(r"\((.*):\s*([+-]?[.\d]+)\s*\)", re.DOTALL)


class SpanKind(Enum):
    """What a :class:`SyntaxSpan` covers."""

    WEIGHTED = "weighted"  # text whose weight is not 1.0
    BRACKET = "bracket"  # ( ) [ ] that the parser reads as syntax
    WEIGHT = "weight"  # the ":1.3" of a weight closer
    BREAK = "break"
    ESCAPE = "escape"  # \( \) \[ \] \\ \{ \} \|
    LORA = "lora"  # <lora:...>
    WILDCARD = "wildcard"  # {a|b} or __name__


@dataclass(frozen=True)
class SyntaxSpan:
    """``text[start:end]`` is a ``kind``; ``weight`` is the text's weight (WEIGHTED, ESCAPE)."""

    start: int
    end: int
    kind: SpanKind
    weight: float = 1.0


def prompt_spans(text: str) -> list[SyntaxSpan]:
    """The syntax of ``text`` as spans, in the order to paint them (later ones win): the
    weighted text first, then brackets, weights, ``BREAK``, escapes, LoRA tags, wildcards.

    Weights follow :func:`~sfumato.vocabulary.prompt_syntax.parse_prompt` token for token
    (unclosed openers weigh the rest, stray closers are text)."""
    # entries: [start, end, weight] of each piece of text the parser keeps
    entries: list[list[Any]] = []
    syntax: list[SyntaxSpan] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def weigh(start: int, factor: float) -> None:
        for entry in entries[start:]:
            entry[2] *= factor

    for match in TOKEN_PATTERN.finditer(text):
        token, number = match.group(0), match.group(1)
        start, end = match.span()
        if token.startswith("\\"):
            if len(token) == 2:
                entries.append([start, end, 1.0])
                syntax.append(SyntaxSpan(start, end, SpanKind.ESCAPE))
        elif token == "(":
            round_open.append(len(entries))
            syntax.append(SyntaxSpan(start, end, SpanKind.BRACKET))
        elif token == "[":
            square_open.append(len(entries))
            syntax.append(SyntaxSpan(start, end, SpanKind.BRACKET))
        elif number is not None and round_open and (weight := finite_weight(number)) is not None:
            weigh(round_open.pop(), weight)
            syntax.append(SyntaxSpan(start, end - 1, SpanKind.WEIGHT))
            syntax.append(SyntaxSpan(end - 1, end, SpanKind.BRACKET))
        elif token == ")" and round_open:
            weigh(round_open.pop(), _ROUND)
            syntax.append(SyntaxSpan(start, end, SpanKind.BRACKET))
        elif token == "]" and square_open:
            weigh(square_open.pop(), _SQUARE)
            syntax.append(SyntaxSpan(start, end, SpanKind.BRACKET))
        else:
            entries.append([start, end, 1.0])
            for found in BREAK_PATTERN.finditer(token):
                word = found.group(0).index(BREAK) + found.start() + start
                syntax.append(SyntaxSpan(word, word + len(BREAK), SpanKind.BREAK))
    for opened in round_open:
        weigh(opened, _ROUND)
    for opened in square_open:
        weigh(opened, _SQUARE)
    spans = [SyntaxSpan(s, e, SpanKind.WEIGHTED, w) for s, e, w in entries if abs(w - 1.0) > 1e-9]
    escapes = {(s.start, s.end): s for s in spans}
    syntax = [
        SyntaxSpan(s.start, s.end, s.kind, escapes[(s.start, s.end)].weight)
        if s.kind is SpanKind.ESCAPE and (s.start, s.end) in escapes
        else s
        for s in syntax
    ]
    spans += syntax
    spans += [SyntaxSpan(*m.span(), SpanKind.LORA) for m in LORA_PATTERN.finditer(text)]
    spans += _wildcard_spans(text)
    return spans


def _wildcard_spans(text: str) -> list[SyntaxSpan]:
    """``{...}`` choices (whole, outermost), ``__name__`` lists and ``\\{ \\} \\|``, read as
    :func:`~sfumato.vocabulary.prompt_tags.resolve_wildcards` does."""
    spans: list[SyntaxSpan] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            if text[i + 1] in "{}|":
                spans.append(SyntaxSpan(i, i + 2, SpanKind.ESCAPE))
            i += 2
        elif char == "{":
            try:
                _, end = wildcard_options(text, i)
            except PromptTagError:  # unclosed while typing: no choice yet
                i += 1
                continue
            spans.append(SyntaxSpan(i, end, SpanKind.WILDCARD))
            i = end
        elif char == "_" and (match := WILDCARD_NAME_PATTERN.match(text, i)) is not None:
            spans.append(SyntaxSpan(i, match.end(), SpanKind.WILDCARD))
            i = match.end()
        else:
            i += 1
    return spans


# =========================================================================================
# Ctrl+Up / Ctrl+Down
# =========================================================================================
@dataclass(frozen=True)
class WeightEdit:
    """Replace ``text[start:end]`` by ``replacement``; afterwards select
    ``new_text[select_start:select_end]`` (indices into the edited text)."""

    start: int
    end: int
    replacement: str
    select_start: int
    select_end: int

    def apply(self, text: str) -> str:
        return text[: self.start] + self.replacement + text[self.end :]


def format_weight(weight: float) -> str:
    """``1.1``, ``0.9``, ``2.0``, ``1.25``: at most two decimals, at least one."""
    out = f"{weight:.2f}".rstrip("0")
    return out + "0" if out.endswith(".") else out


def step_weight(text: str, start: int, end: int, delta: float) -> WeightEdit | None:
    """The edit that changes the weight of ``text[start:end]`` by ``delta`` (None: nothing
    to weigh). With an empty selection it takes the ``(group:w)`` the cursor is in, else
    the word at the cursor. Surrounding spaces of a selection stay outside the wrapper."""
    start, end = min(start, end), max(start, end)
    if start == end:
        found = _group_at(text, start) or _word_at(text, start)
        if found is None:
            return None
        start, end = found
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start == end:
        return None
    inner = text[start:end]
    # the whole "(text:w)" selected: step it as if its text were selected
    if (whole := _WRAPPED.fullmatch(inner)) is not None and finite_weight(whole.group(2)) is not None:
        start, end = start + 1, start + 1 + len(whole.group(1))
        inner = text[start:end]
    closer = _WEIGHT_CLOSER.match(text, end)
    if start > 0 and text[start - 1] == "(" and closer is not None:
        weight = finite_weight(closer.group(1))
        if weight is not None:
            new = max(0.0, round(weight + delta, 2))
            if abs(new - 1.0) < 1e-9:
                return WeightEdit(start - 1, closer.end(), inner, start - 1, start - 1 + len(inner))
            replacement = f"({inner}:{format_weight(new)})"
            return WeightEdit(start - 1, closer.end(), replacement, start, start + len(inner))
    new = max(0.0, round(1.0 + delta, 2))
    replacement = f"({inner}:{format_weight(new)})"
    return WeightEdit(start, end, replacement, start + 1, start + 1 + len(inner))


def _group_at(text: str, pos: int) -> tuple[int, int] | None:
    """The inner range of the innermost ``(text:w)`` around ``pos`` (no nested brackets)."""
    opener = text.rfind("(", 0, pos)
    if opener < 0 or text.rfind(")", opener, pos) >= 0:
        return None
    for closer in _WEIGHT_CLOSER.finditer(text, opener + 1):
        inner = text[opener + 1 : closer.start()]
        if "(" in inner or ")" in inner or closer.start() < pos:
            return None
        return opener + 1, closer.start()
    return None


def _word_at(text: str, pos: int) -> tuple[int, int] | None:
    start = end = pos
    while start > 0 and text[start - 1] not in _DELIMITERS:
        start -= 1
    while end < len(text) and text[end] not in _DELIMITERS:
        end += 1
    return (start, end) if start < end else None


# =========================================================================================
# Qt
# =========================================================================================
def _utf16(text: str, index: int) -> int:
    """Qt's position (UTF-16 code units) of the Python index ``index`` in ``text``."""
    head = text[:index]
    return index + sum(1 for c in head if ord(c) > 0xFFFF)


def _python_index(text: str, position: int) -> int:
    """The Python index of Qt's UTF-16 ``position`` in ``text``."""
    units = 0
    for i, c in enumerate(text):
        if units >= position:
            return i
        units += 2 if ord(c) > 0xFFFF else 1
    return len(text)


def _format(colour: str, *, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(colour))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


class PromptHighlighter(QSyntaxHighlighter):
    """Colours a prompt box's syntax (:func:`prompt_spans`). The spans are read from the
    whole document, since a bracket on one line can weigh the next; an edit in a prompt
    of several lines repaints every line once the edit is done."""

    FORMATS = {
        SpanKind.BRACKET: _format("#5b8fd6"),
        SpanKind.WEIGHT: _format("#5b8fd6", bold=True),
        SpanKind.BREAK: _format("#a05bd6", bold=True),
        SpanKind.ESCAPE: _format("#8a8a8a", italic=True),
        SpanKind.LORA: _format("#2f9e86"),
        SpanKind.WILDCARD: _format("#c0569a"),
    }

    def __init__(self, document: Any) -> None:
        super().__init__(document)
        self._text: str | None = None
        self._spans: list[SyntaxSpan] = []

    @staticmethod
    def weight_format(weight: float) -> QTextCharFormat:
        """Warmer and bold above 1.0 (redder as it grows), grey below."""
        if weight > 1.0:
            heat = min(1.0, (weight - 1.0) / 0.5)
            colour = QColor.fromHsvF(0.11 - 0.11 * heat, 0.75, 0.85)
            fmt = QTextCharFormat()
            fmt.setForeground(colour)
            fmt.setFontWeight(QFont.Weight.Bold)
            return fmt
        return _format("#9a9a9a", italic=weight < 0.75)

    def highlightBlock(self, block_text: str) -> None:  # noqa: N802 - Qt API
        text = self.document().toPlainText()
        if text != self._text:
            self._text = text
            self._spans = prompt_spans(text)
            if self.document().blockCount() > 1:  # earlier lines may change too
                QTimer.singleShot(0, self, self.rehighlight)
        block = self.currentBlock()
        first = _python_index(text, block.position())
        last = first + len(block_text)
        for span in self._spans:
            start, end = max(span.start, first), min(span.end, last)
            if start >= end:
                continue
            fmt = (
                self.weight_format(span.weight)
                if span.kind is SpanKind.WEIGHTED
                else self.FORMATS[span.kind]
            )
            offset = _utf16(block_text, start - first)
            self.setFormat(offset, _utf16(block_text, end - first) - offset, fmt)


class PromptEditing(QObject):
    """The highlighter and the Ctrl+Up/Down keys of one prompt box (an event filter on it)."""

    def __init__(self, edit: QPlainTextEdit) -> None:
        super().__init__(edit)
        self._edit = edit
        self.highlighter = PromptHighlighter(edit.document())
        edit.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            delta = _key_delta(event)  # type: ignore[arg-type]
            if delta is not None:
                if kind == QEvent.Type.ShortcutOverride:
                    event.accept()  # the box takes it before any window shortcut
                else:
                    self.step(delta)
                return True
        return super().eventFilter(watched, event)

    def step(self, delta: float) -> bool:
        """Step the weight of the selection (or the text at the cursor); one undo step."""
        edit = self._edit
        text = edit.toPlainText()
        cursor = edit.textCursor()
        anchor = _python_index(text, cursor.anchor())
        position = _python_index(text, cursor.position())
        change = step_weight(text, anchor, position, delta)
        if change is None:
            return False
        new_text = change.apply(text)
        cursor.beginEditBlock()
        cursor.setPosition(_utf16(text, change.start))
        cursor.setPosition(_utf16(text, change.end), QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(change.replacement)
        cursor.endEditBlock()
        cursor.setPosition(_utf16(new_text, change.select_start))
        cursor.setPosition(_utf16(new_text, change.select_end), QTextCursor.MoveMode.KeepAnchor)
        edit.setTextCursor(cursor)
        return True


def _key_delta(event: QKeyEvent) -> float | None:
    mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    if mods != Qt.KeyboardModifier.ControlModifier:
        return None
    if event.key() == Qt.Key.Key_Up:
        return WEIGHT_STEP
    if event.key() == Qt.Key.Key_Down:
        return -WEIGHT_STEP
    return None


def attach_prompt_editing(edit: QPlainTextEdit) -> PromptEditing:
    """Give ``edit`` the prompt highlighter and Ctrl+Up/Down weight steps (owned by it)."""
    return PromptEditing(edit)

"""A1111's prompt syntax for attention weights and ``BREAK``: text → chunks of weighted spans.

The prompts artists paste come from A1111/Forge pages and model cards, so we read them
as A1111 does (its ``modules/prompt_parser.py``, ``parse_prompt_attention``; this is our
own code following that behaviour):

- ``(text:1.3)`` weighs ``text`` by 1.3; ``(text)`` by 1.1; ``[text]`` by 1/1.1. Nesting
  multiplies: ``((text))`` is 1.21, ``[(text:1.5)]`` is 1.5/1.1.
- ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are the literal characters; a backslash before
  anything else is dropped (as A1111).
- Unbalanced brackets, as A1111: a ``(`` or ``[`` never closed weighs everything after it
  (by 1.1 or 1/1.1); a ``)`` or ``]`` that closes nothing is literal text, and so is
  ``:1.3)`` with no ``(`` open. A ``:weight)`` whose number does not read as a finite float
  (``(a:1.2.3)``, where A1111 raises) is literal text too.
- ``BREAK`` (upper case, a word on its own) ends a chunk; the whitespace around it goes
  with it. Each chunk starts a new 75-token window of the text encoder. Unlike A1111, a
  ``BREAK`` inside brackets still breaks (A1111 then encodes the word itself with a
  negative weight, a bug we do not copy).
- Anything else is text: a ``<lora:name:0.8>`` tag passes through unchanged (the LoRA tags
  are stripped before encoding, elsewhere); ``:`` outside a weight is literal.

The result, :data:`ParsedPrompt`, is a tuple of chunks, each a tuple of
:class:`WeightedText` with adjacent equal weights merged and empty spans left out (an
empty chunk is ``()``). A prompt without syntax (:func:`has_syntax` false) parses to one
chunk holding the whole text at weight 1.0, so it encodes exactly as before this existed.
Scheduling (``[a:b:0.5]``), alternation (``[a|b]``) and ``AND`` are not read: they stay
text, with the brackets weighing it, as A1111 with those features off.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "BREAK", "BREAK_PATTERN", "TOKEN_PATTERN", "Chunk", "ParsedPrompt", "WeightedText", "finite_weight",
    "has_syntax", "parse_prompt",
]

#: the word that ends a chunk
BREAK = "BREAK"

#: ``(text)`` multiplies by this, ``[text]`` divides by it
_ROUND = 1.1
_SQUARE = 1 / 1.1

# One alternative per token, first match wins: escapes, a lone backslash, openers, a
# ``:weight)`` closer, plain closers, a run of plain text, a lone colon.
_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]            # escaped bracket or backslash
    | \\                    # lone backslash: dropped
    | [(\[]                 # opener
    | :\s*([+-]?[.\d]+)\s*\)  # weight and closer
    | [)\]]                 # closer
    | [^\\()\[\]:]+         # text
    | :                     # a colon that starts no weight
    """,
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.DOTALL)
_SYNTAX_CHARS = frozenset("()[]\\")


@dataclass(frozen=True)
class WeightedText:
    """A span of prompt text and the weight its tokens get (1.0: unweighted)."""

    text: str
    weight: float = 1.0


#: one window-starting chunk: spans in order
Chunk = tuple[WeightedText, ...]
#: a prompt: its chunks, at least one
ParsedPrompt = tuple[Chunk, ...]


def has_syntax(text: str) -> bool:
    """Whether ``text`` holds anything :func:`parse_prompt` reads as syntax: a bracket, a
    backslash or a ``BREAK``. Without, it parses to itself at weight 1.0."""
    return any(c in _SYNTAX_CHARS for c in text) or _BREAK.search(text) is not None


def parse_prompt(text: str) -> ParsedPrompt:
    """``text``'s chunks of weighted spans, as A1111 reads them (module docstring)."""
    # Entries are [text, weight]; None marks a BREAK, which no bracket weighs.
    entries: list[list[str | float] | None] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def weigh(start: int, factor: float) -> None:
        for entry in entries[start:]:
            if entry is not None:
                entry[1] = float(entry[1]) * factor

    def add_text(part: str) -> None:
        for i, piece in enumerate(_BREAK.split(part)):
            if i:
                entries.append(None)
            entries.append([piece, 1.0])

    for match in _TOKEN.finditer(text):
        token, number = match.group(0), match.group(1)
        if token.startswith("\\"):
            entries.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(entries))
        elif token == "[":
            square_open.append(len(entries))
        elif number is not None and round_open and (weight := _finite(number)) is not None:
            weigh(round_open.pop(), weight)
        elif token == ")" and round_open:
            weigh(round_open.pop(), _ROUND)
        elif token == "]" and square_open:
            weigh(square_open.pop(), _SQUARE)
        else:
            add_text(token)
    for start in round_open:
        weigh(start, _ROUND)
    for start in square_open:
        weigh(start, _SQUARE)
    return _chunks(entries)


def _finite(number: str) -> float | None:
    try:
        value = float(number)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _chunks(entries: list[list[str | float] | None]) -> ParsedPrompt:
    """Entries split at the BREAK marks; empty spans dropped, equal neighbours merged."""
    chunks: list[Chunk] = []
    spans: list[WeightedText] = []
    for entry in [*entries, None]:
        if entry is None:
            chunks.append(tuple(spans))
            spans = []
            continue
        text, weight = str(entry[0]), float(entry[1])
        if not text:
            continue
        if spans and spans[-1].weight == weight:
            spans[-1] = WeightedText(spans[-1].text + text, weight)
        else:
            spans.append(WeightedText(text, weight))
    return tuple(chunks)


# The pieces of the parser a highlighter needs to find the syntax's character offsets
# (desktop/prompt_editor.py), public so the syntax keeps one owner.
TOKEN_PATTERN = _TOKEN
BREAK_PATTERN = _BREAK
finite_weight = _finite

"""Prompt tags that name files, and wildcards that pick words: the text before a model reads it.

Two kinds of markup that AUTOMATIC1111 users write into prompts (pure Python, no room):

- **LoRA tags** ``<lora:NAME>``, ``<lora:NAME:weight>`` and ``<lora:NAME:te:unet>`` (A1111's
  order: the first number is the text-encoder weight, the second the UNet weight; with
  one number both use it; named ``te=0.5`` / ``unet=0.8`` work too). Whitespace around
  the parts is allowed. :func:`extract_lora_tags` takes them out of the text and returns
  them; where a tag was, no double space or dangling comma is left.
- **Wildcards** ``{red|blue|green}`` picks one option (options may nest), ``__name__`` picks
  one line of the wildcard list ``name`` (:func:`load_wildcards` reads them from
  ``<config folder>/wildcards/*.txt``, one entry a line, blank and ``#`` lines skipped; a
  line may hold wildcards itself). :func:`resolve_wildcards` draws the choices from a
  :class:`random.Random` seeded with the generation seed, so the same seed gives the same
  prompt. ``\\{``, ``\\}`` and ``\\|`` are literal characters: they stay escaped in the
  resolved text (so resolving it again changes nothing and a saved prompt re-runs
  unchanged) and :func:`unescape_wildcards` turns them into plain characters for the
  model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sfumato.vocabulary.config import config_dir
from sfumato.vocabulary.regular_file import open_regular

__all__ = [
    "LORA_PATTERN",
    "WILDCARD_NAME_PATTERN",
    "LoraTag",
    "PromptTagError",
    "WILDCARDS_FOLDER",
    "extract_lora_tags",
    "load_wildcards",
    "resolve_wildcards",
    "unescape_wildcards",
    "wildcard_options",
    "wildcards_dir",
]

#: The folder, inside the user's configuration folder, that holds the wildcard lists.
WILDCARDS_FOLDER = "wildcards"
#: The largest wildcard file read (a list of a few thousand lines is far below it).
MAX_WILDCARD_BYTES = 1 << 20
#: How deep wildcard lists may refer to one another (a list naming itself stops here).
MAX_DEPTH = 20

_LORA = re.compile(r"<\s*lora\s*:([^<>]*)>", re.IGNORECASE)
_WILDCARD_NAME = re.compile(r"__([\w./-]+?)__")
_ESCAPED = "{}|"


class PromptTagError(ValueError):
    """A prompt's markup cannot be read: a malformed LoRA tag, an unclosed ``{``, a
    wildcard list that does not exist. The message names the tag and says what to fix."""


@dataclass(frozen=True)
class LoraTag:
    """One ``<lora:...>`` tag: the LoRA's name (a file stem) and its two weights."""

    name: str
    unet_weight: float = 1.0
    text_encoder_weight: float = 1.0

    @property
    def text(self) -> str:
        """The tag as A1111 writes it (one weight when both are equal)."""
        if self.text_encoder_weight == self.unet_weight:
            return f"<lora:{self.name}:{_num(self.unet_weight)}>"
        return f"<lora:{self.name}:{_num(self.text_encoder_weight)}:{_num(self.unet_weight)}>"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# =========================================================================================
# LoRA tags
# =========================================================================================
def extract_lora_tags(text: str) -> tuple[str, tuple[LoraTag, ...]]:
    """``text`` without its LoRA tags, and the tags in the order they appear.

    Text without tags comes back unchanged. Raises :class:`PromptTagError` for a tag with
    no name, a weight that is not a number, or more parts than a tag has.
    """
    tags: list[LoraTag] = []
    while (match := _LORA.search(text)) is not None:
        tags.append(_parse_tag(match.group(0), match.group(1)))
        text = _join_around(text[: match.start()], text[match.end():])
    return (text.strip() if tags else text), tuple(tags)


def _parse_tag(whole: str, body: str) -> LoraTag:
    parts = [part.strip() for part in body.split(":")]
    name = parts[0]
    if not name:
        raise PromptTagError(f"the LoRA tag {whole} has no name: write <lora:NAME:1.0>")
    positional: list[float] = []
    named: dict[str, float] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        try:
            number = float(value if sep else part)
        except ValueError:
            raise PromptTagError(
                f"the LoRA tag {whole} has a weight {part!r} that is not a number: "
                "write <lora:NAME:0.8> (or <lora:NAME:te:unet>)"
            ) from None
        if sep:
            if key not in ("te", "unet"):
                raise PromptTagError(f"the LoRA tag {whole} has an unknown setting {key!r}: use te= or unet=")
            named[key] = number
        else:
            positional.append(number)
    if len(positional) > 2:
        raise PromptTagError(
            f"the LoRA tag {whole} has {len(positional)} weights: write <lora:NAME:weight> or "
            "<lora:NAME:te:unet>"
        )
    te = named.get("te", positional[0] if positional else 1.0)
    unet = named.get("unet", positional[1] if len(positional) > 1 else te)
    return LoraTag(name, unet_weight=unet, text_encoder_weight=te)


def _join_around(left: str, right: str) -> str:
    """``left`` and ``right`` joined where a tag was: one space, no empty comma part."""
    left = left.rstrip(" \t")
    right = right.lstrip(" \t")

    def at_edge(text: str, end: bool) -> bool:
        return not text or (text.endswith("\n") if end else text.startswith("\n"))

    left_edge, right_edge = at_edge(left, True), at_edge(right, False)
    if right.startswith(",") and (left_edge or left.endswith(",")):
        right = right[1:].lstrip(" \t")
        right_edge = at_edge(right, False)
    elif left.endswith(",") and right_edge:
        left = left[:-1].rstrip(" \t")
        left_edge = at_edge(left, True)
    separator = "" if left_edge or right_edge or right.startswith(",") else " "
    return left + separator + right


# =========================================================================================
# Wildcards
# =========================================================================================
def resolve_wildcards(text: str, seed: int, lists: Mapping[str, Sequence[str]] | None = None) -> str:
    """``text`` with every ``{a|b}`` and ``__name__`` replaced by one choice.

    Choices come from ``random.Random(seed)`` in reading order, and only the chosen option
    is resolved further, so equal ``(text, seed, lists)`` give equal results. ``lists``
    maps a list name to its entries (:func:`load_wildcards`). Escaped ``\\{ \\} \\|`` stay
    as they are. Raises :class:`PromptTagError` for an unclosed ``{`` or a list that is
    not in ``lists``.
    """
    if "{" not in text and "__" not in text:
        return text
    return _resolve(text, random.Random(seed), lists or {}, 0)


def _resolve(text: str, rng: random.Random, lists: Mapping[str, Sequence[str]], depth: int) -> str:
    if depth > MAX_DEPTH:
        raise PromptTagError(
            f"wildcards nest more than {MAX_DEPTH} deep (does a wildcard list name itself?)"
        )
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i : i + 2])
            i += 2
        elif char == "{":
            options, i = _options(text, i)
            chosen = options[rng.randrange(len(options))]
            out.append(_resolve(chosen, rng, lists, depth + 1))
        elif char == "_" and (match := _WILDCARD_NAME.match(text, i)) is not None:
            name = match.group(1)
            entries = lists.get(name)
            if entries is None:
                raise PromptTagError(
                    f"no wildcard list named {name!r} for __{name}__: put {name}.txt (one entry a "
                    f"line) in {wildcards_dir()}"
                )
            if not entries:
                raise PromptTagError(f"the wildcard list {name!r} is empty")
            out.append(_resolve(entries[rng.randrange(len(entries))], rng, lists, depth + 1))
            i = match.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _options(text: str, start: int) -> tuple[list[str], int]:
    """The raw options of the ``{...}`` opening at ``start``, and the index after it."""
    options: list[str] = []
    depth = 0
    begin = start + 1
    i = begin
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                options.append(text[begin:i])
                return options, i + 1
            depth -= 1
        elif char == "|" and depth == 0:
            options.append(text[begin:i])
            begin = i + 1
        i += 1
    snippet = text[start : start + 30]
    raise PromptTagError(
        f"the choice {snippet!r} has no closing '}}': close it, or write \\{{ for a literal brace"
    )


def unescape_wildcards(text: str) -> str:
    """``\\{ \\} \\|`` as plain characters (other backslashes are left for the prompt parser)."""
    if "\\" not in text:
        return text
    return re.sub(r"\\([{}|])", r"\1", text)


def wildcards_dir() -> Path:
    """Where the wildcard lists live: ``wildcards`` in the configuration folder."""
    return config_dir() / WILDCARDS_FOLDER


def load_wildcards(folder: Path | None = None) -> dict[str, tuple[str, ...]]:
    """The wildcard lists in ``folder`` (default :func:`wildcards_dir`): ``name.txt`` gives
    list ``name`` (``sub/name`` for a file in a subfolder), one entry per line, blank lines
    and lines starting with ``#`` skipped. A missing folder gives no lists; a file that
    cannot be read raises :class:`PromptTagError` naming it."""
    folder = wildcards_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        return {}
    lists: dict[str, tuple[str, ...]] = {}
    for path in sorted(folder.rglob("*.txt")):
        name = path.relative_to(folder).with_suffix("").as_posix()
        try:
            with open_regular(path) as handle:
                data = handle.read(MAX_WILDCARD_BYTES + 1)
            if len(data) > MAX_WILDCARD_BYTES:
                raise ValueError(f"larger than {MAX_WILDCARD_BYTES} bytes")
            text = data.decode("utf-8-sig")
        except (OSError, ValueError) as error:
            raise PromptTagError(f"cannot read the wildcard list {path}: {error}") from None
        lines = (line.strip() for line in text.splitlines())
        lists[name] = tuple(line for line in lines if line and not line.startswith("#"))
    return lists


# The pieces of the tag and wildcard readers a highlighter needs to find their character
# offsets (desktop/prompt_editor.py), public so the syntax keeps one owner.
LORA_PATTERN = _LORA
WILDCARD_NAME_PATTERN = _WILDCARD_NAME
wildcard_options = _options

"""Styles: named bundles of generation settings (model, LoRAs, sampler, steps, CFG, prompt
template, negative, and a separate block for live mode).

A style is a small file: JSON (what :func:`save_style` writes) or TOML (read with
:mod:`tomllib`, for artists who write them by hand), in ``<config_dir>/styles/`` (see
:func:`~sfumato.vocabulary.config.config_dir`), plus the built-ins shipped in
``resources/styles/``. A user style with the same name as a built-in replaces it. A file
that cannot be read is skipped with a one-line message naming it (:class:`StyleBook`
``problems``); it never stops the program.

Keys (all but ``name`` optional)::

    name = "Watercolour"
    model = "builtin"            # a model source; or only
    family = "sdxl"              # the family it is meant for (informative)
    sampler = "euler_a"          # a Sampler value or A1111 label (scheduler included)
    steps = 20
    cfg = 7.0
    prompt = "{prompt}, watercolour, soft edges"   # {prompt}: the artist's prompt
    negative = "photo"           # appended to the artist's negative
    loras = [{name = "watercolour_v2", weight = 0.8}]
    [live]                       # live mode's own values
    sampler = "lcm"
    steps = 4
    cfg = 1.0
    strength = 0.5

LoRAs take one path: :func:`apply_style` adds them to the prompt as ``<lora:NAME:w>`` tags,
which the planner resolves as any tag the artist typed (:mod:`sfumato.planner.prompts`).

A document keeps the style it was made with: :func:`record_style` stores the name in
``Recipe.style`` and the style's values in ``Recipe.style_resolved`` (saved as
``sfumato:style`` and ``sfumato:style-resolved``). :func:`recipe_style` reads them back,
the stored values first, so the document renders the same on a machine where the style
is missing or was edited since (the artist re-applies a style to take its new values).
"""

from __future__ import annotations

import json
import logging
import math
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sfumato.canvas.model.document import Recipe
from sfumato.inference.catalog import ModelEntry
from sfumato.planner.recipe import GenerationSettings
from sfumato.vocabulary.atomic_file import atomic_write
from sfumato.vocabulary.config import MAX_JSON_BYTES, config_dir
from sfumato.vocabulary.errors import RequestError
from sfumato.vocabulary.families import BUILTIN
from sfumato.vocabulary.kinds import Sampler
from sfumato.vocabulary.prompt_tags import LoraTag

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_SOURCE",
    "LiveStyle",
    "Style",
    "StyleBook",
    "StyleError",
    "StyleLora",
    "apply_live_style",
    "apply_style",
    "builtin_styles_dir",
    "load_style_file",
    "load_styles",
    "recipe_style",
    "record_style",
    "save_style",
    "style_negative",
    "style_prompt",
    "user_styles_dir",
]

BUILTIN_SOURCE = "built-in"
PROMPT_SLOT = "{prompt}"
_SUFFIXES = (".json", ".toml")
_KEYS = {"name", "model", "family", "sampler", "steps", "cfg", "prompt", "negative", "loras", "live"}
_LIVE_KEYS = {"sampler", "steps", "cfg", "strength"}


class StyleError(ValueError):
    """A style that cannot be read or is not known; the message is one line for the user."""


@dataclass(frozen=True)
class StyleLora:
    """A LoRA the style adds: its name (a file stem, as in a ``<lora:NAME:w>`` tag)."""

    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class LiveStyle:
    """Live mode's values; ``None`` leaves live mode's own (its preset's)."""

    sampler: Sampler | None = None
    steps: int | None = None
    cfg: float | None = None
    strength: float | None = None


@dataclass(frozen=True)
class Style:
    """One style. ``None`` fields leave the settings' own value; ``prompt`` is a template
    in which ``{prompt}`` stands for the artist's prompt (without it, the artist's prompt
    comes first and the template after a comma). ``source`` says where it was read from
    (``built-in`` or the file); it is not part of the style's value."""

    name: str
    model: str | None = None
    family: str | None = None
    sampler: Sampler | None = None
    steps: int | None = None
    cfg: float | None = None
    prompt: str = PROMPT_SLOT
    negative: str = ""
    loras: tuple[StyleLora, ...] = ()
    live: LiveStyle = LiveStyle()
    source: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """The style as a JSON object (what a style file and ``sfumato:style-resolved`` hold)."""
        data: dict[str, Any] = {"name": self.name}
        for key in ("model", "family", "steps", "cfg"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.sampler is not None:
            data["sampler"] = self.sampler.value
        data["prompt"] = self.prompt
        if self.negative:
            data["negative"] = self.negative
        if self.loras:
            data["loras"] = [{"name": lora.name, "weight": lora.weight} for lora in self.loras]
        live = {k: getattr(self.live, k) for k in ("steps", "cfg", "strength") if getattr(self.live, k) is not None}
        if self.live.sampler is not None:
            live["sampler"] = self.live.sampler.value
        if live:
            data["live"] = live
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "") -> Style:
        """Read a parsed style; raises :class:`StyleError` (without the file's name) for a
        missing name, an unknown key, or a value of the wrong kind or out of range."""
        if not isinstance(data, Mapping):
            raise StyleError("a style must be a table/object of keys")
        unknown = set(data) - _KEYS
        if unknown:
            raise StyleError(f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(_KEYS))})")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise StyleError("'name' must be a non-empty text")
        live_data = data.get("live", {})
        if not isinstance(live_data, Mapping):
            raise StyleError("'live' must be a table/object")
        unknown = set(live_data) - _LIVE_KEYS
        if unknown:
            raise StyleError(f"unknown key live.{sorted(unknown)[0]} (known: {', '.join(sorted(_LIVE_KEYS))})")
        live = LiveStyle(
            sampler=_sampler(live_data, "live.sampler"),
            steps=_int(live_data, "steps", "live.steps"),
            cfg=_float(live_data, "cfg", "live.cfg", 0.0, 100.0),
            strength=_float(live_data, "strength", "live.strength", 0.0, 1.0),
        )
        return cls(
            name=name.strip(),
            model=_text(data, "model") or None,
            family=_text(data, "family") or None,
            sampler=_sampler(data, "sampler"),
            steps=_int(data, "steps", "steps"),
            cfg=_float(data, "cfg", "cfg", 0.0, 100.0),
            prompt=_text(data, "prompt", PROMPT_SLOT),
            negative=_text(data, "negative"),
            loras=_loras(data.get("loras", [])),
            live=live,
            source=source,
        )


def _text(data: Mapping[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise StyleError(f"'{key}' must be text, not {value!r}")
    return value


def _sampler(data: Mapping[str, Any], where: str) -> Sampler | None:
    value = data.get("sampler")
    if value is None:
        return None
    try:
        return Sampler.from_label(str(value))
    except RequestError as error:
        raise StyleError(f"'{where}': {error}") from None


def _int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise StyleError(f"'{where}' must be a whole number 1..1000, not {value!r}")
    return value


def _float(data: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise StyleError(f"'{where}' must be a number {lo:g}..{hi:g}, not {value!r}")
    return float(value)


def _loras(value: Any) -> tuple[StyleLora, ...]:
    if not isinstance(value, list):
        raise StyleError("'loras' must be a list of {name, weight}")
    out = []
    for item in value:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or set(item) - {"name", "weight"}:
            raise StyleError(f"'loras': {item!r} is not {{name, weight}}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or re.search(r"[<>:]", name):
            raise StyleError(f"'loras': bad LoRA name {name!r}")
        weight = _float(item, "weight", "loras.weight", -10.0, 10.0)
        out.append(StyleLora(name.strip(), 1.0 if weight is None else weight))
    return tuple(out)


# ----------------------------------------------------------------------------- files
def user_styles_dir() -> Path:
    """``styles`` in the user's settings folder."""
    return config_dir() / "styles"


def builtin_styles_dir() -> Path:
    """``resources/styles``: the styles shipped with Sfumato."""
    import sfumato.resources

    return Path(sfumato.resources.__file__).parent / "styles"


def load_style_file(path: Path, source: str | None = None) -> Style:
    """The style in ``path`` (``.json`` or ``.toml``); raises :class:`StyleError` naming the
    file, for any file it cannot read."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise StyleError("the file is too large")
        raw = path.read_bytes()
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
        return Style.from_json(data, str(path) if source is None else source)
    except StyleError as error:
        raise StyleError(f"style {path}: {error}") from None
    except (OSError, ValueError, RecursionError) as error:  # JSON/TOML/UTF-8 errors are ValueErrors
        raise StyleError(f"style {path}: {_one_line(str(error))}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name.strip()).strip("-").lower()
    return slug or "style"


def save_style(style: Style, folder: Path | None = None) -> Path:
    """Write ``style`` as JSON into ``folder`` (default: :func:`user_styles_dir`), named after
    it (``Soft Watercolour`` → ``soft-watercolour.json``), atomically; returns the path."""
    folder = user_styles_dir() if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_slug(style.name)}.json"
    with atomic_write(path) as stream:
        stream.write((json.dumps(style.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


@dataclass(frozen=True)
class StyleBook:
    """The styles found, by name (user styles over built-ins, sorted by name), and a one-line
    message for each file that could not be read."""

    styles: Mapping[str, Style]
    problems: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return list(self.styles)

    def find(self, name: str) -> Style:
        """The style called ``name`` (exactly, else ignoring case); raises :class:`StyleError`
        listing the known names."""
        if name in self.styles:
            return self.styles[name]
        folded = {key.casefold(): style for key, style in self.styles.items()}
        if name.casefold() in folded:
            return folded[name.casefold()]
        known = ", ".join(self.styles) or "none"
        raise StyleError(f"no style called {name!r}; known styles: {known}")


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file())
    except OSError:
        return []


def load_styles(user_dir: Path | None = None, builtin_dir: Path | None = None) -> StyleBook:
    """Every style: the built-ins, then the user's (``user_dir`` default :func:`user_styles_dir`)
    replacing built-ins of the same name. Unreadable files are logged and listed in
    ``problems``; a missing folder is no style."""
    found: dict[str, Style] = {}
    problems: list[str] = []
    sources = [
        (builtin_styles_dir() if builtin_dir is None else builtin_dir, BUILTIN_SOURCE),
        (user_styles_dir() if user_dir is None else user_dir, None),
    ]
    for folder, source in sources:
        for path in _files(folder):
            try:
                style = load_style_file(path, source)
            except StyleError as error:
                log.warning("%s", error)
                problems.append(str(error))
                continue
            found[style.name] = style
    return StyleBook(dict(sorted(found.items(), key=lambda kv: kv[0].casefold())), tuple(problems))


def installed_styles(book: StyleBook, loras: Iterable[ModelEntry], models: Iterable[str]) -> StyleBook:
    """The styles to offer on this machine: every user style, and a built-in one only when
    what it needs is installed — each of its LoRAs among ``loras`` (by file stem, any case)
    and its model (other than the built-in one) among the ``models`` sources — so the
    picker shows one style per installed fast setup, not a list of downloads to make."""
    stems = {(entry.path.stem if entry.path is not None else entry.label).casefold() for entry in loras}
    sources = set(models) | {BUILTIN}
    kept = {
        name: style
        for name, style in book.styles.items()
        if style.source != BUILTIN_SOURCE
        or (all(lora.name.casefold() in stems for lora in style.loras)
            and (style.model is None or style.model in sources))
    }
    return StyleBook(kept, book.problems)


# ----------------------------------------------------------------------------- applying
def style_prompt(style: Style, prompt: str) -> str:
    """``prompt`` through the style's template, with the style's LoRAs as tags at the end."""
    template = style.prompt
    if PROMPT_SLOT in template:
        text = template.replace(PROMPT_SLOT, prompt)
    else:
        text = ", ".join(part for part in (prompt.strip(), template.strip()) if part)
    tags = [LoraTag(lora.name, lora.weight, lora.weight).text for lora in style.loras]
    return " ".join(part for part in (text.strip(), *tags) if part)


def style_negative(style: Style, negative: str) -> str:
    """The artist's negative followed by the style's."""
    return ", ".join(part for part in (negative.strip(), style.negative.strip()) if part)


def apply_style(style: Style, settings: GenerationSettings, keep: Collection[str] = ()) -> GenerationSettings:
    """``settings`` with ``style`` applied: the prompt through its template (LoRA tags
    added), its negative appended, and its model, sampler, steps and CFG where it gives
    them, except the fields named in ``keep`` (what the artist set explicitly, e.g. a
    ``--steps`` flag)."""
    changes: dict[str, Any] = {
        "prompt": style_prompt(style, settings.prompt),
        "negative": style_negative(style, settings.negative),
    }
    for name in ("model", "sampler", "steps", "cfg"):
        value = getattr(style, name)
        if value is not None and name not in keep:
            changes[name] = value
    if "model" in changes and changes["model"] != settings.model:
        changes["model_family"] = style.family
    return settings.replace(**changes)


def apply_live_style(style: Style, settings: GenerationSettings) -> GenerationSettings:
    """``settings`` for live mode: :func:`apply_style`'s prompt and model, then the live
    block's sampler, steps, CFG and strength where it gives them."""
    styled = apply_style(replace(style, sampler=None, steps=None, cfg=None), settings)
    live = {k: getattr(style.live, k) for k in ("sampler", "steps", "cfg", "strength")}
    return styled.replace(**{k: v for k, v in live.items() if v is not None})


# ----------------------------------------------------------------------------- the recipe
def record_style(recipe: Recipe, style: Style | None) -> None:
    """Store ``style`` in ``recipe`` (its name and its values), or clear it (``None``)."""
    recipe.style = None if style is None else style.name
    recipe.style_resolved = None if style is None else style.to_json()


def recipe_style(recipe: Recipe, book: StyleBook | Iterable[Style] | None = None) -> Style | None:
    """The style ``recipe`` was made with: the stored values when there are some (so the
    document renders the same everywhere), else the named style from ``book`` (default:
    :func:`load_styles`); ``None`` when the recipe names none. Raises :class:`StyleError`
    when the named style is neither stored nor known, or the stored values are broken."""
    if not recipe.style and not recipe.style_resolved:
        return None
    if recipe.style_resolved:
        try:
            return replace(Style.from_json(recipe.style_resolved, "the document"), name=recipe.style or
                           str(recipe.style_resolved.get("name", "")))
        except StyleError as error:
            raise StyleError(f"the document's style {recipe.style!r}: {error}") from None
    if book is None:
        book = load_styles()
    elif not isinstance(book, StyleBook):
        book = StyleBook({style.name: style for style in book})
    return book.find(str(recipe.style))


def with_recipe_style(recipe: Recipe, settings: GenerationSettings) -> GenerationSettings:
    """``settings`` (made from ``recipe``) with the style the recipe names applied to the
    prompt and the negative. The window stores a chosen style's model, sampler, steps and
    CFG in the recipe as ordinary settings the artist may change afterwards, so those are
    kept as they are. Raises :class:`StyleError` as :func:`recipe_style` does."""
    style = recipe_style(recipe)
    if style is None:
        return settings
    return apply_style(style, settings, keep=("model", "sampler", "steps", "cfg"))


def style_recipe_values(style: Style | None) -> dict[str, Any]:
    """The recipe fields choosing ``style`` sets (``None``: no style): its name and stored
    values, and the model, sampler, steps and CFG it gives."""
    if style is None:
        return {"style": None, "style_resolved": None}
    values: dict[str, Any] = {"style": style.name, "style_resolved": style.to_json()}
    if style.model is not None:
        values["model"] = style.model
    if style.sampler is not None:
        values["sampler"] = style.sampler.value
    if style.steps is not None:
        values["steps"] = style.steps
    if style.cfg is not None:
        values["cfg"] = style.cfg
    return values

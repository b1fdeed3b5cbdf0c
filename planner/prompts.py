"""The prompts of a plan: wildcards resolved with the seed, LoRA tags turned into files.

:func:`resolve_prompt` (wildcards, :func:`~sfumato.vocabulary.prompt_tags.resolve_wildcards`)
runs on the document's prompt and negative before the regions are planned, and
:func:`prompt_loras` on every text the request will hold (the prompt, the negative, each
region's texts) after. The request gets the texts without tags (and with ``\\{`` as a
plain ``{``); the generation record keeps the resolved texts *with* their tags, as A1111
writes them, so a re-run of a saved picture's ``parameters`` gives the same prompt and the
same LoRAs.

A tag's name is a LoRA file's stem among the installed LoRAs
(:func:`~sfumato.inference.catalog.find_loras`; tests pass their own lookup), of the
model's family or of unknown family. A LoRA applies to the whole picture, wherever its
tag stands; the same name twice is one LoRA (the first tag's weights win, with a note).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sfumato.inference.catalog import ModelEntry, WeightsKind, find_loras, system_model_dirs
from sfumato.inference.fast_presets import lora_preset
from sfumato.inference.request import LoraSpec, SchedulerTweaks
from sfumato.planner.errors import PlanError
from sfumato.vocabulary.config import load_config
from sfumato.vocabulary.families import lora_family
from sfumato.vocabulary.prompt_tags import (
    LoraTag,
    PromptTagError,
    extract_lora_tags,
    load_wildcards,
    resolve_wildcards,
    unescape_wildcards,
)

__all__ = [
    "LoraLookup", "PromptTexts", "RecordedPrompts", "WildcardLists", "Wildcards", "prompt_loras",
    "resolve_prompt", "split_tags",
]

#: All installed LoRAs (the planner filters them by family): ``find_loras`` by default.
LoraLookup = Callable[[], Iterable[ModelEntry]]
#: Wildcard lists by name, or a function that loads them when a prompt needs one.
WildcardLists = Mapping[str, Sequence[str]] | Callable[[], Mapping[str, Sequence[str]]]
_LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")


@dataclass(frozen=True)
class PromptTexts:
    """One text of the request: ``text`` for the model (no tags, escapes undone) and
    ``recorded`` for the generation record (wildcards resolved, tags kept)."""

    text: str
    recorded: str
    tags: tuple[LoraTag, ...] = ()


class Wildcards:
    """The wildcard lists of one plan: given, or loaded once when a text first names one."""

    def __init__(self, lists: WildcardLists | None) -> None:
        self._source = lists
        self._loaded: Mapping[str, Sequence[str]] | None = None

    def get(self) -> Mapping[str, Sequence[str]]:
        if self._loaded is None:
            source = self._source if self._source is not None else load_wildcards
            self._loaded = source() if callable(source) else source
        return self._loaded


@dataclass(frozen=True)
class RecordedPrompts:
    """What the generation record stores as the prompts: wildcards resolved, tags kept;
    ``regions`` holds each region's ``(prompt, negative)``, in the request's order."""

    prompt: str
    negative: str
    regions: tuple[tuple[str, str], ...] = ()


def resolve_prompt(text: str, seed: int, lists: Wildcards | None = None) -> str:
    """``text`` with its wildcards resolved for ``seed`` (tags and escapes kept).

    ``lists`` defaults to the user's wildcard folder, read only when ``text`` names a list.
    Raises :class:`PlanError` for a prompt whose markup cannot be read.
    """
    lists = Wildcards(None) if lists is None else lists
    try:
        if "__" in text:
            return resolve_wildcards(text, seed, lists.get())
        return resolve_wildcards(text, seed)
    except PromptTagError as error:
        raise PlanError(str(error)) from None


def split_tags(recorded: str) -> PromptTexts:
    """``recorded`` (wildcards resolved) split into the model's text and its LoRA tags."""
    try:
        text, tags = extract_lora_tags(recorded)
    except PromptTagError as error:
        raise PlanError(str(error)) from None
    return PromptTexts(unescape_wildcards(text), recorded, tags)


def prompt_loras(
    texts: Iterable[PromptTexts], family: str | None, lookup: LoraLookup | None = None
) -> tuple[tuple[LoraSpec, ...], SchedulerTweaks, list[str]]:
    """The LoRAs the tags of ``texts`` name, in order, the scheduler tweaks a fast one
    among them needs (Lightning's and Hyper-SD's trailing spacing, TCD's eta; the first
    such LoRA with a weight above 0 decides), and notes for the user.

    Raises :class:`PlanError` naming a tag whose LoRA is not installed (or is for another
    family). A tag with a separate text-encoder weight (``<lora:NAME:te:unet>``) gives
    the spec both weights.
    """
    tags = [tag for item in texts for tag in item.tags]
    tweaks = SchedulerTweaks()
    if not tags:
        return (), tweaks, []
    entries = list((lookup or find_loras)())
    specs: list[LoraSpec] = []
    chosen: dict[str, LoraTag] = {}
    notes: list[str] = []
    for tag in tags:
        key = tag.name.lower()
        if key in chosen:
            if chosen[key] != tag:
                notes.append(f"LoRA {tag.name!r} is tagged twice with different weights; {chosen[key].text} is used")
            continue
        chosen[key] = tag
        entry = _find(tag.name, entries, family)
        separate = tag.text_encoder_weight != tag.unet_weight
        specs.append(LoraSpec(entry.source, tag.unet_weight, tag.text_encoder_weight if separate else None))
        fast = lora_preset(entry, family) if tweaks.empty and tag.unet_weight > 0 else None
        if fast is not None and not fast.tweaks.empty:
            tweaks = fast.tweaks
            notes.append(f"LoRA {tag.name!r} is a fast LoRA ({fast.name}): its scheduler settings are used")
    return tuple(specs), tweaks, notes


def _stem(entry: ModelEntry, fold: bool = True) -> str:
    path = entry.path
    stem = path.stem if path is not None else Path(entry.source).stem
    return stem.lower() if fold else stem


def _find(name: str, entries: Sequence[ModelEntry], family: str | None) -> ModelEntry:
    wanted = name.lower()
    for suffix in _LORA_SUFFIXES:  # <lora:grain.safetensors> names the file
        if wanted.endswith(suffix):
            wanted = wanted[: -len(suffix)]
    named = [e for e in entries if e.kind is WeightsKind.LORA and _stem(e) == wanted]
    base = lora_family(family)  # an edit model (FLUX.1 Kontext, Qwen-Image-Edit) takes its base model's
    fitting = [e for e in named if base is None or e.family in (base, None)]
    usable = [e for e in fitting if e.problem is None]
    if usable:
        exact = [e for e in usable if _stem(e, fold=False) == name]
        return (exact or usable)[0]
    if fitting:
        raise PlanError(f"the LoRA {name!r} ({fitting[0].source}) cannot be used: {fitting[0].problem}")
    if named:
        raise PlanError(
            f"the LoRA {name!r} ({named[0].source}) is for {named[0].family} models, and the model "
            f"is {family}: use a LoRA made for {base}"
        )
    raise PlanError(
        f"no LoRA named {name!r} in {_lora_folders()}; put {name}.safetensors in one of them "
        "(or add its folder to the model folders in the settings)"
    )


def _lora_folders() -> str:
    """The folders LoRAs are looked for in, for a message."""
    folders = [str(path) for path, _, kind in system_model_dirs() if kind is WeightsKind.LORA]
    folders = list(load_config().model_paths) + folders
    return ", ".join(folders) if folders else "the LoRA folders"

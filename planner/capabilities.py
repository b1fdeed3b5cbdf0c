"""What a model family can do, known before anything is generated.

Each family plugin declares its modes (:attr:`~sfumato.inference.families.base.Family.supported_modes`:
txt2img, img2img, inpaint, regions, ControlNet, LoRA) and, for the flow-matching
transformers, the samplers that can run it. The planner reads both, without torch, so a
document that asks for something the chosen model cannot do is stopped with a sentence
the artist can act on — in the window before Generate is pressed
(:func:`model_problems`, which the Generation dock shows), and in the plan itself
(:func:`check_request`), so ``sfumato render`` says the same — never a traceback from the
engine, never a control or region silently dropped. Reference layers need a family that
takes reference pictures (:attr:`~sfumato.inference.families.base.Family.takes_references`,
a plain class attribute: no torch).
"""

from __future__ import annotations

from collections.abc import Iterable

from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import Role
from sfumato.inference.errors import UnsupportedModeError
from sfumato.inference.families import Family, all_families, get_family
from sfumato.inference.modes import request_modes
from sfumato.inference.request import GenerationRequest
from sfumato.vocabulary.kinds import Mode, Sampler

__all__ = ["MODE_WORDS", "check_request", "document_problems", "family_named", "model_problems"]

#: how a mode is named to the artist
MODE_WORDS = {
    Mode.TXT2IMG: "generate from nothing",
    Mode.IMG2IMG: "refine the picture (img2img)",
    Mode.INPAINT: "inpaint",
    Mode.REGIONS: "regional prompts",
    Mode.CONTROLNET: "control layers (ControlNet)",
    Mode.LORA: "LoRAs",
    Mode.EDIT: "instruction edits (choose an edit model: FLUX.1 Kontext, Qwen-Image-Edit, FLUX.2 Klein)",
}


def family_named(name: str | None) -> Family | None:
    """The family plugin called ``name``, ``None`` for an unknown or missing name."""
    if not name:
        return None
    try:
        return get_family(name)
    except UnsupportedModeError:
        return None


def model_problems(
    family: Family | None, modes: Iterable[Mode], sampler: Sampler, *, references: bool = False
) -> tuple[str, ...]:
    """Sentences saying what of ``modes``, ``sampler`` and (``references``) reference
    pictures ``family`` cannot do (empty: all fine)."""
    if family is None:
        return ()
    problems = []
    missing = [m for m in modes if m not in family.supported_modes]
    for mode in sorted(missing, key=lambda m: m.value):
        problems.append(f"{family.label} models cannot do {MODE_WORDS.get(mode, mode.value)}.")
    if family.samplers is not None and sampler not in family.samplers:
        names = ", ".join(sorted(s.value for s in family.samplers))
        problems.append(f"{family.label} models are sampled with flow matching: choose {names}, not {sampler.value}.")
    if references and not family.takes_references:
        takers = ", ".join(sorted(f.label for f in all_families() if f.takes_references))
        problems.append(
            f"{family.label} models take no reference pictures: hide the reference layers or choose "
            f"a model that takes them ({takers})."
        )
    return tuple(problems)


def check_request(request: GenerationRequest, family_name: str | None) -> tuple[str, ...]:
    """:func:`model_problems` of a planned request for the family it names."""
    return model_problems(
        family_named(family_name), request_modes(request), request.sampler, references=bool(request.references)
    )


def document_problems(doc: Document, mode: Mode, family_name: str | None, sampler: Sampler) -> tuple[str, ...]:
    """What ``family_name``'s models cannot do of what ``doc`` asks for in ``mode``: the
    cheap check the window runs as the document, the model or the sampler changes (visible
    region, control and reference layers count; whether they cover the area is the plan's
    business)."""
    modes = {mode}
    if any(layer.effectively_visible() for layer in doc.pixel_layers(Role.REGION)):
        modes.add(Mode.REGIONS)
    if any(layer.effectively_visible() for layer in doc.pixel_layers(Role.CONTROL)):
        modes.add(Mode.CONTROLNET)
    references = any(layer.effectively_visible() for layer in doc.pixel_layers(Role.REFERENCE))
    return model_problems(family_named(family_name), modes, sampler, references=references)

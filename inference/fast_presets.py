"""Live presets: the sampler, steps and guidance a live frame uses, per kind of model (no torch).

Distilled ("fast") models and LoRAs generate in 1–8 steps, but only with the scheduler,
step count, guidance and timestep spacing they were distilled for; with ordinary settings
they give mud. :func:`detect_fast_presets` recognises them from what can be read without
loading weights — file and folder names, a diffusers folder's ``scheduler_config.json``
and UNet config, a safetensors header (its metadata titles and tensor names) — and
returns the :class:`FastPreset` values that apply to a model, best first, always ending
with the plain live preset (:data:`ORDINARY_LIVE`, or :data:`BUILTIN_LIVE` for the
built-in model), so the list is never empty.

A preset whose speed comes from a LoRA names the file (``lora``): it is applied through
the ordinary LoRA path (:class:`~sfumato.inference.request.LoraSpec`, merged by
:mod:`sfumato.inference.lora`). Scheduler changes that are not a sampler choice
(``timestep_spacing="trailing"``, x0 prediction, TCD's ``eta``) are a
:class:`SchedulerTweaks` (defined in :mod:`sfumato.inference.request`, re-exported here):
:meth:`FastPreset.apply` puts them in the request, and the engine's
:func:`sfumato.inference.schedulers.make_scheduler` applies them on top of the model's own
scheduler config.

Settings, from each model's own documentation (read 2026; the model cards are the
authority, these are copied from them):

- LCM-LoRA (latent-consistency/lcm-lora-sdv1-5, -sdxl, -ssd-1b): LCMScheduler, 2–8 steps
  (4 in the examples), guidance off or 1–2 — diffusers "Latent Consistency Model" guide
  (huggingface.co/docs/diffusers/using-diffusers/inference_with_lcm), the LCM-LoRA cards.
- Full LCM models (SimianLuo/LCM_Dreamshaper_v7, latent-consistency/lcm-sdxl): LCMScheduler,
  4 steps, ``guidance_scale=8.0`` given to the UNet as its guidance embedding
  (``time_cond_proj_dim``), no classifier-free guidance pass — same guide.
- SD-Turbo / SDXL-Turbo (stabilityai): 1–4 steps, ``guidance_scale=0.0``, trained at
  512×512; single-file checkpoints need ``timestep_spacing="trailing"`` (the hub folder
  ships EulerAncestral, trailing); img2img example: 2 steps at strength 0.5 — diffusers
  "Stable Diffusion XL Turbo" guide (huggingface.co/docs/diffusers/using-diffusers/sdxl_turbo).
- SDXL-Lightning (ByteDance/SDXL-Lightning): use the checkpoint of the step count you run
  (2, 4, 8; 1 is experimental), EulerDiscreteScheduler with ``timestep_spacing="trailing"``,
  ``guidance_scale=0``; the 1-step x0 UNet also ``prediction_type="sample"`` — model card.
- Hyper-SD (ByteDance/Hyper-SD): N-step LoRAs (SD 1.5 / SDXL; 1, 2, 4, 8): DDIMScheduler
  with ``timestep_spacing="trailing"``, ``guidance_scale=0``, N steps, fused at scale 1;
  1-step unified LoRA: TCDScheduler, ``eta=1.0`` (lower eta, more detail in multi-step
  use); 8/12-step CFG LoRAs: DDIM trailing, ``guidance_scale=5.0`` (5–8); the 1-step SDXL
  UNet: LCMScheduler from timestep 800 — model card.
- TCD-LoRA (h1t/TCD-SD15-LoRA, TCD-SDXL-LoRA): TCDScheduler, 4 steps (4–50),
  ``guidance_scale=0``, ``eta=0.3`` — diffusers "Trajectory Consistency Distillation-LoRA"
  guide (huggingface.co/docs/diffusers/using-diffusers/inference_with_tcd_lora).
- Community merges named "…Turbo…" / "…Lightning…" (e.g. DreamShaper XL Turbo and
  Lightning): DPM++ SDE Karras, CFG 2, 4–8 steps (Turbo) and 3–6 steps (Lightning) — the
  DreamShaper XL model page on Civitai.

Only names are guessed from; a ``timestep_spacing`` of ``trailing`` alone is not taken as
a sign of a fast model (the built-in model and zero-terminal-SNR fine-tunes use it with
ordinary step counts).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from sfumato.inference.catalog import ModelEntry, find_loras
from sfumato.inference.detect import read_safetensors_header
from sfumato.inference.errors import EngineError
from sfumato.inference.request import GenerationRequest, LoraSpec, SchedulerTweaks
from sfumato.inference.steps import MIN_EFFECTIVE_STEPS
from sfumato.vocabulary.config import read_json
from sfumato.vocabulary.families import BUILTIN, FLOW_FAMILIES, FLUX2, SD15, SDXL
from sfumato.vocabulary.kinds import Sampler

__all__ = [
    "BUILTIN_LIVE",
    "CONSISTENCY_SCHEDULE",
    "FastKind",
    "FastPreset",
    "FLOW_FAST_LIVE",
    "FLOW_LIVE",
    "ORDINARY_LIVE",
    "SchedulerTweaks",
    "detect_fast_presets",
    "lora_preset",
    "live_preset",
    "recognise_name",
]

log = logging.getLogger(__name__)

#: LCM and TCD pick their steps from a 50-step distillation schedule
#: (``original_inference_steps``): a run may not schedule more than that.
CONSISTENCY_SCHEDULE = 50


class FastKind(Enum):
    """Where a preset's speed comes from."""

    ORDINARY = "ordinary"  # nothing: an ordinary model with fewer steps
    BUILTIN = "builtin"  # the built-in demo model
    LCM = "lcm"  # a latent-consistency-distilled model (its whole UNet)
    LCM_LORA = "lcm-lora"
    TURBO = "turbo"  # SD-Turbo / SDXL-Turbo (adversarial diffusion distillation)
    TURBO_MERGE = "turbo-merge"  # a community checkpoint with Turbo merged in
    LIGHTNING = "lightning"  # SDXL-Lightning (UNet, checkpoint or LoRA)
    LIGHTNING_MERGE = "lightning-merge"
    HYPER_SD = "hyper-sd"
    TCD = "tcd"  # a TCD-LoRA (or a TCD-distilled model)


_TRAILING = SchedulerTweaks(timestep_spacing="trailing")


@dataclass(frozen=True)
class FastPreset:
    """How live mode generates with one model (plus, maybe, one LoRA).

    ``cfg`` ``None`` keeps the user's guidance scale; 0 or 1 turns classifier-free guidance
    off (one UNet pass a step). ``embedded_guidance``: the UNet takes the scale as an input
    (LCM-distilled UNets with ``time_cond_proj_dim``) instead of a second, unconditional
    pass — the engine sees that from the UNet's config by itself; the flag says so to the
    window. ``lora``/``lora_weight``: the LoRA file that brings the speed. ``min_strength``:
    the lowest img2img strength at which the preset still runs ``min(steps, 4)`` steps (the
    engine lengthens the schedule to ``min(steps, 4) / strength`` steps at low strength, and
    LCM/TCD schedule at most :data:`CONSISTENCY_SCHEDULE`: below the floor the schedule
    stops at that length and fewer steps run, at the asked noise level). ``native_side``: the side the model
    was distilled at when it differs from its family's (the Turbos: 512). ``evidence``:
    what it was recognised from, for the log and a tooltip.
    """

    name: str
    kind: FastKind
    sampler: Sampler
    steps: int
    cfg: float | None
    tweaks: SchedulerTweaks = SchedulerTweaks()
    lora: str | None = None
    lora_weight: float = 1.0
    embedded_guidance: bool = False
    min_strength: float = 0.0
    native_side: int | None = None
    evidence: str = ""

    def apply(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with this preset's sampler, scheduler tweaks, steps, guidance and LoRA.

        The LoRA is added to the request's own LoRAs (once); the tweaks replace the
        request's (an ordinary preset's are empty, so it clears a fast preset's).
        """
        cfg = request.cfg if self.cfg is None else self.cfg
        return replace(
            self.extras(request), scheduler_tweaks=self.tweaks, sampler=self.sampler, steps=self.steps, cfg=cfg
        )

    def extras(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with this preset's LoRA and scheduler tweaks only: the sampler, steps
        and guidance stay the request's (live mode's panel shows the preset's and lets the
        artist change them), and so do the request's tweaks when the preset has none (a
        fast LoRA's tag brought them)."""
        loras = request.loras
        if self.lora is not None and all(spec.source != self.lora for spec in loras):
            loras = (*loras, LoraSpec(self.lora, self.lora_weight))
        # A preset without tweaks keeps what the request has (a fast LoRA's tag brings its own).
        tweaks = request.scheduler_tweaks if self.tweaks.empty else self.tweaks
        return replace(request, scheduler_tweaks=tweaks, loras=loras)


def _consistency_floor(steps: int) -> float:
    """The lowest strength at which the engine's schedule stays within LCM/TCD's 50 steps."""
    return round(min(steps, MIN_EFFECTIVE_STEPS) / CONSISTENCY_SCHEDULE, 4)


#: An ordinary model in live mode: a sampler that converges in few steps, the user's guidance.
ORDINARY_LIVE = FastPreset(
    "Live: DPM++ 2M Karras, 10 steps", FastKind.ORDINARY, Sampler.DPMPP_2M_KARRAS, steps=10, cfg=None
)

#: A flow-matching transformer (FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image, Qwen-Image) in live
#: mode: its own Euler (the only sampler these run), 8 steps, the user's guidance.
FLOW_LIVE = FastPreset("Live: Euler, 8 steps", FastKind.ORDINARY, Sampler.DEFAULT, steps=8, cfg=None)
#: A step-distilled one (FLUX.1 schnell, Z-Image-Turbo, SD 3.5 Turbo, FLUX.2 Klein): 4 steps.
FLOW_FAST_LIVE = FastPreset("Live: Euler, 4 steps", FastKind.ORDINARY, Sampler.DEFAULT, steps=4, cfg=None)

#: The built-in demo model in live mode: its own DDIM (trailing spacing), 2 steps, no
#: guidance pass — the fastest setting at which every colour of the txt2img semantic
#: cases still came out right over 8 seeds (see docs/live-presets.md for the measurements).
BUILTIN_LIVE = FastPreset("Live: built-in model, 2 steps", FastKind.BUILTIN, Sampler.DEFAULT, steps=2, cfg=1.0)


# --------------------------------------------------------------------------- names

_STEP_COUNT = re.compile(r"(?<!\d)(\d{1,2})-?steps?(?![a-z])")
_LCM = re.compile(r"(?<![a-z])lcm(?=lora|[^a-z]|$)")
_TCD = re.compile(r"(?<![a-z])tcd(?![a-z])")
_TURBO = re.compile(r"(?<![a-z])turbo(?![a-z])")
_OFFICIAL_TURBO = re.compile(r"^(sd-?xl-turbo|sd-turbo)(?![a-z])")
_LIGHTNING = re.compile(r"(?<![a-z])lightning(?![a-z])")
_HYPER = re.compile(r"(?<![a-z])hyper-?sd(?:xl|15|-?1-5|3)?(?![a-z])")
_CFG = re.compile(r"(?<![a-z])cfg(?![a-z])")
_X0 = re.compile(r"(?<![a-z0-9])x0(?![a-z0-9])")
_XL = re.compile(r"(?<![a-z])(sd-?xl|xl)(?![a-z])|(?<![a-z])sdxl|ssd-1-?b")
_SD15 = re.compile(r"(?<![a-z])sd-?(v?1-5|15)(?!\d)|sdv1-5|sd-?1-x")
# File stems that say nothing (hub snapshots, trainer defaults): the folder above names it.
_GENERIC_STEMS = {"pytorch-lora-weights", "diffusion-pytorch-model", "model", "lora", "unet", "adapter-model"}
_HEX = re.compile(r"^[0-9a-f]{16,}$")
_METADATA_NAMES = ("modelspec.title", "ss_output_name")


def _normalise(text: str) -> str:
    """Lower case, separators (space, ``_``, ``.``) and camel-case joints as ``-``:
    ``sd_xl_turbo_1.0`` → ``sd-xl-turbo-1-0``, ``dreamshaperXL_v21TurboDPMSDE`` →
    ``dreamshaper-xl-v21-turbo-dpmsde``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", text.strip())
    return re.sub(r"[\s_.]+", "-", text.lower())


def _step_count(name: str) -> int | None:
    match = _STEP_COUNT.search(name)
    return int(match.group(1)) if match else None


def _name_family(name: str) -> str | None:
    if _XL.search(name) or _LIGHTNING.search(name):  # SDXL-Lightning exists for SDXL only
        return SDXL
    if _SD15.search(name):
        return SD15
    return None


def recognise_name(name: str, *, lora: bool) -> FastPreset | None:
    """The preset a model (``lora=False``) or LoRA file called ``name`` asks for, if any.

    ``name`` is a file stem, a folder name or a hub id's name (any case and separators).
    A LoRA must say more than a checkpoint: a style LoRA may well be called "lightning"
    or "turbo", so LoRAs need an explicit step count (Lightning, Hyper-SD) or an
    unmistakable name (LCM, TCD, Hyper-SD); Turbo LoRAs are not recognised.
    """
    text = _normalise(name)
    steps = _step_count(text)
    if _HYPER.search(text):
        return _hyper(text, steps, lora)
    if _LIGHTNING.search(text) and (steps is not None or text.startswith("sdxl-lightning")):
        return _lightning(steps or 4)
    if _LIGHTNING.search(text) and not lora:
        return FastPreset(
            "Lightning merge: DPM++ SDE Karras, 4 steps, CFG 2",
            FastKind.LIGHTNING_MERGE, Sampler.DPMPP_SDE_KARRAS, steps=4, cfg=2.0,
        )  # fmt: skip
    if _TURBO.search(text) and not lora:
        if _OFFICIAL_TURBO.search(text):
            return FastPreset(
                "Turbo: Euler a (trailing), 2 steps, no CFG",
                FastKind.TURBO, Sampler.EULER_A, steps=2, cfg=0.0, tweaks=_TRAILING, native_side=512,
            )  # fmt: skip
        return FastPreset(
            "Turbo merge: DPM++ SDE Karras, 4 steps, CFG 2",
            FastKind.TURBO_MERGE, Sampler.DPMPP_SDE_KARRAS, steps=4, cfg=2.0,
        )  # fmt: skip
    if _TCD.search(text):
        return _tcd()
    if _LCM.search(text):
        return _lcm_lora() if lora else _lcm(embedded=False)
    return None


def _hyper(text: str, steps: int | None, lora: bool) -> FastPreset | None:
    if steps is None:
        return None
    if not lora and "unet" in text and steps == 1:
        # Documented: LCMScheduler started at t = 800; the engine starts at 999.
        return FastPreset(
            "Hyper-SD 1-step UNet: LCM, 1 step", FastKind.HYPER_SD, Sampler.LCM, steps=1, cfg=0.0,
            min_strength=_consistency_floor(1),
        )  # fmt: skip
    if steps == 1:
        return FastPreset(
            "Hyper-SD 1-step LoRA: TCD (eta 1), 1 step", FastKind.HYPER_SD, Sampler.TCD, steps=1, cfg=0.0,
            tweaks=SchedulerTweaks(eta=1.0), min_strength=_consistency_floor(1),
        )  # fmt: skip
    if _CFG.search(text):
        return FastPreset(
            f"Hyper-SD {steps}-step CFG LoRA: DDIM (trailing), {steps} steps, CFG 5",
            FastKind.HYPER_SD, Sampler.DDIM, steps=steps, cfg=5.0, tweaks=_TRAILING,
        )  # fmt: skip
    return FastPreset(
        f"Hyper-SD {steps}-step LoRA: DDIM (trailing), {steps} steps, no CFG",
        FastKind.HYPER_SD, Sampler.DDIM, steps=steps, cfg=0.0, tweaks=_TRAILING,
    )  # fmt: skip


def _lightning(steps: int) -> FastPreset:
    tweaks = SchedulerTweaks(timestep_spacing="trailing", prediction_type="sample" if steps == 1 else None)
    return FastPreset(
        f"SDXL-Lightning {steps}-step: Euler (trailing), {steps} steps, no CFG",
        FastKind.LIGHTNING, Sampler.EULER, steps=steps, cfg=0.0, tweaks=tweaks,
    )  # fmt: skip


def _tcd() -> FastPreset:
    return FastPreset(
        "TCD: TCD (eta 0.3), 4 steps, no CFG", FastKind.TCD, Sampler.TCD, steps=4, cfg=0.0,
        tweaks=SchedulerTweaks(eta=0.3), min_strength=_consistency_floor(4),
    )  # fmt: skip


def _lcm_lora() -> FastPreset:
    return FastPreset(
        "LCM-LoRA: LCM, 4 steps, no CFG", FastKind.LCM_LORA, Sampler.LCM, steps=4, cfg=1.0,
        min_strength=_consistency_floor(4),
    )  # fmt: skip


def _lcm(*, embedded: bool) -> FastPreset:
    if embedded:
        return FastPreset(
            "LCM: LCM, 4 steps, guidance 8 (embedded)", FastKind.LCM, Sampler.LCM, steps=4, cfg=8.0,
            embedded_guidance=True, min_strength=_consistency_floor(4),
        )  # fmt: skip
    return FastPreset(
        "LCM: LCM, 4 steps, no CFG", FastKind.LCM, Sampler.LCM, steps=4, cfg=1.0,
        min_strength=_consistency_floor(4),
    )  # fmt: skip


# --------------------------------------------------------------------------- evidence


def _meaningful_name(path: Path) -> str:
    """A file's stem, or when the stem says nothing (``pytorch_lora_weights``) the name of
    the folder it is in (:func:`_folder_name`)."""
    if path.is_dir():
        return _folder_name(path)
    if _normalise(path.stem) not in _GENERIC_STEMS:
        return path.stem
    return _folder_name(path.parent) or path.stem


def _folder_name(folder: Path) -> str:
    """A folder's name; for a hub snapshot (``models--org--name/snapshots/<hash>``) the
    repository's ``name``."""
    for candidate in (folder, *folder.parents):
        name = candidate.name
        if not name or name == "snapshots" or _HEX.match(name):
            continue
        if name.startswith("models--"):
            return name.split("--")[-1]
        return name
    return folder.name


def _metadata_names(path: Path) -> tuple[list[str], bool]:
    """(titles from a safetensors header's metadata, whether its UNet embeds guidance)."""
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return [], False
    try:
        header = read_safetensors_header(path)
    except EngineError as error:
        log.info("cannot read the header of %s: %s", path, error.message)
        return [], False
    names = [header.metadata[key] for key in _METADATA_NAMES if header.metadata.get(key)]
    embedded = any(key.endswith("cond_proj.weight") for key in header.tensors)
    return names, embedded


def _folder_facts(folder: Path) -> tuple[str | None, bool]:
    """(the scheduler class a diffusers folder ships, whether its UNet embeds guidance)."""
    scheduler = read_json(folder / "scheduler" / "scheduler_config.json") or {}
    unet = read_json(folder / "unet" / "config.json") or {}
    name = scheduler.get("_class_name")
    return (str(name) if name else None), unet.get("time_cond_proj_dim") is not None


def _model_preset(source: str, path: Path | None) -> FastPreset | None:
    """The preset a model asks for by itself (its name, scheduler config, header)."""
    if path is not None and path.is_dir():
        scheduler, embedded = _folder_facts(path)
        name = _folder_name(path)
        if scheduler == "LCMScheduler" or embedded:
            return replace(_lcm(embedded=embedded), evidence=f"{path.name}: {scheduler or 'UNet'} config")
        if scheduler == "TCDScheduler":
            return replace(_tcd(), evidence=f"{path.name}: TCDScheduler config")
        preset = recognise_name(name, lora=False)
        return replace(preset, evidence=f"name {name!r}") if preset else None
    if path is not None and path.is_file():
        name = _meaningful_name(path)
        titles, embedded = _metadata_names(path)
        if embedded:
            return replace(_lcm(embedded=True), evidence=f"{path.name}: guidance-embedding UNet")
        for text, where in [(name, "name"), *((t, "metadata title") for t in titles)]:
            preset = recognise_name(text, lora=False)
            if preset is not None:
                return replace(preset, evidence=f"{where} {text!r}")
        return None
    name = source.rstrip("/").split("/")[-1]  # a hub id or a name
    preset = recognise_name(name, lora=False)
    return replace(preset, evidence=f"name {name!r}") if preset else None


def _lora_preset(entry: ModelEntry, family: str | None) -> FastPreset | None:
    if entry.problem is not None or entry.path is None:
        return None
    path = entry.path
    name = _meaningful_name(path)
    preset = recognise_name(name, lora=True)
    evidence = f"LoRA {path.name}"
    if preset is None:
        titles, _ = _metadata_names(path)
        for title in titles:
            preset = recognise_name(title, lora=True)
            if preset is not None:
                evidence = f"LoRA {path.name} (metadata title {title!r})"
                break
    if preset is None:
        return None
    lora_family = entry.family or _name_family(_normalise(name))
    if family is not None and lora_family is not None and lora_family != family:
        return None
    return replace(preset, name=f"{preset.name} — {entry.label}", lora=str(path), evidence=evidence)


def lora_preset(entry: ModelEntry, family: str | None = None) -> FastPreset | None:
    """The fast preset ``entry`` (an installed LoRA) brings, or ``None`` when it is no fast
    LoRA (or one for another family): what a ``<lora:…>`` tag for it needs besides the
    weights, e.g. Lightning's and Hyper-SD's trailing timestep spacing."""
    return _lora_preset(entry, family)


# Among several fast LoRAs: 4 steps first (the usual sweet spot of quality and speed), then
# 8, 2, 1, 12; at equal steps the kinds in this order.
_STEP_RANK = {4: 0, 8: 1, 2: 2, 1: 3, 12: 4}
_KIND_RANK = {FastKind.HYPER_SD: 0, FastKind.LIGHTNING: 1, FastKind.TCD: 2, FastKind.LCM_LORA: 3}


def _rank(preset: FastPreset) -> tuple[int, int, int, str]:
    cfg_pass = int(preset.cfg is not None and preset.cfg > 1.0)  # a CFG pass doubles the cost
    return (cfg_pass, _STEP_RANK.get(preset.steps, 5), _KIND_RANK.get(preset.kind, 9), preset.name)


def detect_fast_presets(
    model: ModelEntry | str | os.PathLike[str],
    *,
    family: str | None = None,
    loras: Iterable[ModelEntry] | None = None,
) -> tuple[FastPreset, ...]:
    """The live presets for ``model``, best first; the last is always the plain one.

    ``model`` is a catalog entry, or a source as :class:`~sfumato.inference.request.ModelRef`
    takes it (a checkpoint file, a diffusers folder, a hub id, ``"builtin"``). A model that
    is itself distilled gets its own preset (no LoRA is added to it); otherwise each fast
    LoRA among ``loras`` (default: :func:`~sfumato.inference.catalog.find_loras` for the
    model's family) that fits the family gives one. The built-in model gets
    :data:`BUILTIN_LIVE` only (no real LoRA fits it). Reads names, small JSON configs and
    safetensors headers only; never raises for an unreadable file.
    """
    if isinstance(model, ModelEntry):
        source, path, family = model.source, model.path, family or model.family
    else:
        source = os.fspath(model)
        path = Path(source).expanduser() if source != BUILTIN and Path(source).expanduser().exists() else None
    if source == BUILTIN:
        return (BUILTIN_LIVE,)
    if family in FLOW_FAMILIES:
        # The SD distillations (LCM, Turbo, Lightning LoRAs) do not apply; a name says
        # whether the model was distilled to few steps.
        name = _normalise(Path(source).name)
        few = family == FLUX2 or any(word in name for word in ("schnell", "turbo", "lightning", "hyper"))
        return (FLOW_FAST_LIVE, FLOW_LIVE) if few else (FLOW_LIVE, FLOW_FAST_LIVE)
    own = _model_preset(source, path)
    if own is not None:
        log.info("live preset for %s: %s (%s)", source, own.name, own.evidence)
        return (own, ORDINARY_LIVE)
    family = family or _name_family(_normalise(Path(source).name))
    pool: Sequence[ModelEntry] = list(find_loras(family) if loras is None else loras)
    found = [p for p in (_lora_preset(e, family) for e in pool) if p is not None]
    found.sort(key=_rank)
    return (*found, ORDINARY_LIVE)


def live_preset(model: ModelEntry | str | os.PathLike[str], **kwargs: Any) -> FastPreset:
    """The best preset of :func:`detect_fast_presets` (keyword arguments as there)."""
    return detect_fast_presets(model, **kwargs)[0]

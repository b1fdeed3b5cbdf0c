"""The generation request: plain, frozen data that fully describes one generation.

"If it matters for the result, it is in the request." The planner builds a request from a
document; the engine turns it into images. Two equal requests give the same pixels on the
same device, which is also how live mode decides whether to regenerate.

This module imports no torch (the planner imports it). Arrays are numpy:

- images are ``uint8`` ``(H, W, 3)`` RGB, straight (no alpha), in the generation area's
  pixel space (``width`` × ``height`` of the request, top-left origin);
- masks are ``float32`` ``(H, W)`` in ``[0, 1]``, 1 = "generate here" / "inside the region".

Arrays are compared by value in ``__eq__`` and made read-only on construction so that a
frozen request really is immutable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.vocabulary.errors import RequestError
from sfumato.vocabulary.kinds import ControlKind, FillMode, Mode, ReferenceKind, Sampler

__all__ = [
    "ControlKind",
    "ControlSpec",
    "FillMode",
    "GenerationRequest",
    "InitImage",
    "InpaintSpec",
    "LoraSpec",
    "ModelRef",
    "ReferenceImage",
    "ReferenceKind",
    "RegionSpec",
    "RequestError",
    "Sampler",
    "SchedulerTweaks",
]


#: The most denoising steps a request may ask for (the window's Steps box allows the same).
MAX_STEPS = 1000

#: The ``timestep_spacing`` values diffusers' schedulers know.
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
#: The ``prediction_type`` values diffusers' schedulers know (what the UNet predicts).
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: a file, a diffusers folder, a hub id, or ``builtin``.

    ``family`` is optional: the loader detects it from the checkpoint's keys or config when
    it is ``None``.
    """

    source: str
    family: str | None = None

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA file and how strongly it is merged: ``weight`` into the UNet, and into the
    text encoders too unless ``text_encoder_weight`` says otherwise (A1111's
    ``<lora:NAME:te:unet>``)."""

    source: str
    weight: float = 1.0
    text_encoder_weight: float | None = None

    @property
    def text_weight(self) -> float:
        """The weight merged into the text encoders."""
        return self.weight if self.text_encoder_weight is None else self.text_encoder_weight


@dataclass(frozen=True)
class SchedulerTweaks:
    """Changes to the model's scheduler that a sampler choice does not express.

    ``timestep_spacing``: diffusers' spacing of the run's timesteps (``"trailing"`` starts
    at t = 999, what few-step distillations were trained from); ``prediction_type``:
    ``"sample"`` for x0-predicting UNets; ``eta``: the stochasticity a scheduler's ``step``
    takes (TCD's gamma, DDIM's eta), in [0, 1] — a per-step argument, not a config field.
    ``None`` keeps the model's (or the scheduler's) own value. Live presets
    (:mod:`sfumato.inference.fast_presets`) set them; the engine gives them to
    :func:`sfumato.inference.schedulers.make_scheduler`.
    """

    timestep_spacing: str | None = None
    prediction_type: str | None = None
    eta: float | None = None

    def config_overrides(self) -> dict[str, str]:
        """The scheduler-config fields these tweaks set (``eta`` is not one)."""
        fields = {"timestep_spacing": self.timestep_spacing, "prediction_type": self.prediction_type}
        return {k: v for k, v in fields.items() if v is not None}

    def summary(self) -> dict[str, Any]:
        """The fields that are set (JSON-ready)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @property
    def empty(self) -> bool:
        return self == SchedulerTweaks()


def _frozen_array(value: Any, name: str, dtype: type) -> np.ndarray:
    array = np.ascontiguousarray(value)
    if array.dtype != dtype:
        raise RequestError(f"{name} must be {np.dtype(dtype).name}, got {array.dtype}")
    array = array.copy() if array.flags.writeable else array
    array.setflags(write=False)
    return array


def _array_key(array: np.ndarray | None) -> tuple[Any, ...] | None:
    if array is None:
        return None
    digest = hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest()
    return (array.shape, array.dtype.str, digest)


class _ArrayEqMixin:
    """Equality and hashing by value, arrays included (compared through a digest)."""

    def _key(self) -> tuple[Any, ...]:
        parts: list[Any] = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            parts.append(_array_key(value) if isinstance(value, np.ndarray) else value)
        return tuple(parts)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True, eq=False)
class InitImage(_ArrayEqMixin):
    """img2img source. ``strength`` 0 keeps the image, 1 replaces it entirely."""

    image: np.ndarray  # uint8 (H, W, 3)
    strength: float = 0.6

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image, "init image", np.uint8))


@dataclass(frozen=True, eq=False)
class InpaintSpec(_ArrayEqMixin):
    """A soft inpaint mask over the request.

    ``mask`` is the *denoise* mask: float32 (H, W) in [0, 1]; each pixel's value is its
    own strength (differential diffusion), 0 = keep (its latents are reset to the
    original's at every step). The engine returns the whole decoded picture; placing it
    over the original (the planner's paste mask: pixels where the document's mask is 0
    keep their bytes) is the planner's job.
    """

    mask: np.ndarray  # float32 (H, W) in [0, 1]
    fill: FillMode = FillMode.KEEP

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _frozen_array(self.mask, "inpaint mask", np.float32))


@dataclass(frozen=True, eq=False)
class RegionSpec(_ArrayEqMixin):
    """One regional prompt: a soft coverage mask and its own prompt/negative.

    The planner has already appended the global prompt to ``prompt`` where the user wants
    that; the engine uses the texts as given.
    """

    mask: np.ndarray  # float32 (H, W) in [0, 1]
    prompt: str
    negative: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _frozen_array(self.mask, "region mask", np.float32))


@dataclass(frozen=True, eq=False)
class ControlSpec(_ArrayEqMixin):
    """One ControlNet input.

    ``image`` is the *preprocessed* control image (what the ControlNet sees: for scribble
    and lineart white strokes on black), uint8 (H, W, 3) over the request's area.
    ``model`` names the ControlNet weights; ``None`` lets the engine pick the family's
    default for ``kind``. ``start``/``end`` are fractions of the denoising schedule.
    """

    kind: ControlKind
    image: np.ndarray  # uint8 (H, W, 3)
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    model: ModelRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image, "control image", np.uint8))


@dataclass(frozen=True, eq=False)
class ReferenceImage(_ArrayEqMixin):
    """A picture the model is shown beside the prompt: a reference layer's pixels.

    ``image`` is uint8 ``(H, W, 3)`` at the size the model should see it — chosen by the
    planner like every size; the engine resamples nothing except where the model's image
    encoder has a fixed input size (IP-Adapter's CLIP vision encoder).

    ``kind`` says what to follow (style, composition, face, content); ``strength``
    (0..2) scales its influence and ``start``/``end`` (fractions of the schedule, as for
    controls) when it applies. ``mask`` is ``None`` for the whole picture, or a float32
    ``(height, width)`` mask at the request's size: a reference layer inside a region
    applies where that region does. ``model`` names the adapter that reads the picture
    (an IP-Adapter file, FLUX Redux); ``None`` lets the engine find the family's default
    in the user's folders, as for controls. Families that take references as extra latents
    (FLUX.2 Klein) use the picture only; which family takes what is
    :attr:`~sfumato.inference.families.base.Family.takes_references`.
    """

    image: np.ndarray  # uint8 (H, W, 3)
    kind: ReferenceKind = ReferenceKind.CONTENT
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    mask: np.ndarray | None = None  # float32 (height, width) of the request, or None
    model: ModelRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_array(self.image, "reference image", np.uint8))
        if self.mask is not None:
            object.__setattr__(self, "mask", _frozen_array(self.mask, "reference mask", np.float32))


@dataclass(frozen=True, eq=False)
class GenerationRequest(_ArrayEqMixin):
    """Everything one generation needs. ``width``/``height`` is the size the model
    generates at, exactly, in pixels (a multiple of 8), and every image and mask of the
    request is at that size.

    The planner decides it (:func:`sfumato.planner.plan.plan`: the document area to
    generate, ``Plan.area``, and its generation size near the family's native
    resolution, ``Plan.size``); the engine executes it and resamples nothing.
    """

    prompt: str
    model: ModelRef
    width: int
    height: int
    negative: str = ""
    sampler: Sampler = Sampler.DEFAULT
    scheduler_tweaks: SchedulerTweaks = SchedulerTweaks()
    steps: int = 20
    cfg: float = 7.0
    seed: int = 0
    batch: int = 1
    init: InitImage | None = None
    inpaint: InpaintSpec | None = None
    regions: tuple[RegionSpec, ...] = ()
    controls: tuple[ControlSpec, ...] = ()
    loras: tuple[LoraSpec, ...] = ()
    references: tuple[ReferenceImage, ...] = ()
    #: an instruction edit ("make it night"): ``init`` is the picture to edit (the visible
    #: canvas over the area), shown to the model beside the prompt; ``inpaint``, optional,
    #: is the selection (the result is placed through the paste mask, as an inpaint's);
    #: ``references`` are extra pictures (Qwen-Image-Edit-Plus, FLUX.2 Klein). Models that
    #: edit: :attr:`sfumato.inference.families.base.Family.edits`.
    edit: bool = False

    def __post_init__(self) -> None:
        # Accept lists from callers; store tuples so the request stays hashable.
        for name in ("regions", "controls", "loras", "references"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def mode(self) -> Mode:
        """What this request does, from its inputs: edit, inpaint, img2img or txt2img."""
        if self.edit:
            return Mode.EDIT
        if self.inpaint is not None:
            return Mode.INPAINT
        if self.init is not None:
            return Mode.IMG2IMG
        return Mode.TXT2IMG

    @property
    def strength(self) -> float:
        return 1.0 if self.init is None else self.init.strength

    def replace(self, **changes: Any) -> GenerationRequest:
        return dataclasses.replace(self, **changes)

    def validate(self) -> GenerationRequest:
        """Check the request; raise :class:`RequestError` naming the first problem found.

        Returns the request itself so that ``request.validate()`` can be chained.
        """
        _check(bool(self.model.source.strip()), "model: no model given")
        _check(
            isinstance(self.width, int) and isinstance(self.height, int),
            "width and height must be integers",
        )
        _check(
            self.width >= 8 and self.height >= 8,
            f"size {self.width}x{self.height} is too small; the smallest is 8x8 pixels",
        )
        _check(
            self.width % 8 == 0 and self.height % 8 == 0,
            f"size {self.width}x{self.height} is not a multiple of 8 a side (the planner "
            "chooses generation sizes that are)",
        )
        _check(
            self.width <= 16384 and self.height <= 16384,
            f"size {self.width}x{self.height} is too large; at most 16384 pixels a side",
        )
        _check(isinstance(self.steps, int) and self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        _check(self.steps <= MAX_STEPS, f"steps must be at most {MAX_STEPS}, got {self.steps}")
        _check(_finite(self.cfg) and self.cfg >= 0, f"cfg must be a finite number >= 0, got {self.cfg}")
        _check(isinstance(self.batch, int) and 1 <= self.batch <= 64, f"batch must be 1..64, got {self.batch}")
        _check(isinstance(self.seed, int) and 0 <= self.seed < 2**63, f"seed must be 0 <= seed < 2**63, got {self.seed}")
        shape = (self.height, self.width)
        if self.init is not None:
            _check_image(self.init.image, shape, "init image")
            _check(
                _finite(self.init.strength) and 0.0 <= self.init.strength <= 1.0,
                f"strength must be between 0 and 1, got {self.init.strength}",
            )
        _check(isinstance(self.edit, bool), f"edit must be True or False, got {self.edit!r}")
        if self.edit:
            _check(self.init is not None, "an edit needs the picture to edit (init): the visible canvas over the area")
        if self.inpaint is not None:
            _check(self.init is not None, "inpainting needs an init image (the pixels around the mask)")
            _check_mask(self.inpaint.mask, shape, "inpaint mask")
            _check(float(self.inpaint.mask.max(initial=0.0)) > 0.0, "inpaint mask is empty: paint the area to regenerate")
        for i, reference in enumerate(self.references):
            image = reference.image
            _check(image.ndim == 3 and image.shape[2] == 3, f"reference {i + 1} must be RGB (H, W, 3), got {image.shape}")
            _check(min(image.shape[:2]) >= 8, f"reference {i + 1} is {image.shape[1]}x{image.shape[0]}; at least 8x8")
            _check(
                _finite(reference.strength) and 0.0 <= reference.strength <= 2.0,
                f"reference {i + 1}: strength must be between 0 and 2, got {reference.strength}",
            )
            _check(
                _finite(reference.start) and _finite(reference.end) and 0.0 <= reference.start < reference.end <= 1.0,
                f"reference {i + 1}: need 0 <= start < end <= 1, got start={reference.start}, end={reference.end}",
            )
            if reference.mask is not None:
                _check_mask(reference.mask, shape, f"reference {i + 1} mask")
        for i, region in enumerate(self.regions):
            _check_mask(region.mask, shape, f"region {i + 1} mask")
            _check(bool(region.prompt.strip()), f"region {i + 1} has no prompt")
        for i, control in enumerate(self.controls):
            label = f"control {i + 1} ({control.kind.value})"
            _check_image(control.image, shape, f"{label} image")
            _check(
                _finite(control.strength) and 0.0 <= control.strength <= 2.0,
                f"{label}: strength must be between 0 and 2, got {control.strength}",
            )
            _check(
                _finite(control.start) and _finite(control.end) and 0.0 <= control.start < control.end <= 1.0,
                f"{label}: need 0 <= start < end <= 1, got start={control.start}, end={control.end}",
            )
        for lora in self.loras:
            _check(bool(lora.source.strip()), "a LoRA has no file")
            _check(_finite(lora.weight) and -4 <= lora.weight <= 4, f"LoRA {lora.source}: weight must be -4..4")
            _check(
                _finite(lora.text_weight) and -4 <= lora.text_weight <= 4,
                f"LoRA {lora.source}: text-encoder weight must be -4..4",
            )
        _check_tweaks(self.scheduler_tweaks)
        return self

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of the request (no pixel data), for metadata and history."""
        data: dict[str, Any] = {
            "mode": self.mode.value,
            "prompt": self.prompt,
            "negative": self.negative,
            "model": self.model.source,
            "family": self.model.family,
            "sampler": self.sampler.value,
            "steps": self.steps,
            "cfg": self.cfg,
            "seed": self.seed,
            "batch": self.batch,
            "width": self.width,
            "height": self.height,
        }
        if not self.scheduler_tweaks.empty:  # left out when empty: ordinary records stay as they were
            data["scheduler_tweaks"] = self.scheduler_tweaks.summary()
        if self.init is not None:
            data["strength"] = self.init.strength
        if self.inpaint is not None:
            data["inpaint"] = {"fill": self.inpaint.fill.value}
        if self.regions:
            data["regions"] = [{"prompt": r.prompt, "negative": r.negative} for r in self.regions]
        if self.references:  # left out when empty, as the scheduler tweaks
            data["references"] = [
                {
                    "kind": r.kind.value,
                    "strength": r.strength,
                    "start": r.start,
                    "end": r.end,
                    "width": r.image.shape[1],
                    "height": r.image.shape[0],
                    "regional": r.mask is not None,
                }
                for r in self.references
            ]
        if self.controls:
            data["controls"] = [
                {
                    "kind": c.kind.value,
                    "strength": c.strength,
                    "start": c.start,
                    "end": c.end,
                    "model": None if c.model is None else c.model.source,
                }
                for c in self.controls
            ]
        if self.loras:
            data["loras"] = [
                {"source": lo.source, "weight": lo.weight}
                | ({} if lo.text_encoder_weight is None else {"text_encoder_weight": lo.text_encoder_weight})
                for lo in self.loras
            ]
        return data


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RequestError(message)


def _check_tweaks(tweaks: SchedulerTweaks) -> None:
    _check(isinstance(tweaks, SchedulerTweaks), f"scheduler_tweaks must be SchedulerTweaks, got {type(tweaks).__name__}")
    _check(
        tweaks.timestep_spacing is None or tweaks.timestep_spacing in TIMESTEP_SPACINGS,
        f"scheduler tweaks: timestep spacing must be one of {', '.join(TIMESTEP_SPACINGS)}, "
        f"got {tweaks.timestep_spacing!r}",
    )
    _check(
        tweaks.prediction_type is None or tweaks.prediction_type in PREDICTION_TYPES,
        f"scheduler tweaks: prediction type must be one of {', '.join(PREDICTION_TYPES)}, "
        f"got {tweaks.prediction_type!r}",
    )
    _check(
        tweaks.eta is None or (_finite(tweaks.eta) and 0.0 <= tweaks.eta <= 1.0),
        f"scheduler tweaks: eta must be between 0 and 1, got {tweaks.eta}",
    )


def _check_image(image: np.ndarray, shape: Sequence[int], name: str) -> None:
    _check(
        image.ndim == 3 and image.shape[2] == 3,
        f"{name} must be RGB (H, W, 3), got shape {image.shape}",
    )
    _check(
        tuple(image.shape[:2]) == tuple(shape),
        f"{name} is {image.shape[1]}x{image.shape[0]} but the request is {shape[1]}x{shape[0]}",
    )


def _check_mask(mask: np.ndarray, shape: Sequence[int], name: str) -> None:
    _check(mask.ndim == 2, f"{name} must be 2-D (H, W), got shape {mask.shape}")
    _check(
        tuple(mask.shape) == tuple(shape),
        f"{name} is {mask.shape[1]}x{mask.shape[0]} but the request is {shape[1]}x{shape[0]}",
    )
    _check(bool(np.isfinite(mask).all()), f"{name} contains NaN or infinite values")
    lo, hi = float(mask.min(initial=0.0)), float(mask.max(initial=0.0))
    _check(lo >= 0.0 and hi <= 1.0, f"{name} values must be in [0, 1], got {lo:.3g}..{hi:.3g}")



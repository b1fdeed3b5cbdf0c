"""Generation settings: the document's recipe with overrides, as one frozen value.

The document carries its recipe (``Document.recipe``, saved as ``sfumato:`` attributes on
the OpenRaster ``<image>``); the CLI flags or the window's controls override single
fields. :func:`settings_from_recipe` merges them and fills the defaults, so a plan is
always made from complete, concrete settings (a concrete seed included: equal settings
give equal requests, which is how live mode decides whether to regenerate).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sfumato.canvas.model.document import Recipe
from sfumato.inference.request import FillMode, RequestError, Sampler
from sfumato.planner.errors import PlanError
from sfumato.vocabulary.kinds import ControlKind

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CFG",
    "DEFAULT_STEPS",
    "DEFAULT_STRENGTH",
    "GenerationSettings",
    "recipe_fill",
    "recipe_from_settings",
    "settings_from_recipe",
]

DEFAULT_STEPS = 20
DEFAULT_CFG = 7.0
#: Full strength by default: "Generate" replaces the area (Krita's default too); a
#: strength below 1 on a painted canvas makes it "Refine" (img2img).
DEFAULT_STRENGTH = 1.0
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class GenerationSettings:
    """Everything the user chose for a generation, apart from the document's layers.

    ``model`` is a model source (file, diffusers folder, hub id or ``builtin``) or
    ``None`` when none is chosen (the planner refuses to plan without one; the CLI and the
    window resolve the default model first). ``model_family`` may name the family when the
    caller knows it (the catalog reads it from the checkpoint). ``control_models`` names the
    ControlNet weights per control kind (a mapping is accepted and stored as sorted pairs) (otherwise the engine's default for the family).
    """

    prompt: str = ""
    negative: str = ""
    model: str | None = None
    model_family: str | None = None
    seed: int = 0
    steps: int = DEFAULT_STEPS
    cfg: float = DEFAULT_CFG
    strength: float = DEFAULT_STRENGTH
    sampler: Sampler = Sampler.DEFAULT
    batch: int = 1
    fill: FillMode = FillMode.KEEP
    control_models: tuple[tuple[ControlKind, str], ...] = ()
    #: Each region's prompt is followed by the document's prompt (see :mod:`planner.regions`).
    regions_include_prompt: bool = True

    def __post_init__(self) -> None:
        models = self.control_models
        if isinstance(models, Mapping):
            models = tuple(models.items())
        object.__setattr__(
            self, "control_models", tuple(sorted(tuple(models), key=lambda kv: kv[0].value))
        )

    @property
    def control_model_map(self) -> dict[ControlKind, str]:
        return dict(self.control_models)

    def replace(self, **changes: Any) -> GenerationSettings:
        return dataclasses.replace(self, **changes)


def settings_from_recipe(
    recipe: Recipe,
    rng: random.Random | None = None,
    **overrides: Any,
) -> GenerationSettings:
    """Merge ``recipe`` and ``overrides`` (``None`` values ignored) into settings.

    ``overrides`` use the :class:`GenerationSettings` field names; ``sampler`` may be a
    :class:`Sampler` or its name/label (``"euler_a"``, ``"DPM++ 2M Karras"``). A seed set
    nowhere is drawn at random (from ``rng`` when given) so the result is still
    reproducible from its metadata. Raises :class:`PlanError` for values out of range.
    """
    unknown = set(overrides) - {f.name for f in dataclasses.fields(GenerationSettings)}
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    given = {k: v for k, v in overrides.items() if v is not None}

    def pick(name: str, default: Any) -> Any:
        if name in given:
            return given[name]
        value = getattr(recipe, name, None)
        return default if value is None else value

    seed = pick("seed", None)
    if seed is None:
        seed = (rng or random.SystemRandom()).randint(0, MAX_SEED)
    sampler = pick("sampler", Sampler.DEFAULT)
    try:
        if not isinstance(sampler, Sampler):
            sampler = Sampler.from_label(str(sampler))
    except RequestError as error:
        raise PlanError(str(error)) from None
    fill = pick("fill", FillMode.KEEP)
    try:
        fill = fill if isinstance(fill, FillMode) else FillMode(str(fill))
    except ValueError:
        raise PlanError(f"unknown fill {fill!r}; choose one of: " + ", ".join(f.value for f in FillMode)) from None
    settings = GenerationSettings(
        prompt=str(pick("prompt", "")),
        negative=str(pick("negative", "")),
        model=pick("model", None),
        model_family=given.get("model_family"),
        seed=int(seed),
        steps=int(pick("steps", DEFAULT_STEPS)),
        cfg=float(pick("cfg", DEFAULT_CFG)),
        strength=float(pick("strength", DEFAULT_STRENGTH)),
        sampler=sampler,
        batch=int(given.get("batch", 1)),
        fill=fill,
        control_models=given.get("control_models", ()),
        regions_include_prompt=bool(pick("regions_include_prompt", True)),
    )
    _check(settings)
    return settings


def _check(s: GenerationSettings) -> None:
    if not 0.0 <= s.strength <= 1.0:
        raise PlanError(f"strength must be between 0 and 1, got {s.strength}")
    if s.steps < 1:
        raise PlanError(f"steps must be at least 1, got {s.steps}")
    if s.cfg < 0:
        raise PlanError(f"cfg must be 0 or more, got {s.cfg}")
    if not 1 <= s.batch <= 64:
        raise PlanError(f"batch must be 1..64, got {s.batch}")
    if not 0 <= s.seed < 2**63:
        raise PlanError(f"seed must be 0 or more, got {s.seed}")


def recipe_from_settings(settings: GenerationSettings, base: Recipe | None = None) -> Recipe:
    """The document recipe that reproduces ``settings`` (what the window saves back): every
    recipe field is the setting of the same name (the sampler and the fill by their
    values, the default fill unset); the fields settings do not hold (the style) are
    ``base``'s, else unset."""
    names = {f.name for f in dataclasses.fields(GenerationSettings)}
    rest = base or Recipe()
    values = {
        f.name: getattr(settings if f.name in names else rest, f.name) for f in dataclasses.fields(Recipe)
    }
    return Recipe(**{**values, "sampler": settings.sampler.value, "fill": recipe_fill(settings.fill)})


def recipe_fill(fill: FillMode) -> str | None:
    """The recipe's spelling of ``fill``: its value, the default (keep) left unset."""
    return None if fill is FillMode.KEEP else fill.value

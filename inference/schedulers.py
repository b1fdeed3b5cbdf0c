"""Sampler (user choice) → a fresh diffusers scheduler built from the model's own config.

Schedulers are stateful, so every run gets a new instance made with ``from_config`` of the
scheduler config the model shipped (its beta schedule, prediction type, timestep spacing:
that is what makes SDXL-Turbo/Lightning/LCM diffusers folders work with ``Sampler.DEFAULT``).
A request's :class:`~sfumato.inference.request.SchedulerTweaks` (a live preset's) go on top: they
replace config fields (``timestep_spacing="trailing"`` for Turbo, Lightning and Hyper-SD,
``prediction_type="sample"`` for Lightning's x0 UNet) and set the ``eta`` that TCD's (and
DDIM's) ``step`` takes — single-file checkpoints bring the family's stock config, which
knows nothing of how a distilled model wants to be sampled.

LCM and TCD pick their timesteps from a distillation schedule of
``original_inference_steps`` (50) and refuse a longer run: :func:`schedule_limit` says how
long a schedule a scheduler takes, what :func:`~sfumato.inference.steps.plan_steps` plans
within.

``DPM++ SDE Karras`` maps to diffusers' ``sde-dpmsolver++`` multistep solver (no
``torchsde`` dependency), as diffusers' own A1111 mapping table suggests. ``TCD`` is
diffusers' ``TCDScheduler`` (diffusers ≥ 0.27).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    TCDScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from sfumato.inference.errors import UnsupportedModeError
from sfumato.inference.families.base import Family
from sfumato.inference.request import Sampler, SchedulerTweaks

__all__ = ["make_scheduler", "schedule_limit"]

log = logging.getLogger(__name__)

_TABLE: dict[Sampler, tuple[Any, dict[str, Any]]] = {
    Sampler.EULER: (EulerDiscreteScheduler, {}),
    Sampler.EULER_A: (EulerAncestralDiscreteScheduler, {}),
    Sampler.DPMPP_2M: (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    Sampler.DPMPP_2M_KARRAS: (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    Sampler.DPMPP_SDE_KARRAS: (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    Sampler.DDIM: (DDIMScheduler, {}),
    Sampler.UNIPC: (UniPCMultistepScheduler, {}),
    Sampler.LCM: (LCMScheduler, {}),
    Sampler.TCD: (TCDScheduler, {}),
    Sampler.HEUN: (HeunDiscreteScheduler, {}),
}

# Scheduler classes whose own loop needs the whole pipeline (not our step loop): replace.
_UNSUITABLE_DEFAULTS = {"PNDMScheduler", "LMSDiscreteScheduler", "DDPMScheduler"}


def make_scheduler(
    sampler: Sampler,
    model_config: dict[str, Any],
    tweaks: SchedulerTweaks | None = None,
    family: Family | None = None,
) -> SchedulerMixin:
    """A new scheduler for ``sampler``, configured from the model's scheduler config.

    A ``family`` that names the samplers it can run (the flow-matching families:
    :attr:`~sfumato.inference.families.base.Family.samplers`) refuses the others with an
    :class:`UnsupportedModeError`, and gets its own flow-matching scheduler class.

    ``Sampler.DEFAULT`` keeps the model's own class, except PNDM/LMS/DDPM (slow or
    order-dependent defaults of old SD 1.x repositories), which become Euler — the same
    schedule, a sampler that works with any step count. ``tweaks`` (a live preset's) replace
    config fields after the sampler's own settings; their ``eta`` becomes the default of
    ``step``'s ``eta`` argument (ignored, with a log line, by schedulers without one).
    """
    config = dict(model_config)
    overrides = tweaks.config_overrides() if tweaks is not None else {}
    if family is not None and family.samplers is not None:
        return _family_scheduler(family, sampler, config, overrides)
    settings: dict[str, Any] = {}
    if sampler is Sampler.DEFAULT:
        cls = _model_class(str(config.get("_class_name", "EulerDiscreteScheduler")))
    else:
        cls, settings = _TABLE[sampler]
    scheduler = cls.from_config(config, **{**settings, **overrides})
    if tweaks is not None and tweaks.eta is not None:
        _default_step_argument(scheduler, "eta", tweaks.eta)
    return scheduler


def _family_scheduler(family: Family, sampler: Sampler, config: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """The scheduler of a family with its own samplers: the config's flow-matching class
    (Euler when it names another), for one of the samplers the family can run. A model's
    own sigma grid (``sample_sigmas``: Qwen-Image 2.1, put there when it loads) is no
    setting of the class: it goes around ``from_config`` and back into the new config,
    where the family's ``set_timesteps`` reads it."""
    import diffusers

    allowed = family.samplers or frozenset()
    if sampler not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise UnsupportedModeError(
            f"{family.label} models are sampled with flow matching; the {sampler.value} sampler cannot run them.",
            f"Choose one of: {names}.",
        )
    name = str(config.get("_class_name", ""))
    cls = getattr(diffusers, name, None) if name.startswith("FlowMatch") else None
    grid = config.pop("sample_sigmas", None)
    scheduler = (cls or diffusers.FlowMatchEulerDiscreteScheduler).from_config(config, **overrides)
    if grid:
        scheduler.register_to_config(sample_sigmas=grid)
    return scheduler


def schedule_limit(scheduler: SchedulerMixin) -> int | None:
    """The longest schedule ``scheduler`` can run, ``None`` for no limit of its own.

    LCM and TCD (whatever the sampler choice that made them: ``Sampler.DEFAULT`` keeps an
    LCM folder's own LCMScheduler) take at most ``original_inference_steps`` steps
    (:data:`~sfumato.inference.fast_presets.CONSISTENCY_SCHEDULE`, 50, unless the model's
    config says otherwise); ``set_timesteps`` raises for more.
    """
    config: Any = getattr(scheduler, "config", None)
    if not isinstance(scheduler, LCMScheduler | TCDScheduler):
        return None
    limit = getattr(config, "original_inference_steps", None)
    return int(limit) if limit else None


def _model_class(name: str) -> Any:
    """The scheduler class a model's config names (Euler for PNDM/LMS/DDPM and unknown names)."""
    if name in _UNSUITABLE_DEFAULTS:
        return EulerDiscreteScheduler
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None:
        log.warning("unknown scheduler %s in model config; using Euler", name)
        return EulerDiscreteScheduler
    return cls


def _default_step_argument(scheduler: Any, name: str, value: float) -> None:
    """Make ``value`` the default of ``scheduler.step``'s ``name`` argument (this instance only).

    The wrapper keeps ``step``'s signature (``inspect.signature`` follows ``__wrapped__``),
    so callers that look for ``generator`` there still find it.
    """
    step = scheduler.step
    if name not in inspect.signature(step).parameters:
        log.info("%s takes no %s; the preset's %s=%s is not used", type(scheduler).__name__, name, name, value)
        return

    @functools.wraps(step)
    def step_with_default(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault(name, value)
        return step(*args, **kwargs)

    scheduler.step = step_with_default

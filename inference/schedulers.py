"""Sampler (user choice) → a fresh diffusers scheduler built from the model's own config.

Schedulers are stateful, so every run gets a new instance made with ``from_config`` of the
scheduler config the model shipped (its beta schedule, prediction type, timestep spacing:
that is what makes SDXL-Turbo/Lightning/LCM checkpoints work with ``Sampler.DEFAULT``).

``DPM++ SDE Karras`` maps to diffusers' ``sde-dpmsolver++`` multistep solver (no
``torchsde`` dependency), as diffusers' own A1111 mapping table suggests.
"""

from __future__ import annotations

import logging
from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from sfumato.inference.request import Sampler

__all__ = ["make_scheduler"]

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
    Sampler.HEUN: (HeunDiscreteScheduler, {}),
}

# Scheduler classes whose own loop needs the whole pipeline (not our step loop): replace.
_UNSUITABLE_DEFAULTS = {"PNDMScheduler", "LMSDiscreteScheduler", "DDPMScheduler"}


def make_scheduler(sampler: Sampler, model_config: dict[str, Any]) -> SchedulerMixin:
    """A new scheduler for ``sampler``, configured from the model's scheduler config.

    ``Sampler.DEFAULT`` keeps the model's own class, except PNDM/LMS/DDPM (slow or
    order-dependent defaults of old SD 1.x repositories), which become Euler — the same
    schedule, a sampler that works with any step count.
    """
    config = dict(model_config)
    if sampler is Sampler.DEFAULT:
        name = str(config.get("_class_name", "EulerDiscreteScheduler"))
        if name in _UNSUITABLE_DEFAULTS:
            return EulerDiscreteScheduler.from_config(config)
        import diffusers

        cls = getattr(diffusers, name, None)
        if cls is None:
            log.warning("unknown scheduler %s in model config; using Euler", name)
            return EulerDiscreteScheduler.from_config(config)
        return cls.from_config(config)
    cls, overrides = _TABLE[sampler]
    return cls.from_config(config, **overrides)

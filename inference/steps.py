"""How many denoising steps an img2img/inpaint run takes (no torch).

The user's ``steps`` is the schedule length at full strength. A run at ``strength`` s
starts at step ``round(steps × (1 − s))`` and runs the rest (the noise level matches s).
At low strength that would leave almost nothing to do (steps 20, strength 0.1: 2 steps,
visibly unfinished), so when fewer than ``min(steps, MIN_EFFECTIVE_STEPS)`` steps would
run, the schedule is lengthened to ``ceil(min / s)`` steps and only the last ``min`` run —
the same noise level, finer steps (Krita AI Diffusion does the same).

The schedule never exceeds ``max_total`` steps: ``MAX_SCHEDULE`` (the models' 1000
training timesteps), or less for schedulers that pick their timesteps from a shorter
distillation schedule (LCM and TCD: 50, their ``original_inference_steps``). A user's
``steps`` above the limit become the limit; where the lengthened schedule would pass it,
the schedule stops at the limit and the noise level wins: the run starts at
``round(total × (1 − s))`` and runs fewer than ``min`` steps (at least one) — a consistency
model finishes a picture in one or two steps, and a lower noise level than asked would
change more of the picture than the user wanted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MIN_EFFECTIVE_STEPS", "StepPlan", "plan_steps"]

MIN_EFFECTIVE_STEPS = 4
MAX_SCHEDULE = 1000


@dataclass(frozen=True)
class StepPlan:
    """``total``: schedule length given to the scheduler; ``start``: first step run;
    ``effective = total - start`` steps actually run (0: nothing to do, keep the image)."""

    total: int
    start: int

    @property
    def effective(self) -> int:
        return self.total - self.start


def plan_steps(
    steps: int,
    strength: float,
    min_effective: int = MIN_EFFECTIVE_STEPS,
    *,
    max_total: int | None = None,
) -> StepPlan:
    """Plan the schedule for ``steps`` at ``strength`` in [0, 1], at most ``max_total``
    steps long (``None``: ``MAX_SCHEDULE``; module docstring).

    >>> plan_steps(20, 1.0)
    StepPlan(total=20, start=0)
    >>> plan_steps(20, 0.5)
    StepPlan(total=20, start=10)
    >>> plan_steps(20, 0.1)
    StepPlan(total=40, start=36)
    >>> plan_steps(20, 0.0).effective
    0
    >>> plan_steps(4, 0.05)                 # 80 steps: too many for LCM or TCD
    StepPlan(total=80, start=76)
    >>> plan_steps(4, 0.05, max_total=50)   # their 50: the noise level kept, 2 steps run
    StepPlan(total=50, start=48)
    >>> plan_steps(60, 1.0, max_total=50)
    StepPlan(total=50, start=0)
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    limit = MAX_SCHEDULE if max_total is None else min(max_total, MAX_SCHEDULE)
    if limit < 1:
        raise ValueError("max_total must be >= 1")
    steps = min(steps, limit)
    if strength <= 0.0:
        return StepPlan(steps, steps)
    strength = min(strength, 1.0)
    start = round(steps * (1.0 - strength))
    if steps - start >= min(steps, min_effective):
        return StepPlan(steps, start)
    want = min(steps, min_effective)
    needed = want / strength
    if needed > limit:
        # Too long for the scheduler: stop at its limit, keep the noise level, run fewer steps.
        return StepPlan(limit, min(limit - 1, round(limit * (1.0 - strength))))
    total = max(steps, math.ceil(needed))
    start = max(0, min(total - want, round(total * (1.0 - strength))))
    return StepPlan(total, start)

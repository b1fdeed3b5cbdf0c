"""How many denoising steps an img2img/inpaint run takes (no torch).

The user's ``steps`` is the schedule length at full strength. A run at ``strength`` s
starts at step ``round(steps × (1 − s))`` and runs the rest (the noise level matches s).
At low strength that would leave almost nothing to do (steps 20, strength 0.1: 2 steps,
visibly unfinished), so when fewer than ``min(steps, MIN_EFFECTIVE_STEPS)`` steps would
run, the schedule is lengthened to ``ceil(min / s)`` steps and only the last ``min`` run —
the same noise level, finer steps (Krita AI Diffusion does the same). The schedule never
exceeds ``MAX_SCHEDULE`` steps (the models' 1000 training timesteps).
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


def plan_steps(steps: int, strength: float, min_effective: int = MIN_EFFECTIVE_STEPS) -> StepPlan:
    """Plan the schedule for ``steps`` at ``strength`` in [0, 1].

    >>> plan_steps(20, 1.0)
    StepPlan(total=20, start=0)
    >>> plan_steps(20, 0.5)
    StepPlan(total=20, start=10)
    >>> plan_steps(20, 0.1)
    StepPlan(total=40, start=36)
    >>> plan_steps(20, 0.0).effective
    0
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if strength <= 0.0:
        return StepPlan(steps, steps)
    strength = min(strength, 1.0)
    start = round(steps * (1.0 - strength))
    if steps - start >= min(steps, min_effective):
        return StepPlan(steps, start)
    want = min(steps, min_effective)
    needed = want / strength
    total = MAX_SCHEDULE if needed >= MAX_SCHEDULE else max(steps, math.ceil(needed))
    start = max(0, min(total - want, round(total * (1.0 - strength))))
    return StepPlan(total, start)

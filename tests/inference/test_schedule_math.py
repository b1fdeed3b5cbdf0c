"""Steps, sizes, schedulers and noise levels: the arithmetic under the denoise loop."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.inference.latents import NoiseLevels
from sfumato.inference.request import Sampler
from sfumato.inference.schedulers import make_scheduler
from sfumato.inference.steps import plan_steps

SD_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "clip_sample": False,
}


# Deterministic: the same examples every run (derandomize, no example database), no
# per-example deadline (a loaded CI machine must not turn slowness into a failure).
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(steps=st.integers(1, 150), strength=st.floats(0.0, 1.0))
def test_plan_steps(steps: int, strength: float) -> None:
    plan = plan_steps(steps, strength)
    assert 0 <= plan.start <= plan.total <= 1000
    if strength == 0.0:
        assert plan.effective == 0
        return
    assert plan.effective >= min(steps, 4) or plan.total == 1000
    assert plan.total >= steps
    # The noise level matches the strength to within a step.
    assert abs(plan.effective / plan.total - strength) <= 1.0 / plan.total + 1e-9 or plan.effective == min(steps, 4)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(steps=st.integers(1, 150), strength=st.floats(0.0, 1.0), limit=st.integers(1, 60))
def test_plan_steps_within_a_limit(steps: int, strength: float, limit: int) -> None:
    """LCM and TCD take at most their 50-step distillation schedule: the plan stays within
    ``max_total``, keeps the noise level when the lengthened schedule would not fit, and
    runs at least one step."""
    plan = plan_steps(steps, strength, max_total=limit)
    assert 0 <= plan.start <= plan.total <= limit
    if strength == 0.0:
        assert plan.effective == 0
        return
    asked = min(steps, limit)
    assert plan.total >= asked and plan.effective >= 1
    assert plan.effective >= min(asked, 4) or plan.total == limit
    if plan.total == limit and plan.effective < min(asked, 4):
        assert abs(plan.effective / plan.total - strength) <= 0.5 / plan.total + 1e-9 or plan.effective == 1
    if limit >= 4 and strength >= 4 / limit:  # the floor of fast_presets: the full minimum runs
        assert plan.effective >= min(asked, 4)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(steps=st.integers(1, 80), strength=st.floats(0.001, 1.0))
def test_consistency_schedulers_accept_every_plan(steps: int, strength: float) -> None:
    for sampler in (Sampler.LCM, Sampler.TCD):
        scheduler = make_scheduler(sampler, SD_SCHEDULER)
        plan = plan_steps(steps, strength, max_total=50)
        scheduler.set_timesteps(plan.total)  # raised for more than 50
        assert len(scheduler.timesteps[plan.start :]) == plan.effective


@pytest.mark.parametrize("sampler", list(Sampler))
def test_schedulers_keep_the_model_schedule(sampler: Sampler) -> None:
    scheduler = make_scheduler(sampler, SD_SCHEDULER)
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.beta_end == pytest.approx(0.012)
    if sampler is Sampler.DEFAULT:
        assert type(scheduler).__name__ == "EulerDiscreteScheduler"  # PNDM replaced
    if sampler is Sampler.DPMPP_2M_KARRAS:
        assert scheduler.config.use_karras_sigmas


def test_default_keeps_a_turbo_style_scheduler() -> None:
    config = {**SD_SCHEDULER, "_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": "trailing"}
    scheduler = make_scheduler(Sampler.DEFAULT, config)
    assert type(scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert scheduler.config.timestep_spacing == "trailing"


def _three_steps(sampler: Sampler, prediction: str) -> Iterator[tuple[int, Any, torch.Tensor, torch.Tensor, Any]]:
    """Run 3 of 6 steps on random model outputs: ``(j, t, sample, our x0, the scheduler's step output)``."""
    scheduler = make_scheduler(sampler, {**SD_SCHEDULER, "prediction_type": prediction})
    scheduler.set_timesteps(6)
    levels = NoiseLevels(scheduler)
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn((1, 4, 4, 4), generator=gen) * float(scheduler.init_noise_sigma)
    for j, t in enumerate(scheduler.timesteps[:3]):
        output = torch.randn((1, 4, 4, 4), generator=gen)
        ours = levels.predict_x0(sample, output, j)
        kwargs = {} if sampler is Sampler.HEUN else {"generator": torch.Generator().manual_seed(1)}
        step = scheduler.step(output, t, sample, **kwargs)
        yield j, t, sample, ours, step
        sample = step.prev_sample


# LCM is not in this list: its step reports "denoised" = c_out·x0 + c_skip·x (its
# boundary-condition scalings), not x0 itself; it has its own test below.
@pytest.mark.parametrize("sampler", [Sampler.EULER, Sampler.EULER_A, Sampler.DDIM, Sampler.HEUN])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_x0_matches_the_schedulers_own(sampler: Sampler, prediction: str) -> None:
    for j, _, _, ours, step in _three_steps(sampler, prediction):
        if sampler is Sampler.HEUN and j % 2 == 1:
            continue  # the second (corrector) evaluation reports the first's x0
        torch.testing.assert_close(ours, step.pred_original_sample, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_x0_matches_lcms_denoised_through_its_boundary_scalings(prediction: str) -> None:
    lcm = make_scheduler(Sampler.LCM, {**SD_SCHEDULER, "prediction_type": prediction})
    for _, t, sample, ours, step in _three_steps(Sampler.LCM, prediction):
        c_skip, c_out = lcm.get_scalings_for_boundary_condition_discrete(t)
        # LCM's "denoised" = c_out·x0 + c_skip·x exactly ...
        torch.testing.assert_close(c_out * ours + c_skip * sample, step.denoised, rtol=1e-4, atol=1e-4)
        # ... and c_skip ≈ 0 away from t = 0, so x0 itself is a close preview of it.
        torch.testing.assert_close(ours, step.denoised, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("sampler", [Sampler.EULER, Sampler.DDIM, Sampler.DPMPP_2M, Sampler.UNIPC])
def test_noised_matches_add_noise(sampler: Sampler) -> None:
    scheduler = make_scheduler(sampler, SD_SCHEDULER)
    scheduler.set_timesteps(10)
    levels = NoiseLevels(scheduler)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn((1, 4, 4, 4), generator=gen)
    noise = torch.randn((1, 4, 4, 4), generator=gen)
    for j in (0, 4, 9):
        t = scheduler.timesteps[j : j + 1]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(j)
        theirs = scheduler.add_noise(x0, noise, t)
        torch.testing.assert_close(levels.noised(x0, noise, j), theirs, rtol=1e-4, atol=1e-4)
    assert torch.equal(levels.noised(x0, noise, len(levels)), x0)


def test_importing_the_package_loads_no_torch() -> None:
    code = (
        "import sys, sfumato.inference, sfumato.inference.events, sfumato.inference.errors, "
        "sfumato.inference.families, sfumato.inference.steps, "
        "sfumato.inference.inpaint, sfumato.inference.cancel, sfumato.inference.modes, sfumato.inference.options\n"
        "from sfumato.inference import GenerationRequest, Progress, EngineError, CancelToken, EngineOptions, ModelInfo\n"
        "from sfumato.inference.families import get_family\n"
        "assert get_family('sdxl').native_side == 1024\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

"""The scheduler factory with a live preset's tweaks, and an LCM preset through the engine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, request, smooth_image
from safetensors.torch import save_file
from sfumato.inference.catalog import WeightsKind, list_models
from sfumato.inference.detect import read_safetensors_header
from sfumato.inference.fast_presets import (
    FastKind,
    SchedulerTweaks,
    detect_fast_presets,
    recognise_name,
)
from sfumato.inference.latents import NoiseLevels
from sfumato.inference.request import InitImage, LoraSpec, Sampler
from sfumato.inference.schedulers import make_scheduler
from sfumato.vocabulary.config import Config
from sfumato.vocabulary.families import SD15

# The stock SDXL scheduler config a single-file checkpoint gets (resources/): Euler, leading.
SDXL_STOCK = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}
SD15_STOCK = {**SDXL_STOCK, "_class_name": "PNDMScheduler", "skip_prk_steps": True, "set_alpha_to_one": False}


def _preset(name: str, lora: bool = True) -> Any:
    preset = recognise_name(name, lora=lora)
    assert preset is not None
    return preset


@pytest.mark.parametrize(
    ("name", "cls", "steps", "timesteps"),
    [
        # Trailing spacing: the first step is t = 999, where distillation started.
        ("sdxl_lightning_4step_lora", "EulerDiscreteScheduler", 4, [999, 749, 499, 249]),
        ("sdxl_lightning_2step_lora", "EulerDiscreteScheduler", 2, [999, 499]),
        ("Hyper-SDXL-2steps-lora", "DDIMScheduler", 2, [999, 499]),
        ("Hyper-SDXL-8steps-CFG-lora", "DDIMScheduler", 8, [999, 874, 749, 624, 499, 374, 249, 124]),
    ],
)
def test_trailing_presets_on_a_stock_config(name: str, cls: str, steps: int, timesteps: list[int]) -> None:
    preset = _preset(name)
    scheduler = make_scheduler(preset.sampler, SDXL_STOCK, preset.tweaks)
    assert type(scheduler).__name__ == cls
    assert scheduler.config.timestep_spacing == "trailing"
    scheduler.set_timesteps(preset.steps)
    assert [round(float(t)) for t in scheduler.timesteps] == timesteps
    # Without the tweaks the stock ("leading") schedule never visits t = 999.
    plain = make_scheduler(preset.sampler, SDXL_STOCK)
    plain.set_timesteps(preset.steps)
    assert round(float(plain.timesteps[0])) < 999


def test_turbo_is_euler_ancestral_trailing_and_the_model_config_is_untouched() -> None:
    config = dict(SDXL_STOCK)
    preset = _preset("sd_xl_turbo_1.0_fp16", lora=False)
    scheduler = make_scheduler(preset.sampler, config, preset.tweaks)
    assert type(scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert scheduler.config.timestep_spacing == "trailing"
    scheduler.set_timesteps(2)
    assert [round(float(t)) for t in scheduler.timesteps] == [999, 499]
    assert config == SDXL_STOCK


def test_lightning_one_step_predicts_x0() -> None:
    preset = _preset("sdxl_lightning_1step_unet_x0", lora=False)
    scheduler = make_scheduler(preset.sampler, SDXL_STOCK, preset.tweaks)
    assert scheduler.config.prediction_type == "sample"
    assert scheduler.config.timestep_spacing == "trailing"


def test_default_sampler_takes_tweaks_too() -> None:
    scheduler = make_scheduler(Sampler.DEFAULT, SD15_STOCK, SchedulerTweaks(timestep_spacing="trailing"))
    assert type(scheduler).__name__ == "EulerDiscreteScheduler"  # PNDM replaced, as without tweaks
    assert scheduler.config.timestep_spacing == "trailing"


@pytest.mark.parametrize(("name", "cls"), [("lcm-lora-sdv1-5", "LCMScheduler"), ("TCD-SD15-LoRA", "TCDScheduler")])
def test_consistency_presets_build_their_scheduler(name: str, cls: str) -> None:
    preset = _preset(name)
    scheduler = make_scheduler(preset.sampler, SD15_STOCK, preset.tweaks)
    assert type(scheduler).__name__ == cls
    assert scheduler.config.beta_schedule == "scaled_linear"  # the model's schedule is kept


def _tcd_step(scheduler: Any, **kwargs: Any) -> Any:
    scheduler.set_timesteps(4)
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn((1, 4, 8, 8), generator=gen)
    output = torch.randn((1, 4, 8, 8), generator=gen)
    return scheduler.step(output, scheduler.timesteps[0], sample, generator=torch.Generator().manual_seed(5), **kwargs)


def test_the_presets_eta_becomes_tcds_step_default() -> None:
    tuned = _tcd_step(make_scheduler(Sampler.TCD, SD15_STOCK, SchedulerTweaks(eta=1.0)))
    explicit = _tcd_step(make_scheduler(Sampler.TCD, SD15_STOCK), eta=1.0)
    plain = _tcd_step(make_scheduler(Sampler.TCD, SD15_STOCK))  # diffusers' default eta 0.3
    torch.testing.assert_close(tuned.prev_sample, explicit.prev_sample)
    assert not torch.allclose(tuned.prev_sample, plain.prev_sample)
    # An explicit argument still wins over the preset's default.
    again = _tcd_step(make_scheduler(Sampler.TCD, SD15_STOCK, SchedulerTweaks(eta=1.0)), eta=0.3)
    torch.testing.assert_close(again.prev_sample, plain.prev_sample)


def test_eta_for_a_scheduler_without_one_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sfumato.inference.schedulers"):
        scheduler = make_scheduler(Sampler.EULER, SDXL_STOCK, SchedulerTweaks(eta=0.5))
    assert "takes no eta" in caplog.text
    assert not hasattr(scheduler.step, "__wrapped__")  # the class's own step, unwrapped


def test_tcd_previews_show_the_schedulers_own_x0() -> None:
    """With eta = 1 TCD's "noised sample" is x0 re-noised to t = 0, so the engine's x0
    (previews, inpaint blending) can be checked against it exactly."""
    scheduler = make_scheduler(Sampler.TCD, SD15_STOCK, SchedulerTweaks(eta=1.0))
    scheduler.set_timesteps(4)
    levels = NoiseLevels(scheduler)
    gen = torch.Generator().manual_seed(3)
    sample = torch.randn((1, 4, 4, 4), generator=gen)
    a0 = scheduler.alphas_cumprod[0]
    for j, t in enumerate(scheduler.timesteps[:3]):
        output = torch.randn((1, 4, 4, 4), generator=gen)
        ours = levels.predict_x0(sample, output, j)
        step = scheduler.step(output, t, sample, generator=torch.Generator().manual_seed(j))
        torch.testing.assert_close(a0.sqrt() * ours + (1 - a0).sqrt() * output, step.pred_noised_sample,
                                   rtol=1e-4, atol=1e-4)  # fmt: skip
        sample = step.prev_sample


# --------------------------------------------------------------------------- through the engine


def _tiny_lcm_lora(model: Path, folder: Path) -> Path:
    """An LCM-LoRA-named LoRA for the tiny SD 1.x model (two small kohya pairs)."""
    header = read_safetensors_header(model / "unet" / "diffusion_pytorch_model.safetensors")
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for module in ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
                   "up_blocks.1.attentions.0.proj_in"):  # fmt: skip
        out_dim, in_dim = header.shapes[f"{module}.weight"][:2]
        key = "lora_unet_" + module.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = torch.randn((2, in_dim), generator=gen) * 0.01
        tensors[f"{key}.lora_up.weight"] = torch.randn((out_dim, 2), generator=gen) * 0.01
        tensors[f"{key}.alpha"] = torch.tensor(2.0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lcm-lora-sdv1-5.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def test_an_lcm_lora_preset_runs_in_its_step_count(shared_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    lora = _tiny_lcm_lora(tiny_sd15, tmp_path / "loras")
    entries = list_models(WeightsKind.LORA, config=Config(model_paths=[str(tmp_path / "loras")]))
    preset = detect_fast_presets(str(tiny_sd15), family=SD15, loras=entries)[0]
    assert (preset.kind, preset.lora, preset.sampler) == (FastKind.LCM_LORA, str(lora), Sampler.LCM)

    live = preset.apply(request(tiny_sd15, width=64, height=64, steps=25, cfg=7.0))
    rec = Recorder()
    result = shared_engine.run(live, rec)
    assert result.error is None, result.error
    assert [p.step for p in rec.progress] == list(range(1, preset.steps + 1))  # 4 steps, not 25
    assert result.metadata["steps_run"] == preset.steps
    assert result.images[0].shape == (64, 64, 3) and np.isfinite(result.images[0]).all()
    assert result.images[0].std() > 0  # a picture, not a flat fill
    assert shared_engine.cache.get(live.model).loras == (LoraSpec(str(lora), 1.0),)  # merged

    # img2img at the preset's lowest strength: the lengthened schedule still fits LCM's 50 steps.
    low = live.replace(init=InitImage(smooth_image(64, 64), preset.min_strength))
    result = shared_engine.run(low, Recorder())
    assert result.error is None, result.error
    assert result.metadata["schedule"] <= 50

"""The scheduler factory with a live preset's tweaks; the tweaks in the request and through the
engine; LCM and TCD within their 50-step schedule; an LCM preset through the engine."""

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
from sfumato.inference.errors import InvalidRequestError
from sfumato.inference.fast_presets import (
    CONSISTENCY_SCHEDULE,
    ORDINARY_LIVE,
    FastKind,
    SchedulerTweaks,
    detect_fast_presets,
    recognise_name,
)
from sfumato.inference.latents import NoiseLevels
from sfumato.inference.request import InitImage, LoraSpec, RequestError, Sampler
from sfumato.inference.schedulers import make_scheduler, schedule_limit
from sfumato.inference.steps import plan_steps
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


# --------------------------------------------------------------------------- tweaks in the request


def test_apply_puts_the_tweaks_in_the_request_and_the_summary(tiny_sd15: Path) -> None:
    ordinary = request(tiny_sd15, steps=25)
    assert ordinary.scheduler_tweaks.empty
    assert "scheduler_tweaks" not in ordinary.summary()  # ordinary records stay as they were

    lightning = _preset("sdxl_lightning_4step_lora").apply(ordinary)
    assert lightning.scheduler_tweaks == SchedulerTweaks(timestep_spacing="trailing")
    assert lightning.summary()["scheduler_tweaks"] == {"timestep_spacing": "trailing"}
    # The tweaks count in equality: live mode regenerates when only they change.
    assert lightning != lightning.replace(scheduler_tweaks=SchedulerTweaks())
    tcd = _preset("TCD-SD15-LoRA").apply(lightning)
    assert tcd.summary()["scheduler_tweaks"] == {"eta": 0.3}
    # A plain preset after a fast one clears the tweaks.
    assert ORDINARY_LIVE.apply(tcd).scheduler_tweaks.empty


@pytest.mark.parametrize(
    ("tweaks", "message"),
    [
        (SchedulerTweaks(timestep_spacing="trailng"), "timestep spacing must be one of leading, trailing, linspace"),
        (SchedulerTweaks(prediction_type="x0"), "prediction type must be one of epsilon, v_prediction, sample"),
        (SchedulerTweaks(eta=1.5), "eta must be between 0 and 1"),
        (SchedulerTweaks(eta=float("nan")), "eta must be between 0 and 1"),
    ],
)
def test_bad_tweaks_are_refused(tiny_sd15: Path, tweaks: SchedulerTweaks, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        request(tiny_sd15, scheduler_tweaks=tweaks).validate()


def test_bad_tweaks_fail_the_run_as_an_invalid_request(shared_engine: Any, tiny_sd15: Path) -> None:
    result = shared_engine.run(request(tiny_sd15, scheduler_tweaks=SchedulerTweaks(eta=-0.1)), Recorder())
    assert isinstance(result.error, InvalidRequestError)
    assert "eta must be between 0 and 1" in result.error.message


def _unet_timesteps(engine: Any, req: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    unet = engine.cache.get(req.model).unet
    seen: list[int] = []
    original = unet.forward

    def recording(sample: Any, timestep: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(round(float(timestep)))
        return original(sample, timestep, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", recording)
    result = engine.run(req, Recorder())
    monkeypatch.setattr(unet, "forward", original)
    assert result.error is None, result.error
    return seen


def test_the_engine_schedules_with_the_requests_tweaks(
    shared_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tiny model's scheduler is Euler, "leading": a Lightning preset's trailing spacing
    starts the run at t = 999."""
    base = request(tiny_sd15, width=64, height=64, steps=2, cfg=1.0, sampler=Sampler.EULER)
    assert _unet_timesteps(shared_engine, base, monkeypatch)[0] < 999
    trailing = base.replace(scheduler_tweaks=SchedulerTweaks(timestep_spacing="trailing"))
    assert _unet_timesteps(shared_engine, trailing, monkeypatch) == [999, 499]


def test_the_engine_gives_tcd_the_requests_eta(shared_engine: Any, tiny_sd15: Path) -> None:
    base = request(tiny_sd15, width=64, height=64, steps=4, cfg=1.0, sampler=Sampler.TCD)
    images = {}
    for eta in (None, 0.3, 1.0):
        result = shared_engine.run(base.replace(scheduler_tweaks=SchedulerTweaks(eta=eta)), Recorder())
        assert result.error is None, result.error
        images[eta] = result.images[0]
    assert np.array_equal(images[None], images[0.3])  # diffusers' own default is 0.3
    assert not np.array_equal(images[0.3], images[1.0])


# --------------------------------------------------------------------------- the consistency schedule


def test_schedule_limits() -> None:
    assert schedule_limit(make_scheduler(Sampler.LCM, SD15_STOCK)) == CONSISTENCY_SCHEDULE
    assert schedule_limit(make_scheduler(Sampler.TCD, SD15_STOCK, SchedulerTweaks(eta=1.0))) == CONSISTENCY_SCHEDULE
    # An LCM folder's own scheduler under the default sampler, with its own schedule length.
    lcm_folder = {**SD15_STOCK, "_class_name": "LCMScheduler", "original_inference_steps": 100}
    assert schedule_limit(make_scheduler(Sampler.DEFAULT, lcm_folder)) == 100
    for sampler in (Sampler.DEFAULT, Sampler.EULER, Sampler.DDIM, Sampler.DPMPP_2M_KARRAS):
        assert schedule_limit(make_scheduler(sampler, SD15_STOCK)) is None


@pytest.mark.parametrize("sampler", [Sampler.LCM, Sampler.TCD])
def test_low_strength_stays_within_the_consistency_schedule(
    shared_engine: Any, tiny_sd15: Path, sampler: Sampler
) -> None:
    """Regression: strength 0.05 at 4 steps planned an 80-step schedule, which LCM and TCD
    refuse (``set_timesteps`` raised: "Generation failed … This is a bug")."""
    assert plan_steps(4, 0.05).total > CONSISTENCY_SCHEDULE  # what used to be asked for
    plan = plan_steps(4, 0.05, max_total=CONSISTENCY_SCHEDULE)
    assert (plan.total, plan.effective) == (50, 2)  # the noise level of 0.05, 2 steps
    req = request(tiny_sd15, width=64, height=64, steps=4, cfg=1.0, sampler=sampler,
                  init=InitImage(smooth_image(64, 64), 0.05))  # fmt: skip
    rec = Recorder()
    result = shared_engine.run(req, rec)
    assert result.error is None, result.error
    assert result.metadata["schedule"] == CONSISTENCY_SCHEDULE
    assert result.metadata["steps_run"] == len(rec.progress) == plan.effective
    assert [p.step for p in rec.progress] == [1, 2]


def test_more_steps_than_the_consistency_schedule_run_its_length(shared_engine: Any, tiny_sd15: Path) -> None:
    rec = Recorder()
    result = shared_engine.run(request(tiny_sd15, width=64, height=64, steps=60, cfg=1.0, sampler=Sampler.LCM), rec)
    assert result.error is None, result.error
    assert result.metadata["steps_run"] == len(rec.progress) == CONSISTENCY_SCHEDULE
    assert result.metadata["steps"] == 60  # the request as asked, in the record


def test_ordinary_samplers_are_not_capped(shared_engine: Any, tiny_sd15: Path) -> None:
    req = request(tiny_sd15, width=64, height=64, steps=4, cfg=1.0, sampler=Sampler.EULER,
                  init=InitImage(smooth_image(64, 64), 0.05))  # fmt: skip
    result = shared_engine.run(req, Recorder())
    assert result.error is None, result.error
    assert result.metadata["schedule"] == 80 and result.metadata["steps_run"] == 4

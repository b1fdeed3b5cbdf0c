"""Live presets: recognising fast models and LoRAs from names, configs and headers (no torch).

Files and folders are made here: diffusers folders with a ``scheduler_config.json`` and
UNet config, safetensors files written with ``safetensors.numpy`` (a header and a few
bytes of weights). Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sfumato.inference.catalog import ModelEntry, Origin, WeightsKind, list_models
from sfumato.inference.fast_presets import (
    BUILTIN_LIVE,
    CONSISTENCY_SCHEDULE,
    ORDINARY_LIVE,
    FastKind,
    FastPreset,
    SchedulerTweaks,
    detect_fast_presets,
    live_preset,
    recognise_name,
)
from sfumato.inference.request import GenerationRequest, LoraSpec, ModelRef, Sampler
from sfumato.inference.steps import plan_steps
from sfumato.vocabulary.config import Config
from sfumato.vocabulary.families import SD15, SDXL

TRAILING = "trailing"

# (name as found on disk or on the hub, is a LoRA) -> (kind, sampler, steps, cfg, spacing)
RECOGNISED = [
    # LCM
    ("lcm-lora-sdv1-5", True, FastKind.LCM_LORA, Sampler.LCM, 4, 1.0, None),
    ("lcm_lora_sdxl", True, FastKind.LCM_LORA, Sampler.LCM, 4, 1.0, None),
    ("LCM_LoRA_SSD-1B", True, FastKind.LCM_LORA, Sampler.LCM, 4, 1.0, None),
    ("LCM_Dreamshaper_v7", False, FastKind.LCM, Sampler.LCM, 4, 1.0, None),
    ("dreamshaper_8LCM", False, FastKind.LCM, Sampler.LCM, 4, 1.0, None),
    # Turbo: the official ones at 512 with trailing Euler a; merges as their cards say
    ("sd_xl_turbo_1.0_fp16", False, FastKind.TURBO, Sampler.EULER_A, 2, 0.0, TRAILING),
    ("sdxl-turbo", False, FastKind.TURBO, Sampler.EULER_A, 2, 0.0, TRAILING),
    ("sd_turbo", False, FastKind.TURBO, Sampler.EULER_A, 2, 0.0, TRAILING),
    ("dreamshaperXL_v21TurboDPMSDE", False, FastKind.TURBO_MERGE, Sampler.DPMPP_SDE_KARRAS, 4, 2.0, None),
    # SDXL-Lightning: the step count of the file
    ("sdxl_lightning_4step_lora", True, FastKind.LIGHTNING, Sampler.EULER, 4, 0.0, TRAILING),
    ("sdxl_lightning_2step_lora", True, FastKind.LIGHTNING, Sampler.EULER, 2, 0.0, TRAILING),
    ("sdxl_lightning_8step", False, FastKind.LIGHTNING, Sampler.EULER, 8, 0.0, TRAILING),
    ("sdxl_lightning_4step_unet", False, FastKind.LIGHTNING, Sampler.EULER, 4, 0.0, TRAILING),
    ("sdxl-lightning-4-steps", False, FastKind.LIGHTNING, Sampler.EULER, 4, 0.0, TRAILING),
    ("juggernautXL_v9Rdphoto2Lightning", False, FastKind.LIGHTNING_MERGE, Sampler.DPMPP_SDE_KARRAS, 4, 2.0, None),
    # Hyper-SD
    ("Hyper-SDXL-4steps-lora", True, FastKind.HYPER_SD, Sampler.DDIM, 4, 0.0, TRAILING),
    ("Hyper-SD15-2steps-lora", True, FastKind.HYPER_SD, Sampler.DDIM, 2, 0.0, TRAILING),
    ("Hyper-SD15-8steps-CFG-lora", True, FastKind.HYPER_SD, Sampler.DDIM, 8, 5.0, TRAILING),
    ("Hyper-SDXL-12steps-CFG-lora", True, FastKind.HYPER_SD, Sampler.DDIM, 12, 5.0, TRAILING),
    ("Hyper-SDXL-1step-lora", True, FastKind.HYPER_SD, Sampler.TCD, 1, 0.0, None),
    ("Hyper-SDXL-1step-Unet", False, FastKind.HYPER_SD, Sampler.LCM, 1, 0.0, None),
    # TCD-LoRA
    ("TCD-SDXL-LoRA", True, FastKind.TCD, Sampler.TCD, 4, 0.0, None),
]

NOT_FAST = [
    ("v1-5-pruned-emaonly", False),
    ("sd_xl_base_1.0", False),
    ("realisticVisionV60B1_v51HyperVAE", False),  # "Hyper" but not Hyper-SD
    ("hyperrealism_v3", True),
    ("lightning_bolts_style", True),  # a style LoRA: no step count
    ("turbo_car_concept", True),  # Turbo LoRAs are not recognised
    ("Hyper-SDXL-lora", True),  # Hyper-SD without a step count: which schedule is unknown
    ("sdxl_offset_example", True),
    ("calcium_crystals", True),  # "lcm" only inside a word
]


@pytest.mark.parametrize(("name", "lora", "kind", "sampler", "steps", "cfg", "spacing"), RECOGNISED)
def test_recognised_names(
    name: str, lora: bool, kind: FastKind, sampler: Sampler, steps: int, cfg: float, spacing: str | None
) -> None:
    preset = recognise_name(name, lora=lora)
    assert preset is not None, name
    assert (preset.kind, preset.sampler, preset.steps, preset.cfg) == (kind, sampler, steps, cfg)
    assert preset.tweaks.timestep_spacing == spacing


@pytest.mark.parametrize(("name", "lora"), NOT_FAST)
def test_ordinary_names_are_not_fast(name: str, lora: bool) -> None:
    assert recognise_name(name, lora=lora) is None


def test_the_documented_specials() -> None:
    one_step = recognise_name("sdxl_lightning_1step_unet_x0", lora=False)
    assert one_step is not None and one_step.tweaks == SchedulerTweaks("trailing", "sample")
    hyper_one = recognise_name("Hyper-SD15-1step-lora", lora=True)
    assert hyper_one is not None and hyper_one.tweaks.eta == 1.0
    tcd = recognise_name("TCD-SD15-LoRA", lora=True)
    assert tcd is not None and tcd.tweaks.eta == 0.3
    turbo = recognise_name("sdxl-turbo", lora=False)
    assert turbo is not None and turbo.native_side == 512


@pytest.mark.parametrize("name", ["LCM_Dreamshaper_v7", "Hyper-SDXL-1step-lora", "TCD-SDXL-LoRA"])
def test_consistency_presets_keep_low_strength_within_their_schedule(name: str) -> None:
    """LCM and TCD schedule at most 50 steps; the engine lengthens the schedule at low
    strength. At the preset's floor the plan fits; just below it would not."""
    preset = recognise_name(name, lora="lora" in name.lower())
    assert preset is not None and preset.min_strength > 0
    assert plan_steps(preset.steps, preset.min_strength).total <= CONSISTENCY_SCHEDULE
    assert plan_steps(preset.steps, preset.min_strength * 0.8).total > CONSISTENCY_SCHEDULE
    assert recognise_name("sdxl_lightning_4step_lora", lora=True).min_strength == 0.0  # type: ignore[union-attr]


# --------------------------------------------------------------------------- files and folders


def _diffusers_folder(folder: Path, scheduler: dict, unet: dict | None = None) -> Path:
    (folder / "scheduler").mkdir(parents=True)
    (folder / "unet").mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    (folder / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768, **(unet or {})}))
    return folder


def _lora_file(path: Path, metadata: dict[str, str] | None = None, *, sdxl: bool = False) -> Path:
    """A tiny kohya LoRA (rank 1) whose header says SD 1.x or SDXL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = "lora_te2_text_model_encoder_layers_0_mlp_fc1" if sdxl else "lora_unet_down_blocks_0_attentions_0_proj_in"
    tensors = {
        f"{base}.lora_down.weight": np.zeros((1, 4), np.float16),
        f"{base}.lora_up.weight": np.zeros((4, 1), np.float16),
        f"{base}.alpha": np.ones((), np.float16),
    }
    save_file(tensors, str(path), metadata=metadata)
    return path


def _checkpoint_file(path: Path, metadata: dict[str, str] | None = None, *, guidance_embedding: bool = False) -> Path:
    tensors = {"model.diffusion_model.input_blocks.0.0.weight": np.zeros((2, 4, 1, 1), np.float16),
               "cond_stage_model.transformer.text_model.final_layer_norm.weight": np.zeros(2, np.float16)}  # fmt: skip
    if guidance_embedding:
        tensors["model.diffusion_model.time_embed.cond_proj.weight"] = np.zeros((2, 2), np.float16)
    save_file(tensors, str(path), metadata=metadata)
    return path


def _loras(folder: Path) -> list[ModelEntry]:
    """The LoRAs the catalog finds in ``folder`` (as a configured model path)."""
    return list_models(WeightsKind.LORA, config=Config(model_paths=[str(folder)]))


SD_CONFIG = {"_class_name": "PNDMScheduler", "timestep_spacing": "leading", "steps_offset": 1}


def test_a_diffusers_folder_with_an_lcm_scheduler(tmp_path: Path) -> None:
    folder = _diffusers_folder(tmp_path / "my-model", {**SD_CONFIG, "_class_name": "LCMScheduler"})
    presets = detect_fast_presets(str(folder), loras=[])
    assert [p.kind for p in presets] == [FastKind.LCM, FastKind.ORDINARY]
    assert presets[0].sampler is Sampler.LCM and not presets[0].embedded_guidance
    assert "LCMScheduler" in presets[0].evidence


def test_an_lcm_unet_with_a_guidance_embedding_gets_its_scale_embedded(tmp_path: Path) -> None:
    folder = _diffusers_folder(tmp_path / "distilled", {**SD_CONFIG, "_class_name": "LCMScheduler"},
                               {"time_cond_proj_dim": 256})  # fmt: skip
    preset = live_preset(str(folder), loras=[])
    assert preset.embedded_guidance and preset.cfg == 8.0 and preset.steps == 4
    single = _checkpoint_file(tmp_path / "converted.safetensors", guidance_embedding=True)
    assert live_preset(str(single), loras=[]).embedded_guidance


def test_a_tcd_scheduler_folder(tmp_path: Path) -> None:
    folder = _diffusers_folder(tmp_path / "x", {**SD_CONFIG, "_class_name": "TCDScheduler"})
    assert live_preset(str(folder), loras=[]).sampler is Sampler.TCD


def test_trailing_spacing_alone_is_not_a_fast_model(tmp_path: Path) -> None:
    # The built-in model and zero-terminal-SNR fine-tunes ship DDIM with trailing spacing.
    folder = _diffusers_folder(tmp_path / "zsnr-model", {"_class_name": "DDIMScheduler", "timestep_spacing": TRAILING})
    assert detect_fast_presets(str(folder), loras=[]) == (ORDINARY_LIVE,)


def test_a_hub_snapshot_is_named_by_its_repository(tmp_path: Path) -> None:
    snapshot = _diffusers_folder(
        tmp_path / "models--stabilityai--sdxl-turbo" / "snapshots" / "71153311d3dbb46851df1931d3ca6e939de83304",
        {"_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": TRAILING},
    )
    by_path = live_preset(str(snapshot), loras=[])
    entry = ModelEntry(WeightsKind.CHECKPOINT, "stabilityai/sdxl-turbo", "stabilityai/sdxl-turbo", SDXL,
                       Origin.HUB, location=str(snapshot))  # fmt: skip
    by_entry = live_preset(entry, loras=[])
    assert by_path.kind is by_entry.kind is FastKind.TURBO
    # A hub id alone (nothing downloaded) is judged by its name.
    assert live_preset("stabilityai/sdxl-turbo", loras=[]).kind is FastKind.TURBO
    assert live_preset("ByteDance/SDXL-Lightning", loras=[]).kind is FastKind.LIGHTNING


def test_a_checkpoint_named_blandly_is_recognised_by_its_metadata_title(tmp_path: Path) -> None:
    path = _checkpoint_file(tmp_path / "model_v2.safetensors", {"modelspec.title": "SDXL-Lightning 8-step"})
    preset = live_preset(str(path), loras=[])
    assert (preset.kind, preset.steps) == (FastKind.LIGHTNING, 8)
    assert "metadata" in preset.evidence


def test_the_builtin_model_and_an_ordinary_one(tmp_path: Path) -> None:
    assert detect_fast_presets("builtin") == (BUILTIN_LIVE,)
    ordinary = _checkpoint_file(tmp_path / "v1-5-pruned-emaonly.safetensors")
    assert detect_fast_presets(str(ordinary), loras=[]) == (ORDINARY_LIVE,)
    assert ORDINARY_LIVE.sampler is Sampler.DPMPP_2M_KARRAS and 8 <= ORDINARY_LIVE.steps <= 12


def test_fast_loras_found_by_the_catalog(tmp_path: Path) -> None:
    loras = tmp_path / "loras"
    # As `huggingface-cli download latent-consistency/lcm-lora-sdv1-5 --local-dir ...` leaves it:
    lcm = _lora_file(loras / "lcm-lora-sdv1-5" / "pytorch_lora_weights.safetensors")
    hyper = _lora_file(loras / "speed.safetensors", {"ss_output_name": "Hyper-SD15-8steps-CFG-lora"})
    _lora_file(loras / "lightning_bolts_style.safetensors")
    _lora_file(loras / "sdxl_lightning_4step_lora.safetensors", sdxl=True)
    model = _checkpoint_file(tmp_path / "dreamshaper_8.safetensors")

    presets = detect_fast_presets(str(model), family=SD15, loras=_loras(loras))
    # The SDXL-Lightning LoRA does not fit SD 1.x, the style LoRA is no fast LoRA; the
    # LCM-LoRA (one pass a step) ranks before the CFG LoRA (two passes a step).
    assert [(p.kind, p.lora) for p in presets] == [
        (FastKind.LCM_LORA, str(lcm)),
        (FastKind.HYPER_SD, str(hyper)),
        (FastKind.ORDINARY, None),
    ]
    assert "metadata title" in presets[1].evidence
    sdxl = detect_fast_presets(str(model), family=SDXL, loras=_loras(loras))
    assert [p.kind for p in sdxl] == [FastKind.LIGHTNING, FastKind.ORDINARY]


def test_a_lora_in_a_hub_snapshot_is_named_by_its_repository(tmp_path: Path) -> None:
    path = _lora_file(tmp_path / "models--h1t--TCD-SDXL-LoRA" / "snapshots" / ("ab" * 20)
                      / "pytorch_lora_weights.safetensors", sdxl=True)  # fmt: skip
    entry = ModelEntry(WeightsKind.LORA, str(path), "pytorch_lora_weights", SDXL, Origin.CONFIGURED)
    preset = live_preset("sd_xl_base_1.0.safetensors", family=SDXL, loras=[entry])
    assert (preset.kind, preset.lora) == (FastKind.TCD, str(path))


def test_a_model_that_is_fast_itself_gets_no_lora(tmp_path: Path) -> None:
    loras = tmp_path / "loras"
    _lora_file(loras / "lcm-lora-sdxl.safetensors", sdxl=True)
    model = _checkpoint_file(tmp_path / "sd_xl_turbo_1.0_fp16.safetensors")
    presets = detect_fast_presets(str(model), family=SDXL, loras=_loras(loras))
    assert [p.kind for p in presets] == [FastKind.TURBO, FastKind.ORDINARY]
    assert presets[0].lora is None


def test_among_several_the_four_step_lora_comes_first(tmp_path: Path) -> None:
    loras = tmp_path / "loras"
    for name in ("Hyper-SDXL-8steps-lora", "Hyper-SDXL-1step-lora", "sdxl_lightning_4step_lora", "Hyper-SDXL-4steps-lora"):
        _lora_file(loras / f"{name}.safetensors", sdxl=True)
    presets = detect_fast_presets("sd_xl_base_1.0.safetensors", family=SDXL, loras=_loras(loras))
    assert [(p.kind, p.steps) for p in presets] == [
        (FastKind.HYPER_SD, 4), (FastKind.LIGHTNING, 4), (FastKind.HYPER_SD, 8), (FastKind.HYPER_SD, 1),
        (FastKind.ORDINARY, 10),
    ]  # fmt: skip


def test_an_unreadable_lora_is_skipped(tmp_path: Path) -> None:
    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "lcm-lora-sdv1-5.safetensors").write_bytes(b"\xff" * 40)  # not a safetensors file
    assert detect_fast_presets("v1-5.safetensors", family=SD15, loras=_loras(loras)) == (ORDINARY_LIVE,)


def test_apply_sets_the_request_and_adds_the_lora_once(tmp_path: Path) -> None:
    request = GenerationRequest(prompt="a cat", model=ModelRef("m.safetensors"), width=64, height=64,
                                steps=30, cfg=6.5, loras=(LoraSpec("style.safetensors", 0.5),))  # fmt: skip
    preset = FastPreset("LCM-LoRA", FastKind.LCM_LORA, Sampler.LCM, steps=4, cfg=1.0, lora="lcm.safetensors")
    fast = preset.apply(request)
    assert (fast.sampler, fast.steps, fast.cfg) == (Sampler.LCM, 4, 1.0)
    assert fast.loras == (LoraSpec("style.safetensors", 0.5), LoraSpec("lcm.safetensors", 1.0))
    assert preset.apply(fast).loras == fast.loras
    assert ORDINARY_LIVE.apply(request).cfg == 6.5  # the user's guidance is kept


@pytest.mark.parametrize(
    ("name", "family", "steps"),
    [("flux1-dev.safetensors", "flux", 8), ("flux1-schnell.safetensors", "flux", 4), ("z_image_turbo_bf16.safetensors", "zimage", 4),
     ("chroma-unlocked-v50.safetensors", "chroma", 8), ("flux-2-klein-4b.safetensors", "flux2", 4)],  # fmt: skip
)
def test_flow_families_go_live_with_their_own_euler(name: str, family: str, steps: int, tmp_path: Path) -> None:
    """A flow-matching model gets Euler (the only sampler it runs), not an SD preset: 4 steps
    for the step-distilled ones, 8 otherwise; the SD distillation LoRAs are never offered."""
    from sfumato.inference.fast_presets import FLOW_FAST_LIVE, FLOW_LIVE, detect_fast_presets

    presets = detect_fast_presets(str(tmp_path / name), family=family, loras=[])
    assert presets[0].steps == steps and presets[0].sampler is Sampler.DEFAULT
    assert set(presets) == {FLOW_LIVE, FLOW_FAST_LIVE}

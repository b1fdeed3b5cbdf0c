"""Model loading and reuse: one load serves every mode; builtin, single-file, LoRAs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sfumato.inference.lora  # noqa: F401 - an import bug fails, never skips
import sfumato.inference.single_file  # noqa: F401
import torch
from enginehelpers import Recorder, box_mask, count_calls, request, smooth_image
from safetensors.torch import save_file
from sfumato.inference.errors import UnsupportedModeError
from sfumato.inference.families import family_for_diffusers, get_family
from sfumato.inference.request import (
    ControlKind,
    ControlSpec,
    InitImage,
    InpaintSpec,
    LoraSpec,
    ModelRef,
    RegionSpec,
)
from sfumato.vocabulary.config import read_json


def _ok(engine: Any, req: Any) -> tuple[np.ndarray, ...]:
    rec = Recorder()
    result = engine.run(req, rec)
    assert result.ok, result.error
    return result.images


def test_switching_modes_never_reloads(fresh_engine: Any, tiny_sd15: Path, tiny_controlnet_sd15: Path) -> None:
    engine = fresh_engine()
    w, h = 64, 64
    init = smooth_image(w, h)
    mask = box_mask(w, h, 10, 10, 40, 40)
    control = ControlSpec(ControlKind.SCRIBBLE, init, model=ModelRef(str(tiny_controlnet_sd15)))
    base = request(tiny_sd15, width=w, height=h, steps=2)
    for req in [
        base,
        base.replace(init=InitImage(init, 0.6)),
        base.replace(init=InitImage(init, 1.0), inpaint=InpaintSpec(mask)),
        base.replace(controls=(control,)),
        base.replace(regions=(RegionSpec(mask, "a hat"),)),
        base.replace(init=InitImage(init, 1.0), inpaint=InpaintSpec(mask), controls=(control,)),
        base,
    ]:
        _ok(engine, req)
    assert engine.cache.load_count == 1
    assert engine.cache.controlnet_load_count == 1


def test_prompt_encodings_are_cached(fresh_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = fresh_engine()
    _ok(engine, request(tiny_sd15, steps=1))
    calls = count_calls(engine.cache.get(ModelRef(str(tiny_sd15))).pipe.text_encoder, monkeypatch)
    _ok(engine, request(tiny_sd15, steps=1, seed=5))
    assert calls[0] == 0
    _ok(engine, request(tiny_sd15, steps=1, prompt="something new"))
    assert calls[0] == 1


def test_least_recently_used_model_is_dropped(fresh_engine: Any, tiny_sd15: Path, tiny_sdxl: Path) -> None:
    engine = fresh_engine(max_models=1)
    for model in (tiny_sd15, tiny_sdxl, tiny_sd15):
        _ok(engine, request(model, steps=1))
    assert engine.cache.load_count == 3
    assert len(engine.cache.loaded) == 1


def test_builtin_model_and_builtin_scribble_controlnet(
    fresh_engine: Any, tiny_sd15: Path, tiny_controlnet_sd15: Path, tiny_sdxl: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    shutil.copytree(tiny_sd15, root / "builtin")
    shutil.copytree(tiny_controlnet_sd15, root / "builtin-controlnet-scribble")
    engine = fresh_engine(models_root=root)
    sketch = np.zeros((64, 80, 3), np.uint8)
    sketch[20:40, 30:34] = 255
    # No model named: the built-in scribble ControlNet fits the SD 1.x built-in model.
    control = ControlSpec(ControlKind.SCRIBBLE, sketch)
    plain = _ok(engine, request("builtin"))
    controlled = _ok(engine, request("builtin", controls=(control,)))
    assert not np.array_equal(plain[0], controlled[0])
    # ...but not an SDXL model.
    rec = Recorder()
    result = engine.run(request(tiny_sdxl, controls=(control,)), rec)
    assert isinstance(result.error, UnsupportedModeError)


def test_family_detection_of_diffusers_folders(tiny_sd15: Path, tiny_sdxl: Path, tiny_sd15_inpaint: Path) -> None:
    for folder, name in [(tiny_sd15, "sd15"), (tiny_sdxl, "sdxl"), (tiny_sd15_inpaint, "sd15")]:
        index = read_json(folder / "model_index.json") or {}
        unet = read_json(folder / "unet" / "config.json") or {}
        assert family_for_diffusers(index, unet).name == name
    sd2_unet = {**(read_json(tiny_sd15 / "unet" / "config.json") or {}), "cross_attention_dim": 1024}
    assert family_for_diffusers({"_class_name": "StableDiffusionPipeline"}, sd2_unet).name == "sd2"
    with pytest.raises(UnsupportedModeError):
        get_family("kandinsky")


def test_sdxl_encodes_two_encoders_pooled_and_zero_negative(shared_engine: Any, tiny_sdxl: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(tiny_sdxl)))
    tokens, pooled = model.family.encode_prompts(model.pipe, ["a cat", ""], torch.device("cpu"))
    assert tokens.shape == (2, 77, 64) and pooled is not None and pooled.shape == (2, 32)
    assert tokens[1].abs().sum() > 0  # an empty *positive* prompt is encoded
    neg, neg_pooled = model.family.encode_prompts(model.pipe, ["", "ugly"], torch.device("cpu"), negative=True)
    assert neg[0].abs().sum() == 0 and neg_pooled is not None and neg_pooled[0].abs().sum() == 0
    assert neg[1].abs().sum() > 0
    kwargs = model.family.extra_unet_kwargs(model.pipe, pooled, gen_size=(96, 64))
    time_ids = kwargs["added_cond_kwargs"]["time_ids"]
    assert time_ids.tolist()[0] == [64, 96, 0, 0, 64, 96]


def test_single_file_checkpoint_through_the_engine(fresh_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    from ldm_checkpoint import write_ldm_checkpoint

    checkpoint = write_ldm_checkpoint(tiny_sd15, tmp_path / "tiny-sd15.safetensors")
    engine = fresh_engine(single_file_configs={"sd15": tiny_sd15})
    req = request(tiny_sd15, seed=3)
    from_folder = _ok(engine, req)
    from_file = _ok(engine, req.replace(model=ModelRef(str(checkpoint))))
    assert engine.cache.get(ModelRef(str(checkpoint))).family.name == "sd15"
    # Same weights, same request: the same picture (conversions are exact in float32).
    assert np.abs(from_file[0].astype(int) - from_folder[0].astype(int)).max() <= 1


def _write_peft_lora(unet: Any, path: Path, rank: int = 2, seed: int = 0) -> Path:
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if name.endswith("attn2.to_k") or name.endswith("attn2.to_v"):
            out_f, in_f = module.weight.shape
            tensors[f"unet.{name}.lora_A.weight"] = torch.randn((rank, in_f), generator=gen) * 0.5
            tensors[f"unet.{name}.lora_B.weight"] = torch.randn((out_f, rank), generator=gen) * 0.5
    save_file(tensors, str(path))
    return path


def test_loras_apply_and_come_off_exactly(fresh_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    engine = fresh_engine()
    req = request(tiny_sd15, seed=4)
    before = _ok(engine, req)
    lora = _write_peft_lora(engine.cache.get(ModelRef(str(tiny_sd15))).unet, tmp_path / "style.safetensors")
    styled = _ok(engine, req.replace(loras=(LoraSpec(str(lora), 1.0),)))
    half = _ok(engine, req.replace(loras=(LoraSpec(str(lora), 0.3),)))
    after = _ok(engine, req)
    assert not np.array_equal(before[0], styled[0])
    assert not np.array_equal(styled[0], half[0])
    assert np.array_equal(before[0], after[0])
    assert engine.cache.load_count == 1


def test_load_describes_the_model(fresh_engine: Any, tiny_sd15: Path, tiny_sdxl_inpaint: Path, tmp_path: Path) -> None:
    from sfumato.inference.errors import ModelNotFoundError

    engine = fresh_engine()
    info = engine.load(ModelRef(str(tiny_sd15)))
    assert (info.family, info.native_side, info.min_side, info.max_long_side) == ("sd15", 64, 64, 96)
    assert not info.inpaint_model
    xl = engine.load(ModelRef(str(tiny_sdxl_inpaint)))
    assert xl.family == "sdxl" and xl.inpaint_model and xl.min_side == 40
    assert engine.cache.load_count == 2
    with pytest.raises(ModelNotFoundError):
        engine.load(ModelRef(str(tmp_path / "missing.safetensors")))

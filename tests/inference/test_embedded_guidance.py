"""Embedded guidance: an LCM-distilled UNet (``time_cond_proj_dim``) takes the guidance scale
as ``timestep_cond`` in one unguided pass, instead of a doubled CFG batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, request
from sfumato.inference.fast_presets import live_preset
from sfumato.inference.request import Sampler
from sfumato.inference.text_conditioning import embedded_guidance_dim, guidance_embedding

EMBED_DIM = 16  # LCM_Dreamshaper_v7 has 256; small is enough to see the wiring


@pytest.fixture(scope="module")
def tiny_lcm(tiny_sd15: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD 1.x folder with an LCM-style UNet (a guidance embedding of
    ``EMBED_DIM``, its other weights the tiny model's) and an LCMScheduler config."""
    from diffusers import LCMScheduler, UNet2DConditionModel

    folder = tmp_path_factory.mktemp("lcm") / "tiny-lcm-dreamshaper"
    shutil.copytree(tiny_sd15, folder)
    config = json.loads((tiny_sd15 / "unet" / "config.json").read_text(encoding="utf-8"))
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    plain = UNet2DConditionModel.from_pretrained(str(tiny_sd15 / "unet"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        unet = UNet2DConditionModel(**{**config, "time_cond_proj_dim": EMBED_DIM})
    missing, unexpected = unet.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("cond_proj" in key for key in missing) and missing
    shutil.rmtree(folder / "unet")
    unet.save_pretrained(str(folder / "unet"), safe_serialization=True)
    scheduler_config = json.loads((tiny_sd15 / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    LCMScheduler.from_config(scheduler_config).save_pretrained(str(folder / "scheduler"))
    return folder


def _record_unet(engine: Any, model: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each UNet call from now on: its batch size, timestep and ``timestep_cond``."""
    unet = engine.cache.get(request(model).model).unet
    calls: list[dict[str, Any]] = []
    original = unet.forward

    def recording(sample: torch.Tensor, timestep: Any, *args: Any, **kwargs: Any) -> Any:
        cond = kwargs.get("timestep_cond")
        calls.append({"batch": sample.shape[0], "t": int(timestep), "cond": None if cond is None else cond.clone(),
                      "text_batch": kwargs["encoder_hidden_states"].shape[0]})  # fmt: skip
        return original(sample, timestep, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", recording)
    return calls


def _diffusers_embedding(cfg: float, batch: int) -> torch.Tensor:
    from diffusers import LatentConsistencyModelPipeline

    w = torch.tensor(cfg - 1).repeat(batch)
    return LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w, embedding_dim=EMBED_DIM)  # type: ignore[arg-type]


@pytest.mark.parametrize(("cfg", "dim"), [(8.0, 256), (1.5, 16), (3.0, 15)])
def test_the_embedding_is_diffusers(cfg: float, dim: int) -> None:
    from diffusers import LatentConsistencyModelPipeline

    ours = guidance_embedding(cfg, dim, 3, device=torch.device("cpu"), dtype=torch.float32)
    w = torch.tensor(cfg - 1).repeat(3)
    theirs = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w, embedding_dim=dim)  # type: ignore[arg-type]
    assert ours.shape == (3, dim)
    torch.testing.assert_close(ours, theirs)


def test_no_guidance_below_one() -> None:
    """0 and 1 both mean "no guidance" in Sfumato: both embed w = 0, never a negative scale."""
    cpu = torch.device("cpu")
    zero = guidance_embedding(0.0, 16, 1, device=cpu, dtype=torch.float32)
    torch.testing.assert_close(zero, guidance_embedding(1.0, 16, 1, device=cpu, dtype=torch.float32))
    torch.testing.assert_close(zero, _diffusers_embedding(1.0, 1).expand(1, 16))


def test_the_unet_gets_the_scale_and_no_doubled_batch(
    shared_engine: Any, tiny_lcm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert embedded_guidance_dim(shared_engine.cache.get(request(tiny_lcm).model).unet) == EMBED_DIM
    calls = _record_unet(shared_engine, tiny_lcm, monkeypatch)
    prompt = "an embedded lighthouse"
    base = request(tiny_lcm, width=64, height=64, steps=4, sampler=Sampler.LCM, batch=2, prompt=prompt,
                   negative="blurry")  # fmt: skip
    images = {}
    for cfg in (8.0, 3.0):
        calls.clear()
        result = shared_engine.run(base.replace(cfg=cfg), Recorder())
        assert result.error is None, result.error
        assert len(calls) == 4  # one UNet pass a step
        for call in calls:
            assert call["batch"] == call["text_batch"] == 2  # not 4: no unconditional half
            assert call["cond"] is not None and call["cond"].shape == (2, EMBED_DIM)
            torch.testing.assert_close(call["cond"], _diffusers_embedding(cfg, 2))
        images[cfg] = result.images[0]
    assert not np.array_equal(images[8.0], images[3.0])  # the scale reaches the picture
    # The negative prompt is never encoded: nothing runs the unconditional half.
    keys = shared_engine.cache.get(base.model).prompt_cache.keys()
    assert (prompt, False) in keys and ("blurry", True) not in keys


def test_an_ordinary_unet_gets_no_embedding(shared_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert embedded_guidance_dim(shared_engine.cache.get(request(tiny_sd15).model).unet) is None
    calls = _record_unet(shared_engine, tiny_sd15, monkeypatch)
    result = shared_engine.run(request(tiny_sd15, width=64, height=64, steps=2, cfg=7.0), Recorder())
    assert result.error is None, result.error
    assert [(c["batch"], c["cond"]) for c in calls] == [(2, None), (2, None)]  # CFG: two halves


def test_the_live_preset_of_an_lcm_folder_runs_embedded(
    shared_engine: Any, tiny_lcm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = live_preset(str(tiny_lcm), loras=[])
    assert preset.embedded_guidance and preset.sampler is Sampler.LCM and preset.cfg == 8.0
    calls = _record_unet(shared_engine, tiny_lcm, monkeypatch)
    live = preset.apply(request(tiny_lcm, width=64, height=64, steps=25, cfg=5.0))
    result = shared_engine.run(live, Recorder())
    assert result.error is None, result.error
    assert result.metadata["steps_run"] == len(calls) == 4
    assert [c["t"] for c in calls] == [999, 759, 499, 259]  # LCM's 4 of its 50-step schedule
    assert all(c["batch"] == 1 for c in calls)
    torch.testing.assert_close(calls[0]["cond"], _diffusers_embedding(8.0, 1))

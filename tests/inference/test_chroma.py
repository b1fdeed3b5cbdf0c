"""Chroma through the engine's own loop equals diffusers' Chroma pipelines, as the model
was trained: text padding masked.

diffusers 0.42's ``ChromaPipeline`` gives the transformer a float 0/1 mask, which
attention adds to the scores rather than masking (huggingface/diffusers#12116, the
model's padding then leaks in). The engine masks; the reference runs here make the
pipeline's mask boolean, the one change between the two, so the comparison is of the
model as trained. The other difference is the one every img2img comparison has: the
pipelines sample the VAE's latent distribution, the engine takes its mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flowtests as flow
import numpy as np
import pytest
import torch
from enginehelpers import Recorder, box_mask, request, smooth_image
from sfumato.inference.request import ControlSpec, InitImage, ModelRef, RegionSpec
from sfumato.vocabulary.kinds import ControlKind
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def chroma() -> Path:
    return tiny_flow_model("chroma")


def _boolean_mask(monkeypatch: pytest.MonkeyPatch, pipe: Any) -> None:
    real = type(pipe)._prepare_attention_mask

    def boolean(self: Any, *args: Any, **kwargs: Any) -> Any:
        mask = real(self, *args, **kwargs)
        return None if mask is None else mask.bool()

    monkeypatch.setattr(type(pipe), "_prepare_attention_mask", boolean)


@pytest.mark.parametrize(("cfg", "negative"), [(1.0, ""), (4.0, ""), (4.0, "green sky at night")])
def test_txt2img_equals_chroma_pipeline(
    shared_engine: Any, chroma: Path, monkeypatch: pytest.MonkeyPatch, cfg: float, negative: str
) -> None:
    model = shared_engine.cache.get(ModelRef(str(chroma)))
    assert model.family.name == "chroma"
    _boolean_mask(monkeypatch, model.pipe)
    req = request(chroma, width=SIDE, height=SIDE, steps=3, cfg=cfg, seed=8, prompt="a red cat on a mat",
                  negative=negative)  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt=req.prompt, negative_prompt=negative or None, guidance_scale=cfg, num_inference_steps=3,
                        height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(8),
                        output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_img2img_equals_chroma_img2img_pipeline(
    shared_engine: Any, chroma: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import ChromaImg2ImgPipeline
    from diffusers.pipelines.chroma import pipeline_chroma_img2img

    flow.latents_by_mode(monkeypatch, pipeline_chroma_img2img)
    model = shared_engine.cache.get(ModelRef(str(chroma)))
    pipe = ChromaImg2ImgPipeline(**model.pipe.components)
    _boolean_mask(monkeypatch, pipe)
    init = smooth_image(SIDE, SIDE)
    req = request(chroma, width=SIDE, height=SIDE, steps=8, cfg=3.0, seed=3, init=InitImage(init, 0.5))
    ours = flow.run_ok(shared_engine, req)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init), strength=0.5, num_inference_steps=8,
                  guidance_scale=3.0, height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(3),
                  output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_inpaint_equals_chroma_inpaint_pipeline(
    shared_engine: Any, chroma: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import ChromaInpaintPipeline
    from diffusers.pipelines.chroma import pipeline_chroma_inpainting

    flow.latents_by_mode(monkeypatch, pipeline_chroma_inpainting)
    model = shared_engine.cache.get(ModelRef(str(chroma)))
    pipe = ChromaInpaintPipeline(**model.pipe.components)
    _boolean_mask(monkeypatch, pipe)
    # diffusers 0.42's inpaint pipeline reads a FLUX-only config field Chroma lacks.
    config = type(pipe.transformer.config)({**pipe.transformer.config, "guidance_embeds": False})
    monkeypatch.setattr(pipe.transformer, "_internal_dict", config)
    init, mask, req = flow.centre_inpaint(chroma, SIDE, steps=4, cfg=1.0, seed=5)
    ours = flow.run_ok(shared_engine, req)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init, mask),
                  strength=1.0, num_inference_steps=4, guidance_scale=1.0, height=SIDE, width=SIDE,
                  generator=torch.Generator("cpu").manual_seed(5), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)
    outside = mask == 0
    assert not np.array_equal(ours[~outside], init[~outside])


def test_padding_is_masked_not_read(shared_engine: Any, chroma: Path) -> None:
    """A negative longer than the prompt pads the prompt: the padding is masked, so the
    guided result is the same whatever vectors the padding holds."""
    model = shared_engine.cache.get(ModelRef(str(chroma)))
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    text = condition_text(model, [PromptPair("a cat", "a green sky over a red house at night")], guided=True,
                          batch=1, device=torch.device("cpu"), dtype=torch.float32)  # fmt: skip
    assert text.token_mask is not None
    real = int(text.token_mask[1].sum())  # the conditional half: the prompt's own tokens
    assert real < text.tokens.shape[1] and bool(text.token_mask[0].all())


def test_chroma_refuses_controls_and_regions_by_name(shared_engine: Any, chroma: Path) -> None:
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    for extra in ({"controls": (ControlSpec(ControlKind.CANNY, control),)},
                  {"regions": (RegionSpec(box_mask(SIDE, SIDE, 0, 0, 32, 64), "a cat"),)}):  # fmt: skip
        result = shared_engine.run(request(chroma, width=SIDE, height=SIDE, steps=2, **extra), Recorder())
        assert result.error is not None and "Chroma models cannot do" in str(result.error)


def test_a_chroma_lora_merges_acts_and_comes_off(shared_engine: Any, chroma: Path, tmp_path: Path) -> None:
    """A Chroma LoRA in diffusers/PEFT form merges into the transformer (``W + w·B@A``),
    changes the picture, and without it the picture is the one before, byte for byte."""
    model = shared_engine.cache.get(ModelRef(str(chroma)))
    req = request(chroma, width=SIDE, height=SIDE, steps=3, cfg=1.0, seed=2)
    flow.check_peft_lora_merges(shared_engine, req, model.denoiser.single_transformer_blocks[0].proj_out,
                                "single_transformer_blocks.0.proj_out", tmp_path / "chroma_lora.safetensors", seed=1,
                                weight=0.7, min_change=0.2)  # fmt: skip

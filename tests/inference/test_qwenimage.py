"""Qwen-Image through the engine's own loop equals diffusers' Qwen-Image pipelines, mode by mode.

A tiny random Qwen-Image folder (``tinyflow``: Qwen2.5-VL, the video VAE with its latent
statistics, a 2-block MMDiT) and its ControlNet. Each test runs the engine and the
matching diffusers pipeline for the same seed at 64×64 and compares the uint8 pictures.

diffusers' img2img/inpaint/ControlNet pipelines *sample* the VAE's latent distribution;
the engine takes its mode, so a reference run patches ``retrieve_latents`` to the mode —
the one place the two are meant to differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flowtests as flow
import numpy as np
import pytest
import torch
from enginehelpers import Recorder, request, smooth_image
from PIL import Image
from sfumato.inference.request import ControlSpec, InitImage, ModelRef, RegionSpec
from sfumato.vocabulary.kinds import ControlKind
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def qwen() -> Path:
    return tiny_flow_model("qwenimage")


def _guidance(cfg: float, negative: str) -> dict[str, Any]:
    """The pipeline's arguments for the engine's ``cfg``: true CFG (a negative prompt) above 1."""
    return {"true_cfg_scale": cfg, "negative_prompt": negative} if cfg > 1 else {}


@pytest.mark.parametrize("cfg", [1.0, 4.0])
def test_txt2img_equals_qwenimage_pipeline(shared_engine: Any, qwen: Path, cfg: float) -> None:
    """Without guidance one pass on the prompt; with it, true CFG with the negative prompt
    (a different length of tokens, padded and masked here) and Qwen-Image's norm rescale."""
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    assert model.family.name == "qwenimage"
    req = request(qwen, width=SIDE, height=SIDE, steps=4, cfg=cfg, seed=42, prompt="a red cat on a mat",
                  negative="blue sky")  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt=req.prompt, num_inference_steps=4, height=SIDE, width=SIDE,
                        generator=torch.Generator("cpu").manual_seed(42), output_type="np",
                        **_guidance(cfg, req.negative)).images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_img2img_equals_qwenimage_img2img_pipeline(
    shared_engine: Any, qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import QwenImageImg2ImgPipeline
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_img2img

    flow.latents_by_mode(monkeypatch, pipeline_qwenimage_img2img)
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    init = smooth_image(SIDE, SIDE)
    req = request(qwen, width=SIDE, height=SIDE, steps=8, cfg=3.0, seed=3, init=InitImage(init, 0.5))
    ours = flow.run_ok(shared_engine, req)
    pipe = QwenImageImg2ImgPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init), strength=0.5, num_inference_steps=8, height=SIDE,
                  width=SIDE, generator=torch.Generator("cpu").manual_seed(3), output_type="np",
                  **_guidance(3.0, req.negative)).images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_inpaint_equals_qwenimage_inpaint_pipeline(
    shared_engine: Any, qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import QwenImageInpaintPipeline
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_inpaint

    flow.latents_by_mode(monkeypatch, pipeline_qwenimage_inpaint)
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    init, mask, req = flow.centre_inpaint(qwen, SIDE, steps=4, cfg=1.0, seed=5)
    ours = flow.run_ok(shared_engine, req)
    pipe = QwenImageInpaintPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init, mask),
                  strength=1.0, num_inference_steps=4, height=SIDE, width=SIDE,
                  generator=torch.Generator("cpu").manual_seed(5), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_controlnet_equals_qwenimage_controlnet_pipeline(
    shared_engine: Any, qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two images with guidance: the ControlNet's residuals come from the conditional half
    of the batch and serve both halves, as diffusers computes them from the prompt alone."""
    from diffusers import QwenImageControlNetModel, QwenImageControlNetPipeline
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_controlnet

    flow.latents_by_mode(monkeypatch, pipeline_qwenimage_controlnet)
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    net_path = tiny_flow_model("controlnet-qwenimage")
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    control[8:56, 24:40] = 255
    spec = ControlSpec(kind=ControlKind.CANNY, image=control, strength=0.8, model=ModelRef(str(net_path)))
    req = request(qwen, width=SIDE, height=SIDE, steps=4, cfg=3.0, seed=9, controls=(spec,), batch=2)
    result = shared_engine.run(req, Recorder())
    assert result.ok, result.error
    without = flow.run_ok(shared_engine, req.replace(controls=(), batch=1))
    assert np.abs(result.images[0].astype(int) - without.astype(int)).mean() > 0.2  # the control acts
    net = QwenImageControlNetModel.from_pretrained(str(net_path), local_files_only=True)
    pipe = QwenImageControlNetPipeline(**model.pipe.components, controlnet=net)
    theirs = pipe(prompt=req.prompt, control_image=Image.fromarray(control), controlnet_conditioning_scale=0.8,
                  num_inference_steps=4, height=SIDE, width=SIDE, num_images_per_prompt=2,
                  generator=[torch.Generator("cpu").manual_seed(s) for s in (9, 10)], output_type="np",
                  **_guidance(3.0, req.negative)).images  # fmt: skip
    for ours, reference in zip(result.images, theirs):
        flow.assert_close_u8(ours, reference)


def test_only_qwenimage_controlnets_without_a_mask_input_are_taken(shared_engine: Any, qwen: Path) -> None:
    from diffusers import FluxControlNetModel, QwenImageControlNetModel
    from tinyflow import _QWEN

    model = shared_engine.cache.get(ModelRef(str(qwen)))
    family, pipe = model.family, model.pipe
    assert family.controlnet_mismatch(QwenImageControlNetModel(num_layers=1, **_QWEN), pipe) is None
    inpainting = QwenImageControlNetModel(num_layers=1, extra_condition_channels=4, **_QWEN)
    assert "inpainting" in str(family.controlnet_mismatch(inpainting, pipe))
    flux = FluxControlNetModel(in_channels=16, num_layers=1, num_single_layers=0, attention_head_dim=8,
                               num_attention_heads=1, joint_attention_dim=16, axes_dims_rope=(2, 2, 4))  # fmt: skip
    assert "not a Qwen-Image ControlNet" in str(family.controlnet_mismatch(flux, pipe))


def test_claims_the_qwenimage_pipelines_not_edit() -> None:
    from sfumato.inference.errors import UnsupportedModeError
    from sfumato.inference.families import family_for_diffusers

    transformer = {"_class_name": "QwenImageTransformer2DModel", "in_channels": 64}
    for cls in ("QwenImagePipeline", "QwenImageImg2ImgPipeline", "QwenImageControlNetPipeline"):
        index = {"_class_name": cls, "transformer": ["diffusers", "QwenImageTransformer2DModel"]}
        assert family_for_diffusers(index, transformer).name == "qwenimage"
    # The Edit pipelines' folders are the edit families' (tests/inference/test_qwen_edit.py).
    assert family_for_diffusers({**index, "_class_name": "QwenImageEditPipeline"}, transformer).name == "qwenimage-edit"
    with pytest.raises(UnsupportedModeError):
        family_for_diffusers({**index, "_class_name": "QwenImageLayeredPipeline"}, transformer)


def test_previews_are_x0_and_end_at_the_result(
    shared_engine: Any, qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    req = request(qwen, width=SIDE, height=SIDE, steps=4, cfg=1.0, seed=2)
    flow.check_previews_are_x0(shared_engine, req, monkeypatch, (16, SIDE // 8, SIDE // 8))


def test_refuses_other_samplers(shared_engine: Any, qwen: Path) -> None:
    flow.check_refuses_other_samplers(shared_engine, qwen, SIDE)


def test_regions_keep_each_regions_attention_on_its_prompt(
    shared_engine: Any, qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At every attention call of every block, with guidance (both halves, each with its
    own padding), an image token inside a region gives less than 1e-3 of its attention to
    another prompt's text tokens or to padding."""
    import diffusers.models.transformers.transformer_qwenimage as qwen_module
    from sfumato.inference.regions import latent_masks
    from sfumato.inference.text_conditioning import condition_text, prompt_pairs

    regions = flow.left_right_regions(SIDE, SIDE)
    masks = latent_masks([r.mask for r in regions], (SIDE // 8, SIDE // 8))
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    req = request(qwen, width=SIDE, height=SIDE, steps=2, cfg=3.0, seed=4, regions=regions, negative="blue")
    spans = condition_text(model, prompt_pairs(req), guided=True, batch=1, device=torch.device("cpu"),
                           dtype=torch.float32).region_spans  # fmt: skip
    probe = flow.probe_region_leaks(monkeypatch, qwen_module, "dispatch_attention_fn", spans=spans, masks=masks,
                                    image_tokens=masks.shape[1] * masks.shape[2] // 4, patch=2)  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    assert min(probe.mask_rows) > 1, "a block ran without the region bias"
    assert probe.calls == 2 * len(model.denoiser.transformer_blocks)
    assert max(probe.leaks) < 1e-3, max(probe.leaks)
    probe.stop()
    processors = {type(p).__name__ for p in model.denoiser.attn_processors.values()}
    assert processors == {"QwenDoubleStreamAttnProcessor2_0"}  # put back after the run
    # Another prompt for the right region only: the change lands on the right (the tiny
    # model's text acts weakly: measured 0.39 right, 0.16 left, image tokens mixing freely).
    other = (regions[0], RegionSpec(regions[1].mask, "blue sky and light on the woman"))
    change = np.abs(ours.astype(int) - flow.run_ok(shared_engine, req.replace(regions=other)).astype(int))
    assert change[:, SIDE // 2 :].mean() > 1.5 * change[:, : SIDE // 2].mean()


def test_regions_cost_one_pass(shared_engine: Any, qwen: Path) -> None:
    """Regions add tokens, not transformer calls; guidance doubles the batch, not the calls."""
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    req = request(qwen, width=SIDE, height=SIDE, steps=3, cfg=3.0, regions=flow.left_right_regions(SIDE, SIDE))
    assert flow.count_denoiser_calls(model, lambda: flow.run_ok(shared_engine, req)) == 3


def test_prompts_are_their_real_tokens_and_the_padding_is_masked(shared_engine: Any, qwen: Path) -> None:
    """A prompt is the pipeline's tokens, no padding rows; a shorter negative is padded with
    zero vectors its token mask marks, and that mask is what the transformer gets (none
    where every token is real, as diffusers passes it). Several prompts at once are
    zero-padded to the longest."""
    from sfumato.inference.denoisers.qwenimage import padding_mask
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    model = shared_engine.cache.get(ModelRef(str(qwen)))
    family, pipe, cpu = model.family, model.pipe, torch.device("cpu")
    assert family.masked_padding
    tokens, pooled = family.encode_prompts(pipe, ["a red cat on a mat"], cpu)
    embeds, mask = pipe._get_qwen_prompt_embeds(prompt=["a red cat on a mat"], device=cpu)
    assert pooled is None and bool(mask.all()) and torch.equal(tokens, embeds)
    empty, _ = family.encode_prompts(pipe, [""], cpu)
    assert 0 < empty.shape[1] < tokens.shape[1]
    both, _ = family.encode_prompts(pipe, ["a red cat on a mat", ""], cpu)
    assert torch.equal(both[:1], tokens) and torch.equal(both[1:, : empty.shape[1]], empty)
    assert both.shape[1] == tokens.shape[1] and not both[1, empty.shape[1] :].any()
    text = condition_text(model, [PromptPair("a red cat on a mat", "")], guided=True, batch=1, device=cpu,
                          dtype=torch.float32)  # fmt: skip
    assert text.token_mask is not None and text.tokens.shape[1] == tokens.shape[1]
    assert int(text.token_mask[0].sum()) == empty.shape[1] and bool(text.token_mask[1].all())  # [uncond, cond]
    torch.testing.assert_close(text.tokens[0, : empty.shape[1]], empty[0].float())
    assert padding_mask(text.token_mask) is text.token_mask
    assert padding_mask(text.token_mask[1:]) is None and padding_mask(None) is None


def test_a_zero_weight_is_a_real_token(shared_engine: Any, qwen: Path) -> None:
    """A weight of 0 makes a token's row all zeros; the mask, not the values, says what is
    padding, so the token stays text (no weight is bumped to keep it from looking like one)."""
    from sfumato.inference.denoisers.qwenimage import padding_mask
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    model = shared_engine.cache.get(ModelRef(str(qwen)))
    cpu = torch.device("cpu")
    plain, _ = model.family.encode_prompts(model.pipe, ["a red cat"], cpu)
    muted, _ = model.family.encode_prompts(model.pipe, ["a (red:0) cat"], cpu)
    assert muted.shape == plain.shape
    assert int((muted[0].abs().amax(dim=-1) == 0).sum()) >= 1  # "red"'s row(s)
    text = condition_text(model, [PromptPair("a (red:0) cat")], guided=False, batch=1, device=cpu,
                          dtype=torch.float32)  # fmt: skip
    assert text.token_mask is not None and bool(text.token_mask.all())
    assert padding_mask(text.token_mask) is None


def test_weighted_prompt_changes_the_tokens(shared_engine: Any, qwen: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    family, pipe, cpu = model.family, model.pipe, torch.device("cpu")
    plain, _ = family.encode_prompts(pipe, ["a red cat"], cpu)
    same, _ = family.encode_prompts(pipe, ["a (red:1.0) cat"], cpu)
    heavy, _ = family.encode_prompts(pipe, ["a (red:1.5) cat"], cpu)
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, heavy)
    from sfumato.inference.families.qwenimage import _weighted_text
    from sfumato.inference.families.t5 import plain_text

    for prompt in ("a (red:1.5) cat", " (a:0.5)  [b] BREAK c (d:1.2) ", "x BREAK BREAK y"):
        text, weights = _weighted_text(prompt)
        assert text == plain_text(prompt) and len(weights) == len(text)
    assert plain.shape == heavy.shape


def test_a_qwen_image_lora_merges_acts_and_comes_off(shared_engine: Any, qwen: Path, tmp_path: Path) -> None:
    """A Qwen-Image LoRA in diffusers/PEFT form merges into the transformer (``W + w·B@A``),
    changes the picture, and without it the picture is the one before, byte for byte."""
    model = shared_engine.cache.get(ModelRef(str(qwen)))
    req = request(qwen, width=SIDE, height=SIDE, steps=3, cfg=1.0, seed=2)
    # the tiny model's text and attention act weakly; its output layer does not
    flow.check_peft_lora_merges(shared_engine, req, model.denoiser.proj_out, "proj_out", tmp_path / "qwen_lora.safetensors",
                                seed=1, weight=0.7, min_change=0.2)  # fmt: skip

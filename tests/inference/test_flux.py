"""FLUX.1 through the engine's own loop equals diffusers' FLUX pipelines, mode by mode.

Tiny random FLUX folders (``tinyflow``): dev-like (guidance embedding), schnell-like
(none: true CFG above 1) and Fill. Each test runs the engine and the matching diffusers
pipeline for the same seed at 64×64 and compares the uint8 pictures.

diffusers' img2img/inpaint pipelines *sample* the VAE's latent distribution (drawing from
the seed's generator before the noise); the engine takes its mode, so a reference run
patches ``retrieve_latents`` to the mode — the one place the two are meant to differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flowtests as flow
import numpy as np
import pytest
import torch
from enginehelpers import Recorder, box_mask, request, smooth_image
from PIL import Image
from sfumato.inference.request import ControlSpec, InitImage, InpaintSpec, ModelRef, RegionSpec
from sfumato.vocabulary.kinds import ControlKind
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def flux() -> Path:
    return tiny_flow_model("flux")


@pytest.fixture(scope="module")
def flux_schnell() -> Path:
    return tiny_flow_model("flux-schnell")


@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_txt2img_equals_flux_pipeline(shared_engine: Any, flux: Path, cfg: float) -> None:
    model = shared_engine.cache.get(ModelRef(str(flux)))
    assert model.family.name == "flux"
    req = request(flux, width=SIDE, height=SIDE, steps=4, cfg=cfg, seed=42, prompt="a red cat on a mat")
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt=req.prompt, num_inference_steps=4, guidance_scale=cfg, height=SIDE, width=SIDE,
                        generator=torch.Generator("cpu").manual_seed(42), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_guidance_is_an_input_of_dev(shared_engine: Any, flux: Path) -> None:
    """dev's guidance scale changes the picture through the embedding, in one pass."""
    a = flow.run_ok(shared_engine, request(flux, width=SIDE, height=SIDE, steps=3, cfg=1.0, seed=1))
    b = flow.run_ok(shared_engine, request(flux, width=SIDE, height=SIDE, steps=3, cfg=4.0, seed=1))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_schnell_true_cfg_equals_pipeline(shared_engine: Any, flux_schnell: Path) -> None:
    """Without a guidance embedding, a scale above 1 is true CFG with the negative prompt."""
    model = shared_engine.cache.get(ModelRef(str(flux_schnell)))
    req = request(flux_schnell, width=SIDE, height=SIDE, steps=3, cfg=2.5, seed=7, prompt="a blue dog",
                  negative="green sky")  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt=req.prompt, negative_prompt=req.negative, true_cfg_scale=2.5, num_inference_steps=3,
                        height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(7),
                        output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_img2img_equals_flux_img2img_pipeline(shared_engine: Any, flux: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import FluxImg2ImgPipeline
    from diffusers.pipelines.flux import pipeline_flux_img2img

    flow.latents_by_mode(monkeypatch, pipeline_flux_img2img)
    model = shared_engine.cache.get(ModelRef(str(flux)))
    init = smooth_image(SIDE, SIDE)
    req = request(flux, width=SIDE, height=SIDE, steps=8, cfg=3.5, seed=3, init=InitImage(init, 0.5))
    ours = flow.run_ok(shared_engine, req)
    pipe = FluxImg2ImgPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init), strength=0.5, num_inference_steps=8,
                  guidance_scale=3.5, height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(3),
                  output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_inpaint_equals_flux_inpaint_pipeline(shared_engine: Any, flux: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import FluxInpaintPipeline
    from diffusers.pipelines.flux import pipeline_flux_inpaint

    flow.latents_by_mode(monkeypatch, pipeline_flux_inpaint)
    model = shared_engine.cache.get(ModelRef(str(flux)))
    init, mask, req = flow.centre_inpaint(flux, SIDE, steps=4, cfg=3.5, seed=5)
    ours = flow.run_ok(shared_engine, req)
    pipe = FluxInpaintPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init, mask),
                  strength=1.0, num_inference_steps=4, guidance_scale=3.5, height=SIDE, width=SIDE,
                  generator=torch.Generator("cpu").manual_seed(5), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_previews_are_x0_and_end_at_the_result(
    shared_engine: Any, flux: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step previews the predicted clean latents (``x − σ·v``); the last prediction
    is exactly what gets decoded, and the first is far from the noise it started from."""
    req = request(flux, width=SIDE, height=SIDE, steps=4, cfg=3.5, seed=2)
    flow.check_previews_are_x0(shared_engine, req, monkeypatch, (16, SIDE // 8, SIDE // 8), (SIDE // 8, SIDE // 8, 3))


def test_flow_families_refuse_other_samplers(shared_engine: Any, flux: Path) -> None:
    flow.check_refuses_other_samplers(shared_engine, flux, SIDE)


def test_controlnet_equals_flux_controlnet_pipeline(
    shared_engine: Any, flux: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import FluxControlNetModel, FluxControlNetPipeline
    from diffusers.pipelines.flux import pipeline_flux_controlnet

    flow.latents_by_mode(monkeypatch, pipeline_flux_controlnet)
    model = shared_engine.cache.get(ModelRef(str(flux)))
    net_path = tiny_flow_model("controlnet-flux")
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    control[8:56, 24:40] = 255
    spec = ControlSpec(kind=ControlKind.CANNY, image=control, strength=0.8, model=ModelRef(str(net_path)))
    req = request(flux, width=SIDE, height=SIDE, steps=4, cfg=3.5, seed=9, controls=(spec,))
    ours = flow.run_ok(shared_engine, req)
    without = flow.run_ok(shared_engine, req.replace(controls=()))
    assert np.abs(ours.astype(int) - without.astype(int)).mean() > 0.2  # the control acts
    net = FluxControlNetModel.from_pretrained(str(net_path), local_files_only=True)
    pipe = FluxControlNetPipeline(**model.pipe.components, controlnet=net)
    theirs = pipe(prompt=req.prompt, control_image=Image.fromarray(control), controlnet_conditioning_scale=0.8,
                  num_inference_steps=4, guidance_scale=3.5, height=SIDE, width=SIDE,
                  generator=torch.Generator("cpu").manual_seed(9), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_regions_keep_each_regions_attention_on_its_prompt(
    shared_engine: Any, flux: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At every attention call of every block, an image token inside a region gives less
    than 1e-3 of its attention to another prompt's text tokens."""
    import diffusers.models.transformers.transformer_flux as flux_module
    from sfumato.inference.regions import latent_masks
    from sfumato.inference.text_conditioning import condition_text, prompt_pairs

    regions = flow.left_right_regions(SIDE, SIDE)
    masks = latent_masks([r.mask for r in regions], (SIDE // 8, SIDE // 8))
    model = shared_engine.cache.get(ModelRef(str(flux)))
    req = request(flux, width=SIDE, height=SIDE, steps=2, cfg=3.5, seed=4, regions=regions)
    spans = condition_text(model, prompt_pairs(req), guided=False, batch=1, device=torch.device("cpu"),
                           dtype=torch.float32).region_spans  # fmt: skip
    probe = flow.probe_region_leaks(monkeypatch, flux_module, "dispatch_attention_fn", spans=spans, masks=masks,
                                    image_tokens=masks.shape[1] * masks.shape[2] // 4, patch=2)  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    blocks = len(model.denoiser.transformer_blocks) + len(model.denoiser.single_transformer_blocks)
    assert probe.calls == 2 * blocks
    assert max(probe.leaks) < 1e-3, max(probe.leaks)
    probe.stop()
    # Against the same regions both repeating the global prompt, only the right region's
    # prompt differs: the change lands on the right.
    same = (regions[0], RegionSpec(regions[1].mask, regions[0].prompt))
    change = np.abs(ours.astype(int) - flow.run_ok(shared_engine, req.replace(regions=same)).astype(int))
    assert change[:, SIDE // 2 :].mean() > 1.5 * change[:, : SIDE // 2].mean()


def test_regions_cost_one_pass(shared_engine: Any, flux: Path) -> None:
    """Regions add tokens, not transformer calls."""
    model = shared_engine.cache.get(ModelRef(str(flux)))
    req = request(flux, width=SIDE, height=SIDE, steps=3, cfg=3.5, regions=flow.left_right_regions(SIDE, SIDE))
    assert flow.count_denoiser_calls(model, lambda: flow.run_ok(shared_engine, req)) == 3


def test_weighted_prompt_changes_the_t5_tokens(shared_engine: Any, flux: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(flux)))
    family, pipe, cpu = model.family, model.pipe, torch.device("cpu")
    plain, _ = family.encode_prompts(pipe, ["a red cat"], cpu)
    same, _ = family.encode_prompts(pipe, ["a (red:1.0) cat"], cpu)
    heavy, pooled = family.encode_prompts(pipe, ["a (red:1.5) cat"], cpu)
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, heavy)
    assert plain.shape == heavy.shape == (1, 512, plain.shape[-1]) and pooled is not None


def test_kohya_flux_lora_with_fused_qkv_merges_and_unmerges(shared_engine: Any, flux: Path, tmp_path: Path) -> None:
    """A kohya-format FLUX LoRA (Black Forest Labs module names, fused img qkv) lands on
    the diffusers modules: to_q/to_k/to_v each get ``alpha/rank · up_part @ down``; the
    picture changes, and without the LoRA it is byte for byte the one before."""
    from safetensors.torch import save_file
    from sfumato.inference.request import LoraSpec

    model = shared_engine.cache.get(ModelRef(str(flux)))
    block = model.denoiser.transformer_blocks[0].attn
    inner, rank, alpha = block.to_q.weight.shape[0], 4, 2.0
    width = block.to_q.weight.shape[1]
    g = torch.Generator().manual_seed(0)
    down = torch.randn(rank, width, generator=g) * 0.5
    up = torch.randn(3 * inner, rank, generator=g) * 0.5
    path = tmp_path / "flux_kohya.safetensors"
    save_file({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": down,
               "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": up,
               "lora_unet_double_blocks_0_img_attn_qkv.alpha": torch.tensor(alpha)}, str(path))  # fmt: skip
    before = {name: getattr(block, name).weight.detach().clone() for name in ("to_q", "to_k", "to_v")}
    req = request(flux, width=SIDE, height=SIDE, steps=3, cfg=3.5, seed=11)

    def merged() -> None:
        for i, name in enumerate(("to_q", "to_k", "to_v")):
            expected = before[name] + 0.8 * (alpha / rank) * (up[i * inner : (i + 1) * inner] @ down)
            torch.testing.assert_close(getattr(block, name).weight, expected, rtol=1e-5, atol=1e-5)

    flow.check_lora_acts_and_comes_off(shared_engine, req, LoraSpec(str(path), 0.8), min_change=0.2, merged=merged)


def test_fill_is_chosen_and_fed_as_flux_fill_pipeline_feeds_it(shared_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FLUX Fill folder is an inpainting model: its extra tokens (masked picture, 8×8
    mask per latent pixel) equal FluxFillPipeline's, and an inpaint runs through it.
    (The pixels outside the mask are the planner's to keep: test_engine_modes, placement.)"""
    from diffusers.pipelines.flux import pipeline_flux_fill

    flow.latents_by_mode(monkeypatch, pipeline_flux_fill)
    fill = tiny_flow_model("flux-fill")
    model = shared_engine.cache.get(ModelRef(str(fill)))
    assert model.family.name == "flux" and model.is_inpaint_model
    init = smooth_image(SIDE, SIDE)
    mask = box_mask(SIDE, SIDE, 16, 16, 48, 48)
    hard = (mask >= 0.5).astype(np.float32)
    masked = np.where(hard[..., None] > 0, np.uint8(128), init).astype(np.uint8)
    ours = model.family.inpaint_model_input(model.pipe, hard, masked, (SIDE // 8, SIDE // 8), torch.device("cpu"),
                                            torch.float32)  # fmt: skip
    pipe = model.pipe
    image = pipe.image_processor.preprocess(Image.fromarray(init), height=SIDE, width=SIDE)
    mask_image = pipe.mask_processor.preprocess(Image.fromarray((mask * 255).astype(np.uint8)), height=SIDE, width=SIDE)
    mask_tokens, masked_tokens = pipe.prepare_mask_latents(mask_image, image * (1 - mask_image), 1, 16, 1, SIDE, SIDE,
                                                           torch.float32, torch.device("cpu"), None)  # fmt: skip
    torch.testing.assert_close(ours, torch.cat([masked_tokens, mask_tokens], dim=-1), rtol=1e-5, atol=1e-5)
    req = request(fill, width=SIDE, height=SIDE, steps=3, cfg=3.5, seed=6, init=InitImage(init, 1.0),
                  inpaint=InpaintSpec(mask))  # fmt: skip
    result = flow.run_ok(shared_engine, req)
    inside = mask == 1
    assert np.abs(result[inside].astype(int) - init[inside].astype(int)).mean() > 5


def test_union_controlnet_takes_the_layer_kinds_control_type(
    shared_engine: Any, flux: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FLUX union ControlNet (``num_mode`` set, as InstantX's and Shakker-Labs' are) gets
    the control type of the layer's kind (depth → 2) and equals FluxControlNetPipeline
    given that ``control_mode``; a kind the union lacks is refused by name."""
    from diffusers import FluxControlNetModel, FluxControlNetPipeline
    from diffusers.pipelines.flux import pipeline_flux_controlnet
    from tinyflow import _FLUX, _Seeded, _wake

    flow.latents_by_mode(monkeypatch, pipeline_flux_controlnet)
    with _Seeded(31):
        net = _wake(FluxControlNetModel(patch_size=1, in_channels=64, guidance_embeds=True, num_mode=10, **_FLUX))
    net.save_pretrained(str(tmp_path / "union"), safe_serialization=True)
    model = shared_engine.cache.get(ModelRef(str(flux)))
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    control[:, : SIDE // 2] = 200
    spec = ControlSpec(kind=ControlKind.DEPTH, image=control, strength=0.9, model=ModelRef(str(tmp_path / "union")))
    req = request(flux, width=SIDE, height=SIDE, steps=3, cfg=3.5, seed=12, controls=(spec,))
    ours = flow.run_ok(shared_engine, req)
    loaded = FluxControlNetModel.from_pretrained(str(tmp_path / "union"), local_files_only=True)
    pipe = FluxControlNetPipeline(**model.pipe.components, controlnet=loaded)
    kwargs = dict(prompt=req.prompt, control_image=Image.fromarray(control), controlnet_conditioning_scale=0.9,
                  num_inference_steps=3, guidance_scale=3.5, height=SIDE, width=SIDE, output_type="np")  # fmt: skip
    theirs = pipe(**kwargs, control_mode=2, generator=torch.Generator("cpu").manual_seed(12)).images[0]
    flow.assert_close_u8(ours, theirs)
    # The tiny net's control type moves few pixels, so the type the engine passes is read too.
    engine_net = shared_engine.cache.controlnet(spec.model, spec.kind, model)
    modes: list[Any] = []
    real_forward = engine_net.forward
    monkeypatch.setattr(engine_net, "forward", lambda *a, **kw: (modes.append(kw.get("controlnet_mode")), real_forward(*a, **kw))[1])
    flow.run_ok(shared_engine, req)
    assert modes and all(m is not None and m.flatten().tolist() == [2] for m in modes)
    segmentation = ControlSpec(kind=ControlKind.SEGMENTATION, image=control, model=ModelRef(str(tmp_path / "union")))
    result = shared_engine.run(req.replace(controls=(segmentation,)), Recorder())
    assert result.error is not None and "no segmentation control type" in str(result.error)


def test_another_familys_controlnet_is_refused_by_name(shared_engine: Any, flux: Path) -> None:
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    spec = ControlSpec(kind=ControlKind.CANNY, image=control, model=ModelRef(str(tiny_flow_model("controlnet-sd3"))))
    result = shared_engine.run(request(flux, width=SIDE, height=SIDE, steps=2, controls=(spec,)), Recorder())
    assert result.error is not None
    # Read from its folder: "a SD3ControlNetModel, for another model family"; already loaded
    # for an SD 3.5 model (another test, the same engine): its width does not fit.
    assert "for another model family" in str(result.error) and "Choose a FLUX.1 ControlNet" in str(result.error)


def test_sizes_off_the_token_grid_are_refused_by_name(shared_engine: Any, flux: Path) -> None:
    result = shared_engine.run(request(flux, width=72, height=SIDE, steps=2), Recorder())
    assert result.error is not None and "multiples of 16" in str(result.error)


def test_regions_cut_every_prompts_padding_alike(shared_engine: Any, flux: Path) -> None:
    """With regions every prompt is cut to the longest one's T5 tokens and a pad, rounded
    up to 64;
    without, the prompt keeps diffusers' 512 tokens."""
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    model = shared_engine.cache.get(ModelRef(str(flux)))
    cpu = torch.device("cpu")
    alone = condition_text(model, [PromptPair("a red cat")], guided=False, batch=1, device=cpu, dtype=torch.float32)
    assert alone.tokens.shape[1] == 512
    pairs = [PromptPair("a red cat"), PromptPair("a blue dog"), PromptPair("green forest painting of the house")]
    text = condition_text(model, pairs, guided=False, batch=1, device=cpu, dtype=torch.float32)
    longest = max(len(model.pipe.tokenizer_2(p.positive)["input_ids"]) for p in pairs)
    each = -(-(longest + 1) // 64) * 64
    assert text.region_spans == ((each, 2 * each), (2 * each, 3 * each)) and text.tokens.shape[1] == 3 * each
    torch.testing.assert_close(text.tokens[:, :each], alone.tokens[:, :each])  # the same words, cut

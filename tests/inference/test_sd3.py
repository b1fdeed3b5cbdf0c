"""SD 3 / 3.5 through the engine's own loop equals diffusers' SD3 pipelines, mode by mode.

A tiny random SD 3.5 folder (``tinyflow``: CLIP-L, CLIP-G, T5, two joint blocks, the
first with 3.5 Medium's second image-only attention) and its ControlNet. Each test runs the
engine and the matching diffusers pipeline for the same seed at 64×64 and compares the
uint8 pictures.

diffusers' img2img/inpaint pipelines *sample* the VAE's latent distribution (drawing from
the seed's generator before the noise), and the ControlNet pipeline samples the control
image's (from the global generator); the engine takes the mode, so a reference run patches
those draws to the mode — the one place the two are meant to differ.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import flowtests as flow
import numpy as np
import pytest
import torch
from enginehelpers import request, smooth_image
from PIL import Image
from sfumato.inference.request import ControlSpec, InitImage, ModelRef, RegionSpec
from sfumato.vocabulary.kinds import ControlKind
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def sd3() -> Path:
    return tiny_flow_model("sd3")


@pytest.mark.parametrize(("cfg", "negative"), [(1.0, ""), (4.5, "green sky")])
def test_txt2img_equals_sd3_pipeline(shared_engine: Any, sd3: Path, cfg: float, negative: str) -> None:
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    assert model.family.name == "sd3"
    req = request(sd3, width=SIDE, height=SIDE, steps=4, cfg=cfg, seed=42, prompt="a red cat on a mat",
                  negative=negative)  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt=req.prompt, negative_prompt=negative, num_inference_steps=4, guidance_scale=cfg,
                        height=SIDE, width=SIDE, generator=flow.cpu_generator(42), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_img2img_equals_sd3_img2img_pipeline(shared_engine: Any, sd3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import StableDiffusion3Img2ImgPipeline
    from diffusers.pipelines.stable_diffusion_3 import pipeline_stable_diffusion_3_img2img

    flow.latents_by_mode(monkeypatch, pipeline_stable_diffusion_3_img2img)
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    init = smooth_image(SIDE, SIDE)
    req = request(sd3, width=SIDE, height=SIDE, steps=8, cfg=3.0, seed=3, init=InitImage(init, 0.5))
    ours = flow.run_ok(shared_engine, req)
    pipe: Any = StableDiffusion3Img2ImgPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init), strength=0.5, num_inference_steps=8,
                  guidance_scale=3.0, height=SIDE, width=SIDE, generator=flow.cpu_generator(3),
                  output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_inpaint_equals_sd3_inpaint_pipeline(shared_engine: Any, sd3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import StableDiffusion3InpaintPipeline
    from diffusers.pipelines.stable_diffusion_3 import pipeline_stable_diffusion_3_inpaint

    flow.latents_by_mode(monkeypatch, pipeline_stable_diffusion_3_inpaint)
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    init, mask, req = flow.centre_inpaint(sd3, SIDE, steps=4, cfg=3.0, seed=5)
    ours = flow.run_ok(shared_engine, req)
    pipe: Any = StableDiffusion3InpaintPipeline(**model.pipe.components)
    latents = pipe(prompt=req.prompt, **flow.pipeline_images(init, mask),
                   strength=1.0, num_inference_steps=4, guidance_scale=3.0, height=SIDE, width=SIDE,
                   generator=flow.cpu_generator(5), output_type="latent").images  # fmt: skip
    # diffusers' SD3 inpaint pipeline (0.42) decodes ``latents / scaling_factor`` and forgets
    # the VAE's ``shift_factor`` (its txt2img and img2img pipelines add it): decode its
    # latents as they do, or every inpainted picture would be off by the shift.
    vae = pipe.vae
    with torch.inference_mode():
        pixels = vae.decode(latents / vae.config.scaling_factor + vae.config.shift_factor).sample
    theirs = pipe.image_processor.postprocess(pixels, output_type="np")[0]
    flow.assert_close_u8(ours, theirs)


def _stability_controlnet(path: Path) -> Path:
    """A tiny net shaped like Stability's SD 3.5 Large ControlNets (blur, canny, depth): no
    text input, single blocks, the transformer's position embedding, the VAE shift kept
    and the real pooled embedding (InstantX's, ``controlnet-sd3``, zero it)."""
    from diffusers import SD3ControlNetModel

    if not (path / "config.json").is_file():
        torch.manual_seed(37)
        net: Any = SD3ControlNetModel(
            sample_size=8, num_layers=1, attention_head_dim=8, num_attention_heads=4, joint_attention_dim=None,
            pooled_projection_dim=48, use_pos_embed=False, force_zeros_for_pooled_projection=False,
        )  # fmt: skip
        with torch.no_grad():  # zero-initialised projections would add nothing
            for sub in net.modules():
                if isinstance(sub, torch.nn.Linear | torch.nn.Conv2d) and not sub.weight.any():
                    torch.nn.init.normal_(sub.weight, std=0.05)
        net.save_pretrained(str(path), safe_serialization=True)
    return path


@pytest.mark.parametrize("kind", ["instantx", "stability"])
def test_controlnet_equals_sd3_controlnet_pipeline(
    shared_engine: Any, sd3: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, kind: str
) -> None:
    from diffusers import SD3ControlNetModel, StableDiffusion3ControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mode())
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    if kind == "instantx":
        net_path = tiny_flow_model("controlnet-sd3")
    else:
        net_path = _stability_controlnet(tmp_path_factory.mktemp("sd35-controlnet"))
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    control[8:56, 24:40] = 255
    spec = ControlSpec(kind=ControlKind.CANNY, image=control, strength=0.8, model=ModelRef(str(net_path)))
    req = request(sd3, width=SIDE, height=SIDE, steps=4, cfg=3.0, seed=9, controls=(spec,))
    ours = flow.run_ok(shared_engine, req)
    without = flow.run_ok(shared_engine, req.replace(controls=()))
    assert np.abs(ours.astype(int) - without.astype(int)).mean() > 0.2  # the control acts
    net = SD3ControlNetModel.from_pretrained(str(net_path), local_files_only=True)
    pipe: Any = StableDiffusion3ControlNetPipeline(**model.pipe.components, controlnet=net)
    theirs = pipe(prompt=req.prompt, control_image=Image.fromarray(control), controlnet_conditioning_scale=0.8,
                  num_inference_steps=4, guidance_scale=3.0, height=SIDE, width=SIDE,
                  generator=flow.cpu_generator(9), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_other_controlnets_are_told_apart(shared_engine: Any, sd3: Path) -> None:
    """A FLUX ControlNet, an SD3 one of another width (3.5 Large's on Medium) or an SD3
    inpainting ControlNet is named as the wrong net instead of failing inside the model."""
    from diffusers import FluxControlNetModel, SD3ControlNetModel

    model = shared_engine.cache.get(ModelRef(str(sd3)))
    family, pipe = model.family, model.pipe
    own = SD3ControlNetModel.from_pretrained(str(tiny_flow_model("controlnet-sd3")), local_files_only=True)
    assert family.controlnet_mismatch(own, pipe) is None
    flux = FluxControlNetModel.from_pretrained(str(tiny_flow_model("controlnet-flux")), local_files_only=True)
    assert family.controlnet_mismatch(flux, pipe) == "not an SD3 ControlNet"
    config = {**dict(own.config), "num_attention_heads": 2}
    wider = SD3ControlNetModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    assert "width 16" in str(family.controlnet_mismatch(wider, pipe))
    config = {**dict(own.config), "extra_conditioning_channels": 1}
    inpainting = SD3ControlNetModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    assert "inpainting ControlNet" in str(family.controlnet_mismatch(inpainting, pipe))


def test_a_folder_without_t5_runs_as_the_pipeline_does(
    shared_engine: Any, sd3: Path, tmp_path: Path
) -> None:
    """T5 is optional in SD3: without ``text_encoder_3`` its 256 tokens are zeros."""
    from diffusers import StableDiffusion3Pipeline

    folder = tmp_path / "sd3-no-t5"
    shutil.copytree(sd3, folder)
    shutil.rmtree(folder / "text_encoder_3")
    shutil.rmtree(folder / "tokenizer_3")
    index = json.loads((folder / "model_index.json").read_text())
    index["text_encoder_3"] = index["tokenizer_3"] = [None, None]
    (folder / "model_index.json").write_text(json.dumps(index))
    model = shared_engine.cache.get(ModelRef(str(folder)))
    assert model.pipe.text_encoder_3 is None
    req = request(folder, width=SIDE, height=SIDE, steps=3, cfg=3.0, seed=11, prompt="a (blue:1.3) dog")
    ours = flow.run_ok(shared_engine, req)
    pipe: Any = StableDiffusion3Pipeline(**model.pipe.components)
    tokens, pooled = model.family.encode_prompts(pipe, ["a (blue:1.3) dog"], torch.device("cpu"))
    assert tokens.shape[1] == 77 + 256 and not tokens[:, 77:].any()
    empty, empty_pooled = model.family.encode_prompts(pipe, [""], torch.device("cpu"))
    theirs = pipe(prompt_embeds=tokens, pooled_prompt_embeds=pooled, negative_prompt_embeds=empty,
                  negative_pooled_prompt_embeds=empty_pooled, num_inference_steps=3, guidance_scale=3.0,
                  height=SIDE, width=SIDE, generator=flow.cpu_generator(11), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_weighted_prompts_weigh_clip_and_t5(shared_engine: Any, sd3: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    family, pipe, cpu = model.family, model.pipe, torch.device("cpu")
    plain, plain_pooled = family.encode_prompts(pipe, ["a red cat"], cpu)
    same, _ = family.encode_prompts(pipe, ["a (red:1.0) cat"], cpu)
    heavy, heavy_pooled = family.encode_prompts(pipe, ["a (red:1.5) cat"], cpu)
    assert torch.equal(plain, same)
    assert plain.shape == heavy.shape == (1, 77 + 256, 64)
    assert not torch.allclose(plain[:, :77], heavy[:, :77])  # CLIP-L and CLIP-G weighted
    assert not torch.allclose(plain[:, 77:], heavy[:, 77:])  # and T5
    assert not heavy[:, :77, 48:].any()  # CLIP's 16 + 32 channels, zero-padded to T5's 64
    torch.testing.assert_close(plain_pooled, heavy_pooled)  # the pooled embedding is not weighted


def test_previews_are_x0_and_end_at_the_result(sd3: Path, shared_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step previews the predicted clean latents (``x − σ·v``); the last prediction
    is exactly what gets decoded."""
    req = request(sd3, width=SIDE, height=SIDE, steps=4, cfg=3.0, seed=2)
    flow.check_previews_are_x0(shared_engine, req, monkeypatch, (16, SIDE // 8, SIDE // 8))


def test_sd3_refuses_other_samplers(shared_engine: Any, sd3: Path) -> None:
    flow.check_refuses_other_samplers(shared_engine, sd3, SIDE)


def test_a_peft_sd3_lora_merges_acts_and_comes_off(shared_engine: Any, sd3: Path, tmp_path: Path) -> None:
    """An SD3 LoRA in diffusers/PEFT form (``transformer.<module>.lora_A/B``, as SD3 LoRAs
    are published) merges into the transformer: ``W + w·B@A``; the picture changes, and
    without it the picture is the one before, byte for byte."""
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    req = request(sd3, width=SIDE, height=SIDE, steps=3, cfg=1.0, seed=2)
    flow.check_peft_lora_merges(shared_engine, req, model.denoiser.transformer_blocks[0].attn.to_q,
                                "transformer_blocks.0.attn.to_q", tmp_path / "sd3_lora.safetensors", seed=0, weight=0.7,
                                min_change=0.2)  # fmt: skip


def test_regions_keep_each_regions_attention_on_its_prompt(
    shared_engine: Any, sd3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At every joint attention call of every block (both guidance halves), an image token
    inside a region gives less than 1e-3 of its attention to another prompt's text tokens;
    the image-only second attention runs unmasked, and the blocks' processors are put back."""
    from sfumato.inference.denoisers import sd3 as sd3_denoiser
    from sfumato.inference.regions import latent_masks
    from sfumato.inference.text_conditioning import condition_text, prompt_pairs

    regions = flow.left_right_regions(SIDE, SIDE)
    masks = latent_masks([r.mask for r in regions], (SIDE // 8, SIDE // 8))
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    blocks = model.denoiser.transformer_blocks
    own = [block.attn.processor for block in blocks]
    req = request(sd3, width=SIDE, height=SIDE, steps=2, cfg=3.0, seed=4, regions=regions)
    spans = condition_text(model, prompt_pairs(req), guided=True, batch=1, device=torch.device("cpu"),
                           dtype=torch.float32).region_spans  # fmt: skip
    # the denoiser's own joint attention takes (B, H, L, D), image tokens first
    probe = flow.probe_region_leaks(monkeypatch, sd3_denoiser, "image_first_attention", spans=spans, masks=masks,
                                    image_tokens=masks.shape[1] * masks.shape[2] // 4, patch=2, image_first=True,
                                    tokens_first=False)  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    assert probe.calls == 2 * len(blocks)
    assert len(probe.leaks) == probe.calls * 2 and max(probe.leaks) < 1e-3, max(probe.leaks)
    assert [block.attn.processor for block in blocks] == own
    probe.stop()
    # Against the same regions both repeating the global prompt, only the right region's
    # prompt differs: the change lands more on the right (measured 1.31 right, 0.89 left:
    # image tokens see each other, and the longer prompt keeps more T5 tokens for all).
    regions = req.regions
    same = (regions[0], RegionSpec(regions[1].mask, regions[0].prompt, regions[0].negative))
    change = np.abs(ours.astype(int) - flow.run_ok(shared_engine, req.replace(regions=same)).astype(int))
    assert change[:, SIDE // 2 :].mean() > 1.25 * change[:, : SIDE // 2].mean()


def test_regions_cost_one_pass(shared_engine: Any, sd3: Path) -> None:
    """Regions add tokens, not transformer calls."""
    model = shared_engine.cache.get(ModelRef(str(sd3)))
    req = request(sd3, width=SIDE, height=SIDE, steps=3, cfg=3.0, regions=flow.left_right_regions(SIDE, SIDE))
    assert flow.count_denoiser_calls(model, lambda: flow.run_ok(shared_engine, req)) == 3


def test_sd3_is_a_supported_family_recognised_from_a_folder(sd3: Path) -> None:
    from sfumato.inference.families import family_for_diffusers
    from sfumato.planner.families import FAMILIES
    from sfumato.vocabulary.config import read_json
    from sfumato.vocabulary.families import SD3, SUPPORTED_FAMILIES

    assert SD3 in SUPPORTED_FAMILIES
    index = read_json(sd3 / "model_index.json") or {}
    transformer = read_json(sd3 / "transformer" / "config.json") or {}
    assert family_for_diffusers(index, transformer).name == SD3
    assert (FAMILIES[SD3].native, FAMILIES[SD3].min_side, FAMILIES[SD3].max_side) == (1024, 512, 1536)


def test_regions_cut_the_t5_padding_of_every_prompt(shared_engine: Any, sd3: Path) -> None:
    """With regions each prompt keeps the CLIP tokens the longest prompt takes and a pad
    (rounded up to 8) and the T5 tokens it needs (rounded up to 64); alone, the
    pipeline's 77 + 256."""
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    model = shared_engine.cache.get(ModelRef(str(sd3)))
    cpu = torch.device("cpu")
    alone = condition_text(model, [PromptPair("a cat")], guided=False, batch=1, device=cpu, dtype=torch.float32)
    assert alone.tokens.shape[1] == 77 + 256
    text = condition_text(model, [PromptPair("a cat"), PromptPair("a dog")], guided=False, batch=1, device=cpu,
                          dtype=torch.float32)  # fmt: skip
    clip = len(model.pipe.tokenizer("a cat")["input_ids"])  # start, the words, end
    kept = -(-(clip + 1) // 8) * 8
    each = kept + 64
    assert text.tokens.shape[1] == 2 * each and text.region_spans == ((each, 2 * each),)
    torch.testing.assert_close(text.tokens[:, :kept], alone.tokens[:, :kept])
    torch.testing.assert_close(text.tokens[:, kept:each], alone.tokens[:, 77 : 77 + 64])

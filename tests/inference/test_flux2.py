"""FLUX.2 Klein through the engine's own loop equals diffusers' Klein pipelines, mode by mode.

Tiny random Klein folders (``tinyflow``): the distilled Klein (one pass, the scale
ignored) and Klein Base (true CFG above 1). Each test runs the engine and the matching
diffusers pipeline for the same seed at 64×64 and compares the uint8 pictures.

diffusers has no Klein img2img pipeline: the engine's img2img is checked against
``Flux2KleinPipeline`` handed the same noised init latents and the tail of the same
schedule (its ``latents`` and ``sigmas``), with the init encoded by diffusers' own
``_encode_vae_image``. Inpainting has ``Flux2KleinInpaintPipeline`` (which shows the model
the whole init picture as a reference image; the engine does too).
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
from sfumato.inference.request import ControlSpec, InitImage, InpaintSpec, ModelRef
from sfumato.vocabulary.kinds import ControlKind
from tinyflow import tiny_flow_model

SIDE = 64
TOKENS = SIDE // 16  # latent pixels (one token each) along a side


@pytest.fixture(scope="module")
def klein() -> Path:
    return tiny_flow_model("flux2-klein")


@pytest.fixture(scope="module")
def klein_base(klein: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Klein Base: the same weights, ``is_distilled`` false (a copy costs less than a build)."""
    import json
    import shutil

    base = tmp_path_factory.mktemp("klein") / "base"
    shutil.copytree(klein, base)
    index = json.loads((base / "model_index.json").read_text())
    index["is_distilled"] = False
    (base / "model_index.json").write_text(json.dumps(index))
    return base


_EMBEDS: dict[tuple[int, str], torch.Tensor] = {}


def _embeds(pipe: Any, prompt: str) -> torch.Tensor:
    """The pipeline's own ``encode_prompt`` of ``prompt``, once per text encoder (the tiny
    Qwen3's 28 layers are most of this file's time)."""
    key = (id(pipe.text_encoder), prompt)
    if key not in _EMBEDS:
        _EMBEDS[key] = pipe.encode_prompt(prompt=prompt, device=torch.device("cpu"))[0]
    return _EMBEDS[key]


@pytest.mark.parametrize(("cfg", "width"), [(1.0, SIDE), (4.0, 96)])
def test_distilled_txt2img_equals_klein_pipeline(shared_engine: Any, klein: Path, cfg: float, width: int) -> None:
    """The distilled Klein ignores the scale (one pass) in both; a wide picture keeps rows
    and columns apart."""
    model = shared_engine.cache.get(ModelRef(str(klein)))
    assert model.family.name == "flux2"
    req = request(klein, width=width, height=SIDE, steps=4, cfg=cfg, seed=42, prompt="a red cat on a mat")
    ours = flow.run_ok(shared_engine, req)
    assert ours.shape == (SIDE, width, 3)
    theirs = model.pipe(prompt=req.prompt, num_inference_steps=4, guidance_scale=cfg, height=SIDE, width=width,
                        generator=torch.Generator("cpu").manual_seed(42), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_base_txt2img_equals_klein_pipeline(shared_engine: Any, klein_base: Path, cfg: float) -> None:
    """Klein Base: true CFG against the empty prompt above a scale of 1, as diffusers does."""
    model = shared_engine.cache.get(ModelRef(str(klein_base)))
    req = request(klein_base, width=SIDE, height=SIDE, steps=3, cfg=cfg, seed=7)
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt_embeds=_embeds(model.pipe, req.prompt), negative_prompt_embeds=_embeds(model.pipe, ""),
                        num_inference_steps=3, guidance_scale=cfg, height=SIDE, width=SIDE,
                        generator=torch.Generator("cpu").manual_seed(7), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)
    if cfg > 1.0:
        unguided = flow.run_ok(shared_engine, req.replace(cfg=1.0))
        assert np.abs(ours.astype(int) - unguided.astype(int)).mean() > 0.5  # guidance acts


def test_img2img_equals_klein_pipeline_from_noised_init(shared_engine: Any, klein: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(klein)))
    pipe = model.pipe
    init = smooth_image(SIDE, SIDE)
    steps, strength, seed = 8, 0.5, 3
    req = request(klein, width=SIDE, height=SIDE, steps=steps, cfg=1.0, seed=seed, init=InitImage(init, strength))
    ours = flow.run_ok(shared_engine, req)
    # diffusers' side: its own encoding of the init, the same noise, the schedule's tail.
    start = steps - int(steps * strength)
    sigmas = list(np.linspace(1.0, 1.0 / steps, steps)[start:])
    pixels = pipe.image_processor.preprocess(Image.fromarray(init), height=SIDE, width=SIDE)
    with torch.no_grad():
        x0 = pipe._encode_vae_image(pixels, generator=None)
    noise = torch.randn((1, 128, TOKENS, TOKENS), generator=torch.Generator("cpu").manual_seed(seed))
    probe = type(pipe.scheduler).from_config(pipe.scheduler.config)
    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

    probe.set_timesteps(sigmas=sigmas, mu=compute_empirical_mu(TOKENS * TOKENS, steps))
    s = probe.sigmas[0]
    theirs = pipe(prompt_embeds=_embeds(pipe, req.prompt), latents=(1.0 - s) * x0 + s * noise, sigmas=sigmas, num_inference_steps=steps,
                  height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(seed),
                  output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)
    assert np.abs(ours.astype(int) - flow.run_ok(shared_engine, req.replace(init=None)).astype(int)).mean() > 1.0


def test_img2img_strength_zero_returns_the_init(shared_engine: Any, klein: Path) -> None:
    init = smooth_image(SIDE, SIDE)
    out = flow.run_ok(shared_engine, request(klein, width=SIDE, height=SIDE, steps=4, init=InitImage(init, 0.0)))
    assert np.array_equal(out, init)


@pytest.mark.parametrize(("strength", "steps"), [(1.0, 4), (0.5, 8)])  # the engine runs at least 4 steps
def test_inpaint_equals_klein_inpaint_pipeline(shared_engine: Any, klein: Path, strength: float, steps: int) -> None:
    from diffusers import Flux2KleinInpaintPipeline

    model = shared_engine.cache.get(ModelRef(str(klein)))
    init, mask, req = flow.centre_inpaint(klein, SIDE, steps=steps, cfg=1.0, seed=5, strength=strength)
    ours = flow.run_ok(shared_engine, req)
    pipe = Flux2KleinInpaintPipeline(**model.pipe.components, is_distilled=True)
    theirs = pipe(prompt_embeds=_embeds(pipe, req.prompt), **flow.pipeline_images(init, mask),
                  strength=strength, num_inference_steps=steps, height=SIDE, width=SIDE,
                  generator=torch.Generator("cpu").manual_seed(5), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_inpaint_keeps_the_known_latents(shared_engine: Any, klein: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the mask the final latents are the init's exactly; inside they change."""
    from enginehelpers import run_keeping_latents

    model = shared_engine.cache.get(ModelRef(str(klein)))
    init = smooth_image(SIDE, SIDE)
    mask = box_mask(SIDE, SIDE, 0, 0, 32, SIDE)
    req = request(klein, width=SIDE, height=SIDE, steps=3, seed=8, init=InitImage(init, 1.0), inpaint=InpaintSpec(mask))
    _, final, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    known = model.family.encode_images(model.pipe, [init], torch.device("cpu"))[0]
    assert torch.equal(final[0][:, :, TOKENS // 2 :], known[:, :, TOKENS // 2 :])
    assert (final[0][:, :, : TOKENS // 2] - known[:, :, : TOKENS // 2]).abs().mean() > 0.1


def test_previews_are_x0_and_end_at_the_result(
    shared_engine: Any, klein: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step previews the predicted clean latents (``x − σ·v``) of the 128 patchified
    channels; the last prediction is exactly what gets decoded."""
    req = request(klein, width=SIDE, height=SIDE, steps=4, seed=2)
    flow.check_previews_are_x0(shared_engine, req, monkeypatch, (128, TOKENS, TOKENS), (TOKENS, TOKENS, 3))


def test_refuses_other_samplers_and_controlnets(shared_engine: Any, klein: Path) -> None:
    flow.check_refuses_other_samplers(shared_engine, klein, SIDE)
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    spec = ControlSpec(kind=ControlKind.CANNY, image=control, model=ModelRef(str(klein)))
    result = shared_engine.run(request(klein, width=SIDE, height=SIDE, steps=2, controls=(spec,)), Recorder())
    assert result.error is not None and "controlnet" in str(result.error)


def test_sides_are_multiples_of_16(shared_engine: Any, klein: Path) -> None:
    """The planner sizes in 16 px (8 px of VAE, 2×2 patchified); the engine refuses others."""
    from sfumato.planner.families import FAMILIES

    assert FAMILIES["flux2"].multiple == 16
    result = shared_engine.run(request(klein, width=72, height=SIDE, steps=2), Recorder())
    assert result.error is not None and "multiples of 16" in str(result.error)


@pytest.mark.parametrize("inpaint", [False, True])
def test_regions_keep_each_regions_attention_on_its_prompt(
    shared_engine: Any, klein: Path, monkeypatch: pytest.MonkeyPatch, inpaint: bool
) -> None:
    """At every attention call of every block, an image token inside a region gives less
    than 1e-3 of its attention to another prompt's text tokens (also with inpainting's
    reference tokens after the image's)."""
    import diffusers.models.transformers.transformer_flux2 as flux2_module
    from sfumato.inference.regions import latent_masks
    from sfumato.inference.text_conditioning import condition_text, prompt_pairs

    regions = flow.left_right_regions(SIDE, SIDE)
    masks = latent_masks([r.mask for r in regions], (TOKENS, TOKENS))
    model = shared_engine.cache.get(ModelRef(str(klein)))
    req = request(klein, width=SIDE, height=SIDE, steps=2, seed=4, regions=regions)
    if inpaint:
        req = req.replace(init=InitImage(smooth_image(SIDE, SIDE), 1.0), inpaint=InpaintSpec(np.ones((SIDE, SIDE), np.float32)))
    spans = condition_text(model, prompt_pairs(req), guided=False, batch=1, device=torch.device("cpu"),
                           dtype=torch.float32).region_spans  # fmt: skip
    probe = flow.probe_region_leaks(monkeypatch, flux2_module, "dispatch_attention_fn", spans=spans, masks=masks,
                                    image_tokens=TOKENS * TOKENS * (2 if inpaint else 1), patch=1)  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    blocks = len(model.denoiser.transformer_blocks) + len(model.denoiser.single_transformer_blocks)
    assert probe.calls == 2 * blocks
    assert max(probe.leaks) < 1e-3, max(probe.leaks)
    probe.stop()
    change = np.abs(ours.astype(int) - flow.run_ok(shared_engine, req.replace(regions=())).astype(int))
    left, right = change[:, : SIDE // 2].mean(), change[:, SIDE // 2 :].mean()
    assert right > 1.5 * left, (left, right)


def test_regions_cost_one_pass(shared_engine: Any, klein_base: Path) -> None:
    """Regions add tokens, not transformer calls (Klein Base with CFG: one doubled batch)."""
    model = shared_engine.cache.get(ModelRef(str(klein_base)))
    req = request(klein_base, width=SIDE, height=SIDE, steps=3, cfg=3.0, regions=flow.left_right_regions(SIDE, SIDE))
    assert flow.count_denoiser_calls(model, lambda: flow.run_ok(shared_engine, req)) == 3


def test_weighted_prompts_reweigh_the_qwen3_tokens(shared_engine: Any, klein: Path) -> None:
    from sfumato.inference.families.flux2 import weighted_qwen3

    model = shared_engine.cache.get(ModelRef(str(klein)))
    family, pipe, cpu = model.family, model.pipe, torch.device("cpu")
    plain, pooled = family.encode_prompts(pipe, ["a red cat"], cpu)
    same, _ = family.encode_prompts(pipe, ["a (red:1.0) cat"], cpu)
    heavy, _ = family.encode_prompts(pipe, ["a (red:1.5) cat"], cpu)
    assert pooled is None and plain.shape == (1, 512, 3 * pipe.text_encoder.config.hidden_size)
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, heavy)
    # The span-wise path tokenises and encodes an unweighted prompt as the pipeline does.
    with torch.inference_mode():
        spanwise = weighted_qwen3(pipe.tokenizer, pipe.text_encoder, "a red cat", cpu)
    torch.testing.assert_close(spanwise, plain)


def test_lora_merges_into_the_transformer_and_unmerges(shared_engine: Any, klein: Path, tmp_path: Path) -> None:
    """A diffusers-format FLUX.2 LoRA lands on its module (``W + weight · alpha/rank · B @ A``),
    changes the picture, and without it the picture is byte for byte the one before."""
    model = shared_engine.cache.get(ModelRef(str(klein)))
    req = request(klein, width=SIDE, height=SIDE, steps=3, seed=11)
    # one layer of a tiny model: a mean change of 0.078
    flow.check_peft_lora_merges(shared_engine, req, model.denoiser.transformer_blocks[0].attn.to_q,
                                "transformer_blocks.0.attn.to_q", tmp_path / "klein_lora.safetensors", seed=0, weight=0.8,
                                min_change=0.03)  # fmt: skip


def test_regions_cut_the_qwen3_padding_of_every_prompt(shared_engine: Any) -> None:
    """With regions each prompt keeps what the longest templated prompt takes and a pad,
    rounded up to 64, instead of 512 tokens each; alone, the pipeline's 512."""
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    folder = tiny_flow_model("flux2-klein")
    model = shared_engine.cache.get(ModelRef(str(folder)))
    cpu = torch.device("cpu")
    alone = condition_text(model, [PromptPair("a cat")], guided=False, batch=1, device=cpu, dtype=torch.float32)
    assert alone.tokens.shape[1] == 512
    text = condition_text(model, [PromptPair("a cat"), PromptPair("a dog")], guided=False, batch=1, device=cpu,
                          dtype=torch.float32)  # fmt: skip
    keep = text.region_spans[0][0]
    assert keep % 64 == 0 and keep < 512 and text.tokens.shape[1] == 2 * keep
    torch.testing.assert_close(text.tokens[:, :keep], alone.tokens[:, :keep])

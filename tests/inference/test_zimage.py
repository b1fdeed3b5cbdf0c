"""Z-Image through the engine's own loop equals diffusers' Z-Image pipelines, mode by mode.

A tiny random Z-Image folder (``tinyflow``: a 2-layer Qwen3, a 2-layer single-stream DiT
with one refiner layer each side) and its "Fun" ControlNet. Each test runs the engine and
the matching diffusers pipeline for the same seed at 64×64 and compares the uint8 pictures.
The engine's scale ``c`` is diffusers' ``guidance_scale`` ``c − 1`` (Turbo's 0 is our 1).

diffusers' img2img/inpaint pipelines *sample* the VAE's latent distribution; the engine
takes its mode, so a reference run patches ``retrieve_latents`` to the mode.
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
from sfumato.inference.request import ControlSpec, InitImage, ModelRef
from sfumato.vocabulary.kinds import ControlKind
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def zimage() -> Path:
    return tiny_flow_model("zimage")


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_txt2img_equals_zimage_pipeline(shared_engine: Any, zimage: Path, cfg: float) -> None:
    """cfg 1: one unguided pass (Turbo's ``guidance_scale=0``); 3: true CFG with a negative
    prompt whose caption is shorter than the prompt's (each keeps its own length)."""
    model = shared_engine.cache.get(ModelRef(str(zimage)))
    assert model.family.name == "zimage"
    req = request(zimage, width=SIDE, height=SIDE, steps=4, cfg=cfg, seed=42, prompt="a red cat on a mat in the light",
                  negative="blue")  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt=req.prompt, negative_prompt=req.negative, num_inference_steps=4, guidance_scale=cfg - 1,
                        height=SIDE, width=SIDE, generator=flow.cpu_generator(42), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_guidance_changes_the_picture(shared_engine: Any, zimage: Path) -> None:
    a = flow.run_ok(shared_engine, request(zimage, width=SIDE, height=SIDE, steps=3, cfg=1.0, seed=1, negative="green"))
    b = flow.run_ok(shared_engine, request(zimage, width=SIDE, height=SIDE, steps=3, cfg=4.0, seed=1, negative="green"))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_img2img_equals_zimage_img2img_pipeline(
    shared_engine: Any, zimage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import ZImageImg2ImgPipeline
    from diffusers.pipelines.z_image import pipeline_z_image_img2img

    flow.latents_by_mode(monkeypatch, pipeline_z_image_img2img)
    model = shared_engine.cache.get(ModelRef(str(zimage)))
    init = smooth_image(SIDE, SIDE)
    req = request(zimage, width=SIDE, height=SIDE, steps=8, cfg=2.0, seed=3, init=InitImage(init, 0.5))
    ours = flow.run_ok(shared_engine, req)
    pipe = ZImageImg2ImgPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init), strength=0.5, num_inference_steps=8,
                  guidance_scale=1.0, height=SIDE, width=SIDE, generator=flow.cpu_generator(3), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_inpaint_equals_zimage_inpaint_pipeline(
    shared_engine: Any, zimage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import ZImageInpaintPipeline
    from diffusers.pipelines.z_image import pipeline_z_image_inpaint

    flow.latents_by_mode(monkeypatch, pipeline_z_image_inpaint)
    model = shared_engine.cache.get(ModelRef(str(zimage)))
    init, mask, req = flow.centre_inpaint(zimage, SIDE, steps=4, cfg=1.0, seed=5)
    ours = flow.run_ok(shared_engine, req)
    pipe = ZImageInpaintPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(init, mask),
                  strength=1.0, num_inference_steps=4, guidance_scale=0.0, height=SIDE, width=SIDE,
                  generator=flow.cpu_generator(5), output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_controlnet_equals_zimage_controlnet_pipeline(
    shared_engine: Any, zimage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import ZImageControlNetModel, ZImageControlNetPipeline

    model = shared_engine.cache.get(ModelRef(str(zimage)))
    net_path = tiny_flow_model("controlnet-zimage")
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    control[8:56, 24:40] = 255
    spec = ControlSpec(kind=ControlKind.CANNY, image=control, strength=0.8, model=ModelRef(str(net_path)))
    req = request(zimage, width=SIDE, height=SIDE, steps=4, cfg=2.0, seed=9, controls=(spec,))
    ours = flow.run_ok(shared_engine, req)
    without = flow.run_ok(shared_engine, req.replace(controls=()))
    assert np.abs(ours.astype(int) - without.astype(int)).mean() > 0.2  # the control acts
    cached = shared_engine.cache.controlnet(spec.model, spec.kind, model)
    assert cached.noise_refiner is None and cached.x_pad_token is None  # the transformer's modules given back
    net = ZImageControlNetModel.from_pretrained(str(net_path), local_files_only=True)
    pipe = ZImageControlNetPipeline(**model.pipe.components, controlnet=net)
    theirs = pipe(prompt=req.prompt, control_image=Image.fromarray(control), controlnet_conditioning_scale=0.8,
                  num_inference_steps=4, guidance_scale=1.0, height=SIDE, width=SIDE, generator=flow.cpu_generator(9),
                  output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_previews_are_x0_and_end_at_the_result(
    shared_engine: Any, zimage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    req = request(zimage, width=SIDE, height=SIDE, steps=4, seed=2)
    flow.check_previews_are_x0(shared_engine, req, monkeypatch, (16, SIDE // 8, SIDE // 8))


def test_zimage_refuses_other_samplers(shared_engine: Any, zimage: Path) -> None:
    flow.check_refuses_other_samplers(shared_engine, zimage, SIDE)


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_regions_keep_each_regions_attention_on_its_prompt(
    shared_engine: Any, zimage: Path, monkeypatch: pytest.MonkeyPatch, cfg: float
) -> None:
    """At every attention call of every block, an image token inside a region gives less
    than 1e-3 of its attention to another prompt's tokens, and in the caption refiner no
    prompt's token reads another prompt's. The image-only refiner runs unbiased."""
    import diffusers.models.transformers.transformer_z_image as zmodule
    from sfumato.inference import joint_regions
    from sfumato.inference.denoisers import zimage as zimage_denoiser
    from sfumato.inference.regions import latent_masks
    from sfumato.inference.text_conditioning import condition_text, prompt_pairs

    model = shared_engine.cache.get(ModelRef(str(zimage)))
    req = request(zimage, width=SIDE, height=SIDE, steps=2, cfg=cfg, seed=4, regions=flow.left_right_regions(SIDE, SIDE),
                  negative="blue sky")  # fmt: skip
    text = condition_text(model, prompt_pairs(req), guided=cfg > 1, batch=1, device=torch.device("cpu"),
                          dtype=torch.float32)  # fmt: skip
    # each prompt padded to whole 32-token blocks of its own
    rows = [[len(p) + (-len(p)) % 32 for p in prompts] for prompts in text.prompt_tokens()]
    masks = latent_masks([r.mask for r in req.regions], (SIDE // 8, SIDE // 8))
    n = (SIDE // 16) ** 2
    nx = n + (-n) % 32
    caption_size = max(sum(r) for r in rows)
    leaks: list[float] = []
    kinds = {"image": 0, "caption": 0, "joint": 0}
    real = zmodule.dispatch_attention_fn
    real_split = zimage_denoiser.image_first_attention

    def measuring(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None, **kw: Any) -> Any:
        """The stock processor's attention (B, L, H, D): the refiners'."""
        if attn_mask is None or attn_mask.dtype == torch.bool:
            assert query.shape[1] == nx, "only the image refiner runs without the region bias"
            kinds["image"] += 1
        else:
            measure(query.transpose(1, 2).float(), key.transpose(1, 2).float(), attn_mask)
        return real(query, key, value, attn_mask=attn_mask, **kw)

    def measuring_split(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any,
                        **kw: Any) -> Any:  # fmt: skip
        """The main layers' attention (B, H, L, D), the image block apart."""
        assert kw == {"image": nx}
        measure(query.float(), key.float(), attn_mask)
        return real_split(query, key, value, attn_mask, **kw)

    def measure(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor) -> None:
        length = q.shape[2]
        probs = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + attn_mask.float()).softmax(dim=-1)
        for i, lengths in enumerate(rows):
            text_len = sum(lengths)
            spans = [(sum(lengths[: r + 1]), sum(lengths[: r + 2])) for r in range(len(lengths) - 1)]
            layout = joint_regions.JointLayout(spans, text_len, image_first=True)
            if length == caption_size:  # the caption refiner: text only
                kinds["caption"] += 1
                owner = layout.owners()
                foreign = owner[:, None] != owner[None, :]
                leaks.append(float(probs[i][:, :text_len, :text_len][:, foreign].max()))
                continue
            assert length == nx + caption_size
            kinds["joint"] += 1
            keep = torch.cat([torch.arange(n), torch.arange(nx, nx + text_len)])
            p = probs[i : i + 1][:, :, keep][:, :, :, keep]
            leaks.extend(joint_regions.attention_shares(p, masks, layout, patch=2).tolist())

    monkeypatch.setattr(zmodule, "dispatch_attention_fn", measuring)
    monkeypatch.setattr(zimage_denoiser, "image_first_attention", measuring_split)
    ours = flow.run_ok(shared_engine, req)
    transformer = model.denoiser
    assert kinds["image"] == 2 * len(transformer.noise_refiner)
    assert kinds["caption"] == 2 * len(transformer.context_refiner) * len(rows)
    assert kinds["joint"] == 2 * len(transformer.layers) * len(rows)
    assert max(leaks) < 1e-3, max(leaks)
    monkeypatch.setattr(zmodule, "dispatch_attention_fn", real)
    monkeypatch.setattr(zimage_denoiser, "image_first_attention", real_split)
    assert all(type(b.attention.processor).__name__ == "ZSingleStreamAttnProcessor" for b in transformer.layers)
    change = np.abs(ours.astype(int) - flow.run_ok(shared_engine, req.replace(regions=())).astype(int))
    assert change[:, SIDE // 2 :].mean() > 1.5 * change[:, : SIDE // 2].mean()


def test_regions_cost_one_pass(shared_engine: Any, zimage: Path) -> None:
    """Regions add tokens, not transformer calls."""
    model = shared_engine.cache.get(ModelRef(str(zimage)))
    req = request(zimage, width=SIDE, height=SIDE, steps=3, cfg=3.0, regions=flow.left_right_regions(SIDE, SIDE))
    assert flow.count_denoiser_calls(model, lambda: flow.run_ok(shared_engine, req)) == 3


def test_regions_with_a_controlnet_run(shared_engine: Any, zimage: Path) -> None:
    """The ControlNet reads the global prompt alone; its hints are placed in the wider
    sequence the regions make."""
    net_path = tiny_flow_model("controlnet-zimage")
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    control[8:56, 24:40] = 255
    spec = ControlSpec(kind=ControlKind.CANNY, image=control, strength=0.8, model=ModelRef(str(net_path)))
    req = request(zimage, width=SIDE, height=SIDE, steps=2, cfg=3.0, seed=6, regions=flow.left_right_regions(SIDE, SIDE))
    with_control = flow.run_ok(shared_engine, req.replace(controls=(spec,)))
    assert np.abs(with_control.astype(int) - flow.run_ok(shared_engine, req).astype(int)).mean() > 0.2


def test_captions_keep_their_own_length(shared_engine: Any, zimage: Path) -> None:
    """Each caption is the pipeline's (layer −2, no padding rows); a shorter negative is
    padded with zero vectors its token mask marks, and the denoiser's captions leave them
    out: each prompt at the pipeline's own length."""
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    model = shared_engine.cache.get(ModelRef(str(zimage)))
    family, pipe, cpu = model.family, model.pipe, torch.device("cpu")
    assert family.masked_padding
    tokens, pooled = family.encode_prompts(pipe, ["a red cat"], cpu)
    theirs = pipe._encode_prompt(["a red cat"], device=cpu)[0]
    assert pooled is None and tokens.shape == (1, len(theirs), theirs.shape[-1])
    assert torch.equal(tokens[0], theirs)
    long = "a red cat on a mat in a sunlit kitchen"
    text = condition_text(model, [PromptPair(long, "a red cat")], guided=True, batch=1, device=cpu,
                          dtype=torch.float32)  # fmt: skip
    longer = pipe._encode_prompt([long], device=cpu)[0]
    assert text.token_mask is not None and text.tokens.shape[1] == len(longer) > len(theirs)
    assert int(text.token_mask[0].sum()) == len(theirs) and bool(text.token_mask[1].all())
    (negative,), (positive,) = text.prompt_tokens()  # [uncond, cond], the global prompt alone
    torch.testing.assert_close(negative, theirs.float())
    torch.testing.assert_close(positive, longer.float())
    assert [len(c) for c in text.control_prompt_tokens()] == [len(theirs), len(longer)]


def test_a_zero_weight_keeps_its_token(shared_engine: Any, zimage: Path) -> None:
    """A weight of 0 makes a token's row all zeros: the caption still holds it (the mask,
    not the values, says what is padding)."""
    from sfumato.inference.text_conditioning import PromptPair, condition_text

    model = shared_engine.cache.get(ModelRef(str(zimage)))
    cpu = torch.device("cpu")
    plain, _ = model.family.encode_prompts(model.pipe, ["a red cat"], cpu)
    text = condition_text(model, [PromptPair("a (red:0) cat")], guided=False, batch=1, device=cpu,
                          dtype=torch.float32)  # fmt: skip
    assert int((text.tokens[0].abs().amax(dim=-1) == 0).sum()) >= 1  # "red"'s row(s)
    ((caption,),) = text.prompt_tokens()
    assert caption.shape == plain[0].shape


def test_weighted_prompt_changes_the_caption(shared_engine: Any, zimage: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(zimage)))
    family, pipe, cpu = model.family, model.pipe, torch.device("cpu")
    plain, _ = family.encode_prompts(pipe, ["a red cat"], cpu)
    same, _ = family.encode_prompts(pipe, ["a (red:1.0) cat"], cpu)
    heavy, _ = family.encode_prompts(pipe, ["a (red:1.5) cat"], cpu)
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, heavy)
    assert (heavy[0].abs().amax(-1) > 0).sum() == (plain[0].abs().amax(-1) > 0).sum()


def test_a_flux_controlnet_is_refused(shared_engine: Any, zimage: Path) -> None:
    """A FLUX ControlNet folder does not even build as a Z-Image net (the engine refuses the
    run); loaded as what it is, the family names the mismatch."""
    from diffusers import FluxControlNetModel

    net_path = tiny_flow_model("controlnet-flux")
    spec = ControlSpec(kind=ControlKind.CANNY, image=np.zeros((SIDE, SIDE, 3), np.uint8), model=ModelRef(str(net_path)))
    result = shared_engine.run(request(zimage, width=SIDE, height=SIDE, steps=2, controls=(spec,)), Recorder())
    assert result.error is not None and "ControlNet" in str(result.error)
    model = shared_engine.cache.get(ModelRef(str(zimage)))
    net = FluxControlNetModel.from_pretrained(str(net_path), local_files_only=True)
    assert "not a Z-Image ControlNet" in str(model.family.controlnet_mismatch(net, model.pipe))


def test_folders_are_told_apart() -> None:
    from sfumato.inference.families import family_for_diffusers
    from sfumato.inference.families.zimage import ZImageFamily

    family = ZImageFamily()
    transformer = {"_class_name": "ZImageTransformer2DModel"}
    for name in ("ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageControlNetPipeline"):
        index = {"_class_name": name, "transformer": ["diffusers", "ZImageTransformer2DModel"]}
        assert family_for_diffusers(index, transformer).name == "zimage"
    assert family.matches_diffusers({}, transformer)
    # Omni's transformer also reads SigLIP features: not this family's call.
    assert not family.matches_diffusers({"_class_name": "ZImageOmniPipeline"}, transformer)
    assert not family.matches_diffusers({}, {**transformer, "siglip_feat_dim": 1152})
    assert not family.matches_diffusers({"_class_name": "FluxPipeline"}, {"_class_name": "FluxTransformer2DModel"})


def test_a_lora_changes_the_picture_and_comes_off(shared_engine: Any, zimage: Path, tmp_path: Path) -> None:
    """A diffusers-named Z-Image LoRA merges into the transformer's attention and leaves
    it again: the next run without it gives the first picture back."""
    from safetensors.torch import save_file
    from sfumato.inference.request import LoraSpec

    model = shared_engine.cache.get(ModelRef(str(zimage)))
    g = flow.cpu_generator(0)
    state = {}
    for i in range(len(model.denoiser.layers)):
        for proj in ("to_q", "to_k", "to_v"):
            state[f"transformer.layers.{i}.attention.{proj}.lora_A.weight"] = torch.randn(4, 32, generator=g)
            state[f"transformer.layers.{i}.attention.{proj}.lora_B.weight"] = torch.randn(32, 4, generator=g) * 0.5
    save_file(state, str(tmp_path / "zimage_lora.safetensors"))
    req = request(zimage, width=SIDE, height=SIDE, steps=2, seed=8)
    lora = LoraSpec(str(tmp_path / "zimage_lora.safetensors"))
    flow.check_lora_acts_and_comes_off(shared_engine, req, lora, min_change=0.5)


def test_comfyui_files_render_as_the_folder(fresh_engine: Any, zimage: Path, tmp_path: Path) -> None:
    """Z-Image as an artist keeps it in ComfyUI's models folder (the transformer in the
    original layout under diffusion_models/, Qwen3 under text_encoders/, the VAE as ae):
    the engine renders the folder's picture."""
    from diffusers import ZImagePipeline
    from fabricated_checkpoints import COMFY, save, vae_to_ldm, zimage_to_original

    pipe = ZImagePipeline.from_pretrained(str(zimage), local_files_only=True)
    models = tmp_path / "ComfyUI" / "models"
    main = save(models / "diffusion_models" / "z_image_turbo.safetensors",
                {COMFY + k: v for k, v in zimage_to_original(pipe.transformer).items()})  # fmt: skip
    save(models / "text_encoders" / "qwen_3_4b.safetensors", {"model." + k: v for k, v in pipe.text_encoder.state_dict().items()})
    save(models / "vae" / "ae.safetensors", vae_to_ldm(pipe.vae))
    engine = fresh_engine()
    engine.cache.single_file_configs["zimage"] = zimage
    req = request(zimage, width=SIDE, height=SIDE, steps=2, seed=12)
    from_files = flow.run_ok(engine, req.replace(model=ModelRef(str(main))))
    assert engine.cache.get(ModelRef(str(main))).family.name == "zimage"
    assert np.abs(from_files.astype(int) - flow.run_ok(engine, req).astype(int)).max() <= 1


def test_a_union_2_controlnet_equals_the_pipeline(shared_engine: Any, zimage: Path, tmp_path: Path) -> None:
    """The "Union 2.x" layout: control blocks in the noise refiner too and 33 control
    channels (the inpainting ones zero, as ZImageControlNetPipeline sends them)."""
    from diffusers import ZImageControlNetModel, ZImageControlNetPipeline
    from tinyflow import _ZIMAGE, _Seeded, _wake

    with _Seeded(7):
        net = _wake(ZImageControlNetModel(control_layers_places=[0, 1], control_refiner_layers_places=[0],
                                          add_control_noise_refiner="control_noise_refiner", control_in_dim=33,
                                          **_ZIMAGE))  # fmt: skip
    net.save_pretrained(str(tmp_path / "union2"), safe_serialization=True)
    model = shared_engine.cache.get(ModelRef(str(zimage)))
    control = np.zeros((SIDE, SIDE, 3), np.uint8)
    control[20:44, 8:56] = 255
    spec = ControlSpec(kind=ControlKind.DEPTH, image=control, strength=0.7, model=ModelRef(str(tmp_path / "union2")))
    req = request(zimage, width=SIDE, height=SIDE, steps=3, cfg=1.0, seed=10, controls=(spec,))
    ours = flow.run_ok(shared_engine, req)
    assert np.abs(ours.astype(int) - flow.run_ok(shared_engine, req.replace(controls=())).astype(int)).mean() > 0.2
    net = ZImageControlNetModel.from_pretrained(str(tmp_path / "union2"), local_files_only=True)
    pipe = ZImageControlNetPipeline(**model.pipe.components, controlnet=net)
    theirs = pipe(prompt=req.prompt, control_image=Image.fromarray(control), controlnet_conditioning_scale=0.7,
                  num_inference_steps=3, guidance_scale=0.0, height=SIDE, width=SIDE, generator=flow.cpu_generator(10),
                  output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)

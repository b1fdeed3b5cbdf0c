"""Stable Diffusion 2.x as a family of its own: recognised, loaded (folder and single file,
offline), and run through every mode by the engine's own loop, unchanged.

The tiny SD 2.x model (:func:`tinymodels.build_tiny_sd2`) has the SD 2.x signature — a
1024-wide text encoder (one layer), a UNet with linear attention projections
cross-attending to 1024-wide tokens, a tokenizer padding with ``"!"``, a v-prediction
scheduler — around tiny layers; built in the test session, no network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import (
    Recorder,
    assert_known_latents_kept,
    box_mask,
    noise_image,
    request,
    run_keeping_latents,
    smooth_image,
)
from ldm_checkpoint import open_clip_to_ldm, unet_to_ldm, vae_to_ldm
from safetensors.torch import load_file, save_file
from sfumato.inference.catalog import list_models
from sfumato.inference.detect import detect_family, read_safetensors_header
from sfumato.inference.errors import CorruptModelError
from sfumato.inference.families import family_for_diffusers, get_family
from sfumato.inference.families.sd2 import single_file_kind
from sfumato.inference.request import (
    ControlKind,
    ControlSpec,
    InitImage,
    InpaintSpec,
    ModelRef,
    RegionSpec,
)
from sfumato.inference.single_file import family_config_dir, load_single_file
from sfumato.inference.steps import plan_steps
from sfumato.vocabulary.config import Config, read_json
from sfumato.vocabulary.families import SD2, SD15, SUPPORTED_FAMILIES
from tinymodels import tiny_model

SHIPPED = family_config_dir(SD2)


@pytest.fixture(scope="module")
def sd2() -> Path:
    return tiny_model("sd2")


@pytest.fixture(scope="module")
def sd2_inpaint() -> Path:
    return tiny_model("sd2-inpaint")


@pytest.fixture(scope="module")
def sd2_controlnet() -> Path:
    return tiny_model("controlnet-sd2")


def _run_ok(engine: Any, req: Any) -> tuple[np.ndarray, ...]:
    result = engine.run(req, Recorder())
    assert result.ok, result.error
    return result.images


# ----------------------------------------------------------------------------- identity


def test_sd2_is_a_supported_family_recognised_from_a_folder(sd2: Path, tiny_sd15: Path) -> None:
    from sfumato.planner.families import FAMILIES, family_for_model

    assert SD2 in SUPPORTED_FAMILIES
    index = read_json(sd2 / "model_index.json") or {}
    unet = read_json(sd2 / "unet" / "config.json") or {}
    assert unet["cross_attention_dim"] == 1024
    assert family_for_diffusers(index, unet).name == SD2
    sd15 = family_for_diffusers(read_json(tiny_sd15 / "model_index.json") or {}, read_json(tiny_sd15 / "unet" / "config.json") or {})
    assert sd15.name == SD15
    # The planner sizes it from the plugin: 768 native, 512..1024 a side; a folder of
    # another native size (the tiny one: 64) gets its own range.
    assert (FAMILIES[SD2].native, FAMILIES[SD2].min_side, FAMILIES[SD2].max_side) == (768, 512, 1024)
    assert family_for_model(str(sd2)).name == SD2
    assert family_for_model(str(sd2)).native == 64
    assert family_for_model(str(sd2 / "model.safetensors"), SD2) == FAMILIES[SD2]


def test_the_sd1_preview_factors_fit_the_sd2_vae() -> None:
    family = get_family(SD2)
    vae = read_json(SHIPPED / "vae" / "config.json") or {}
    assert family.preview_factors is not None and family.preview_factors_fit(vae)
    assert family.preview_factors == get_family(SD15).preview_factors


#: Parameter counts of stabilityai/stable-diffusion-2-1's components (public figures).
SD21_PARAMS = {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840}


@pytest.mark.parametrize("component", sorted(SD21_PARAMS))
def test_shipped_configs_build_the_official_architecture(component: str) -> None:
    import diffusers
    import transformers

    folder = SHIPPED / component
    if component == "text_encoder":
        config = transformers.CLIPTextConfig.from_pretrained(folder)
        assert (config.hidden_size, config.num_hidden_layers, config.hidden_act) == (1024, 23, "gelu")
        with torch.device("meta"):
            model = transformers.CLIPTextModel(config)
    else:
        data = json.loads((folder / "config.json").read_text())
        with torch.device("meta"):
            model = getattr(diffusers, data["_class_name"]).from_config(data)
    assert sum(p.numel() for p in model.parameters()) == SD21_PARAMS[component]
    scheduler = json.loads((SHIPPED / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction"
    unet = json.loads((SHIPPED / "unet" / "config.json").read_text())
    assert (unet["sample_size"], unet["cross_attention_dim"], unet["use_linear_projection"]) == (96, 1024, True)


#: Tensor names and shapes of the released v2-1_768-ema-pruned checkpoint (linear
#: ``proj_in``, 1024-wide cross-attention, OpenCLIP-H with 24 blocks and its projection).
REAL_LDM_SHAPES = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
    "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight": (1280, 1024),
    "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias": (320,),
    "model.diffusion_model.output_blocks.11.1.proj_out.weight": (320, 320),
    "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
    "cond_stage_model.model.token_embedding.weight": (49408, 1024),
    "cond_stage_model.model.positional_embedding": (77, 1024),
    "cond_stage_model.model.ln_final.weight": (1024,),
    "cond_stage_model.model.transformer.resblocks.22.attn.in_proj_weight": (3072, 1024),
    "cond_stage_model.model.transformer.resblocks.22.mlp.c_fc.weight": (4096, 1024),
}


def test_shipped_configs_match_the_released_checkpoint_layout() -> None:
    """On the meta device: shipped config → model → LDM names (the released shapes, plus
    the 24th block and the projection SD 2.x does not use) → diffusers' own conversion →
    exactly the model's tensors again."""
    import diffusers
    import transformers
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    unet_cfg = json.loads((SHIPPED / "unet" / "config.json").read_text())
    vae_cfg = json.loads((SHIPPED / "vae" / "config.json").read_text())
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(unet_cfg)
        vae = diffusers.AutoencoderKL.from_config(vae_cfg)
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig.from_pretrained(SHIPPED / "text_encoder"))
        ldm = unet_to_ldm(unet.state_dict(), unet_cfg) | vae_to_ldm(vae.state_dict(), vae_cfg)
        ldm |= open_clip_to_ldm(text.state_dict(), "cond_stage_model.model.")
        prefix = "cond_stage_model.model.transformer.resblocks."
        ldm |= {k.replace(prefix + "22.", prefix + "23."): torch.empty(v.shape) for k, v in ldm.items() if k.startswith(prefix + "22.")}
        ldm["cond_stage_model.model.text_projection"] = torch.empty(1024, 1024)
    for key, shape in REAL_LDM_SHAPES.items():
        assert tuple(ldm[key].shape) == shape, key
    assert detect_family(ldm) == SD2

    def same(converted: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
        got = {k.removeprefix("text_model.") if not hasattr(model, "text_model") else k: tuple(v.shape)
               for k, v in converted.items() if not k.endswith("position_ids")}  # fmt: skip
        assert got == expected

    same(convert_ldm_unet_checkpoint(ldm, unet_cfg), unet)
    same(convert_ldm_vae_checkpoint(ldm, vae_cfg), vae)
    same(convert_open_clip_checkpoint(text, ldm, prefix="cond_stage_model.model."), text)


# ----------------------------------------------------------------------------- modes


@pytest.mark.parametrize("negative", ["", "blurry, low quality"])
def test_txt2img_equals_the_diffusers_pipeline(shared_engine: Any, sd2: Path, negative: str) -> None:
    model = shared_engine.cache.get(ModelRef(str(sd2)))
    assert model.family.name == SD2
    assert model.pipe.scheduler.config.prediction_type == "v_prediction"
    assert model.pipe.tokenizer.pad_token == "!" and model.pipe.tokenizer.pad_token_id == 0
    side = model.native_side
    req = request(sd2, width=side, height=side, steps=4, cfg=5.0, seed=42, prompt="a red cat on a mat",
                  negative=negative)  # fmt: skip
    result = shared_engine.run(req, Recorder())
    assert result.ok, result.error
    expected = model.pipe(
        prompt=req.prompt,
        negative_prompt=negative or None,
        num_inference_steps=4,
        guidance_scale=5.0,
        height=side,
        width=side,
        generator=torch.Generator("cpu").manual_seed(42),
        output_type="np",
    ).images[0]
    diff = np.abs(result.images[0].astype(np.int16) - np.round(expected * 255.0).astype(np.int16))
    assert diff.max() <= 1, f"max difference {diff.max()}"


def test_v_prediction_is_what_runs(shared_engine: Any, sd2: Path, tmp_path: Path) -> None:
    """The same weights read as epsilon give another picture: the prediction type counts."""
    eps = tmp_path / "eps"
    shutil.copytree(sd2, eps)
    config_path = eps / "scheduler" / "scheduler_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "prediction_type": "epsilon"}))
    req = request(sd2, width=64, height=64, steps=3, seed=4)
    v_image = _run_ok(shared_engine, req)[0]
    eps_image = _run_ok(shared_engine, req.replace(model=ModelRef(str(eps))))[0]
    assert np.abs(v_image.astype(np.int16) - eps_image).mean() > 1.0


def test_img2img_depends_on_init_and_strength(shared_engine: Any, sd2: Path) -> None:
    w, h = 80, 64
    base = request(sd2, width=w, height=h, steps=6)
    txt = _run_ok(shared_engine, base)[0]
    init = smooth_image(w, h)
    rec = Recorder()
    result = shared_engine.run(base.replace(init=InitImage(init, 0.5)), rec)
    assert result.ok, result.error
    other = _run_ok(shared_engine, base.replace(init=InitImage(noise_image(w, h, seed=5), 0.5)))[0]
    stronger = _run_ok(shared_engine, base.replace(init=InitImage(init, 0.9)))[0]
    assert not np.array_equal(result.images[0], txt)
    assert not np.array_equal(result.images[0], other)
    assert not np.array_equal(result.images[0], stronger)
    assert len(rec.progress) == plan_steps(6, 0.5).effective


def test_inpaint_keeps_the_known_latents(shared_engine: Any, sd2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w, h = 96, 64
    init = smooth_image(w, h)
    mask = box_mask(w, h, 24, 16, 64, 48)
    req = request(sd2, width=w, height=h, init=InitImage(init, 1.0), inpaint=InpaintSpec(mask))
    _, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    assert_known_latents_kept(shared_engine, req, latents)


def test_nine_channel_inpaint_model(shared_engine: Any, sd2_inpaint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = shared_engine.cache.get(ModelRef(str(sd2_inpaint)))
    assert model.family.name == SD2 and model.unet.config.in_channels == 9
    w, h = 80, 64
    init = smooth_image(w, h)
    mask = box_mask(w, h, 20, 16, 50, 40)
    req = request(sd2_inpaint, width=w, height=h, init=InitImage(init, 1.0), inpaint=InpaintSpec(mask))
    images, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    assert_known_latents_kept(shared_engine, req, latents)
    assert not np.array_equal(images[0][mask > 0], init[mask > 0])


def test_regions_and_a_controlnet_condition_the_result(shared_engine: Any, sd2: Path, sd2_controlnet: Path) -> None:
    w, h = 64, 64
    plain = request(sd2, width=w, height=h, steps=3, seed=7)
    base = _run_ok(shared_engine, plain)[0]
    left, right = box_mask(w, h, 0, 0, w // 2, h), box_mask(w, h, w // 2, 0, w, h)
    regions = (RegionSpec(left, "a blue sky", "fog"), RegionSpec(right, "a green dog"))
    regional = _run_ok(shared_engine, plain.replace(regions=regions))[0]
    assert not np.array_equal(regional, base)
    sketch = np.zeros((h, w, 3), np.uint8)
    sketch[20:44, 30:34] = 255
    control = ControlSpec(ControlKind.SCRIBBLE, sketch, model=ModelRef(str(sd2_controlnet)))
    controlled = _run_ok(shared_engine, plain.replace(controls=(control,)))[0]
    assert not np.array_equal(controlled, base)
    moved = sketch.transpose(1, 0, 2).copy()
    other = _run_ok(shared_engine, plain.replace(controls=(ControlSpec(ControlKind.SCRIBBLE, moved, model=control.model),)))[0]
    assert not np.array_equal(other, controlled)
    # Everything at once: img2img + inpaint + regions + control.
    init = smooth_image(w, h)
    together = plain.replace(init=InitImage(init, 0.8), inpaint=InpaintSpec(box_mask(w, h, 16, 16, 48, 48)),
                             regions=regions, controls=(control,))  # fmt: skip
    _run_ok(shared_engine, together)


def test_sd2_embeddings_are_1024_wide(shared_engine: Any, sd2: Path, tmp_path: Path) -> None:
    """A textual-inversion file made for SD 2.x (1024-wide vectors) reaches the encoder; an
    SD 1.x one (768 wide) named explicitly is refused with the reason."""
    from sfumato.inference.embeddings import (
        EmbeddingLibrary,
        EmbeddingMismatchError,
        find_embeddings,
    )

    folder = tmp_path / "embeddings"
    folder.mkdir()
    vectors = torch.randn(2, 1024, generator=torch.Generator().manual_seed(1))
    save_file({"emb_params": vectors}, str(folder / "sd2emb.safetensors"))
    save_file({"emb_params": torch.randn(1, 768)}, str(folder / "sd1emb.safetensors"))
    library = EmbeddingLibrary(find_embeddings(dirs=[folder]))
    model = shared_engine.cache.get(ModelRef(str(sd2)))
    cpu = torch.device("cpu")
    used, pooled = model.family.encode_prompts(model.pipe, ["a sd2emb cat"], cpu, embeddings=library)
    as_text, _ = model.family.encode_prompts(model.pipe, ["a sd2emb cat"], cpu)
    assert pooled is None and used.shape == (1, 77, 1024)
    assert not torch.equal(used, as_text)
    with pytest.raises(EmbeddingMismatchError, match="768 wide"):
        model.family.encode_prompts(model.pipe, ["a embedding:sd1emb cat"], cpu, embeddings=library)


# ----------------------------------------------------------------------------- single files


def _ldm_sd2(folder: Path) -> dict[str, torch.Tensor]:
    """The tiny SD 2.x folder in the layout of the released SD 2.x checkpoints: OpenCLIP
    under ``cond_stage_model.model.`` with its projection, and one more transformer block
    than diffusers uses (the released files have 24 blocks; SD 2.x reads the 23rd's output)."""
    state = unet_to_ldm(load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors")),
                        json.loads((folder / "unet" / "config.json").read_text()))  # fmt: skip
    state.update(vae_to_ldm(load_file(str(folder / "vae" / "diffusion_pytorch_model.safetensors")),
                            json.loads((folder / "vae" / "config.json").read_text())))  # fmt: skip
    text = open_clip_to_ldm(load_file(str(folder / "text_encoder" / "model.safetensors")), "cond_stage_model.model.")
    layers = 1 + max(int(k.split(".")[4]) for k in text if ".resblocks." in k)
    prefix = "cond_stage_model.model.transformer.resblocks."
    for key in [k for k in text if k.startswith(prefix + "0.")]:
        text[key.replace(prefix + "0.", f"{prefix}{layers}.")] = torch.randn_like(text[key])
    width = text["cond_stage_model.model.ln_final.weight"].shape[0]
    text["cond_stage_model.model.text_projection"] = torch.randn(width, width)
    text["cond_stage_model.model.logit_scale"] = torch.tensor(4.6)
    state.update(text)
    return state


def _write(state: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})
    return path


def test_a_single_file_loads_strictly_with_the_same_weights_and_pixels(
    sd2: Path, tmp_path: Path, fresh_engine: Any
) -> None:
    path = _write(_ldm_sd2(sd2), tmp_path / "tiny-sd2.safetensors")
    assert detect_family(read_safetensors_header(path).shapes) == SD2
    pipe = load_single_file(path, config=sd2)
    from diffusers import DiffusionPipeline

    reference = DiffusionPipeline.from_pretrained(str(sd2), local_files_only=True)
    for component in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(pipe, component).state_dict(), getattr(reference, component).state_dict()
        assert ours.keys() == theirs.keys(), component
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
    assert pipe.scheduler.config.prediction_type == "v_prediction"  # the config's own
    assert pipe.tokenizer.pad_token_id == 0
    # Through the engine, the file gives the folder's picture.
    engine = fresh_engine(single_file_configs={SD2: sd2})
    req = request(sd2, width=64, height=64, steps=3, seed=9)
    from_folder = _run_ok(engine, req)[0]
    from_file = _run_ok(engine, req.replace(model=ModelRef(str(path))))[0]
    assert engine.cache.get(ModelRef(str(path))).family.name == SD2
    assert np.array_equal(from_file, from_folder)


@pytest.mark.parametrize("drop", ["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
                                  "cond_stage_model.model.ln_final.bias",
                                  "model.diffusion_model.input_blocks.1.1.proj_in.weight"])  # fmt: skip
def test_a_missing_tensor_is_an_error(sd2: Path, tmp_path: Path, drop: str) -> None:
    state = _ldm_sd2(sd2)
    del state[drop]
    with pytest.raises(CorruptModelError, match=r"lacks \d+ tensors"):
        load_single_file(_write(state, tmp_path / "partial.safetensors"), config=sd2)


def test_the_file_name_and_a_sidecar_yaml_choose_v_or_epsilon(sd2: Path, tmp_path: Path) -> None:
    state = _ldm_sd2(sd2)
    base = _write(state, tmp_path / "tiny-sd2-base.safetensors")
    assert load_single_file(base, config=sd2).scheduler.config.prediction_type == "epsilon"
    # A1111's sidecar yaml wins over the name.
    base.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n    linear_start: 0.00085\n')
    pipe = load_single_file(base, config=sd2)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.unet.config.sample_size == 8  # a config folder of its own keeps its size
    named = _write(state, tmp_path / "tiny-768-v-ema.safetensors")
    assert load_single_file(named, config=sd2).scheduler.config.prediction_type == "v_prediction"


@pytest.mark.parametrize(
    ("name", "inpaint", "expected"),
    [
        ("v2-1_768-ema-pruned.safetensors", False, ("v_prediction", 96)),
        ("768-v-ema.ckpt", False, ("v_prediction", 96)),
        ("v2-1_512-ema-pruned.safetensors", False, ("epsilon", 64)),
        ("sd21-base-finetune.safetensors", False, ("epsilon", 64)),
        ("512-inpainting-ema.safetensors", True, ("epsilon", 64)),
        ("my-sd2-inpaint-model.safetensors", True, ("epsilon", 64)),
        ("anything.safetensors", True, ("epsilon", 64)),
        ("anything.safetensors", False, (None, None)),  # the config's own: v at 768 shipped
    ],
)
def test_single_file_kind_rules(tmp_path: Path, name: str, inpaint: bool, expected: tuple[Any, Any]) -> None:
    kind = single_file_kind(tmp_path / name, inpaint=inpaint)
    assert (kind.prediction_type, kind.sample_size) == expected


def test_an_sd2_controlnet_file_loads_strictly(sd2_controlnet: Path, tmp_path: Path) -> None:
    from diffusers import ControlNetModel
    from ldm_checkpoint import write_ldm_controlnet
    from sfumato.inference.single_file import load_controlnet_file

    ldm = write_ldm_controlnet(sd2_controlnet, tmp_path / "control_sd21_scribble.safetensors")
    assert detect_family(read_safetensors_header(ldm).shapes) == SD2
    loaded = load_controlnet_file(ldm, config=sd2_controlnet).state_dict()
    reference = ControlNetModel.from_pretrained(str(sd2_controlnet), local_files_only=True).state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[k], reference[k]) for k in loaded)
    shipped = json.loads((SHIPPED / "controlnet" / "config.json").read_text())
    assert (shipped["cross_attention_dim"], shipped["use_linear_projection"]) == (1024, True)


@pytest.mark.parametrize(("channels", "label_emb", "words"), [(5, False, "depth"), (7, False, "upscaler"), (4, True, "unCLIP")])
def test_sd2_variants_that_need_other_inputs_are_refused(
    sd2: Path, tmp_path: Path, channels: int, label_emb: bool, words: str
) -> None:
    from sfumato.inference.errors import UnsupportedModeError

    state = _ldm_sd2(sd2)
    conv_in = "model.diffusion_model.input_blocks.0.0.weight"
    state[conv_in] = torch.zeros(state[conv_in].shape[0], channels, 3, 3)
    if label_emb:
        state["model.diffusion_model.label_emb.0.0.weight"] = torch.zeros(4, 4)
    with pytest.raises(UnsupportedModeError, match=words):
        load_single_file(_write(state, tmp_path / "variant.safetensors"), config=sd2)


def test_single_file_kind_reads_comfyuis_tell_tale_tensor(tmp_path: Path) -> None:
    """A name that says nothing: the spread of the last output block's first norm bias
    tells (ComfyUI's rule); the name and the yaml still come first."""
    key = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
    wide, narrow = {key: torch.randn(320, generator=torch.Generator().manual_seed(0)) * 0.3}, {key: torch.full((320,), 0.02)}
    path = tmp_path / "some-finetune.safetensors"
    assert (single_file_kind(path, state=wide).prediction_type, single_file_kind(path, state=wide).sample_size) == ("v_prediction", 96)
    assert (single_file_kind(path, state=narrow).prediction_type, single_file_kind(path, state=narrow).sample_size) == ("epsilon", 64)
    assert single_file_kind(path, state={}).prediction_type is None
    assert single_file_kind(tmp_path / "x-768-v.safetensors", state=narrow).prediction_type == "v_prediction"
    assert single_file_kind(path, inpaint=True, state=wide).prediction_type == "epsilon"


def test_single_file_kind_reads_the_sidecar_yaml(tmp_path: Path) -> None:
    path = tmp_path / "v2-1_768-ema-pruned.safetensors"
    path.with_suffix(".yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")  # v2-inference.yaml
    assert single_file_kind(path).prediction_type == "epsilon"
    path.with_suffix(".yaml").write_text("model:\n  params:\n    parameterization: 'v'  # 768\n")
    assert (single_file_kind(path).prediction_type, single_file_kind(path).sample_size) == ("v_prediction", 96)


def test_shipped_config_gives_768_v_and_the_bang_padding_tokenizer(sd2: Path, tmp_path: Path) -> None:
    """Without a config folder of its own, an SD 2.x file gets the shipped configs' sizes;
    to load the tiny weights, a copy of its configs stands in, without its tokenizer, as
    the shipped folder has none: the shipped CLIP vocabulary, padding with ``"!"``."""
    config = tmp_path / "config"
    for part in ("unet", "vae", "text_encoder", "scheduler"):
        shutil.copytree(sd2 / part, config / part)
    pipe = load_single_file(_write(_ldm_sd2(sd2), tmp_path / "v2-1_512.safetensors"), config=config)
    assert (pipe.tokenizer.pad_token, pipe.tokenizer.pad_token_id, len(pipe.tokenizer)) == ("!", 0, 49408)
    assert pipe.scheduler.config.prediction_type == "epsilon"


def test_catalog_lists_sd2_files_and_folders_as_supported(sd2: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    _write(_ldm_sd2(sd2), models / "v2-1_768.safetensors")
    shutil.copytree(sd2, models / "sd2-folder")
    entries = {e.label: e for e in list_models(config=Config(model_paths=(str(models),)))}
    assert entries["v2-1_768"].family == SD2 and entries["v2-1_768"].supported
    assert entries["sd2-folder"].family == SD2 and entries["sd2-folder"].supported


# ----------------------------------------------------------------------------- the command line


def test_sfumato_render_with_an_sd2_folder(sd2: Path, sd2_controlnet: Path, tmp_path: Path) -> None:
    from PIL import Image
    from plandocs import document, gradient, layer, rgba
    from sfumato.canvas.files.ora import load_ora, save_ora
    from sfumato.canvas.model.document import Recipe
    from sfumato.canvas.model.layers import ControlSettings, Role
    from sfumato.canvas.render.composite import flatten

    from sfumato.cli import main

    w, h = 96, 80
    mask = rgba(24, 30, alpha=255)
    scribble = rgba(h, w, alpha=0)
    scribble[20:60, 40:44] = (0, 0, 0, 255)
    doc = document(
        w, h,
        layer("sketch", scribble, role=Role.CONTROL, control=ControlSettings(ControlKind.SCRIBBLE)),
        layer("Mask", mask, role=Role.INPAINT_MASK, x=30, y=20),
        layer("sky", rgba(h // 2, w), role=Role.REGION, prompt="a blue sky"),
        layer("paint", gradient(h, w)),
    )  # fmt: skip
    doc.recipe = Recipe(prompt="a landscape", seed=3, steps=2, cfg=5.0, strength=0.9, sampler="euler")
    source, out = tmp_path / "in.ora", tmp_path / "out.png"
    save_ora(doc, source)
    status = main(["render", str(source), "-o", str(out), "--model", str(sd2),
                   "--controlnet", f"scribble={sd2_controlnet}", "-q"])  # fmt: skip
    assert status == 0
    before = flatten(load_ora(source))
    after = np.asarray(Image.open(out).convert("RGBA"))
    inside = np.zeros((h, w), bool)
    inside[20:44, 30:60] = True
    assert np.array_equal(after[~inside], before[~inside])
    assert not np.array_equal(after[inside], before[inside])

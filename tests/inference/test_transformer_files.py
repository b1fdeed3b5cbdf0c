"""Loading the transformer families from the files artists have: every layout, strictly,
offline; whole FLUX.1 models from a ComfyUI folder and from an fp8 all-in-one checkpoint;
GGUF. The checkpoints are fabricated here from tiny random diffusers models
(:mod:`fabricated_checkpoints`), and the loaded weights are compared with the source's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fabricated_checkpoints import (
    COMFY,
    chroma_to_bfl,
    flux2_to_bfl,
    flux_to_bfl,
    save,
    sd3_to_original,
    tiny_chroma,
    tiny_clip,
    tiny_flux,
    tiny_flux2,
    tiny_qwen3,
    tiny_qwenimage,
    tiny_sd3,
    tiny_t5,
    tiny_vae16,
    tiny_zimage,
    vae_to_ldm,
    write_flux_config_folder,
    write_t5_tokenizer,
    zimage_to_original,
)
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.inference.model_assembly import find_tokenizer, load_model_file, load_text_encoder
from sfumato.inference.model_parts import Encoder, VaeKind, identify_part
from sfumato.inference.transformer_files import load_transformer
from tinymodels import write_tiny_clip_tokenizer

FAMILIES = {
    "flux": (tiny_flux, flux_to_bfl),
    "chroma": (tiny_chroma, chroma_to_bfl),
    "sd3": (tiny_sd3, sd3_to_original),
    "flux2": (tiny_flux2, flux2_to_bfl),
    "zimage": (tiny_zimage, zimage_to_original),
    "qwenimage": (tiny_qwenimage, lambda m: m.state_dict()),  # ComfyUI keeps diffusers' names
}


def _config(folder: Path, model: Any, name: str = "transformer") -> Path:
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / "config.json").write_text(json.dumps(dict(model.config, _class_name=type(model).__name__)))
    return folder


def _assert_same_weights(expected: Any, loaded: Any) -> None:
    want, got = expected.state_dict(), loaded.state_dict()
    assert set(want) == set(got)
    for key, value in want.items():
        assert torch.equal(value, got[key].to(value.dtype)), key


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("layout", ["original", "comfyui", "diffusers"])
def test_transformer_loads_from_each_layout(tmp_path: Path, family: str, layout: str) -> None:
    build, to_original = FAMILIES[family]
    model = build()
    sd = model.state_dict() if layout == "diffusers" else to_original(model)
    if layout == "comfyui":
        sd = {COMFY + k: v for k, v in sd.items()}
    path = save(tmp_path / f"{family}.safetensors", sd)
    loaded = load_transformer(path, config=_config(tmp_path / "config", model))
    assert type(loaded) is type(model)
    assert all(not p.is_meta for p in loaded.parameters())
    _assert_same_weights(model, loaded)


def test_the_shipped_configs_take_their_sizes_from_the_weights(tmp_path: Path) -> None:
    """No config= at all: the shipped full-size FLUX.1 config, with the layer counts and
    widths read from the file (the tiny model keeps FLUX.1's head width of 128, which the
    shipped rope axes need)."""
    model = tiny_flux(heads=2, head_dim=128)  # FLUX.1's head width, so its rope axes fit
    path = save(tmp_path / "flux.safetensors", flux_to_bfl(model))
    loaded = load_transformer(path)
    assert (loaded.config.num_layers, loaded.config.num_single_layers, loaded.config.num_attention_heads) == (1, 2, 2)
    _assert_same_weights(model, loaded)


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    model = tiny_flux()
    config = _config(tmp_path / "config", model)
    sd = {COMFY + k: v for k, v in flux_to_bfl(model).items()}
    del sd[COMFY + "single_blocks.1.linear2.weight"]
    path = save(tmp_path / "flux1-dev.safetensors", sd)
    with pytest.raises(CorruptModelError, match=r"lacks the tensor model\.diffusion_model\.single_blocks\.1\.linear2\.weight"):
        load_transformer(path, config=config)
    # diffusers' names, and a converter that passes unknown names through (Z-Image)
    sd = dict(model.state_dict())
    del sd["transformer_blocks.0.attn.to_q.weight"]
    with pytest.raises(CorruptModelError, match=r"transformer_blocks\.0\.attn\.to_q\.weight"):
        load_transformer(save(tmp_path / "flux-diffusers.safetensors", sd), config=config)
    zimage = tiny_zimage()
    sd = zimage_to_original(zimage)
    del sd["layers.1.attention.out.weight"]
    with pytest.raises(CorruptModelError, match=r"layers\.1\.attention\.to_out\.0\.weight"):
        load_transformer(save(tmp_path / "z.safetensors", sd), config=_config(tmp_path / "zc", zimage))


def test_a_tensor_without_a_place_is_named(tmp_path: Path) -> None:
    model = tiny_flux()
    sd = flux_to_bfl(model)
    sd["double_blocks.0.img_attn.extra.weight"] = torch.zeros(2)
    with pytest.raises(CorruptModelError, match=r"cannot place \(double_blocks\.0\.img_attn\.extra\.weight\)"):
        load_transformer(save(tmp_path / "f.safetensors", sd), config=_config(tmp_path / "c", model))
    qwen = tiny_qwenimage()
    sd = {COMFY + k: v for k, v in qwen.state_dict().items()}
    sd[COMFY + "transformer_blocks.0.bogus.weight"] = torch.zeros(2)
    with pytest.raises(CorruptModelError, match=r"transformer_blocks\.0\.bogus\.weight"):
        load_transformer(save(tmp_path / "q.safetensors", sd), config=_config(tmp_path / "qc", qwen))


def test_a_file_of_another_family_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path / "clip_l.safetensors", tiny_t5().state_dict())
    with pytest.raises(CorruptModelError, match="holds no transformer"):
        load_transformer(path)


# --------------------------------------------------------------------------- whole FLUX.1


def _clip_file(model: Any) -> dict[str, torch.Tensor]:
    """transformers-5 CLIP weights as ComfyUI's clip_l.safetensors names them (with the
    projection SD 3 uses and FLUX.1 does not)."""
    out = {"text_model." + k: v for k, v in model.state_dict().items()}
    out["text_projection.weight"] = torch.zeros(32, 32)
    return out


@pytest.fixture(scope="module")
def flux_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny FLUX.1 model: its parts and a diffusers-format config folder with tokenizers."""
    tmp = tmp_path_factory.mktemp("flux-parts")
    write_tiny_clip_tokenizer(tmp / "clip-tok")
    from transformers import CLIPTokenizer

    clip_tok = CLIPTokenizer.from_pretrained(str(tmp / "clip-tok"))
    parts = {
        "transformer": tiny_flux(),
        "clip": tiny_clip(len(clip_tok)),
        "t5": tiny_t5(),
        "vae": tiny_vae16(),
    }
    config = write_flux_config_folder(tmp / "config", parts["transformer"], parts["clip"], parts["t5"], parts["vae"])
    write_tiny_clip_tokenizer(config / "tokenizer")
    tok_config = config / "tokenizer" / "tokenizer_config.json"
    settings = json.loads(tok_config.read_text()) if tok_config.is_file() else {}
    tok_config.write_text(json.dumps({**settings, "model_max_length": 77}))
    parts["config"] = config
    parts["t5_tokenizer"] = write_t5_tokenizer(tmp / "t5-tok")
    return parts


def _comfy_models(root: Path, parts: dict[str, Any], *, dtype: torch.dtype | None = None) -> Path:
    models = root / "ComfyUI" / "models"
    save(models / "diffusion_models" / "flux1-dev.safetensors", flux_to_bfl(parts["transformer"]), dtype)
    save(models / "text_encoders" / "clip_l.safetensors", _clip_file(parts["clip"]), dtype)
    save(models / "text_encoders" / "t5xxl_fp16.safetensors", parts["t5"].state_dict(), dtype)
    save(models / "vae" / "ae.safetensors", vae_to_ldm(parts["vae"]), dtype)
    return models


def _run_one_step(pipe: Any) -> Any:
    return pipe(prompt="a red cat", height=32, width=32, num_inference_steps=1, guidance_scale=3.5,
                max_sequence_length=16, output_type="np", generator=torch.Generator().manual_seed(0)).images


def test_flux_from_comfyui_folders(tmp_path: Path, flux_parts: dict[str, Any]) -> None:
    import shutil

    models = _comfy_models(tmp_path, flux_parts)
    config = tmp_path / "config"
    shutil.copytree(flux_parts["config"], config)
    shutil.copytree(flux_parts["t5_tokenizer"], config / "tokenizer_2")
    pipe, family = load_model_file(models / "diffusion_models" / "flux1-dev.safetensors", config=config)
    assert family == "flux" and type(pipe).__name__ == "FluxPipeline"
    _assert_same_weights(flux_parts["transformer"], pipe.transformer)
    _assert_same_weights(flux_parts["clip"], pipe.text_encoder)
    _assert_same_weights(flux_parts["t5"], pipe.text_encoder_2)
    _assert_same_weights(flux_parts["vae"], pipe.vae)
    images = _run_one_step(pipe)
    assert images.shape == (1, 32, 32, 3) and bool((images >= 0).all() and (images <= 1).all())


def test_t5_tokenizer_found_in_a_comfyui_install_or_named(tmp_path: Path, flux_parts: dict[str, Any]) -> None:
    import shutil

    models = _comfy_models(tmp_path, flux_parts)
    t5_file = models / "text_encoders" / "t5xxl_fp16.safetensors"
    with pytest.raises(ModelNotFoundError, match="T5-XXL tokenizer was not found") as caught:
        find_tokenizer(Encoder.T5XXL, "flux", config=flux_parts["config"], near=[t5_file])
    assert str(models / "text_encoders" / "tokenizer") in caught.value.hint
    # ComfyUI ships it in comfy/text_encoders/t5_tokenizer beside its models folder
    shutil.copytree(flux_parts["t5_tokenizer"], tmp_path / "ComfyUI" / "comfy" / "text_encoders" / "t5_tokenizer")
    tokenizer = find_tokenizer(Encoder.T5XXL, "flux", config=flux_parts["config"], near=[t5_file])
    assert tokenizer("a cat").input_ids[-1] == tokenizer.eos_token_id


def test_fp8_all_in_one_checkpoint_loads_and_computes_in_fp32(tmp_path: Path, flux_parts: dict[str, Any]) -> None:
    """ComfyUI's "fp8 all-in-one": transformer, CLIP-L, T5 and VAE in one float8_e4m3fn file."""
    import shutil

    sd = {COMFY + k: v for k, v in flux_to_bfl(flux_parts["transformer"]).items()}
    sd.update({"text_encoders.clip_l.transformer." + k: v for k, v in _clip_file(flux_parts["clip"]).items()})
    sd.update({"text_encoders.t5xxl.transformer." + k: v for k, v in flux_parts["t5"].state_dict().items()})
    sd.update({"first_stage_model." + k: v for k, v in vae_to_ldm(flux_parts["vae"]).items()})
    path = save(tmp_path / "checkpoints" / "flux1-dev-fp8.safetensors", sd, torch.float8_e4m3fn)
    shutil.copytree(flux_parts["t5_tokenizer"], tmp_path / "checkpoints" / "tokenizer")
    part = identify_part(path)
    assert part is not None and part.quantized == "fp8"

    pipe, _ = load_model_file(path, config=flux_parts["config"], torch_dtype=torch.float32)
    transformer = pipe.transformer
    assert {p.dtype for p in transformer.parameters()} == {torch.float32}
    # the weights are the fp8 values, widened
    for key, value in flux_parts["transformer"].state_dict().items():
        assert torch.equal(value.to(torch.float8_e4m3fn).float(), transformer.state_dict()[key]), key
    # memory: the loaded model holds the compute dtype (4 bytes a weight here, 1 in the file)
    loaded_bytes = sum(p.numel() * p.element_size() for p in transformer.parameters())
    assert loaded_bytes == 4 * sum(p.numel() for p in transformer.parameters())
    images = _run_one_step(pipe)
    assert bool(torch.isfinite(torch.from_numpy(images)).all())


def test_comfyui_fp8_scaled_weights_are_unscaled(tmp_path: Path) -> None:
    model = tiny_flux()
    sd = flux_to_bfl(model)
    scaled = {}
    for key, value in sd.items():
        if key.endswith(".weight") and value.ndim == 2:
            scale = value.abs().max() / 448.0
            scaled[key] = (value / scale).to(torch.float8_e4m3fn)
            scaled[key[: -len("weight")] + "scale_weight"] = scale.reshape(1)
        else:
            scaled[key] = value
    scaled["scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    path = save(tmp_path / "flux1-dev-fp8_scaled.safetensors", scaled)
    loaded = load_transformer(path, config=_config(tmp_path / "c", model))
    for key, value in model.state_dict().items():
        assert torch.allclose(value, loaded.state_dict()[key], rtol=0.07, atol=1e-6), key


# --------------------------------------------------------------------------- text encoders


def test_qwen3_text_encoder_for_zimage_and_flux2(tmp_path: Path) -> None:
    for family, causal in (("zimage", False), ("flux2", True)):
        model = tiny_qwen3(causal=causal)
        base = model.model if causal else model
        sd = {"model." + k: v for k, v in base.state_dict().items()}  # ComfyUI's qwen_3_4b naming
        path = save(tmp_path / f"qwen_3_4b-{family}.safetensors", sd)
        config = tmp_path / f"config-{family}"
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(str(config / "text_encoder"))
        part = identify_part(path)
        assert part is not None and part.encoder is Encoder.QWEN3
        loaded = load_text_encoder(part, Encoder.QWEN3, family, config=config)
        assert type(loaded) is type(model)
        _assert_same_weights(model, loaded)
        ids = torch.tensor([[1, 5, 9]])
        assert torch.allclose(model(ids).logits if causal else model(ids).last_hidden_state,
                              loaded(ids).logits if causal else loaded(ids).last_hidden_state)


# --------------------------------------------------------------------------- GGUF


def test_gguf_round_trip(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install gguf)")
    import numpy as np

    model = tiny_flux(heads=2, head_dim=16)  # widths of 32: whole Q8_0 blocks
    config = _config(tmp_path / "c", model)
    sd = flux_to_bfl(model)
    writer = gguf.GGUFWriter(str(tmp_path / "flux1-dev-Q8_0.gguf"), arch="flux")
    expected: dict[str, np.ndarray] = {}
    quantized = 0
    for key, value in sd.items():
        array = value.float().numpy()
        if array.ndim == 2 and array.shape[1] % 32 == 0:
            data = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(key, data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            # diffusers dequantizes Q8_0 to float16: the block scale times the int8, rounded once
            expected[key] = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q8_0).astype(np.float16).astype(np.float32)
            quantized += 1
        else:
            writer.add_tensor(key, array)
            expected[key] = array
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert quantized > 10
    path = tmp_path / "flux1-dev-Q8_0.gguf"
    part = identify_part(path)
    assert part is not None and (part.family, part.variant, part.quantized) == ("flux", "dev", "gguf")

    loaded = load_transformer(path, config=config)
    linears = [m for m in loaded.modules() if type(m).__name__ == "GGUFLinear"]
    assert linears, "the quantized weights stay quantized"
    from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

    # the quantized qkv comes back split into to_q/to_k/to_v, each its third of the rows
    q = loaded.transformer_blocks[0].attn.to_q.weight
    rows = q.shape[0]
    assert torch.allclose(dequantize_gguf_tensor(q).float(),
                          torch.from_numpy(expected["double_blocks.0.img_attn.qkv.weight"][:rows]))
    reference = tiny_flux(heads=2, head_dim=16)
    reference.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _to_diffusers(expected, reference).items()})
    inputs = {
        "hidden_states": torch.randn(1, 16, 64), "encoder_hidden_states": torch.randn(1, 4, 32),
        "pooled_projections": torch.randn(1, 32), "timestep": torch.tensor([0.5]), "guidance": torch.tensor([3.5]),
        "img_ids": torch.zeros(16, 3), "txt_ids": torch.zeros(4, 3),
    }
    with torch.no_grad():
        want = reference(**inputs).sample
        got = loaded(**inputs).sample
    assert torch.allclose(want, got, atol=1e-4)


def _to_diffusers(bfl: dict[str, Any], reference: Any) -> dict[str, Any]:
    """The dequantized BFL tensors in the reference model's names: the fabricated mapping
    is run on a model whose every element holds its own tag (tensor index × 10⁶ + element
    index), so each BFL element says which diffusers element it came from."""
    import numpy as np

    out: dict[str, Any] = {}
    sd = reference.state_dict()
    tagged = {k: torch.arange(v.numel(), dtype=torch.float64).reshape(v.shape) + 1e6 * i
              for i, (k, v) in enumerate(sd.items())}
    reference_copy = type(reference).from_config(reference.config).double()
    reference_copy.load_state_dict(tagged)
    tag_map = flux_to_bfl(reference_copy)
    for bfl_key, tags in tag_map.items():
        values = np.asarray(bfl[bfl_key], dtype=np.float64).reshape(tags.shape)
        flat_tags, flat_values = tags.flatten().numpy(), values.flatten()
        for tag, value in zip(flat_tags, flat_values, strict=True):
            index, pos = divmod(tag, 1e6)
            key = list(sd)[int(index)]
            out.setdefault(key, np.zeros(sd[key].numel(), dtype=np.float32))[int(round(pos))] = value
    return {k: v.reshape(tuple(sd[k].shape)) for k, v in out.items()}


def test_gguf_without_the_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_gguf(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "gguf" or name.startswith("gguf."):
            raise ImportError("No module named 'gguf'")
        return real_import(name, *args, **kwargs)

    path = tmp_path / "flux.gguf"
    path.write_bytes(b"GGUF")
    monkeypatch.setattr(builtins, "__import__", no_gguf)
    from sfumato.inference.transformer_files import read_tensors

    with pytest.raises(UnsupportedModeError) as caught:
        read_tensors(path)
    assert "pip install gguf" in caught.value.hint


# --------------------------------------------------------------------------- through the engine


def test_engine_renders_a_comfyui_flux_as_its_diffusers_folder(fresh_engine: Any, tmp_path: Path) -> None:
    """The same tiny FLUX.1 as a diffusers folder and as ComfyUI's files (BFL transformer in
    diffusion_models/, clip_l and t5xxl in text_encoders/, ae in vae/): the same picture."""
    import shutil

    import numpy as np
    from diffusers import FluxPipeline
    from enginehelpers import Recorder, request
    from sfumato.inference.request import ModelRef
    from tinyflow import tiny_flow_model

    folder = tiny_flow_model("flux")
    pipe = FluxPipeline.from_pretrained(str(folder))
    models = tmp_path / "ComfyUI" / "models"
    save(models / "diffusion_models" / "flux1-dev.safetensors", flux_to_bfl(pipe.transformer))
    save(models / "text_encoders" / "clip_l.safetensors",
         {"text_model." + k: v for k, v in pipe.text_encoder.state_dict().items()})
    save(models / "text_encoders" / "t5xxl_fp16.safetensors", pipe.text_encoder_2.state_dict())
    save(models / "vae" / "ae.safetensors", vae_to_ldm(pipe.vae))
    config = tmp_path / "config"  # the folder's configs and tokenizers, no weights
    shutil.copytree(folder, config, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))

    engine = fresh_engine(single_file_configs={"flux": config})
    req = request(folder, width=64, height=64, steps=3, cfg=3.5, seed=11, prompt="a red cat on a mat")
    from_folder = engine.run(req, Recorder())
    transformer_file = models / "diffusion_models" / "flux1-dev.safetensors"
    from_files = engine.run(req.replace(model=ModelRef(str(transformer_file))), Recorder())
    assert from_folder.ok and from_files.ok, (from_folder.error, from_files.error)
    assert engine.cache.get(ModelRef(str(transformer_file))).family.name == "flux"
    difference = np.abs(from_files.images[0].astype(int) - from_folder.images[0].astype(int)).max()
    assert difference <= 1


# --------------------------------------------------------------------------- every family, whole


def _qwen_vl_file(model: Any) -> dict[str, torch.Tensor]:
    """transformers-5 Qwen2.5-VL weights as ComfyUI's qwen_2.5_vl_7b.safetensors names them."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("model.language_model."):
            out["model." + key[len("model.language_model."):]] = value
        elif key.startswith("model.visual."):
            out["visual." + key[len("model.visual."):]] = value
        else:
            out[key] = value
    return out


def _flux2_vae_file(vae: Any) -> dict[str, torch.Tensor]:
    """FLUX.2's VAE as Black Forest Labs name it: LDM names, quant convs inside the encoder
    and decoder, the batch-norm statistics without their count."""
    out = vae_to_ldm(vae)
    out["encoder.quant_conv.weight"] = out.pop("quant_conv.weight")
    out["encoder.quant_conv.bias"] = out.pop("quant_conv.bias")
    out["decoder.post_quant_conv.weight"] = out.pop("post_quant_conv.weight")
    out["decoder.post_quant_conv.bias"] = out.pop("post_quant_conv.bias")
    del out["bn.num_batches_tracked"]
    return out


def _write_comfyui_files(pipe: Any, family: str, models: Path) -> Path:
    """``pipe``'s components as an artist keeps them in ComfyUI's models folder; returns the
    transformer file."""
    encoders, vaes = models / "text_encoders", models / "vae"
    transformer = pipe.transformer
    if family == "qwenimage":  # ComfyUI keeps diffusers' names under its prefix
        weights = {COMFY + k: v for k, v in transformer.state_dict().items()}
    else:
        weights = {COMFY + k: v for k, v in FAMILIES[family][1](transformer).items()}
    main = save(models / "diffusion_models" / f"{family}.safetensors", weights)
    if family == "sd3":
        for name, encoder in (("clip_l", pipe.text_encoder), ("clip_g", pipe.text_encoder_2)):
            save(encoders / f"{name}.safetensors", encoder.state_dict())
    if family in ("sd3", "chroma"):
        t5 = pipe.text_encoder_3 if family == "sd3" else pipe.text_encoder
        save(encoders / "t5xxl_fp16.safetensors", {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"})
    if family == "zimage":
        save(encoders / "qwen_3_4b.safetensors", {"model." + k: v for k, v in pipe.text_encoder.state_dict().items()})
    if family == "flux2":
        tied = pipe.text_encoder.config.tie_word_embeddings
        save(encoders / "qwen_3_4b.safetensors",
             {k: v for k, v in pipe.text_encoder.state_dict().items() if not (tied and k == "lm_head.weight")})
    if family == "qwenimage":
        save(encoders / "qwen_2.5_vl_7b.safetensors", _qwen_vl_file(pipe.text_encoder))
        save(vaes / "qwen_image_vae.safetensors", pipe.vae.state_dict())
    elif family == "flux2":
        save(vaes / "flux2-vae.safetensors", _flux2_vae_file(pipe.vae))
    else:
        save(vaes / ("sd3.5_vae.safetensors" if family == "sd3" else "ae.safetensors"), vae_to_ldm(pipe.vae))
    return main


@pytest.mark.parametrize("family", ["chroma", "sd3", "zimage", "flux2", "qwenimage"])
def test_every_family_assembles_from_comfyui_files(tmp_path: Path, family: str) -> None:
    """tests/tinyflow.py's tiny model of each family, kept as ComfyUI's files (transformer
    in the original layout, text encoders as ComfyUI names them, the VAE): every component
    of the assembled pipeline equals the diffusers folder's."""
    from diffusers import DiffusionPipeline
    from tinyflow import tiny_flow_model

    folder = tiny_flow_model("flux2-klein" if family == "flux2" else family)
    reference = DiffusionPipeline.from_pretrained(str(folder))
    main = _write_comfyui_files(reference, family, tmp_path / "ComfyUI" / "models")
    pipe, loaded_family = load_model_file(main, config=folder)
    assert loaded_family == family and type(pipe) is type(reference)
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        want = getattr(reference, name, None)
        if want is not None:
            assert type(getattr(pipe, name)) is type(want), name
            _assert_same_weights(want, getattr(pipe, name))


def test_qwen3_sizes_come_from_the_weights(tmp_path: Path) -> None:
    """The shipped config is Qwen3-4B's; a differently sized Qwen3 (Klein 9B reads Qwen3-8B)
    is built to its own weights' sizes."""
    model = tiny_qwen3()
    path = save(tmp_path / "qwen_3_8b.safetensors", {"model." + k: v for k, v in model.state_dict().items()})
    part = identify_part(path)
    assert part is not None
    loaded = load_text_encoder(part, Encoder.QWEN3, "zimage")  # the shipped Z-Image config
    assert (loaded.config.hidden_size, loaded.config.num_hidden_layers, loaded.config.num_key_value_heads) == (24, 2, 1)
    _assert_same_weights(model, loaded)


def test_engine_renders_a_gguf_flux_close_to_its_folder(fresh_engine: Any, tmp_path: Path) -> None:
    """tinyflow's FLUX.1 transformer as a Q8_0 GGUF in diffusion_models/ (the weights whose
    rows are whole 32-wide blocks quantized, as city96's files do): it stays quantized in
    the engine and renders within a step of the unquantized folder's picture."""
    gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install gguf)")
    import shutil

    import numpy as np
    from diffusers import FluxPipeline
    from enginehelpers import Recorder, request
    from sfumato.inference.request import ModelRef
    from tinyflow import tiny_flow_model

    folder = tiny_flow_model("flux")
    pipe = FluxPipeline.from_pretrained(str(folder))
    models = tmp_path / "ComfyUI" / "models"
    (models / "diffusion_models").mkdir(parents=True)
    path = models / "diffusion_models" / "flux1-dev-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), arch="flux")
    quantized = 0
    for key, value in flux_to_bfl(pipe.transformer).items():
        array = value.float().numpy()
        if array.ndim == 2 and array.shape[1] % 32 == 0:
            writer.add_tensor(key, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            quantized += 1
        else:
            writer.add_tensor(key, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert quantized >= 20
    save(models / "text_encoders" / "clip_l.safetensors", {"text_model." + k: v for k, v in pipe.text_encoder.state_dict().items()})
    save(models / "text_encoders" / "t5xxl_fp16.safetensors", pipe.text_encoder_2.state_dict())
    save(models / "vae" / "ae.safetensors", vae_to_ldm(pipe.vae))
    config = tmp_path / "config"
    shutil.copytree(folder, config, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))

    engine = fresh_engine(single_file_configs={"flux": config})
    req = request(folder, width=64, height=64, steps=3, cfg=3.5, seed=11, prompt="a red cat on a mat")
    from_folder = engine.run(req, Recorder())
    from_gguf = engine.run(req.replace(model=ModelRef(str(path))), Recorder())
    assert from_folder.ok and from_gguf.ok, (from_folder.error, from_gguf.error)
    loaded = engine.cache.get(ModelRef(str(path)))
    assert sum(type(m).__name__ == "GGUFLinear" for m in loaded.pipe.transformer.modules()) >= 20
    assert np.abs(from_gguf.images[0].astype(int) - from_folder.images[0].astype(int)).max() <= 3


def test_flux_fill_gets_the_fill_pipeline(tmp_path: Path, flux_parts: dict[str, Any]) -> None:
    """FLUX.1 Fill reads 384 channels (noise, masked image, mask) and gives 64: told by its
    input width, loaded with its own out_channels, assembled as FluxFillPipeline."""
    import shutil

    fill = tiny_flux(in_channels=384, out_channels=64, seed=3)
    models = tmp_path / "models"
    save(models / "diffusion_models" / "flux1-fill-dev.safetensors", flux_to_bfl(fill))
    save(models / "text_encoders" / "clip_l.safetensors", _clip_file(flux_parts["clip"]))
    save(models / "text_encoders" / "t5xxl_fp16.safetensors", flux_parts["t5"].state_dict())
    save(models / "vae" / "ae.safetensors", vae_to_ldm(flux_parts["vae"]))
    shutil.copytree(flux_parts["t5_tokenizer"], models / "text_encoders" / "tokenizer")
    pipe, family = load_model_file(models / "diffusion_models" / "flux1-fill-dev.safetensors", config=flux_parts["config"])
    assert (family, type(pipe).__name__) == ("flux", "FluxFillPipeline")
    assert (pipe.transformer.config.in_channels, pipe.transformer.config.out_channels) == (384, 64)
    _assert_same_weights(fill, pipe.transformer)


def test_qwenimage_vae_in_comfyui_wan_names(tmp_path: Path) -> None:
    from fabricated_checkpoints import qwenimage_vae_to_wan, tiny_qwenimage_vae
    from sfumato.inference.model_assembly import load_vae
    from sfumato.inference.model_parts import VaeKind

    vae = tiny_qwenimage_vae()
    path = save(tmp_path / "qwen_image_vae.safetensors", qwenimage_vae_to_wan(vae))
    part = identify_part(path)
    assert part is not None and part.vae is VaeKind.QWENIMAGE
    loaded = load_vae(part, VaeKind.QWENIMAGE, "qwenimage", config=_config(tmp_path / "c", vae, "vae"))
    _assert_same_weights(vae, loaded)


@pytest.mark.parametrize(("family", "variant"), [("flux", "dev"), ("chroma", None), ("sd3", "large"),
                                                  ("flux2", "klein-4b"), ("zimage", None), ("qwenimage", None)])
def test_full_size_files_are_told_and_fit_the_shipped_configs(family: str, variant: str | None) -> None:
    """The released models' shapes, on the meta device (no memory): a full-size file of each
    family in its original layout is recognised (variant included) and loads into the
    shipped config unchanged, so the configs and the converters agree with the real sizes."""
    import diffusers
    from sfumato.inference.model_parts import identify_keys
    from sfumato.inference.single_file import CONFIGS_DIR

    config = json.loads((CONFIGS_DIR / family / "transformer" / "config.json").read_text())
    with torch.device("meta"):
        model = getattr(diffusers, config["_class_name"]).from_config(config)
    original = FAMILIES[family][1](model)
    if "pos_embed" in original:  # SD 3's saved position table: a real (zero-stride) tensor
        shape = original["pos_embed"].shape
        original["pos_embed"] = torch.zeros(1, 1, shape[-1]).expand(shape)
    path = Path(f"{family}.safetensors")
    part = identify_keys(path, {k: tuple(v.shape) for k, v in original.items()})
    assert part is not None and (part.family, part.variant) == (family, variant)
    loaded = load_transformer(path, part=part, state=original)
    for key, value in config.items():
        if not key.startswith("_"):
            assert _same(loaded.config[key], value), key


def _same(a: Any, b: Any) -> bool:
    return list(a) == list(b) if isinstance(a, (list, tuple)) else a == b


@pytest.mark.parametrize(("family", "variant", "sizes"), [
    ("flux", "schnell", {"guidance_embeds": False}),
    ("flux", "fill", {"in_channels": 384, "out_channels": 64}),
    ("sd3", "medium", {"num_layers": 24, "num_attention_heads": 24, "caption_projection_dim": 1536,
                       "pos_embed_max_size": 384, "dual_attention_layers": list(range(13))}),
    ("flux2", "klein-9b", {"num_layers": 8, "num_single_layers": 24, "num_attention_heads": 32,
                           "joint_attention_dim": 12288}),
])
def test_variants_share_the_shipped_config(family: str, variant: str, sizes: dict[str, Any]) -> None:
    """FLUX.1 schnell and Fill, SD 3.5 medium and FLUX.2 Klein 9B (their released sizes, on
    the meta device) load with the one shipped config of their family: the sizes their
    weights show are read from them."""
    import diffusers
    from sfumato.inference.model_parts import identify_keys
    from sfumato.inference.single_file import CONFIGS_DIR

    config = {**json.loads((CONFIGS_DIR / family / "transformer" / "config.json").read_text()), **sizes}
    with torch.device("meta"):
        model = getattr(diffusers, config["_class_name"]).from_config(config)
    original = FAMILIES[family][1](model)
    if "pos_embed" in original:
        shape = original["pos_embed"].shape
        original["pos_embed"] = torch.zeros(1, 1, shape[-1]).expand(shape)
    part = identify_keys(Path(f"{family}-{variant}.safetensors"), {k: tuple(v.shape) for k, v in original.items()})
    assert part is not None and (part.family, part.variant) == (family, variant)
    loaded = load_transformer(part.path, part=part, state=original)
    for key, value in sizes.items():
        assert _same(loaded.config[key], value), key


def test_another_models_tokenizer_folder_is_not_taken_for_t5(tmp_path: Path, flux_parts: dict[str, Any]) -> None:
    """A CLIP tokenizer in a ``tokenizer`` folder beside the T5 file is not T5's."""
    t5_file = save(tmp_path / "text_encoders" / "t5xxl_fp16.safetensors", flux_parts["t5"].state_dict())
    write_tiny_clip_tokenizer(tmp_path / "text_encoders" / "tokenizer")
    with pytest.raises(ModelNotFoundError, match="T5-XXL tokenizer"):
        find_tokenizer(Encoder.T5XXL, "flux", config=flux_parts["config"], near=[t5_file])


def test_a_damaged_gguf_is_named(tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the gguf package is not installed (pip install gguf)")
    path = tmp_path / "flux1-dev-Q4_K_S.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(CorruptModelError, match="flux1-dev-Q4_K_S.gguf cannot be read as a GGUF file"):
        identify_part(path)


def test_a_loose_folder_of_parts_loads_as_one_model(fresh_engine: Any, tmp_path: Path) -> None:
    """A folder that is no diffusers folder but holds a FLUX.1 transformer with its text
    encoders, VAE and T5 tokenizer beside it (a model someone copied together) loads whole."""
    import shutil

    from diffusers import FluxPipeline
    from sfumato.inference.request import ModelRef
    from tinyflow import tiny_flow_model

    folder = tiny_flow_model("flux")
    pipe = FluxPipeline.from_pretrained(str(folder))
    loose = tmp_path / "my-flux"
    save(loose / "flux1-dev.safetensors", flux_to_bfl(pipe.transformer))
    save(loose / "clip_l.safetensors", {"text_model." + k: v for k, v in pipe.text_encoder.state_dict().items()})
    save(loose / "t5xxl_fp16.safetensors", pipe.text_encoder_2.state_dict())
    save(loose / "ae.safetensors", vae_to_ldm(pipe.vae))
    shutil.copytree(folder / "tokenizer_2", loose / "tokenizer")
    config = tmp_path / "config"
    shutil.copytree(folder, config, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    engine = fresh_engine(single_file_configs={"flux": config})
    model = engine.cache.get(ModelRef(str(loose)))
    assert model.family.name == "flux" and type(model.pipe).__name__ == "FluxPipeline"
    _assert_same_weights(pipe.transformer, model.pipe.transformer)


def test_sd3_checkpoint_with_its_text_encoders(tmp_path: Path) -> None:
    """SD 3's "incl_clips_t5" single file: the MMDiT, CLIP-L, CLIP-G, T5 and the VAE under
    ComfyUI's names in one checkpoint; the T5 tokenizer beside it."""
    import shutil

    from diffusers import DiffusionPipeline
    from tinyflow import tiny_flow_model

    folder = tiny_flow_model("sd3")
    reference = DiffusionPipeline.from_pretrained(str(folder))
    sd = {COMFY + k: v for k, v in sd3_to_original(reference.transformer).items()}
    for name, encoder in (("clip_l", reference.text_encoder), ("clip_g", reference.text_encoder_2),
                          ("t5xxl", reference.text_encoder_3)):
        sd.update({f"text_encoders.{name}.transformer.{k}": v for k, v in encoder.state_dict().items()})
    sd.update({"first_stage_model." + k: v for k, v in vae_to_ldm(reference.vae).items()})
    path = save(tmp_path / "checkpoints" / "sd3_medium_incl_clips_t5xxl.safetensors", sd)
    shutil.copytree(folder / "tokenizer_3", tmp_path / "checkpoints" / "tokenizer")
    part = identify_part(path)
    assert part is not None and part.holds == {Encoder.CLIP_L, Encoder.CLIP_G, Encoder.T5XXL, VaeKind.LATENT16}
    pipe, family = load_model_file(path, config=folder)
    assert family == "sd3"
    for name in ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
        _assert_same_weights(getattr(reference, name), getattr(pipe, name))


def test_black_forest_labs_sft_files(tmp_path: Path, flux_parts: dict[str, Any]) -> None:
    """``flux1-dev.sft`` and ``ae.sft`` (safetensors under Black Forest Labs' first name)."""
    import shutil

    models = _comfy_models(tmp_path, flux_parts)
    for name in ("diffusion_models/flux1-dev", "vae/ae"):
        (models / f"{name}.safetensors").rename(models / f"{name}.sft")
    shutil.copytree(flux_parts["t5_tokenizer"], models / "text_encoders" / "tokenizer")
    pipe, family = load_model_file(models / "diffusion_models" / "flux1-dev.sft", config=flux_parts["config"])
    assert family == "flux"
    _assert_same_weights(flux_parts["transformer"], pipe.transformer)
    _assert_same_weights(flux_parts["vae"], pipe.vae)


@pytest.mark.parametrize("family", ["chroma", "sd3", "flux2", "zimage", "qwenimage"])
def test_gguf_of_every_family_matches_its_dequantized_safetensors(tmp_path: Path, family: str) -> None:
    """A GGUF transformer of each family (Q8_0 where a row is whole blocks) holds, once
    dequantized, exactly what the same values loaded from a safetensors file hold (that
    path is checked against the source model above), with its linears left quantized."""
    gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install gguf)")
    import numpy as np
    from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

    build, to_original = FAMILIES[family]
    model = build()
    config = _config(tmp_path / "config", model)
    path = tmp_path / f"{family}-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), arch=family)
    dequantized: dict[str, torch.Tensor] = {}
    for key, value in to_original(model).items():
        array = value.float().numpy()
        if array.ndim == 2 and array.shape[1] % 32 == 0:
            data = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(key, data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            array = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q8_0).astype(np.float16).astype(np.float32)
        else:
            writer.add_tensor(key, array)
        dequantized[key] = torch.from_numpy(np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from_gguf = load_transformer(path, config=config)
    from_safetensors = load_transformer(save(tmp_path / f"{family}.safetensors", dequantized), config=config)
    assert any(type(m).__name__ == "GGUFLinear" for m in from_gguf.modules())
    got = from_gguf.state_dict()
    for key, want in from_safetensors.state_dict().items():
        value = dequantize_gguf_tensor(got[key]) if type(got[key]).__name__ == "GGUFParameter" else got[key]
        assert torch.equal(value.float(), want.float()), key


def test_gguf_t5_encoder_in_llama_cpp_names(tmp_path: Path) -> None:
    """city96's GGUF T5-XXL encoders name their tensors as llama.cpp does; the encoder is
    recognised from them and loads (dequantized) with exactly the file's values."""
    gguf = pytest.importorskip("gguf", reason="the gguf package is not installed (pip install gguf)")
    import numpy as np

    t5 = tiny_t5()
    names = {"SelfAttention.q": "attn_q", "SelfAttention.k": "attn_k", "SelfAttention.v": "attn_v",
             "SelfAttention.o": "attn_o", "SelfAttention.relative_attention_bias": "attn_rel_b",
             "0.layer_norm": "attn_norm", "DenseReluDense.wi_0": "ffn_gate", "DenseReluDense.wi_1": "ffn_up",
             "DenseReluDense.wo": "ffn_down", "1.layer_norm": "ffn_norm"}  # fmt: skip
    path = tmp_path / "text_encoders" / "t5-v1_1-xxl-encoder-Q8_0.gguf"
    path.parent.mkdir(parents=True)
    writer = gguf.GGUFWriter(str(path), arch="t5encoder")
    expected: dict[str, torch.Tensor] = {}
    for key, value in t5.state_dict().items():
        if key == "encoder.embed_tokens.weight":
            continue  # tied to shared.weight, written once
        if key == "shared.weight":
            name = "token_embd.weight"
        elif key == "encoder.final_layer_norm.weight":
            name = "enc.output_norm.weight"
        else:
            block, rest = key[len("encoder.block."):].split(".layer.", 1)
            stem = rest.rsplit(".", 1)[0]
            short = next(v for k, v in names.items() if stem.endswith(k))
            name = f"enc.blk.{block}.{short}.weight"
        array = value.float().numpy()
        if array.ndim == 2 and array.shape[1] % 32 == 0 and name != "token_embd.weight":
            data = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            array = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q8_0).astype(np.float16).astype(np.float32)
        else:
            writer.add_tensor(name, array)
        expected[key] = torch.from_numpy(np.ascontiguousarray(array))
    expected["encoder.embed_tokens.weight"] = expected["shared.weight"]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    part = identify_part(path)
    assert part is not None and (part.encoder, part.quantized) == (Encoder.T5XXL, "gguf")
    config = tmp_path / "config"
    t5.config.architectures = ["T5EncoderModel"]
    t5.config.save_pretrained(str(config / "text_encoder_2"))
    loaded = load_text_encoder(part, Encoder.T5XXL, "flux", config=config)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
    t5.load_state_dict(expected)  # the source with the file's (quantized) values
    ids = torch.tensor([[4, 8, 1]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).last_hidden_state, t5(ids).last_hidden_state, atol=1e-6)


def test_flux_kontext_is_told_by_its_file_name(tmp_path: Path, flux_parts: dict[str, Any]) -> None:
    """FLUX.1 Kontext has dev's keys exactly: a FLUX.1 dev file named "kontext" is Kontext's
    (its own family, assembled as FluxKontextPipeline); the same weights named otherwise, dev."""
    import shutil

    from sfumato.inference.model_parts import identify_part

    models = tmp_path / "models"
    weights = flux_to_bfl(flux_parts["transformer"])
    save(models / "diffusion_models" / "flux1-kontext-dev.safetensors", weights)
    dev = identify_part(save(tmp_path / "flux1-dev.safetensors", weights))
    assert dev is not None and (dev.variant, dev.model_family) == ("dev", "flux")
    kontext = identify_part(models / "diffusion_models" / "flux1-kontext-dev.safetensors")
    assert kontext is not None and (kontext.family, kontext.variant, kontext.model_family) == ("flux", "kontext",
                                                                                              "flux-kontext")  # fmt: skip
    save(models / "text_encoders" / "clip_l.safetensors", _clip_file(flux_parts["clip"]))
    save(models / "text_encoders" / "t5xxl_fp16.safetensors", flux_parts["t5"].state_dict())
    save(models / "vae" / "ae.safetensors", vae_to_ldm(flux_parts["vae"]))
    shutil.copytree(flux_parts["t5_tokenizer"], models / "text_encoders" / "tokenizer")
    pipe, _ = load_model_file(models / "diffusion_models" / "flux1-kontext-dev.safetensors", config=flux_parts["config"])
    assert type(pipe).__name__ == "FluxKontextPipeline"
    _assert_same_weights(flux_parts["transformer"], pipe.transformer)
    # the catalog lists it as Kontext too, so the window plans edits for it
    from sfumato.inference.catalog import Origin, _part_entry

    entry = _part_entry(models / "diffusion_models" / "flux1-kontext-dev.safetensors", Origin.CONFIGURED)
    assert entry and entry.family == "flux-kontext" and entry.problem is None

"""What a transformer-family file is, from its header: family, role, layout; and how the
files of a ComfyUI ``models`` folder are grouped into usable models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fabricated_checkpoints import (
    COMFY,
    chroma_to_bfl,
    flux2_to_bfl,
    flux_to_bfl,
    save,
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
    zimage_to_original,
)
from sfumato.inference.detect import detect_family, guess_family, read_safetensors_header
from sfumato.inference.model_parts import (
    Encoder,
    Layout,
    Role,
    VaeKind,
    group_parts,
    group_transformer_file,
    identify_keys,
    identify_part,
)
from sfumato.vocabulary.families import CHROMA, FLUX, FLUX2, QWENIMAGE, SD3, ZIMAGE


def _layouts(diffusers_sd: dict[str, torch.Tensor], original: dict[str, torch.Tensor] | None):
    yield Layout.DIFFUSERS, diffusers_sd
    if original is not None:
        yield Layout.ORIGINAL, original
        yield Layout.COMFYUI, {COMFY + k: v for k, v in original.items()}


@pytest.mark.parametrize(
    ("family", "build", "to_original", "original_layout"),
    [
        (FLUX, tiny_flux, flux_to_bfl, Layout.ORIGINAL),
        (CHROMA, tiny_chroma, chroma_to_bfl, Layout.ORIGINAL),
        (FLUX2, tiny_flux2, flux2_to_bfl, Layout.ORIGINAL),
        (ZIMAGE, tiny_zimage, zimage_to_original, Layout.ORIGINAL),
        # ComfyUI's Qwen-Image files keep diffusers' names under its prefix
        (QWENIMAGE, tiny_qwenimage, lambda m: m.state_dict(), Layout.DIFFUSERS),
        (SD3, tiny_sd3, None, None),
    ],
)
def test_family_role_and_layout_of_each_transformer(tmp_path: Path, family, build, to_original, original_layout) -> None:
    model = build()
    original = to_original(model) if to_original else None
    for layout, sd in _layouts(model.state_dict(), original):
        path = save(tmp_path / f"{family}-{layout.value}.safetensors", sd)
        part = identify_part(path)
        assert part is not None
        assert (part.family, part.role) == (family, Role.TRANSFORMER), layout
        expected = original_layout if layout is Layout.ORIGINAL else layout
        assert part.layout is expected
        assert part.prefix == (COMFY if layout is Layout.COMFYUI else "")
        # detect.py's family detection answers the same from the header
        assert detect_family(read_safetensors_header(path).shapes) == family
        assert guess_family(read_safetensors_header(path).shapes) == family


def test_sd3_original_names_and_variants() -> None:
    keys = {f"joint_blocks.{i}.x_block.attn.qkv.weight": (6, 2) for i in range(38)}
    keys["context_embedder.weight"] = (2432, 4096)
    part = identify_keys(Path("sd3.5_large.safetensors"), keys)
    assert part is not None and (part.family, part.variant, part.layout) == (SD3, "large", Layout.ORIGINAL)
    medium = {f"{COMFY}joint_blocks.{i}.x_block.attn.qkv.weight": (6, 2) for i in range(24)}
    medium[f"{COMFY}joint_blocks.0.x_block.attn2.qkv.weight"] = (6, 2)
    part = identify_keys(Path("sd3.5_medium.safetensors"), medium)
    assert part is not None and (part.family, part.variant, part.layout) == (SD3, "medium", Layout.COMFYUI)


def test_flux_variants_by_guidance_and_input_width(tmp_path: Path) -> None:
    dev = identify_part(save(tmp_path / "dev.safetensors", flux_to_bfl(tiny_flux(guidance=True))))
    schnell = identify_part(save(tmp_path / "schnell.safetensors", flux_to_bfl(tiny_flux(guidance=False))))
    fill = identify_part(save(tmp_path / "fill.safetensors", flux_to_bfl(tiny_flux(in_channels=384))))
    assert dev is not None and dev.variant == "dev"
    assert schnell is not None and schnell.variant == "schnell"
    assert fill is not None and fill.variant == "fill"
    # the text width the transformer reads: what its T5 must give
    assert dev.width == 32


def _clip_file(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers-5 CLIP weights as ComfyUI's clip_l.safetensors names them."""
    out = {"text_model." + k if not k.startswith("text_projection") else k: v for k, v in sd.items()}
    out["text_projection.weight"] = torch.zeros(32, 32)
    return out


def test_text_encoders_and_vaes(tmp_path: Path) -> None:
    clip = identify_part(save(tmp_path / "clip_l.safetensors", _clip_file(tiny_clip(100).state_dict())))
    assert clip is not None and (clip.role, clip.encoder) == (Role.TEXT_ENCODER, Encoder.CLIP_L)
    wide = {"text_model.embeddings.token_embedding.weight": (10, 1280),
            "text_model.encoder.layers.0.self_attn.q_proj.weight": (1280, 1280)}
    assert identify_keys(Path("clip_g.safetensors"), wide).encoder is Encoder.CLIP_G
    t5 = identify_part(save(tmp_path / "t5xxl_fp16.safetensors", tiny_t5().state_dict()))
    assert t5 is not None and (t5.encoder, t5.width) == (Encoder.T5XXL, 32)
    qwen3 = {"model." + k: v for k, v in tiny_qwen3().state_dict().items()}
    part = identify_part(save(tmp_path / "qwen_3_4b.safetensors", qwen3))
    assert part is not None and (part.encoder, part.width) == (Encoder.QWEN3, 24)
    vl = {"model.layers.0.self_attn.q_proj.weight": (8, 8), "model.layers.0.self_attn.q_proj.bias": (8,),
          "model.embed_tokens.weight": (16, 8), "visual.blocks.0.attn.qkv.weight": (24, 8)}
    assert identify_keys(Path("qwen_2.5_vl_7b.safetensors"), vl).encoder is Encoder.QWEN25VL

    vae = tiny_vae16()
    for name, sd, layout in (("ae", vae_to_ldm(vae), Layout.ORIGINAL), ("vae-diffusers", vae.state_dict(), Layout.DIFFUSERS)):
        part = identify_part(save(tmp_path / f"{name}.safetensors", sd))
        assert part is not None and (part.role, part.vae, part.layout) == (Role.VAE, VaeKind.LATENT16, layout)
    flux2_vae = {"decoder.conv_in.weight": (8, 32, 3, 3), "bn.running_mean": (128,)}
    assert identify_keys(Path("flux2-vae.safetensors"), flux2_vae).vae is VaeKind.FLUX2
    wan = {"decoder.middle.0.residual.0.gamma": (8, 1, 1, 1), "decoder.conv1.weight": (8, 16, 3, 3, 3)}
    assert identify_keys(Path("qwen_image_vae.safetensors"), wan).vae is VaeKind.QWENIMAGE
    # an SD 1.x UNet is no part of these families
    assert identify_keys(Path("sd15.safetensors"), {"model.diffusion_model.input_blocks.0.0.weight": (4, 4)}) is None


def test_whole_checkpoint_holds_its_encoders_and_vae(tmp_path: Path) -> None:
    sd = {COMFY + k: v for k, v in flux_to_bfl(tiny_flux()).items()}
    sd.update({"text_encoders.clip_l.transformer." + k: v for k, v in _clip_file(tiny_clip(100).state_dict()).items()})
    sd.update({"text_encoders.t5xxl.transformer." + k: v for k, v in tiny_t5().state_dict().items()})
    sd.update({"first_stage_model." + k: v for k, v in vae_to_ldm(tiny_vae16()).items()})
    part = identify_part(save(tmp_path / "flux1-dev-fp8.safetensors", sd, torch.float8_e4m3fn))
    assert part is not None
    assert (part.role, part.family, part.quantized) == (Role.CHECKPOINT, FLUX, "fp8")
    assert part.holds == {Encoder.CLIP_L, Encoder.T5XXL, VaeKind.LATENT16}
    group = group_transformer_file(part.path, part)
    assert group is not None and group.problem is None and group.files == (part.path,)


def _comfy_tree(root: Path, *, t5: tuple[str, ...] = ("t5xxl_fp16", "t5xxl_fp8_e4m3fn")) -> Path:
    models = root / "ComfyUI" / "models"
    save(models / "diffusion_models" / "flux1-dev.safetensors", flux_to_bfl(tiny_flux()))
    save(models / "text_encoders" / "clip_l.safetensors", _clip_file(tiny_clip(100).state_dict()))
    for name in t5:
        save(models / "text_encoders" / f"{name}.safetensors", tiny_t5().state_dict(),
             torch.float8_e4m3fn if "fp8" in name else torch.float16)
    save(models / "vae" / "sd3_vae.safetensors", vae_to_ldm(tiny_vae16()))
    save(models / "vae" / "ae.safetensors", vae_to_ldm(tiny_vae16()))
    return models


def test_grouping_prefers_full_precision_and_ae(tmp_path: Path) -> None:
    models = _comfy_tree(tmp_path)
    (group,) = group_parts([tmp_path / "ComfyUI"])  # an install's root or its models folder
    assert group.problem is None and group.family == FLUX
    assert [p.path.name for p in group.text_encoders] == ["clip_l.safetensors", "t5xxl_fp16.safetensors"]
    assert group.vae is not None and group.vae.path.name == "ae.safetensors"
    assert group_transformer_file(models / "diffusion_models" / "flux1-dev.safetensors") == group


def test_grouping_names_the_missing_t5_and_its_folder(tmp_path: Path) -> None:
    models = _comfy_tree(tmp_path, t5=())
    (group,) = group_parts([models])
    assert group.missing == (Encoder.T5XXL,)
    assert group.problem == (
        f"FLUX.1 needs a T5-XXL text encoder: put t5xxl_fp16.safetensors in {models / 'text_encoders'}/"
    )


def test_grouping_matches_the_qwen3_width(tmp_path: Path) -> None:
    models = tmp_path / "models"
    save(models / "diffusion_models" / "z_image_turbo.safetensors", zimage_to_original(tiny_zimage()))
    save(models / "text_encoders" / "qwen_3_8b.safetensors",
         {"model.layers.0.self_attn.q_proj.weight": torch.zeros(8, 40), "model.layers.0.self_attn.q_norm.weight": torch.zeros(8),
          "model.embed_tokens.weight": torch.zeros(4, 40)})
    save(models / "vae" / "ae.safetensors", vae_to_ldm(tiny_vae16()))
    (group,) = group_parts([models])
    assert group.missing == (Encoder.QWEN3,)  # a 40-wide Qwen3 does not feed a 24-wide Z-Image
    save(models / "text_encoders" / "qwen_3_4b.safetensors",
         {"model." + k: v for k, v in tiny_qwen3().state_dict().items()})
    (group,) = group_parts([models])
    assert group.problem is None and group.text_encoders[0].path.name == "qwen_3_4b.safetensors"


def test_catalog_and_sfumato_models_list_grouped_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sfumato.inference.catalog import list_models
    from sfumato.vocabulary.config import Config

    home = tmp_path / "home"
    models = _comfy_tree(home, t5=())
    save(models / "diffusion_models" / "chroma.safetensors", chroma_to_bfl(tiny_chroma()))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "0")
    for var in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    entries = {e.label: e for e in list_models(config=Config())}
    # the encoders and VAEs are parts of the models listed, not models of their own
    assert not {"clip_l", "ae", "sd3_vae"} & set(entries)
    flux, chroma = entries["flux1-dev"], entries["chroma"]
    assert (flux.family, chroma.family) == (FLUX, CHROMA)
    text_encoders = models / "text_encoders"
    assert flux.problem == f"FLUX.1 needs a T5-XXL text encoder: put t5xxl_fp16.safetensors in {text_encoders}/"
    assert chroma.problem is not None and chroma.problem.startswith("Chroma needs a T5-XXL")
    assert not flux.supported

    from sfumato.cli import main

    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    assert "flux1-dev" in out and "unusable" in out
    assert f"FLUX.1 needs a T5-XXL text encoder: put t5xxl_fp16.safetensors in {text_encoders}/" in err

    save(text_encoders / "t5xxl_fp16.safetensors", tiny_t5().state_dict())
    entries = {e.label: e for e in list_models(config=Config())}
    assert entries["flux1-dev"].problem is None and entries["chroma"].problem is None
    assert entries["flux1-dev"].supported


def test_a_controlnet_is_no_transformer() -> None:
    """XLabs' FLUX ControlNets copy FLUX's double blocks; SD3 and Qwen-Image ones their
    transformer blocks: their own blocks tell them apart."""
    xlabs = {"double_blocks.0.img_attn.qkv.weight": (6, 2), "controlnet_blocks.0.weight": (2, 2),
             "input_hint_block.0.weight": (16, 3, 3, 3)}
    assert identify_keys(Path("flux-canny-controlnet.safetensors"), xlabs) is None
    qwen = {"transformer_blocks.0.img_mod.1.weight": (6, 2), "controlnet_blocks.0.weight": (2, 2)}
    assert identify_keys(Path("qwen-controlnet.safetensors"), qwen) is None
    # ... while their family is still told (the catalog offers them to that family)
    assert detect_family(xlabs) == FLUX and detect_family(qwen) == QWENIMAGE


def test_qwen_image_21_is_told_and_refused_by_name(tmp_path: Path) -> None:
    from sfumato.inference.errors import UnsupportedModeError
    from sfumato.inference.transformer_files import load_transformer

    sd = {COMFY + k: v for k, v in tiny_qwenimage().state_dict().items()}
    sd[COMFY + "txt_in.text_norm.weight"] = torch.ones(24)
    path = save(tmp_path / "models" / "diffusion_models" / "qwen_image_2.1.safetensors", sd)
    part = identify_part(path)
    assert part is not None and (part.family, part.variant) == (QWENIMAGE, "2.1")
    group = group_transformer_file(path, part)
    assert group is not None and group.problem is not None and "Qwen-Image 2.1" in group.problem
    with pytest.raises(UnsupportedModeError, match="Qwen-Image 2.1"):
        load_transformer(path)

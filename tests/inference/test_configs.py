"""The shipped diffusers configs and CLIP tokenizer files (offline single-file loading)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import sfumato.resources
import torch

CONFIGS = Path(sfumato.resources.__file__).parent / "configs"

# Parameter counts of the official models (public figures; built on the meta device here).
KNOWN_PARAMS = {
    ("sd15", "unet"): 859_520_964,
    ("sdxl", "unet"): 2_567_463_684,
    ("sd15", "vae"): 83_653_863,
    ("sdxl", "vae"): 83_653_863,
    ("sd15", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder_2"): 694_659_840,
    ("sd15", "controlnet"): 361_279_120,
}


@pytest.mark.parametrize(("family", "component"), sorted(KNOWN_PARAMS))
def test_config_builds_the_official_architecture(family: str, component: str) -> None:
    import diffusers
    import transformers

    folder = CONFIGS / family / component
    if component.startswith("text_encoder"):
        config = transformers.CLIPTextConfig.from_pretrained(folder)
        arch = json.loads((folder / "config.json").read_text())["architectures"][0]
        cls = getattr(transformers, arch)
        with torch.device("meta"):
            model = cls(config)
    else:
        data = json.loads((folder / "config.json").read_text())
        cls = getattr(diffusers, data["_class_name"])
        unknown = [k for k in data if not k.startswith("_") and k not in inspect.signature(cls.__init__).parameters]
        assert not unknown, f"{family}/{component}: keys the class does not take: {unknown}"
        with torch.device("meta"):
            model = cls.from_config(data)
    assert sum(p.numel() for p in model.parameters()) == KNOWN_PARAMS[(family, component)]


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_model_index_components_exist(family: str) -> None:
    index = json.loads((CONFIGS / family / "model_index.json").read_text())
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        if name.startswith("tokenizer"):
            continue  # shared files in clip-tokenizer/, attached by the loader
        folder = CONFIGS / family / name
        assert (folder / "config.json").exists() or (folder / "scheduler_config.json").exists(), name


def test_clip_tokenizer_matches_openai_ids() -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(CONFIGS / "clip-tokenizer")
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.model_max_length == 77


# Tensor names and shapes of the released checkpoints (v1-5-pruned, sd_xl_base_1.0), as
# an artist's download has them: the shipped configs must describe exactly that layout.
REAL_LDM_SHAPES = {
    "sd15": {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight": (1280, 768),
        "model.diffusion_model.output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
        "model.diffusion_model.out.2.weight": (4, 320, 3, 3),
        "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "first_stage_model.decoder.up.3.block.0.conv1.weight": (512, 512, 3, 3),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
        "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc1.weight": (3072, 768),
    },
    "sdxl": {
        "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
        "model.diffusion_model.input_blocks.4.1.proj_in.weight": (640, 640),
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn1.to_q.weight": (640, 640),
        "model.diffusion_model.input_blocks.7.1.transformer_blocks.9.attn2.to_k.weight": (1280, 2048),
        "model.diffusion_model.middle_block.1.transformer_blocks.9.ff.net.2.weight": (1280, 5120),
        "model.diffusion_model.output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.8.0.skip_connection.weight": (320, 640, 1, 1),
        "conditioner.embedders.0.transformer.text_model.encoder.layers.11.self_attn.q_proj.weight": (768, 768),
        "conditioner.embedders.1.model.positional_embedding": (77, 1280),
        "conditioner.embedders.1.model.text_projection": (1280, 1280),
        "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight": (3840, 1280),
    },
}


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_configs_match_the_released_checkpoint_layout(family: str) -> None:
    """On the meta device: config → model → LDM names (real shapes) → diffusers' own
    conversion → exactly the model's tensors again."""
    import diffusers
    import transformers
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )
    from ldm_checkpoint import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm

    folder = CONFIGS / family
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(unet_cfg)
        vae = diffusers.AutoencoderKL.from_config(vae_cfg)
        te1 = transformers.CLIPTextModel(transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        te2 = None
        if family == "sdxl":
            te2 = transformers.CLIPTextModelWithProjection(
                transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            )
    ldm = unet_to_ldm(unet.state_dict(), unet_cfg) | vae_to_ldm(vae.state_dict(), vae_cfg)
    te1_prefix = "conditioner.embedders.0.transformer." if te2 is not None else "cond_stage_model.transformer."
    ldm |= clip_to_ldm(te1.state_dict(), te1_prefix)
    if te2 is not None:
        ldm |= open_clip_to_ldm(te2.state_dict(), "conditioner.embedders.1.model.")
    for key, shape in REAL_LDM_SHAPES[family].items():
        assert key in ldm, key
        assert tuple(ldm[key].shape) == shape, key

    def same(converted: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
        got = {k.removeprefix("text_model.") if not hasattr(model, "text_model") else k: tuple(v.shape)
               for k, v in converted.items() if not k.endswith("position_ids")}  # fmt: skip
        assert got == expected

    same(convert_ldm_unet_checkpoint(ldm, unet_cfg), unet)
    same(convert_ldm_vae_checkpoint(ldm, vae_cfg), vae)
    same(convert_ldm_clip_checkpoint(ldm), te1)
    if te2 is not None:
        same(convert_open_clip_checkpoint(te2, ldm, prefix="conditioner.embedders.1.model."), te2)

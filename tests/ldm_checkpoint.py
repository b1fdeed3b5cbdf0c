"""Test helper: write a diffusers model folder as a single-file checkpoint in the LDM layout.

Artists download checkpoints in the original Stable Diffusion ("LDM"/"compvis") key
layout. To test offline single-file loading without any real checkpoint, the tests
build a tiny diffusers model and convert it *back* to that layout with this module: the
inverse of diffusers' ``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``,
``convert_ldm_clip_checkpoint`` and ``convert_open_clip_checkpoint``.

    from ldm_checkpoint import write_ldm_checkpoint
    write_ldm_checkpoint(tiny_sd15_folder, tmp_path / "model.safetensors")

Layout written (prefixes as in the released SD 1.5 / SDXL checkpoints):

- UNet → ``model.diffusion_model.`` (``input_blocks`` / ``middle_block`` / ``output_blocks``)
- VAE → ``first_stage_model.`` (``encoder.down.N.block.M``, 1×1-conv attention weights)
- SD 1.x text encoder → ``cond_stage_model.transformer.text_model.``
- SDXL text encoders → ``conditioner.embedders.0.transformer.text_model.`` (CLIP-L) and
  ``conditioner.embedders.1.model.`` (OpenCLIP layout: fused ``in_proj``, ``resblocks``,
  transposed ``text_projection``)
- ControlNet (:func:`controlnet_to_ldm`) → ``control_model.`` (``zero_convs``,
  ``input_hint_block``, ``middle_block_out``)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "clip_to_ldm",
    "controlnet_to_ldm",
    "open_clip_to_ldm",
    "unet_to_ldm",
    "vae_to_ldm",
    "write_ldm_checkpoint",
    "write_ldm_controlnet",
]

_RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    for new, old in _RESNET:
        if head == new:
            return f"{old}.{tail}"
    raise KeyError(rest)


def _unet_key(key: str, config: dict[str, Any]) -> str:
    """One diffusers UNet (or ControlNet trunk) key → its LDM name (no prefix)."""
    per_down = config["layers_per_block"] + 1
    per_up = config["layers_per_block"] + 1
    for new, old in _UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, layer, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * per_down + layer}.0.{_resnet(rest)}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, layer, rest = int(m[1]), int(m[2]), m[3]
        return f"input_blocks.{1 + b * per_down + layer}.1.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        b, rest = int(m[1]), m[2]
        return f"input_blocks.{1 + b * per_down + per_down - 1}.0.op.{rest}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{0 if m[1] == '0' else 2}.{_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        b, layer, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * per_up + layer}.0.{_resnet(rest)}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        b, layer, rest = int(m[1]), int(m[2]), m[3]
        return f"output_blocks.{b * per_up + layer}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        b, rest = int(m[1]), m[2]
        has_attention = "CrossAttn" in config["up_block_types"][b]
        return f"output_blocks.{b * per_up + per_up - 1}.{2 if has_attention else 1}.conv.{rest}"
    raise KeyError(f"no LDM name for UNet key {key!r}")


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Diffusers UNet state dict → LDM keys under ``model.diffusion_model.``."""
    return {"model.diffusion_model." + _unet_key(k, config): v for k, v in state.items()}


def _vae_key(key: str, n_blocks: int) -> str:
    key = key.replace("conv_shortcut", "nin_shortcut")
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
        rest = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
        head, _, tail = m[2].rpartition(".")
        return f"{m[1]}.mid.attn_1.{rest[head]}.{tail}"
    return key.replace("conv_norm_out", "norm_out")


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Diffusers VAE state dict → LDM keys under ``first_stage_model.``.

    The mid-block attention's linear weights become 1×1 convolutions, as in LDM.
    """
    n_blocks = len(config["down_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ldm = _vae_key(key, n_blocks)
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out["first_stage_model." + ldm] = value
    return out


def _with_text_model(key: str) -> str:
    """Keys of a (transformers >= 5.6, flattened) CLIPTextModel lack ``text_model.``."""
    if key.startswith(("text_model.", "text_projection")):
        return key
    return "text_model." + key


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """HF CLIPTextModel state dict → LDM (``prefix`` + ``text_model.…``; the HF layout itself)."""
    return {prefix + _with_text_model(k): v for k, v in state.items() if not k.endswith("position_ids")}


def open_clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """HF CLIPTextModelWithProjection state dict → OpenCLIP layout under ``prefix``."""
    state = {_with_text_model(k): v for k, v in state.items() if not k.endswith("position_ids")}
    out: dict[str, torch.Tensor] = {}
    fixed = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    for key, value in state.items():
        if key in fixed:
            out[prefix + fixed[key]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.t().contiguous()
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            if m[2] != "q":
                continue  # fused below, from q's entry
            base = f"text_model.encoder.layers.{m[1]}.self_attn"
            fused = torch.cat([state[f"{base}.{p}_proj.{m[3]}"] for p in "qkv"])
            out[f"{prefix}transformer.resblocks.{m[1]}.attn.in_proj_{m[3]}"] = fused
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)", key):
            rest = (
                m[2].replace("self_attn.out_proj", "attn.out_proj")
                .replace("layer_norm1", "ln_1")
                .replace("layer_norm2", "ln_2")
                .replace("mlp.fc1", "mlp.c_fc")
                .replace("mlp.fc2", "mlp.c_proj")
            )
            out[f"{prefix}transformer.resblocks.{m[1]}.{rest}"] = value
        else:
            raise KeyError(f"no OpenCLIP name for {key!r}")
    return out


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def _config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text())


def ldm_state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    """The whole pipeline folder (SD 1.x or SDXL) as one LDM-layout state dict."""
    model_dir = Path(model_dir)
    state = unet_to_ldm(_weights(model_dir / "unet"), _config(model_dir / "unet"))
    state.update(vae_to_ldm(_weights(model_dir / "vae"), _config(model_dir / "vae")))
    if (model_dir / "text_encoder_2").is_dir():
        state.update(clip_to_ldm(_weights(model_dir / "text_encoder"), "conditioner.embedders.0.transformer."))
        state.update(open_clip_to_ldm(_weights(model_dir / "text_encoder_2"), "conditioner.embedders.1.model."))
    else:
        state.update(clip_to_ldm(_weights(model_dir / "text_encoder"), "cond_stage_model.transformer."))
    return state


def write_ldm_checkpoint(model_dir: Path, out: Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write ``model_dir`` (a diffusers SD 1.x/SDXL folder) as one LDM ``.safetensors`` file."""
    state = ldm_state_dict(model_dir)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    out = Path(out)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata={"format": "pt"})
    return out


def controlnet_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Diffusers ControlNet state dict → LDM keys under ``control_model.``."""
    out: dict[str, torch.Tensor] = {}
    n_hint_blocks = len({k.split(".")[2] for k in state if k.startswith("controlnet_cond_embedding.blocks.")})
    for key, value in state.items():
        if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
            ldm = f"zero_convs.{m[1]}.0.{m[2]}"
        elif m := re.fullmatch(r"controlnet_mid_block\.(.+)", key):
            ldm = f"middle_block_out.0.{m[1]}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.conv_in\.(.+)", key):
            ldm = f"input_hint_block.0.{m[1]}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
            ldm = f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.conv_out\.(.+)", key):
            ldm = f"input_hint_block.{2 * (n_hint_blocks + 1)}.{m[1]}"
        else:
            ldm = _unet_key(key, config)
        out["control_model." + ldm] = value
    return out


def write_ldm_controlnet(controlnet_dir: Path, out: Path) -> Path:
    """Write a diffusers ControlNet folder as one LDM-layout ``.safetensors`` file."""
    controlnet_dir = Path(controlnet_dir)
    state = controlnet_to_ldm(_weights(controlnet_dir), _config(controlnet_dir))
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata={"format": "pt"})
    return Path(out)

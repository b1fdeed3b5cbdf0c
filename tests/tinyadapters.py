"""Tiny IP-Adapters and CLIP vision encoders for the tiny UNets (no hub, no network).

::

    from tinyadapters import build_tiny_ip_adapter
    files = build_tiny_ip_adapter(tmp_path, "sd15")
    files.adapter     # ComfyUI/models/ipadapter/ip-adapter_tiny-sd15.safetensors
    files.encoder     # ComfyUI/models/clip_vision/tiny-clip-vision.safetensors (a bare file)
    files.h94         # h94/IP-Adapter's layout: models/ip-adapter_tiny-sd15.safetensors and
                      # models/image_encoder/ (a transformers folder), for diffusers' load_ip_adapter

The encoder is a 2-layer, 32-wide ``CLIPVisionModelWithProjection`` reading 32-px
pictures in 8-px patches (24-wide image embeddings, GELU, one head: what the engine reads
from a bare file's shapes). The adapter is a plain IP-Adapter (``image_proj.proj``,
``image_proj.norm``, ``ip_adapter.{1,3,...}.to_{k,v}_ip``) for the tiny UNet of
``family`` (:mod:`tinymodels`), seeded random weights large enough to move the picture.
``variant="plus"`` writes an IP-Adapter Plus (a 4-layer perceiver resampler over the
encoder's penultimate hidden states, 4 tokens, in the original ``layers.i.0.to_kv`` layout),
``variant="full"`` a full-face adapter (an MLP over all the hidden states),
``variant="faceid"`` a FaceID-shaped file (a ``norm`` and an MLP projection), ``name``
another file name (``ip-adapter-plus-face_...`` for a face adapter).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AdapterFiles", "build_tiny_image_encoder", "build_tiny_ip_adapter", "tiny_adapter_state"]

ENCODER_NAME = "tiny-clip-vision.safetensors"


@dataclass(frozen=True)
class AdapterFiles:
    root: Path  # the fake home: ComfyUI/models/...
    adapter: Path  # the adapter in ComfyUI/models/ipadapter
    encoder: Path  # the encoder as a bare file in ComfyUI/models/clip_vision
    h94: Path  # a folder in h94's layout (models/<adapter>, models/image_encoder/)
    weight_name: str


def build_tiny_image_encoder(folder: Path, seed: int = 7) -> Path:
    """A tiny CLIP vision encoder saved as a transformers folder at ``folder``."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if (folder / "config.json").is_file():
        return folder
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, projection_dim=24, num_hidden_layers=2,
                              num_attention_heads=1, image_size=32, patch_size=8, hidden_act="gelu")  # fmt: skip
    fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def tiny_adapter_state(unet: Any, *, seed: int = 11, embed_dim: int = 24, variant: str = "plain") -> dict[str, Any]:
    """A flat IP-Adapter state dict (ComfyUI's key layout) for ``unet``'s cross-attentions."""
    import torch

    g = torch.Generator().manual_seed(seed)
    cross = int(unet.config.cross_attention_dim)
    state: dict[str, Any] = {}
    if variant == "faceid":
        state["image_proj.proj.0.weight"] = torch.randn(embed_dim * 2, 512, generator=g)
        state["image_proj.proj.2.weight"] = torch.randn(cross * 4, embed_dim * 2, generator=g)
        state["image_proj.norm.weight"] = torch.ones(cross)
    elif variant == "plus":
        state.update({f"image_proj.{k}": v for k, v in _plus_projection(cross, seed).items()})
    elif variant == "full":  # full face: an MLP and a norm over every hidden state (32 wide)
        state["image_proj.proj.0.weight"] = torch.randn(32, 32, generator=g) * 0.3
        state["image_proj.proj.0.bias"] = torch.zeros(32)
        state["image_proj.proj.2.weight"] = torch.randn(cross, 32, generator=g) * 0.3
        state["image_proj.proj.2.bias"] = torch.zeros(cross)
        state["image_proj.proj.3.weight"] = torch.ones(cross)
        state["image_proj.proj.3.bias"] = torch.zeros(cross)
    else:
        state["image_proj.proj.weight"] = torch.randn(cross * 4, embed_dim, generator=g) * 0.5
        state["image_proj.proj.bias"] = torch.randn(cross * 4, generator=g) * 0.1
        state["image_proj.norm.weight"] = torch.ones(cross)
        state["image_proj.norm.bias"] = torch.zeros(cross)
    key_id = 1
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        module = unet.get_submodule(name[: -len(".processor")])
        hidden = int(module.to_k.weight.shape[0])
        state[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross, generator=g) * 0.6
        state[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross, generator=g) * 0.6
        key_id += 2
    return {k: v.contiguous() for k, v in state.items()}


def _plus_projection(cross: int, seed: int, encoder_hidden: int = 32) -> dict[str, Any]:
    """A random IP-Adapter Plus resampler in the original (tencent-ailab) key layout: built
    as diffusers' ``IPAdapterPlusImageProjection`` and renamed back, so that diffusers'
    converter reads it again."""
    import re

    import torch
    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(seed)
        module = IPAdapterPlusImageProjection(embed_dims=encoder_hidden, output_dims=cross, hidden_dims=64, depth=4,
                                              dim_head=64, heads=1, num_queries=4)  # fmt: skip
    ours = module.state_dict()
    out: dict[str, Any] = {}
    for key, value in ours.items():
        m = re.match(r"layers\.(\d)\.(.*)", key)
        if m is None:
            out[key] = value
            continue
        i, rest = m.groups()
        if rest.startswith("attn.to_v"):
            continue
        renamed = {
            "ln0.weight": "0.norm1.weight", "ln0.bias": "0.norm1.bias", "ln1.weight": "0.norm2.weight",
            "ln1.bias": "0.norm2.bias", "attn.to_q.weight": "0.to_q.weight", "attn.to_out.0.weight": "0.to_out.weight",
            "ff.0.weight": "1.0.weight", "ff.0.bias": "1.0.bias", "ff.1.net.0.proj.weight": "1.1.weight",
            "ff.1.net.2.weight": "1.3.weight",
        }  # fmt: skip
        if rest == "attn.to_k.weight":
            out[f"layers.{i}.0.to_kv.weight"] = torch.cat([value, ours[f"layers.{i}.attn.to_v.weight"]])
        else:
            out[f"layers.{i}.{renamed[rest]}"] = value
    return out


def build_tiny_ip_adapter(
    root: Path, family: str = "sd15", *, variant: str = "plain", name: str | None = None, seed: int = 11
) -> AdapterFiles:
    """An IP-Adapter for the tiny ``family`` UNet and its encoder, laid out as ComfyUI and
    as h94's repository lay them out, under ``root``."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from tinymodels import tiny_model

    weight_name = name or f"ip-adapter_tiny-{family}.safetensors"
    h94 = root / "h94"
    encoder_dir = build_tiny_image_encoder(h94 / "models" / "image_encoder")
    comfy = root / "ComfyUI" / "models"
    adapter = comfy / "ipadapter" / weight_name
    encoder = comfy / "clip_vision" / ENCODER_NAME
    if not adapter.is_file():
        unet = UNet2DConditionModel.from_pretrained(str(tiny_model(family) / "unet"))
        state = tiny_adapter_state(unet, seed=seed, variant=variant)
        adapter.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(adapter))
        shutil.copy(adapter, h94 / "models" / weight_name)
    if not encoder.is_file():
        encoder.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(encoder_dir / "model.safetensors", encoder)
    return AdapterFiles(root, adapter, encoder, h94, weight_name)

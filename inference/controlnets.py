"""Union ControlNets: one SDXL ControlNet for every kind of control (xinsir's ControlNet
Union and ProMax, diffusers' ``ControlNetUnionModel``).

A union ControlNet is an SDXL ControlNet with three extra parts: a learnt embedding per
control type (``task_embedding``), an embedding of which types are present
(``control_add_embedding`` of the ``control_type`` one-hot vector) added to the time
embedding, and a small transformer (``transformer_layes``, sic) that mixes the mean
feature of every condition image with the latents' before each condition's features,
shifted by the mixed token (``spatial_ch_projs``), are added to the latents. So several
conditions — a pose and a depth map — go through the net in **one** call, each with its
type index (:data:`sfumato.inference.detect.UNION_CONTROL_TYPES`) and its scale; that is
how ``StableDiffusionXLControlNetUnionPipeline`` calls it and how the UNet denoiser
(:mod:`.denoisers.unet`) does too.

Files: xinsir's repository holds a diffusers folder (``config.json`` or
``config_promax.json`` beside ``diffusion_pytorch_model[_promax].safetensors``); ComfyUI
users keep the ``.safetensors`` alone in ``models/controlnet``. A folder loads with
``ControlNetUnionModel.from_pretrained``; a single file is built here: its config comes
from a ``<file stem>.json`` beside it when there is one, else from its tensor shapes
(:func:`union_config_from_shapes`) over the shipped SDXL ControlNet config, which gives
what shapes cannot tell (SDXL's 64-wide attention heads, 32 norm groups, the mixing
transformer's 8 heads).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from sfumato.inference.errors import CorruptModelError, UnsupportedModeError
from sfumato.vocabulary.config import read_json
from sfumato.vocabulary.families import SDXL

__all__ = ["load_union_controlnet_file", "union_config_from_shapes", "union_control_type"]

log = logging.getLogger(__name__)

#: SDXL's attention heads are 64 wide (``attention_head_dim`` in a diffusers config is a
#: head *count*, 5/10/20 for 320/640/1280 channels)
_HEAD_WIDTH = 64


def _shape(shapes: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = shapes[key]
    return tuple(int(v) for v in (value.shape if hasattr(value, "shape") else value))


def union_config_from_shapes(shapes: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``ControlNetUnionModel`` config for a state dict in the diffusers layout, from its
    tensor shapes (``shapes``: name → tensor or shape), over ``base`` (the shipped SDXL
    ControlNet config by default) for what shapes cannot tell: the head counts of blocks
    as wide as the base's (else one head per 64 channels), the norm groups, the mixing
    transformer's heads. Raises ``KeyError`` when a tensor it needs is missing."""
    if base is None:
        from sfumato.inference.single_file import family_config_dir

        base = read_json(family_config_dir(SDXL) / "controlnet" / "config.json") or {}
    config = {k: v for k, v in base.items() if not k.startswith("_")}
    names = set(shapes)
    blocks = sorted({int(m.group(1)) for k in names if (m := re.match(r"down_blocks\.(\d+)\.", k))})
    widths = [_shape(shapes, f"down_blocks.{i}.resnets.0.conv1.weight")[0] for i in blocks]
    resnets = {int(m.group(1)) for k in names if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", k))}
    types, layers = [], []
    for i in blocks:
        depth = {int(m.group(1)) for k in names if (m := re.match(rf"down_blocks\.{i}\.attentions\.0\.transformer_blocks\.(\d+)\.", k))}
        types.append("CrossAttnDownBlock2D" if depth else "DownBlock2D")
        layers.append(max(depth) + 1 if depth else 1)
    mid = {int(m.group(1)) for k in names if (m := re.match(r"mid_block\.attentions\.0\.transformer_blocks\.(\d+)\.", k))}
    if mid:
        layers[-1] = max(mid) + 1
    attn = next(k for k in sorted(names) if k.endswith("attn2.to_k.weight"))
    proj_in = next(k for k in sorted(names) if k.endswith("attentions.0.proj_in.weight"))
    base_widths = list(base.get("block_out_channels") or [])
    base_heads = base.get("attention_head_dim")
    if widths == base_widths and isinstance(base_heads, list) and len(base_heads) == len(widths):
        heads = list(base_heads)
    else:
        heads = [max(1, w // _HEAD_WIDTH) for w in widths]
    cond = ["controlnet_cond_embedding.conv_in.weight"]
    cond += sorted((k for k in names if re.match(r"controlnet_cond_embedding\.blocks\.\d+\.weight$", k)),
                   key=lambda k: int(k.split(".")[2]))  # fmt: skip
    embedding = [_shape(shapes, cond[0])[0]] + [_shape(shapes, k)[0] for k in cond[2::2]]
    tasks, trans_width = _shape(shapes, "task_embedding")
    control_add = _shape(shapes, "control_add_embedding.linear_1.weight")
    config.update(
        block_out_channels=widths,
        down_block_types=types,
        layers_per_block=len(resnets),
        transformer_layers_per_block=layers,
        attention_head_dim=heads,
        num_attention_heads=None,
        cross_attention_dim=_shape(shapes, attn)[1],
        use_linear_projection=len(_shape(shapes, proj_in)) == 2,
        in_channels=_shape(shapes, "conv_in.weight")[1],
        conditioning_channels=_shape(shapes, cond[0])[1],
        conditioning_embedding_out_channels=embedding,
        num_control_type=tasks,
        num_trans_channel=trans_width,
        num_trans_layer=len({k.split(".")[1] for k in names if k.startswith("transformer_layes.")}),
        num_proj_channel=_shape(shapes, "spatial_ch_projs.weight")[0],
        addition_time_embed_dim=control_add[1] // tasks,
    )
    if "add_embedding.linear_1.weight" in names:
        config.update(addition_embed_type="text_time",
                      projection_class_embeddings_input_dim=_shape(shapes, "add_embedding.linear_1.weight")[1])  # fmt: skip
    config.setdefault("num_trans_head", 8)
    return config


def load_union_controlnet_file(
    path: Path, *, torch_dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Any:
    """A union ControlNet ``.safetensors`` (diffusers layout, as xinsir ships it) as a
    ``ControlNetUnionModel``, offline; its config from ``<stem>.json`` beside it, else from
    its shapes (module docstring)."""
    import diffusers
    from sfumato.inference.checkpoint_reading import load_checkpoint_state_dict

    path = Path(path)
    state = load_checkpoint_state_dict(path)
    if any(k.startswith("control_model.") for k in state):
        state = {k[len("control_model."):] if k.startswith("control_model.") else k: v for k, v in state.items()}
    if not any(k.startswith("down_blocks.") for k in state):
        raise UnsupportedModeError(
            f"{path.name} is a union ControlNet in a key layout Sfumato does not read.",
            "Use the diffusers-layout file (xinsir's diffusion_pytorch_model.safetensors or its _promax version).",
        )
    sidecar = read_json(path.with_suffix(".json"))
    try:
        if sidecar and "num_control_type" in sidecar:
            config = {k: v for k, v in sidecar.items() if not k.startswith("_")}
        else:
            config = union_config_from_shapes(state)
        with torch.device("meta"):
            net = diffusers.ControlNetUnionModel.from_config(config)
        weights = {k: v.to(torch_dtype) if v.is_floating_point() else v for k, v in state.items()}
        result = net.load_state_dict(weights, strict=False, assign=True)
    except (KeyError, RuntimeError, ValueError, IndexError, TypeError, StopIteration) as error:
        raise CorruptModelError(
            f"{path.name} does not match the union ControlNet architecture ({error}).",
            f"The file may be damaged, or it needs its config beside it as {path.stem}.json.",
        ) from error
    if result.missing_keys:
        raise CorruptModelError(
            f"{path.name} lacks {len(result.missing_keys)} tensors of a union ControlNet "
            f"(e.g. {result.missing_keys[0]}).",
            f"The file may be damaged, or it needs its config beside it as {path.stem}.json.",
        )
    if result.unexpected_keys:
        log.debug("%s: %d unused tensors (e.g. %s)", path.name, len(result.unexpected_keys), result.unexpected_keys[0])
    net.eval()
    if device is not None:
        net.to(device)
    return net


def union_control_type(net: Any, modes: list[int], batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(batch, num_control_type)``: 1 at each of ``modes``, as the union pipeline builds it."""
    count = int(net.config.num_control_type)
    one_hot = torch.zeros(count).scatter_(0, torch.tensor(modes, dtype=torch.long), 1)
    return one_hot.reshape(1, -1).to(device=device, dtype=dtype).repeat(batch, 1)

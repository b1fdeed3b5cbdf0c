"""Which transformer family a state dict's tensor names (and shapes) belong to.

FLUX.1, Chroma, SD 3 / 3.5, FLUX.2, Z-Image and Qwen-Image, in any of their key layouts:
the original authors' (Black Forest Labs, Stability, Alibaba), ComfyUI's (the original
names under ``model.diffusion_model.``) and diffusers'. The key names are diffusers' own
(``diffusers/loaders/single_file_utils.py``: ``CHECKPOINT_KEY_NAMES`` and the
``convert_*_checkpoint_to_diffusers`` functions).

Imports nothing of the engine room (only the family names), so both :mod:`.detect`
(which tells every family) and :mod:`.model_parts` (which tells a file's role) read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from sfumato.vocabulary.families import CHROMA, FLUX, FLUX2, QWENIMAGE, SD3, ZIMAGE

__all__ = ["COMFY_PREFIX", "Layout", "TransformerKeys", "dim_of", "shape_of", "transformer_family", "transformer_of"]

#: ComfyUI's prefix of a diffusion model's tensors.
COMFY_PREFIX = "model.diffusion_model."
_COMFY = COMFY_PREFIX


class Layout(Enum):
    """How the tensors are named."""

    ORIGINAL = "original"  # Black Forest Labs' / Stability's / Alibaba's own names
    COMFYUI = "comfyui"  # the original names under ``model.diffusion_model.``
    DIFFUSERS = "diffusers"


def shape_of(shapes: Mapping[str, tuple[int, ...]], *keys: str) -> tuple[int, ...] | None:
    for key in keys:
        if key in shapes:
            return tuple(shapes[key])
    return None


def dim_of(shapes: Mapping[str, tuple[int, ...]], axis: int, *keys: str) -> int | None:
    shape = shape_of(shapes, *keys)
    return shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None


def _count(names: Iterable[str], pattern: str) -> int:
    """How many numbered blocks ``pattern`` (with one ``(\\d+)`` group) finds."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for name in names if (m := regex.match(name))}
    return max(found) + 1 if found else 0


@dataclass(frozen=True)
class TransformerKeys:
    """What the keys tell of a transformer: family, layout, variant, text width, prefix."""

    family: str
    layout: Layout
    variant: str | None
    width: int | None
    prefix: str


#: Key beginnings only ControlNets have (XLabs' and InstantX's FLUX, SD3, Z-Image "Fun",
#: Qwen-Image ControlNets), whose other blocks look like their transformer's.
_CONTROLNET_KEYS = ("controlnet_", "control_", "input_hint_block", "pos_embed_input")


def transformer_of(shapes: Mapping[str, tuple[int, ...]], *, controlnets: bool = False) -> TransformerKeys | None:
    """The transformer in a state dict's keys, any of the three layouts; ``None`` if none
    (and for a ControlNet of these families, unless ``controlnets``)."""
    names = set(shapes)
    prefix = _COMFY if any(k.startswith(_COMFY) for k in names) else ""
    bare = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)} if prefix else dict(shapes)
    if not controlnets and any(k.startswith(_CONTROLNET_KEYS) for k in bare):
        return None  # a ControlNet of one of these families copies their first blocks
    layout = Layout.COMFYUI if prefix else Layout.ORIGINAL

    def has(*keys: str) -> bool:
        return any(k in bare for k in keys)

    # FLUX.2: its own modulation layers (checked before FLUX.1: it has double_blocks too).
    if has("single_stream_modulation.lin.weight", "single_stream_modulation.linear.weight"):
        diffusers = has("single_stream_modulation.linear.weight")
        width = dim_of(bare, 1, "txt_in.weight", "context_embedder.weight")
        variant = {7680: "klein-4b", 12288: "klein-9b", 15360: "dev"}.get(width or 0)
        return TransformerKeys(FLUX2, Layout.DIFFUSERS if diffusers and not prefix else layout, variant, width, prefix)
    # Chroma: FLUX.1-schnell with a distilled guidance approximator instead of modulation.
    if has("distilled_guidance_layer.in_proj.weight", "distilled_guidance_layer.in_proj.bias"):
        diffusers = any(k.startswith("transformer_blocks.") for k in bare)
        width = dim_of(bare, 1, "txt_in.weight", "context_embedder.weight")
        return TransformerKeys(CHROMA, Layout.DIFFUSERS if diffusers and not prefix else layout, None, width, prefix)
    if has("double_blocks.0.img_attn.qkv.weight", "double_blocks.0.img_attn.norm.key_norm.scale"):
        channels = dim_of(bare, 1, "img_in.weight")
        return TransformerKeys(FLUX, layout, _flux_variant(channels, has("guidance_in.in_layer.weight")),
                            dim_of(bare, 1, "txt_in.weight"), prefix)
    if has("single_transformer_blocks.0.proj_mlp.weight") and has("time_text_embed.timestep_embedder.linear_1.weight"):
        channels = dim_of(bare, 1, "x_embedder.weight")
        guidance = has("time_text_embed.guidance_embedder.linear_1.weight")
        return TransformerKeys(FLUX, Layout.DIFFUSERS, _flux_variant(channels, guidance),
                            dim_of(bare, 1, "context_embedder.weight"), prefix)
    # SD 3 / 3.5 (MMDiT).
    if any(k.startswith("joint_blocks.") for k in bare):
        depth = _count(bare, r"joint_blocks\.(\d+)\.")
        attn2 = any(".x_block.attn2." in k for k in bare)
        return TransformerKeys(SD3, layout, _sd3_variant(depth, attn2), dim_of(bare, 1, "context_embedder.weight"), prefix)
    if has("pos_embed.proj.weight") and has("transformer_blocks.0.norm1_context.linear.weight"):
        depth = _count(bare, r"transformer_blocks\.(\d+)\.")
        attn2 = any(".attn2." in k for k in bare)
        return TransformerKeys(SD3, Layout.DIFFUSERS, _sd3_variant(depth, attn2), dim_of(bare, 1, "context_embedder.weight"), prefix)
    # Qwen-Image: ComfyUI keeps diffusers' names (under its prefix).
    if has("transformer_blocks.0.img_mod.1.weight"):
        variant = "2.1" if has("txt_in.text_norm.weight") else None
        width = dim_of(bare, 1, "txt_in.weight")
        return TransformerKeys(QWENIMAGE, Layout.COMFYUI if prefix else Layout.DIFFUSERS, variant, width, prefix)
    # Z-Image (Lumina-style single stream; Lumina 2 itself reads Gemma-2's 2304-wide text).
    if has("layers.0.adaLN_modulation.0.weight") and any(k.startswith("cap_embedder.") for k in bare):
        width = dim_of(bare, 1, "cap_embedder.1.weight")
        if width == 2304:
            return TransformerKeys("lumina2", layout, None, width, prefix)
        diffusers = any(k.startswith("all_x_embedder.") for k in bare)
        return TransformerKeys(ZIMAGE, Layout.DIFFUSERS if diffusers and not prefix else layout, None, width, prefix)
    return None


def transformer_family(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """The transformer family whose keys (name → shape; shapes may be empty tuples when
    unknown) these are, in any layout: ``"flux"``, ``"chroma"``, ``"sd3"``, ``"flux2"``,
    ``"zimage"``, ``"qwenimage"`` (``"lumina2"`` for Lumina 2, which no one loads); ``None``
    for a UNet model or anything else. A ControlNet of one of these families answers its
    family too (the catalog files it under it)."""
    found = transformer_of(shapes, controlnets=True)
    return found.family if found is not None else None


def _flux_variant(channels: int | None, guidance: bool) -> str | None:
    if channels == 384:
        return "fill"  # packed noise (64) + masked image (64) + the 8×8 mask packed (256)
    if channels == 128:
        return "control"  # Depth / Canny: the control image's latents beside the noise
    return "dev" if guidance else "schnell"


def _sd3_variant(depth: int, attn2: bool) -> str | None:
    if depth >= 38:
        return "large"
    if attn2:
        return "medium"  # 3.5 medium: MMDiT-X with a second self-attention
    if depth == 24:
        return "3-medium"
    return None

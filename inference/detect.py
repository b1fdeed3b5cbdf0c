"""What a weights file is: model family and kind, from its tensor names (and shapes).

Imports no torch: the catalog (model picker) uses it to label files cheaply. A
``.safetensors`` file starts with an 8-byte little-endian header length ``N`` and ``N``
bytes of JSON naming every tensor with its dtype, shape and byte offsets, so the keys
can be read without touching the weights (:func:`read_safetensors_header`).

Two key layouts exist for the same networks:

- the original LDM/"compvis" layout that artists download from model sites
  (``model.diffusion_model.input_blocks.…``, ``cond_stage_model.…``,
  ``conditioner.embedders.N.…``, ``first_stage_model.…``);
- the diffusers layout (``down_blocks.…``, ``conv_in.weight``, optionally with
  ``unet.``/``text_encoder.`` prefixes).

Families are plain strings matching ``ModelRef.family``: :data:`SD15` (every SD 1.x),
:data:`SD2` (every SD 2.x: OpenCLIP ``cond_stage_model.model.*`` in the LDM layout,
1024-wide cross-attention or a 23+-layer text encoder in the diffusers layout) and
:data:`SDXL`. The transformer families (FLUX.1, Chroma, SD 3.5, FLUX.2,
Z-Image, Qwen-Image) are told by :mod:`.model_parts`. Recognised but unsupported
families (the SDXL refiner) raise :class:`UnsupportedModeError` with a message naming them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.inference.transformer_keys import transformer_family
from sfumato.vocabulary.families import FLUX, SD2, SD15, SDXL, SUPPORTED_FAMILIES
from sfumato.vocabulary.kinds import ControlKind
from sfumato.vocabulary.regular_file import NotRegularFileError, open_regular, special_kind

__all__ = [
    "SD2",
    "SD15",
    "SDXL",
    "SUPPORTED_FAMILIES",
    "UNION_CONTROL_TYPES",
    "SafetensorsHeader",
    "TensorInfo",
    "WeightsKind",
    "IPAdapterInfo",
    "ImageEncoderInfo",
    "check_model_path",
    "detect_family",
    "detect_weights_kind",
    "guess_family",
    "image_encoder_info",
    "ip_adapter_info",
    "is_inpaint_unet",
    "is_mistoline",
    "is_original_depth_anything",
    "is_union_controlnet",
    "is_union_controlnet_config",
    "union_kinds",
    "open_model_file",
    "read_safetensors_header",
    "read_safetensors_keys",
]

log = logging.getLogger(__name__)

# A real header is a few hundred KB at most; refuse absurd sizes before reading them.
_MAX_HEADER_BYTES = 100 * 1024 * 1024

_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


class WeightsKind(Enum):
    """What a weights file holds."""

    CHECKPOINT = "checkpoint"  # a whole model (UNet, usually with VAE and text encoders)
    CONTROLNET = "controlnet"
    LORA = "lora"
    IP_ADAPTER = "ip-adapter"  # an image-prompt adapter (IP-Adapter), read beside a model
    CLIP_VISION = "clip-vision"  # a CLIP vision image encoder, what an IP-Adapter reads pictures with
    REDUX = "redux"  # FLUX.1 Redux (ComfyUI's style_models), what FLUX.1 reads reference pictures with


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a safetensors header; offsets are relative to the data start."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed, validated safetensors header (no tensor data read)."""

    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str] = field(default_factory=dict)
    header_bytes: int = 0  # N: the JSON header's length

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: info.shape for name, info in self.tensors.items()}


def _open_error(path: Path, error: OSError) -> ModelNotFoundError | CorruptModelError:
    """The engine's words for a model path that cannot be opened as a model file."""
    if isinstance(error, FileNotFoundError):
        return ModelNotFoundError(f"Model file not found: {path}")
    folder = isinstance(error, IsADirectoryError) or getattr(error, "kind", None) == "a folder"
    if folder:
        return CorruptModelError(f"{path} is a folder, not a model file.")
    if isinstance(error, NotRegularFileError):
        return CorruptModelError(
            f"{path} is {error.kind}, not a model file; Sfumato reads models only from regular files.",
            "Choose a .safetensors file or a diffusers model folder.",
        )
    return CorruptModelError(f"{path} cannot be opened: {error.strerror or error}.")


def check_model_path(path: str | os.PathLike[str]) -> None:
    """Refuse a local model source that is neither a regular file nor a folder (links
    followed): a named pipe, a device or a socket raises :class:`CorruptModelError` with
    the words :func:`open_model_file` uses, before anything tries to read it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise _open_error(path, error) from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise _open_error(path, NotRegularFileError(path, special_kind(mode)))


def open_model_file(path: str | os.PathLike[str]) -> Any:
    """Open a model (or config) file for binary reading, refusing anything but a regular file
    (a named pipe would otherwise wait for a writer forever: :func:`open_regular`).

    Raises :class:`ModelNotFoundError` or :class:`CorruptModelError`.
    """
    try:
        return open_regular(path)
    except OSError as error:
        raise _open_error(Path(path), error) from None


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Read and check a ``.safetensors`` header without reading the tensors.

    Raises :class:`ModelNotFoundError` when the file is missing and
    :class:`CorruptModelError` when it is not a safetensors file or is truncated (the
    header's offsets reach past the end of the file).
    """
    path = Path(path)
    try:
        with open_model_file(path) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise _corrupt(path, "it is too short to be a safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > _MAX_HEADER_BYTES or 8 + n > size:
                raise _corrupt(path, "its header is damaged or the file is truncated")
            raw = f.read(n)
    except OSError as error:
        raise _corrupt(path, f"it cannot be read ({error.strerror or error})") from None
    try:
        data = json.loads(raw.decode("utf-8").rstrip(" \x00"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _corrupt(path, "its header is not valid JSON") from None
    except RecursionError:
        raise _corrupt(
            path, "its header is JSON nested far too deeply (a safetensors header is a flat object)"
        ) from None
    if not isinstance(data, dict):
        raise _corrupt(path, "its header is not a JSON object")
    metadata_raw = data.pop("__metadata__", None) or {}
    metadata = {str(k): str(v) for k, v in metadata_raw.items()} if isinstance(metadata_raw, dict) else {}
    tensors: dict[str, TensorInfo] = {}
    data_size = size - 8 - n
    for name, entry in data.items():
        try:
            dtype = str(entry["dtype"])
            shape = tuple(_whole(d) for d in entry["shape"])
            begin, end = (_whole(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _corrupt(
                path,
                f"the entry for {name!r} in its header is malformed (expected dtype, shape "
                "and data_offsets with whole numbers)",
            ) from None
        if any(d < 0 for d in shape):
            raise _corrupt(path, f"the tensor {name!r} has a negative size in its shape {shape}")
        if end > data_size:
            raise _corrupt(path, "the file is truncated (the download may be incomplete)")
        count = 1
        for d in shape:
            count *= d
        width = _DTYPE_BYTES.get(dtype)
        if not 0 <= begin <= end or (width is not None and end - begin != count * width):
            raise _corrupt(path, f"the tensor {name!r} has inconsistent offsets")
        tensors[name] = TensorInfo(dtype, shape, begin, end)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, header_bytes=n)


def _whole(value: Any) -> int:
    """A JSON whole number (``bool`` and text are not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a whole number, got {value!r}")
    return value


def read_safetensors_keys(path: str | os.PathLike[str]) -> list[str]:
    """The tensor names in a ``.safetensors`` file, read from its header only."""
    return list(read_safetensors_header(path).tensors)


def _corrupt(path: Path, why: str) -> CorruptModelError:
    return CorruptModelError(f"{path.name} cannot be read: {why}.")


# --------------------------------------------------------------------------- families

_REFINER_MESSAGE = "This checkpoint is the SDXL refiner, which is not supported yet."


def _shape_of(shapes: Mapping[str, Any] | None, key: str) -> tuple[int, ...] | None:
    if shapes is None or key not in shapes:
        return None
    value = shapes[key]
    shape = getattr(value, "shape", value)
    try:
        return tuple(int(d) for d in shape)
    except TypeError:
        return None


def _strip_unet_prefix(key: str) -> str:
    for prefix in ("model.diffusion_model.", "unet.", "control_model."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def detect_family(keys: Iterable[str] | Mapping[str, Any]) -> str:
    """The model family of a checkpoint (or ControlNet) from its tensor names.

    ``keys`` may be a plain iterable of names, or a mapping name → tensor / shape (a
    state dict or :attr:`SafetensorsHeader.shapes`); shapes, when given, also tell SD 2.x
    apart in the diffusers layout (cross-attention width 1024).

    Returns :data:`SD15`, :data:`SD2`, :data:`SDXL` or a transformer family's name
    (``"flux"``, ``"chroma"``, ``"sd3"``, ``"flux2"``, ``"zimage"``, ``"qwenimage"``: a
    transformer alone or a whole checkpoint, any key layout, see :mod:`.model_parts`).
    Raises :class:`UnsupportedModeError` for recognised families that are not supported
    yet (SDXL refiner, Lumina 2) and
    :class:`CorruptModelError` when the keys are no Stable Diffusion model at all.
    """
    shapes = keys if isinstance(keys, Mapping) else None
    names = list(keys)

    # Transformer families (FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image, Qwen-Image), by their
    # unmistakable blocks in any key layout.
    transformer = transformer_family(shapes if shapes is not None else dict.fromkeys(names, ()))
    if transformer == "lumina2":
        raise UnsupportedModeError("This checkpoint is Lumina 2, which is not supported.")
    if transformer is not None:
        return transformer

    # --- original LDM layout
    if any(k.startswith("conditioner.embedders.") for k in names):
        if any(k.startswith("conditioner.embedders.1.") for k in names):
            return SDXL
        raise UnsupportedModeError(_REFINER_MESSAGE)
    if any(k.startswith("cond_stage_model.model.") for k in names):
        return SD2  # OpenCLIP-H (SD 1.x has OpenAI's CLIP under cond_stage_model.transformer.)
    if any(k.startswith("cond_stage_model.transformer.") for k in names):
        return SD15

    # --- UNet / ControlNet only (LDM or diffusers naming), or a diffusers pipeline dump
    if any(k.startswith("text_encoder_2.") for k in names):
        return SDXL
    unet_keys = {_strip_unet_prefix(k) for k in names}
    if "label_emb.0.0.weight" in unet_keys or any(k.startswith("add_embedding.") for k in unet_keys):
        # SDXL's UNet (and its ControlNets) embed the size/crop conditioning.
        return SDXL
    ldm_unet = any(k.startswith("input_blocks.") for k in unet_keys)
    diffusers_unet = any(k.startswith(("down_blocks.", "controlnet_down_blocks.")) for k in unet_keys)
    if not (ldm_unet or diffusers_unet):
        raise CorruptModelError(
            "This file is not a Stable Diffusion model: it has no UNet weights.",
            "Choose a Stable Diffusion 1.x, 2.x or SDXL checkpoint.",
        )
    # SD 2.x: OpenCLIP text encoder has 23+ layers (SD 1.x's CLIP has 12); its UNet
    # cross-attends to 1024-wide embeddings (SD 1.x: 768).
    if any(re.match(r"text_encoder\.text_model\.encoder\.layers\.(1[2-9]|2\d)\.", k) for k in names):
        return SD2
    for key in names:
        if key.endswith("attn2.to_k.weight"):
            shape = _shape_of(shapes, key)
            if shape is not None and len(shape) == 2 and shape[1] == 1024:
                return SD2
            break
    return SD15


def is_inpaint_unet(state_dict: Mapping[str, Any]) -> bool:
    """True when the UNet's first convolution takes 9 channels (latent + mask + masked image).

    ``state_dict`` maps names to tensors or to shapes (e.g. :attr:`SafetensorsHeader.shapes`);
    works for the LDM and the diffusers layout.
    """
    for key in (
        "model.diffusion_model.input_blocks.0.0.weight",
        "conv_in.weight",
        "unet.conv_in.weight",
    ):
        shape = _shape_of(state_dict, key)
        if shape is not None and len(shape) == 4:
            return shape[1] == 9
    return False


def detect_weights_kind(keys: Iterable[str]) -> WeightsKind:
    """Checkpoint, ControlNet or LoRA, from the tensor names (either layout)."""
    names = list(keys)
    if any(
        k.startswith(("lora_unet_", "lora_te", "lora_te1_", "lora_te2_"))
        or ".lora_down." in k
        or ".lora_A." in k
        or ".lora.down." in k
        or ".lora_linear_layer." in k
        for k in names
    ):
        return WeightsKind.LORA
    if any(k.startswith(("image_proj.", "ip_adapter.")) for k in names):
        return WeightsKind.IP_ADAPTER
    if "visual_projection.weight" in names and any(k.startswith("vision_model.") for k in names):
        return WeightsKind.CLIP_VISION
    if "redux_up.weight" in names and "redux_down.weight" in names:
        return WeightsKind.REDUX
    if "vision_model.post_layernorm.weight" in names and "vision_model.pre_layrnorm.weight" not in names:
        return WeightsKind.CLIP_VISION  # SigLIP (ComfyUI's sigclip_vision_patch14_384), what Redux reads with
    if any(
        k.startswith(("control_model.", "controlnet_cond_embedding.", "controlnet_down_blocks."))
        or k.startswith("input_hint_block.")
        for k in names
    ):
        return WeightsKind.CONTROLNET
    return WeightsKind.CHECKPOINT


def guess_family(
    keys: Iterable[str] | Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> str | None:
    """A best-effort family label for a model picker: never raises.

    Uses the ``modelspec.architecture`` / ``ss_base_model_version`` metadata when present,
    then :func:`detect_family`; for LoRAs, their key naming.  Unsupported families come
    back as ``"sdxl-refiner"``, ``"sd3"`` or ``"flux"``; unknown as ``None``.
    """
    meta = {k: v.lower() for k, v in (metadata or {}).items()}
    arch = meta.get("modelspec.architecture", "") + " " + meta.get("ss_base_model_version", "")
    if "xl" in arch and "refiner" in arch:
        return "sdxl-refiner"
    if "xl" in arch:
        return SDXL
    if "v2" in arch or "-2-" in arch or "sd_2" in arch:
        return SD2
    if "v1" in arch or "sd_1" in arch:
        return SD15
    names = list(keys)
    kind = detect_weights_kind(names)
    if kind is WeightsKind.LORA:
        return _lora_family(names)
    if kind is WeightsKind.IP_ADAPTER:
        info = ip_adapter_info(keys) if isinstance(keys, Mapping) else None
        return None if info is None else info.family
    if kind is WeightsKind.CLIP_VISION:
        return None  # an image encoder serves every family whose adapters read its width
    if kind is WeightsKind.REDUX:
        return "flux"
    try:
        return detect_family(keys if isinstance(keys, Mapping) else names)
    except UnsupportedModeError as error:
        text = error.message
        for word, family in (("refiner", "sdxl-refiner"), ("3,", "sd3"), ("FLUX", "flux")):
            if word in text:
                return family
        return None
    except CorruptModelError:
        return None


def _lora_family(names: list[str]) -> str | None:
    if any(k.startswith(("lora_te2_", "text_encoder_2.")) or "lora_unet_input_blocks" in k for k in names):
        return SDXL
    # SDXL's deepest attention blocks stack ten transformer blocks; SD 1.x has one.
    if any(re.search(r"transformer_blocks[._][1-9][._]", k) for k in names):
        return SDXL
    if any(k.startswith("lora_te_") or "lora_unet_down_blocks" in k for k in names):
        return SD15
    if any("attentions" in k for k in names):
        return SD15
    return None


# --------------------------------------------------------------------------- IP-Adapters

#: the image encoders IP-Adapters were trained with, by (what the adapter reads, width):
#: ComfyUI's file names for them (``models/clip_vision``), as ComfyUI_IPAdapter_plus asks
_ENCODER_FILES = {
    ("embeds", 1024): "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    ("hidden", 1280): "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    ("embeds", 1280): "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors",
    ("hidden", 1664): "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors",
    ("embeds", 768): "clip-vit-large-patch14.safetensors",
    ("hidden", 1024): "clip-vit-large-patch14.safetensors",
}

_CROSS_ATTENTION_FAMILIES = {768: SD15, 1024: SD2, 2048: SDXL}


@dataclass(frozen=True)
class IPAdapterInfo:
    """What an IP-Adapter file is, read from its tensor names and shapes (no weights).

    ``variant``: ``"plain"`` (the image embedding through a linear projection, 4 tokens),
    ``"plus"`` (the encoder's penultimate hidden states through a resampler), ``"full"``
    (full-face: all hidden states), ``"faceid"`` / ``"faceid-plus"`` (InsightFace face
    embeddings: not supported). ``reads``: ``"embeds"`` (the encoder's projected image
    embedding) or ``"hidden"`` (its penultimate hidden states), ``encoder_width`` their
    width; ``cross_attention_dim`` the text width of the UNet it steers (768 SD 1.x,
    2048 SDXL); ``layers`` how many cross-attention layers it has weights for.
    """

    variant: str
    reads: str
    encoder_width: int
    cross_attention_dim: int
    layers: int
    tokens: int

    @property
    def family(self) -> str | None:
        return _CROSS_ATTENTION_FAMILIES.get(self.cross_attention_dim)

    @property
    def faceid(self) -> bool:
        return self.variant.startswith("faceid")

    @property
    def encoder_file(self) -> str:
        """The file name of the image encoder this adapter was trained with (ComfyUI's)."""
        return _ENCODER_FILES.get(
            (self.reads, self.encoder_width),
            f"a CLIP vision encoder whose {'image embeddings' if self.reads == 'embeds' else 'hidden states'} "
            f"are {self.encoder_width} wide",
        )


def _flat_shapes(shapes: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """``{"image_proj": {k: t}, "ip_adapter": {...}}`` or flat ``"image_proj.k"`` names → flat shapes."""
    flat: dict[str, tuple[int, ...]] = {}
    for key, value in shapes.items():
        if isinstance(value, Mapping):
            for inner, tensor in value.items():
                shape = _shape_of({inner: tensor}, inner)
                if shape is not None:
                    flat[f"{key}.{inner}"] = shape
        else:
            shape = _shape_of(shapes, key)
            if shape is not None:
                flat[key] = shape
    return flat


def ip_adapter_info(shapes: Mapping[str, Any]) -> IPAdapterInfo | None:
    """An IP-Adapter's :class:`IPAdapterInfo` from its names → shapes (a safetensors
    header's, or a loaded state dict, flat or split into ``image_proj``/``ip_adapter``);
    ``None`` when the keys are no IP-Adapter's."""
    flat = _flat_shapes(shapes)
    proj = {k[len("image_proj."):]: v for k, v in flat.items() if k.startswith("image_proj.")}
    attn = {k[len("ip_adapter."):]: v for k, v in flat.items() if k.startswith("ip_adapter.")}
    first_k = attn.get("1.to_k_ip.weight")
    if not proj or first_k is None or len(first_k) != 2:
        return None
    cross = first_k[1]
    layers = sum(1 for k in attn if k.endswith(".to_k_ip.weight"))
    lora = any("_lora." in k for k in attn)
    if "perceiver_resampler.proj_in.weight" in proj:
        return IPAdapterInfo("faceid-plus", "hidden", proj["perceiver_resampler.proj_in.weight"][1], cross, layers, 4)
    if "proj.weight" in proj and not lora:
        rows, width = proj["proj.weight"]
        return IPAdapterInfo("plain", "embeds", width, cross, layers, max(1, rows // max(1, cross)))
    if "proj.3.weight" in proj:
        return IPAdapterInfo("full", "hidden", proj["proj.0.weight"][1], cross, layers, 257)
    if "latents" in proj and "proj_in.weight" in proj:
        return IPAdapterInfo("plus", "hidden", proj["proj_in.weight"][1], cross, layers, proj["latents"][1])
    if "norm.weight" in proj or lora:
        width = proj.get("proj.0.weight", (0, 0))[1]
        return IPAdapterInfo("faceid", "faceid", width, cross, layers, 4)
    return None


@dataclass(frozen=True)
class ImageEncoderInfo:
    """A CLIP vision encoder's widths: ``hidden`` (its hidden states), ``projection``
    (its projected image embedding), ``image_size`` (the square it reads)."""

    hidden: int
    projection: int
    image_size: int
    patch: int
    layers: int
    intermediate: int

    def serves(self, adapter: IPAdapterInfo) -> bool:
        """Whether ``adapter`` reads what this encoder gives, at its width."""
        width = self.projection if adapter.reads == "embeds" else self.hidden
        return width == adapter.encoder_width


def image_encoder_info(shapes: Mapping[str, Any]) -> ImageEncoderInfo | None:
    """A CLIP vision encoder's widths from its tensor names → shapes (the transformers
    layout, ``vision_model.*`` and ``visual_projection.weight``); ``None`` otherwise."""
    proj = _shape_of(shapes, "visual_projection.weight")
    cls = _shape_of(shapes, "vision_model.embeddings.class_embedding")
    patch = _shape_of(shapes, "vision_model.embeddings.patch_embedding.weight")
    positions = _shape_of(shapes, "vision_model.embeddings.position_embedding.weight")
    fc1 = _shape_of(shapes, "vision_model.encoder.layers.0.mlp.fc1.weight")
    if proj is None or cls is None or patch is None or positions is None or fc1 is None:
        return None
    side = int(round((positions[0] - 1) ** 0.5)) * patch[-1]
    layers = len({k.split(".")[3] for k in shapes if k.startswith("vision_model.encoder.layers.")})
    return ImageEncoderInfo(cls[0], proj[0], side, patch[-1], layers, fc1[0])


# --------------------------------------------------------------------------- union ControlNets

#: SDXL union ControlNets' control types (xinsir's ControlNet Union and ProMax, diffusers'
#: ``ControlNetUnionModel``; ``control_mode`` of ``StableDiffusionXLControlNetUnionPipeline``):
#: 0 openpose, 1 depth, 2 thick lines (scribble, HED, PiDiNet, TEED), 3 thin lines (canny,
#: lineart, anime lineart, MLSD), 4 normal map, 5 segmentation; ProMax adds 6 tile and
#: 7 repaint (inpaint), which no control kind asks for.
UNION_CONTROL_TYPES: dict[ControlKind, int] = {
    ControlKind.POSE: 0,
    ControlKind.DEPTH: 1,
    ControlKind.SCRIBBLE: 2,
    ControlKind.SOFTEDGE: 2,
    ControlKind.LINEART: 3,
    ControlKind.CANNY: 3,
    ControlKind.SEGMENTATION: 5,
}

#: the kinds a union ControlNet of each family takes (FLUX.1: InstantX/Shakker-Labs' union,
#: as :meth:`sfumato.inference.families.flux.FluxFamily.control_mode` maps them)
_UNION_KINDS: dict[str, frozenset[ControlKind]] = {
    SDXL: frozenset(UNION_CONTROL_TYPES),
    FLUX: frozenset({ControlKind.CANNY, ControlKind.DEPTH, ControlKind.POSE, ControlKind.LINEART,
                     ControlKind.SCRIBBLE, ControlKind.SOFTEDGE}),  # fmt: skip
}

#: the kinds MistoLine (TheMistoAI's SDXL ControlNet for any line) is offered for
MISTOLINE_KINDS = frozenset({ControlKind.SCRIBBLE, ControlKind.LINEART, ControlKind.SOFTEDGE, ControlKind.CANNY})

_UNION_KEYS = ("task_embedding", "transformer_layes.", "control_add_embedding.", "spatial_ch_projs.")


def union_kinds(family: str | None) -> frozenset[ControlKind]:
    """The control kinds a union ControlNet of ``family`` takes (none for families without one)."""
    return _UNION_KINDS.get(family or "", frozenset())


def is_union_controlnet(keys: Iterable[str]) -> bool:
    """Whether a ControlNet's tensor names are a union ControlNet's (xinsir's Union/ProMax:
    a task embedding, the control-type embedding and the small transformer that mixes the
    conditions), in the diffusers layout or under ComfyUI's/LDM's ``control_model.``."""
    for key in keys:
        name = key[len("control_model."):] if key.startswith("control_model.") else key
        if name.startswith(_UNION_KEYS):
            return True
    return False


def is_union_controlnet_config(config: Mapping[str, Any]) -> bool:
    """Whether a ControlNet folder's ``config.json`` is a union ControlNet's (diffusers'
    ``ControlNetUnionModel``, xinsir's own ``ControlNetModel_Union``, or any config that
    counts control types)."""
    name = str(config.get("_class_name", ""))
    return "num_control_type" in config or ("ControlNet" in name and "Union" in name)


def is_mistoline(name: str) -> bool:
    """Whether a ControlNet's file or folder name says MistoLine."""
    return "mistoline" in name.lower().replace("-", "").replace("_", "")


# --------------------------------------------------------------------------- depth estimators

#: what comfyui_controlnet_aux and sd-webui-controlnet download for Depth Anything: the
#: authors' own files (``depth_anything_v2_vits.pth``, ``depth_anything_vitl14.pth``,
#: ``depth_anything_v2_metric_hypersim_vitl.pth``)
_ORIGINAL_DEPTH_ANYTHING = re.compile(r"depth[-_]?anything.*\.(pth|pt|safetensors)$")


def is_original_depth_anything(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an original Depth Anything (V1/V2) checkpoint."""
    return bool(_ORIGINAL_DEPTH_ANYTHING.search(Path(path).name.lower()))

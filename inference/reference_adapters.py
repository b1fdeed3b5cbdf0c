"""Reference pictures for the UNet families (SD 1.x, SDXL): IP-Adapter, in our own loop.

An IP-Adapter reads a picture with a CLIP vision encoder and gives every cross-attention
layer of the UNet a second key/value pair for the picture's tokens ("decoupled
cross-attention"): ``out = attn(q, text) + scale · attn(q, picture)``. We load the user's
files with diffusers' own converters (``UNet2DConditionModel._convert_ip_adapter_*``, the
code behind ``load_ip_adapter``) and compute with diffusers' own processor
(:class:`~diffusers.models.attention_processor.IPAdapterAttnProcessor2_0`), but install
them for one run only and never download anything:

- **files**: the adapter (``.safetensors``, or ``.bin``/``.pth`` read with
  ``weights_only``; ComfyUI's ``models/ipadapter``, A1111's ``models/ControlNet``, or a
  diffusers-style folder holding one) and the CLIP vision encoder (ComfyUI's
  ``models/clip_vision`` file, or a transformers folder such as h94's ``image_encoder``);
- **per run** (:class:`ReferenceAttention`): one adapter "slot" per reference picture
  (two references of one file share its weights), so each reference keeps its own
  strength, kind (layer-wise scales), step range and mask; the picture embeddings go in
  ``added_cond_kwargs["image_embeds"]`` with the classifier-free-guidance negative as
  diffusers makes it (zeros for the plain adapter, the encoding of a black picture for
  the plus and full-face adapters); ``close`` restores the UNet's own processors and its
  ``encoder_hid_proj``, so a later plain request is the same as on a fresh engine;
- **kinds**: the family's layer-wise scales (:attr:`Family.reference_layers`: InstantStyle
  for SDXL, ComfyUI_IPAdapter_plus's weight types for SD 1.5); content and face act on
  every layer; FaceID adapters (InsightFace embeddings) are refused by name;
- **masks**: a reference with a mask attends only there (diffusers' ``ip_adapter_masks``:
  the mask scaled to each attention resolution, multiplying the picture's attention
  output); with regional prompts the text half goes through the regional processor and
  the picture's half is added alike (:class:`ReferenceAttnProcessor`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
from diffusers.models.embeddings import ImageProjection, MultiIPAdapterImageProjection
from sfumato.inference.detect import (
    IPAdapterInfo,
    image_encoder_info,
    ip_adapter_info,
    open_model_file,
)
from sfumato.inference.errors import CorruptModelError, UnsupportedModeError
from sfumato.vocabulary.config import read_json
from sfumato.vocabulary.kinds import ReferenceKind

__all__ = [
    "AdapterWeights",
    "ImageEncoder",
    "ReferenceAttention",
    "ReferenceAttnProcessor",
    "ReferenceInput",
    "adapter_file",
    "load_adapter",
    "load_image_encoder",
]

log = logging.getLogger(__name__)

_PICKLES = (".bin", ".pth", ".pt", ".ckpt")


# --------------------------------------------------------------------------- files


def adapter_file(path: Path) -> Path:
    """The IP-Adapter weights file of ``path``: the file itself, or the one adapter file in
    a folder (or its ``models``/``sdxl_models`` subfolder, the h94 layout)."""
    if not path.is_dir():
        return path
    found: list[Path] = []
    for folder in (path, path / "models", path / "sdxl_models"):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".safetensors", *_PICKLES)
                            and "adapter" in p.name.lower())  # fmt: skip
    if len(found) != 1:
        raise CorruptModelError(
            f"{path} holds {len(found) or 'no'} IP-Adapter files" + (": " + ", ".join(p.name for p in found) if found else "."),
            "Choose the IP-Adapter file itself.",
        )
    return found[0]


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A weights file's tensors, flat; pickles only as plain tensors (``weights_only``)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load

        with open_model_file(path) as f:
            return dict(load(f.read()))
    if path.suffix.lower() not in _PICKLES:
        raise CorruptModelError(f"{path.name} is not a weights file (expected .safetensors, .bin or .pth).")
    with open_model_file(path) as f:
        try:
            data = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - an unsafe or broken pickle alike
            raise CorruptModelError(f"{path.name} cannot be read as plain weights: {error}") from error
    if not isinstance(data, dict):
        raise CorruptModelError(f"{path.name} holds no weights dictionary.")
    flat: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, torch.Tensor)})
        elif isinstance(value, torch.Tensor):
            flat[str(key)] = value
    return flat


# --------------------------------------------------------------------------- the adapter


@dataclass
class AdapterWeights:
    """One IP-Adapter file made ready for one UNet: its image projection and, per
    cross-attention processor name, its picture key/value projections."""

    name: str
    path: Path
    info: IPAdapterInfo
    projection: torch.nn.Module
    keys: dict[str, torch.nn.Linear]
    values: dict[str, torch.nn.Linear]
    hidden_sizes: dict[str, int]
    #: the CLIP vision encoder it reads pictures with (set by the model cache)
    encoder: ImageEncoder | None = None

    @property
    def reads_hidden_states(self) -> bool:
        """Plus and full-face adapters read the encoder's penultimate hidden states."""
        return not isinstance(self.projection, ImageProjection)

    @property
    def face(self) -> bool:
        return self.info.variant == "full" or "face" in self.path.name.lower()


def load_adapter(path: Path, unet: Any, family_label: str, device: torch.device, dtype: torch.dtype) -> AdapterWeights:
    """Read the IP-Adapter at ``path`` and convert it for ``unet`` with diffusers' converters.

    Raises :class:`UnsupportedModeError` for a FaceID adapter or one made for another
    family (another text width, another number of cross-attention layers), and
    :class:`CorruptModelError` for a file that is no IP-Adapter.
    """
    path = adapter_file(path)
    flat = _read_tensors(path)
    info = ip_adapter_info(flat)
    if info is None:
        raise CorruptModelError(f"{path.name} is not an IP-Adapter (no image_proj / ip_adapter weights).")
    if info.faceid:
        raise UnsupportedModeError(
            f"{path.name} is a FaceID IP-Adapter, which Sfumato does not run: it reads faces with "
            "InsightFace, which is not installed with Sfumato.",
            "Use an IP-Adapter face model instead (ip-adapter-plus-face or ip-adapter-full-face).",
        )
    base = getattr(unet, "_orig_mod", unet)
    names = [n for n in base.attn_processors if n.endswith("attn2.processor")]
    cross = int(base.config.cross_attention_dim)
    if info.cross_attention_dim != cross or info.layers != len(names):
        raise UnsupportedModeError(
            f"The IP-Adapter {path.name} is for another model family (text width {info.cross_attention_dim}, "
            f"{info.layers} attention layers; the model has {cross} and {len(names)}).",
            f"Choose a {family_label} IP-Adapter.",
        )
    state = {
        "image_proj": {k[len("image_proj."):]: v for k, v in flat.items() if k.startswith("image_proj.")},
        "ip_adapter": {k[len("ip_adapter."):]: v for k, v in flat.items() if k.startswith("ip_adapter.")},
    }
    try:
        procs = base._convert_ip_adapter_attn_to_diffusers([state], low_cpu_mem_usage=False)
        projection = base._convert_ip_adapter_image_proj_to_diffusers(state["image_proj"], low_cpu_mem_usage=False)
    except (KeyError, RuntimeError, ValueError) as error:
        raise CorruptModelError(f"The IP-Adapter {path.name} does not fit this model: {error}") from error
    keys, values, sizes = {}, {}, {}
    for name in names:
        proc = procs[name]
        keys[name] = proc.to_k_ip[0].to(device=device, dtype=dtype)
        values[name] = proc.to_v_ip[0].to(device=device, dtype=dtype)
        sizes[name] = int(proc.hidden_size)
    return AdapterWeights(path.stem, path, info, projection.to(device=device, dtype=dtype), keys, values, sizes)


# --------------------------------------------------------------------------- the image encoder


@dataclass
class ImageEncoder:
    """A CLIP vision encoder and the preprocessing diffusers gives it (``load_ip_adapter``:
    resize the short side to the encoder's size, centre crop, CLIP's normalisation)."""

    path: Path
    model: Any  # transformers CLIPVisionModelWithProjection
    processor: Any  # transformers CLIPImageProcessor

    def encode(self, image: np.ndarray, hidden_states: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embedding, negative)`` of one uint8 picture: the projected image embedding
        ``(1, D)`` and zeros, or the penultimate hidden states ``(1, T, D)`` and those of a
        black picture — diffusers' ``encode_image``."""
        from PIL import Image

        dtype = next(self.model.parameters()).dtype
        pixels = self.processor(Image.fromarray(np.ascontiguousarray(image)), return_tensors="pt").pixel_values
        pixels = pixels.to(device=device, dtype=dtype)
        with torch.inference_mode():
            if hidden_states:
                cond = self.model(pixels, output_hidden_states=True).hidden_states[-2]
                uncond = self.model(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
                return cond, uncond
            embeds = self.model(pixels).image_embeds
            return embeds, torch.zeros_like(embeds)


def _vision_config(path: Path, shapes: dict[str, tuple[int, ...]]) -> Any:
    """The encoder's config: a ``config.json`` beside the file (``<name>.json`` or the
    folder's), else read from the weights' shapes (OpenCLIP's ViT-H and bigG use GELU and
    16 heads, OpenAI's ViT-L quick GELU; others 64-wide heads)."""
    from transformers import CLIPVisionConfig

    for sidecar in (path.with_suffix(".json"), path.parent / "config.json"):
        config = read_json(sidecar) or {}
        if "CLIPVisionModelWithProjection" in (config.get("architectures") or ()):
            return CLIPVisionConfig.from_dict(config)
    info = image_encoder_info(shapes)
    if info is None:
        raise CorruptModelError(
            f"{path.name} is not a CLIP vision encoder in the transformers layout (vision_model.*, "
            "visual_projection.weight).",
            "Use the image encoder from h94/IP-Adapter (models/image_encoder) or ComfyUI's clip_vision files.",
        )
    heads = 16 if info.hidden in (1024, 1280, 1664) else max(1, info.hidden // 64)
    return CLIPVisionConfig(
        hidden_size=info.hidden, intermediate_size=info.intermediate, projection_dim=info.projection,
        num_hidden_layers=info.layers, num_attention_heads=heads, image_size=info.image_size,
        patch_size=info.patch, hidden_act="quick_gelu" if info.hidden in (768, 1024) else "gelu",
    )  # fmt: skip


def load_image_encoder(path: Path, device: torch.device, dtype: torch.dtype) -> ImageEncoder:
    """The CLIP vision encoder at ``path`` (a transformers folder, or one weights file)."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    try:
        if path.is_dir():
            model = CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        else:
            tensors = _read_tensors(path)
            tensors.pop("vision_model.embeddings.position_ids", None)
            config = _vision_config(path, {k: tuple(v.shape) for k, v in tensors.items()})
            model = CLIPVisionModelWithProjection(config)
            model.load_state_dict(tensors, strict=True)
            model.to(dtype=dtype)
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        raise CorruptModelError(f"Could not load the image encoder {path.name}: {error}") from error
    model.to(device).eval()
    size = int(model.config.image_size)
    return ImageEncoder(path, model, CLIPImageProcessor(size=size, crop_size=size))


# --------------------------------------------------------------------------- one run


@dataclass
class ReferenceInput:
    """One reference picture of a run, encoded: its adapter, its picture embedding in the
    UNet batch's layout (``(B_model, 1, ...)``: negatives first under CFG), its strength,
    kind, step range and mask (``(1, 1, H, W)`` at the request's size, or ``None``)."""

    adapter: AdapterWeights
    embeds: torch.Tensor
    strength: float
    kind: ReferenceKind
    start: float
    end: float
    mask: torch.Tensor | None
    #: the model's family: its layer-wise scales for the kind (:meth:`Family.reference_layer_scale`)
    family: Any = None

    def layer_scale(self, processor_name: str) -> float:
        """The factor of the strength at the processor ``processor_name`` (1 without a family)."""
        return 1.0 if self.family is None else float(self.family.reference_layer_scale(self.kind, processor_name))

    def active(self, j: int, n: int) -> bool:
        """Whether the reference acts at step ``j`` of ``n`` (its ``[start, end)`` fraction,
        as a control's)."""
        return not (j / n < self.start or (j + 1) / n > self.end + 1e-9)


def reference_embeds(cond: torch.Tensor, uncond: torch.Tensor, batch: int, guided: bool) -> torch.Tensor:
    """One picture's ``(1, ...)`` embedding and negative → ``(B_model, 1, ...)`` in the UNet
    batch's layout: ``batch`` negatives then ``batch`` embeddings under guidance (as
    diffusers' ``prepare_ip_adapter_image_embeds``), else the embeddings."""
    cond = torch.cat([cond[None]] * batch)
    if not guided:
        return cond
    return torch.cat([torch.cat([uncond[None]] * batch), cond])


class ReferenceAttnProcessor(IPAdapterAttnProcessor2_0):
    """diffusers' IP-Adapter processor over the references of one run, one slot each, in
    front of the processor it replaced (``inner``: the UNet's own, or a regional one).

    Without regions the call is diffusers' own; with active regional prompts, the text
    attention is the regional processor's and the pictures' attention is added to it
    through the same output projection (``to_out`` is linear: ``W(a + b) + c = (W a + c) + W b``).
    """

    def __init__(self, inner: Any, name: str, adapters: Sequence[AdapterWeights]) -> None:
        torch.nn.Module.__init__(self)  # the slots' weights are the adapters' own: no new ones
        first = adapters[0]
        self.hidden_size = first.hidden_sizes[name]
        self.cross_attention_dim = first.info.cross_attention_dim
        self.num_tokens = [a.info.tokens for a in adapters]
        self.scale: list[float] = [0.0] * len(adapters)
        self.to_k_ip = torch.nn.ModuleList([a.keys[name] for a in adapters])
        self.to_v_ip = torch.nn.ModuleList([a.values[name] for a in adapters])
        object.__setattr__(self, "inner", inner)  # not a submodule: it stays the UNet's

    def __call__(  # type: ignore[override]
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        scale: float = 1.0,
        ip_adapter_masks: Any = None,
    ) -> torch.Tensor:
        if not isinstance(encoder_hidden_states, tuple):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)  # type: ignore[no-any-return]
        owner = getattr(self.inner, "owner", None)
        if owner is None or not owner.active:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, scale,
                                    ip_adapter_masks)  # type: ignore[no-any-return]  # fmt: skip
        text, pictures = encoder_hidden_states
        out = self.inner(attn, hidden_states, text, attention_mask, temb)
        return out + self.picture_attention(attn, hidden_states, pictures, temb, ip_adapter_masks)  # type: ignore[no-any-return]

    def picture_attention(
        self, attn: Any, hidden_states: torch.Tensor, pictures: Sequence[torch.Tensor], temb: torch.Tensor | None,
        masks: Any = None,
    ) -> torch.Tensor:
        """What the pictures add to the attention's output (after ``to_out``, without its
        bias): diffusers' IP-Adapter sum, scaled and masked alike."""
        from diffusers.image_processor import IPAdapterMaskProcessor

        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        shape = hidden_states.shape
        if hidden_states.ndim == 4:
            hidden_states = hidden_states.view(shape[0], shape[1], shape[2] * shape[3]).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)
        head_dim = query.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        total = torch.zeros(batch, query.shape[2], attn.heads * head_dim, dtype=query.dtype, device=query.device)
        masks = list(masks) if masks is not None else [None] * len(self.scale)
        for states, weight, to_k, to_v, mask in zip(pictures, self.scale, self.to_k_ip, self.to_v_ip, masks):
            if weight == 0:
                continue
            key = to_k(states).view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            value = to_v(states).view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            part = F.scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False)
            part = part.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
            if mask is not None:
                down = IPAdapterMaskProcessor.downsample(mask[:, 0], batch, part.shape[1], part.shape[2])
                part = part * down.to(dtype=query.dtype, device=query.device)
            total = total + weight * part
        out = F.linear(total, attn.to_out[0].weight)
        if len(shape) == 4:
            out = out.transpose(-1, -2).reshape(shape)
        return out / attn.rescale_output_factor


class ReferenceAttention:
    """The references of one run on a UNet: ``install`` puts a :class:`ReferenceAttnProcessor`
    on every cross-attention (in front of whatever is there, e.g. regional attention) and
    the adapters' image projections in ``encoder_hid_proj``; ``set_step`` gives each
    reference its scale for the step (strength × the kind's layer factor inside its step
    range, else 0); ``unet_kwargs`` are the UNet call's extra inputs; ``remove`` restores
    everything it changed."""

    def __init__(self, unet: Any, references: Sequence[ReferenceInput]) -> None:
        self.unet = getattr(unet, "_orig_mod", unet)
        self.references = list(references)
        self._originals: dict[str, Any] = {}
        self._processors: dict[str, ReferenceAttnProcessor] = {}
        self._saved: tuple[Any, Any] | None = None

    def _cross_attention_modules(self) -> list[tuple[str, Any]]:
        return [(n, m) for n, m in self.unet.named_modules() if n.endswith("attn2") and hasattr(m, "set_processor")]

    def install(self) -> ReferenceAttention:
        if self._saved is not None:
            return self
        adapters = [r.adapter for r in self.references]
        self._saved = (self.unet.encoder_hid_proj, getattr(self.unet.config, "encoder_hid_dim_type", None))
        for name, module in self._cross_attention_modules():
            key = name + ".processor"
            self._originals[name] = module.processor
            processor = ReferenceAttnProcessor(module.processor, key, adapters)
            self._processors[key] = processor
            module.set_processor(processor)
        self.unet.encoder_hid_proj = MultiIPAdapterImageProjection([a.projection for a in adapters])
        self.unet.config.encoder_hid_dim_type = "ip_image_proj"
        return self

    def remove(self) -> None:
        if self._saved is None:
            return
        modules = dict(self._cross_attention_modules())
        for name, original in self._originals.items():
            if name in modules:
                modules[name].set_processor(original)
        self._originals.clear()
        self._processors.clear()
        projection, dim_type = self._saved
        self.unet.encoder_hid_proj = projection
        self.unet.config.encoder_hid_dim_type = dim_type
        self._saved = None

    @property
    def processors(self) -> dict[str, ReferenceAttnProcessor]:
        """The installed processors by their UNet processor name (the tests read scales)."""
        return dict(self._processors)

    def set_step(self, j: int, n: int) -> None:
        """Each reference's scale at step ``j`` of ``n``, on every layer."""
        for name, processor in self._processors.items():
            for slot, reference in enumerate(self.references):
                factor = reference.layer_scale(name) if reference.active(j, n) else 0.0
                processor.scale[slot] = reference.strength * factor

    def unet_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` (the family's UNet inputs) with the pictures' embeddings in
        ``added_cond_kwargs`` and, when a reference has a mask, ``ip_adapter_masks``."""
        out = dict(kwargs)
        added = dict(out.get("added_cond_kwargs") or {})
        added["image_embeds"] = [r.embeds for r in self.references]
        out["added_cond_kwargs"] = added
        if any(r.mask is not None for r in self.references):
            out["cross_attention_kwargs"] = {"ip_adapter_masks": [r.mask for r in self.references]}
        return out

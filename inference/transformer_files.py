"""Load the transformer families from the files artists have, strictly and offline.

A FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image or Qwen-Image model arrives as files (see
:mod:`.model_parts`): a transformer in one of three key layouts (Black Forest Labs' /
the original authors', ComfyUI's ``model.diffusion_model.`` prefix, diffusers'), maybe
fp8 or GGUF-quantized; text encoders (CLIP-L, CLIP-G, T5-XXL, Qwen3, Qwen2.5-VL); a VAE.
This module builds each on the meta device, fills it with the file's tensors and checks
that every tensor the architecture needs came from the file and every tensor of the
file found its place (:class:`CorruptModelError` naming the first few otherwise: never a
silently random layer), then assembles the family's diffusers pipeline.

Configs come from ``resources/configs/<family>/`` (the full-size models, diffusers
format), or from a ``config=`` folder of the same shape (a custom model; the tests' tiny
ones). The layer counts and widths that the weights themselves show (blocks, text width,
input channels, guidance embedding) are read from the tensors, so one shipped config
serves FLUX.1 dev, schnell and Fill, SD 3.5 large and medium, FLUX.2 Klein 4B and 9B.

Tokenizers: CLIP's is shipped. T5's and Qwen's are not on any package index we may
use; :func:`find_tokenizer` looks where people have them (the config folder, beside the
model files, the Hugging Face cache, a ComfyUI install's ``comfy/text_encoders``) and
otherwise says what is missing and where to put it.

Memory: fp8 files (``float8_e4m3fn``/``e5m2``, ComfyUI's "fp8_scaled" with per-layer
``scale_weight``) are cast to the compute dtype while loading, so the loaded model takes
the compute dtype's size (an fp8 file of N bytes becomes 2N in bf16/fp16, 4N in fp32);
GGUF files stay quantized in memory (diffusers' ``GGUFLinear`` dequantizes per matmul).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.inference.model_parts import (
    FAMILY_LABELS,
    Encoder,
    GroupedModel,
    Layout,
    ModelPart,
    Role,
    VaeKind,
    group_transformer_file,
    identify_part,
)
from sfumato.inference.single_file import (
    CONFIGS_DIR,
    load_checkpoint_state_dict,
    load_clip_tokenizer,
)
from sfumato.vocabulary.families import CHROMA, FLUX, FLUX2, QWENIMAGE, SD3, ZIMAGE

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

__all__ = [
    "PIPELINE_CLASSES",
    "TRANSFORMER_CLASSES",
    "assemble_pipeline",
    "find_tokenizer",
    "load_grouped_model",
    "load_model_file",
    "load_text_encoder",
    "load_transformer",
    "load_vae",
    "read_tensors",
]

log = logging.getLogger(__name__)

#: The diffusers transformer class of each family.
TRANSFORMER_CLASSES = {
    FLUX: "FluxTransformer2DModel", CHROMA: "ChromaTransformer2DModel", SD3: "SD3Transformer2DModel",
    FLUX2: "Flux2Transformer2DModel", ZIMAGE: "ZImageTransformer2DModel", QWENIMAGE: "QwenImageTransformer2DModel",
}  # fmt: skip
#: The diffusers pipeline class of each family.
PIPELINE_CLASSES = {
    FLUX: "FluxPipeline", CHROMA: "ChromaPipeline", SD3: "StableDiffusion3Pipeline",
    FLUX2: "Flux2KleinPipeline", ZIMAGE: "ZImagePipeline", QWENIMAGE: "QwenImagePipeline",
}  # fmt: skip

_COMFY = "model.diffusion_model."


# --------------------------------------------------------------------------- reading


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` (or pickle) checkpoint, or of a ``.gguf`` file
    (quantized tensors as diffusers' ``GGUFParameter``, still quantized)."""
    path = Path(path)
    if path.suffix.lower() != ".gguf":
        return load_checkpoint_state_dict(path)
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise UnsupportedModeError(
            f"{path.name} is a GGUF file, and reading GGUF needs the gguf package.",
            "Install it: pip install gguf (or pip install 'sfumato[gguf]').",
        ) from None
    if not path.is_file():
        raise ModelNotFoundError(f"Model file not found: {path}")
    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    try:
        tensors: dict[str, torch.Tensor] = load_gguf_checkpoint(str(path), return_tensors=True)
    except (ValueError, OSError, KeyError, IndexError, TypeError) as error:
        raise CorruptModelError(f"{path.name} cannot be read as a GGUF file: {error}.") from error
    return tensors


def _unscale_fp8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ComfyUI's "fp8_scaled" files store ``w / s`` in fp8 beside ``….scale_weight = s``:
    give back ``w`` in float32 (the caller casts it to the compute dtype) and drop the
    scales and the ``scaled_fp8`` marker."""
    scales = [k for k in state if k.endswith(".scale_weight")]
    if not scales and "scaled_fp8" not in state:
        return state
    out = dict(state)
    for key in scales:
        weight_key = key[: -len("scale_weight")] + "weight"
        scale = out.pop(key)
        if weight_key in out:
            out[weight_key] = out[weight_key].to(torch.float32) * scale.to(torch.float32)
    for key in [k for k in out if k == "scaled_fp8" or k.endswith(".scale_input")]:
        del out[key]
    return out


def _sub(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if not prefix:
        return dict(state)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------- filling


class _Mismatch(Exception):
    """The tensors of a file do not fit the model built for them."""


def _is_gguf(value: Any) -> bool:
    return type(value).__name__ == "GGUFParameter"


def _fill_strictly(
    model: torch.nn.Module,
    weights: Mapping[str, torch.Tensor],
    dtype: torch.dtype,
    *,
    ignore: Callable[[str], bool] = lambda name: False,
) -> torch.nn.Module:
    """Put ``weights`` into ``model`` (built on the meta device): every tensor the model
    keeps must come from ``weights`` and every one of ``weights`` must have a place
    (``ignore`` names the ones a file may carry in excess). Floating tensors are cast to
    ``dtype``; GGUF-quantized ones stay quantized in ``GGUFLinear`` layers."""
    expected = model.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected and not ignore(k)]
    if missing or unexpected:
        words = []
        if missing:
            words.append(f"lacks {len(missing)} tensors ({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''})")
        if unexpected:
            words.append(
                f"has {len(unexpected)} tensors it cannot place ({', '.join(unexpected[:3])}"
                f"{', …' if len(unexpected) > 3 else ''})"
            )
        raise _Mismatch(" and ".join(words))
    for name, current in expected.items():
        value = weights[name]
        owner_name, _, attr = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        if _is_gguf(value):
            from gguf import GGML_QUANT_SIZES

            block, size = GGML_QUANT_SIZES[value.quant_type]
            shape = (*value.shape[:-1], value.shape[-1] // size * block)
            if type(owner).__name__ != "GGUFLinear":
                from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

                value = dequantize_gguf_tensor(value).to(dtype)
                shape = tuple(value.shape)
        else:
            shape = tuple(value.shape)
            if value.is_floating_point():
                value = value.to(dtype)
        if tuple(shape) != tuple(current.shape):
            raise _Mismatch(f"has {name} of shape {tuple(shape)} where the model needs {tuple(current.shape)}")
        if attr in owner._parameters:
            owner._parameters[attr] = value if _is_gguf(value) else torch.nn.Parameter(value, requires_grad=False)
        else:
            owner._buffers[attr] = value
    _fill_computed_buffers(model)
    return model.eval()


def _fill_computed_buffers(model: torch.nn.Module) -> None:
    """Recompute the buffers a model computes in ``__init__`` and never saves (they are
    left empty on the meta device): CLIP's position ids, a language model's rotary
    frequencies, Chroma's modulation index. Any other one left empty is an error."""
    for name, module in list(model.named_modules()):
        if not any(b is not None and b.is_meta for b in module._buffers.values()):
            continue
        if type(module).__name__.endswith("RotaryEmbedding") and hasattr(module, "config"):
            fresh = type(module)(config=module.config)  # transformers' language-model rotary embedding
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, fresh)
            continue
        for attr, buffer in list(module._buffers.items()):
            if buffer is None or not buffer.is_meta:
                continue
            if attr == "position_ids":
                module._buffers[attr] = torch.arange(buffer.shape[-1]).expand(buffer.shape).clone()
            elif attr == "inv_freq" and type(module).__name__.endswith("RotaryEmbedding"):
                # a vision tower's rotary embedding (Qwen2.5-VL): made with the default θ = 10⁴
                dim = 2 * buffer.shape[0]
                module._buffers[attr] = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
            elif attr == "mod_proj":  # Chroma: sinusoidal embedding of each modulation's index
                from diffusers.models.embeddings import get_timestep_embedding

                rows, width = buffer.shape
                module._buffers[attr] = get_timestep_embedding(
                    torch.arange(rows) * 1000, width, flip_sin_to_cos=True, downscale_freq_shift=0
                )
            else:
                raise _Mismatch(f"leaves the buffer {name + '.' if name else ''}{attr} uninitialised")


# --------------------------------------------------------------------------- configs


def _config_dir(family: str, config: Path | None) -> Path:
    folder = Path(config) if config is not None else CONFIGS_DIR / family
    if not folder.is_dir():
        raise UnsupportedModeError(f"There are no model configs for the {family!r} family ({folder}).")
    return folder


def _read_config(folder: Path, name: str) -> dict[str, Any]:
    file = folder / name / "config.json"
    if not file.is_file():
        raise CorruptModelError(f"The config folder {folder} has no {name}/config.json.")
    data: dict[str, Any] = json.loads(file.read_text())
    return data


def _count(weights: Iterable[str], prefix: str) -> int:
    regex = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in weights if (m := regex.match(k))}
    return max(found) + 1 if found else 0


def _fit_transformer_config(family: str, config: dict[str, Any], w: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The shipped config with the sizes the converted weights show (layer counts,
    widths, input channels, guidance embedding), so variants share one config."""
    c = dict(config)

    def rows(key: str) -> int:
        return int(w[key].shape[0])

    def cols(key: str) -> int:
        shape = w[key].shape
        return int(shape[1]) if not _is_gguf(w[key]) else _logical_cols(w[key])

    if family in (FLUX, CHROMA):
        head = rows("transformer_blocks.0.attn.norm_q.weight")
        c.update(num_layers=_count(w, "transformer_blocks."), num_single_layers=_count(w, "single_transformer_blocks."),
                 attention_head_dim=head, num_attention_heads=rows("x_embedder.weight") // head,
                 in_channels=cols("x_embedder.weight"), joint_attention_dim=cols("context_embedder.weight"))
        out = rows("proj_out.weight") // (c.get("patch_size", 1) ** 2)
        c["out_channels"] = out if out != c["in_channels"] else None
        if family == FLUX:
            c["guidance_embeds"] = "time_text_embed.guidance_embedder.linear_1.weight" in w
            c["pooled_projection_dim"] = cols("time_text_embed.text_embedder.linear_1.weight")
        else:
            c.update(approximator_layers=_count(w, "distilled_guidance_layer.layers."),
                     approximator_hidden_dim=rows("distilled_guidance_layer.in_proj.weight"),
                     approximator_num_channels=cols("distilled_guidance_layer.in_proj.weight"))
    elif family == SD3:
        c["num_layers"] = _count(w, "transformer_blocks.")
        c["dual_attention_layers"] = sorted(
            {int(k.split(".")[1]) for k in w if k.startswith("transformer_blocks.") and ".attn2." in k}
        )
        c["qk_norm"] = "rms_norm" if "transformer_blocks.0.attn.norm_q.weight" in w else None
        c["caption_projection_dim"] = rows("context_embedder.weight")
        c["joint_attention_dim"] = cols("context_embedder.weight")
        c["num_attention_heads"] = rows("pos_embed.proj.weight") // c["attention_head_dim"]
        c["pooled_projection_dim"] = cols("time_text_embed.text_embedder.linear_1.weight")
        c["pos_embed_max_size"] = math.isqrt(int(w["pos_embed.pos_embed"].shape[1]))
    elif family == FLUX2:
        head = rows("transformer_blocks.0.attn.norm_q.weight")
        c.update(num_layers=_count(w, "transformer_blocks."), num_single_layers=_count(w, "single_transformer_blocks."),
                 attention_head_dim=head, num_attention_heads=rows("x_embedder.weight") // head,
                 in_channels=cols("x_embedder.weight"), joint_attention_dim=cols("context_embedder.weight"),
                 guidance_embeds="time_guidance_embed.guidance_embedder.linear_1.weight" in w)
    elif family == ZIMAGE:
        c.update(n_layers=_count(w, "layers."), n_refiner_layers=_count(w, "noise_refiner."),
                 dim=rows("cap_embedder.1.weight"), cap_feat_dim=cols("cap_embedder.1.weight"))
    elif family == QWENIMAGE:
        c.update(num_layers=_count(w, "transformer_blocks."), joint_attention_dim=cols("txt_in.weight"),
                 in_channels=cols("img_in.weight"))
    return c


def _logical_cols(value: Any) -> int:
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[value.quant_type]
    return int(value.shape[-1] // size * block)


# --------------------------------------------------------------------------- transformers


def _convert_flux(state: dict[str, torch.Tensor], chroma: bool) -> dict[str, torch.Tensor]:
    """FLUX.1 / Chroma in Black Forest Labs' names → diffusers' (after diffusers'
    ``convert_flux_transformer_checkpoint_to_diffusers``, whose width is fixed at the
    full model's 3072; here it is the file's own). Pops what it uses from ``state``:
    what remains had no place. A missing tensor raises ``KeyError`` naming it."""
    out: dict[str, torch.Tensor] = {}

    def move(old: str, new: str, swap: bool = False) -> None:
        for part in ("weight", "bias"):
            value = state.pop(f"{old}.{part}")
            if swap:  # (shift, scale) → diffusers' (scale, shift)
                shift, scale = value.chunk(2, dim=0)
                value = torch.cat([scale, shift], dim=0)
            out[f"{new}.{part}"] = value

    def move_scale(old: str, new: str) -> None:
        out[new] = state.pop(old)

    def split(old: str, news: tuple[str, ...], sizes: tuple[int, ...] | None = None) -> None:
        for part in ("weight", "bias"):
            value = state.pop(f"{old}.{part}")
            pieces = value.chunk(len(news), dim=0) if sizes is None else value.split(sizes, dim=0)
            for new, piece in zip(news, pieces, strict=True):
                out[f"{new}.{part}"] = piece

    inner = int(state["img_in.weight"].shape[0])
    doubles = _count(state, "double_blocks.")
    singles = _count(state, "single_blocks.")
    if chroma:
        move("distilled_guidance_layer.in_proj", "distilled_guidance_layer.in_proj")
        move("distilled_guidance_layer.out_proj", "distilled_guidance_layer.out_proj")
        for i in range(_count(state, "distilled_guidance_layer.layers.")):
            g = f"distilled_guidance_layer.layers.{i}"
            move(f"{g}.in_layer", f"{g}.linear_1")
            move(f"{g}.out_layer", f"{g}.linear_2")
            move_scale(f"distilled_guidance_layer.norms.{i}.scale", f"distilled_guidance_layer.norms.{i}.weight")
    else:
        move("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1")
        move("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2")
        move("vector_in.in_layer", "time_text_embed.text_embedder.linear_1")
        move("vector_in.out_layer", "time_text_embed.text_embedder.linear_2")
        if any(k.startswith("guidance_in.") for k in state):
            move("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1")
            move("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2")
    move("txt_in", "context_embedder")
    move("img_in", "x_embedder")
    for i in range(doubles):
        o, n = f"double_blocks.{i}", f"transformer_blocks.{i}"
        if not chroma:
            move(f"{o}.img_mod.lin", f"{n}.norm1.linear")
            move(f"{o}.txt_mod.lin", f"{n}.norm1_context.linear")
        split(f"{o}.img_attn.qkv", (f"{n}.attn.to_q", f"{n}.attn.to_k", f"{n}.attn.to_v"))
        split(f"{o}.txt_attn.qkv", (f"{n}.attn.add_q_proj", f"{n}.attn.add_k_proj", f"{n}.attn.add_v_proj"))
        move_scale(f"{o}.img_attn.norm.query_norm.scale", f"{n}.attn.norm_q.weight")
        move_scale(f"{o}.img_attn.norm.key_norm.scale", f"{n}.attn.norm_k.weight")
        move_scale(f"{o}.txt_attn.norm.query_norm.scale", f"{n}.attn.norm_added_q.weight")
        move_scale(f"{o}.txt_attn.norm.key_norm.scale", f"{n}.attn.norm_added_k.weight")
        move(f"{o}.img_mlp.0", f"{n}.ff.net.0.proj")
        move(f"{o}.img_mlp.2", f"{n}.ff.net.2")
        move(f"{o}.txt_mlp.0", f"{n}.ff_context.net.0.proj")
        move(f"{o}.txt_mlp.2", f"{n}.ff_context.net.2")
        move(f"{o}.img_attn.proj", f"{n}.attn.to_out.0")
        move(f"{o}.txt_attn.proj", f"{n}.attn.to_add_out")
    for i in range(singles):
        o, n = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        if not chroma:
            move(f"{o}.modulation.lin", f"{n}.norm.linear")
        rows = int(state[f"{o}.linear1.weight"].shape[0])
        split(f"{o}.linear1", (f"{n}.attn.to_q", f"{n}.attn.to_k", f"{n}.attn.to_v", f"{n}.proj_mlp"),
              (inner, inner, inner, rows - 3 * inner))
        move_scale(f"{o}.norm.query_norm.scale", f"{n}.attn.norm_q.weight")
        move_scale(f"{o}.norm.key_norm.scale", f"{n}.attn.norm_k.weight")
        move(f"{o}.linear2", f"{n}.proj_out")
    move("final_layer.linear", "proj_out")
    if not chroma:
        move("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True)
    return out


def _convert_transformer(family: str, layout: Layout, state: dict[str, torch.Tensor], variant: str | None) -> tuple[
    dict[str, torch.Tensor], dict[str, torch.Tensor]
]:
    """``(weights in diffusers' names, tensors left without a place)`` for a transformer
    whose keys have lost any ComfyUI prefix."""
    from diffusers.loaders import single_file_utils as sfu

    if layout is Layout.DIFFUSERS:
        return state, {}
    work = dict(state)
    if family in (FLUX, CHROMA):
        return _convert_flux(work, chroma=family == CHROMA), work
    if family == SD3:
        return sfu.convert_sd3_transformer_checkpoint_to_diffusers(work), work
    if family == FLUX2:
        return sfu.convert_flux2_transformer_checkpoint_to_diffusers(work), {}
    if family == ZIMAGE:
        return sfu.convert_z_image_transformer_checkpoint_to_diffusers(work), {}
    if family == QWENIMAGE:
        if variant == "2.1":
            return sfu.convert_qwen_image21_transformer_checkpoint_to_diffusers(work), {}
        return work, {}
    raise UnsupportedModeError(f"Sfumato cannot load a {family!r} transformer.")


def load_transformer(
    path: Path,
    *,
    part: ModelPart | None = None,
    config: Path | None = None,
    torch_dtype: torch.dtype | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Any:
    """The diffusers transformer in ``path`` (a transformer file or a whole checkpoint, any
    layout, fp8 or GGUF), built on the meta device and filled strictly.

    ``config`` is a folder with ``transformer/config.json`` (default: the family's shipped
    one). ``state`` passes tensors already read from ``path``. Raises
    :class:`CorruptModelError` naming the first missing or misplaced tensors.
    """
    import diffusers

    path = Path(path)
    part = part if part is not None else identify_part(path)
    if part is None or part.family not in TRANSFORMER_CLASSES:
        raise CorruptModelError(
            f"{path.name} holds no transformer Sfumato knows (FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image, Qwen-Image)."
        )
    family = part.family
    dtype = torch_dtype or torch.float32
    folder = _config_dir(family, config)
    name = f"transformer-{part.variant}" if part.variant and (folder / f"transformer-{part.variant}").is_dir() else "transformer"
    base_config = _read_config(folder, name)
    tensors = state if state is not None else read_tensors(path)
    bare = _unscale_fp8(_sub(tensors, part.prefix))
    cls = getattr(diffusers, TRANSFORMER_CLASSES[family])
    label = FAMILY_LABELS[family]
    try:
        weights, leftover = _convert_transformer(family, part.layout, bare, part.variant)
        if leftover:
            raise _Mismatch(f"has {len(leftover)} tensors it cannot place ({', '.join(sorted(leftover)[:3])})")
        model_config = _fit_transformer_config(family, base_config, weights)
        with torch.device("meta"):
            model = cls.from_config(model_config)
        if any(_is_gguf(v) for v in weights.values()):
            from diffusers.quantizers.gguf.utils import _replace_with_gguf_linear

            with torch.device("meta"):
                _replace_with_gguf_linear(model, dtype, weights)
        _fill_strictly(model, weights, dtype)
    except KeyError as error:
        key = error.args[0] if error.args else "?"
        raise CorruptModelError(
            f"{path.name} is not a whole {label} transformer: it lacks the tensor {part.prefix}{key}.",
            "The download may be incomplete; download it again.",
        ) from None
    except _Mismatch as error:
        raise CorruptModelError(f"{path.name} does not fit the {label} transformer: it {error}.") from None
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        raise CorruptModelError(f"{path.name} does not fit the {label} transformer ({error}).") from error
    log.info("loaded the %s transformer of %s (%s, %s)", label, path.name, part.layout.value, dtype)
    return model


# --------------------------------------------------------------------------- text encoders

#: Where each encoder's config lives in a family's config folder.
_ENCODER_FOLDERS: dict[str, dict[Encoder, str]] = {
    FLUX: {Encoder.CLIP_L: "text_encoder", Encoder.T5XXL: "text_encoder_2"},
    CHROMA: {Encoder.T5XXL: "text_encoder"},
    SD3: {Encoder.CLIP_L: "text_encoder", Encoder.CLIP_G: "text_encoder_2", Encoder.T5XXL: "text_encoder_3"},
    FLUX2: {Encoder.QWEN3: "text_encoder"},
    ZIMAGE: {Encoder.QWEN3: "text_encoder"},
    QWENIMAGE: {Encoder.QWEN25VL: "text_encoder"},
}

_ENCODER_PREFIXES = {
    Encoder.CLIP_L: ("text_encoders.clip_l.transformer.", "text_encoders.clip_l.", "text_encoder."),
    Encoder.CLIP_G: ("text_encoders.clip_g.transformer.", "text_encoders.clip_g.", "text_encoder_2."),
    Encoder.T5XXL: ("text_encoders.t5xxl.transformer.", "text_encoders.t5xxl.", "text_encoder_3.", "text_encoder_2."),
}


def _encoder_weights(part: ModelPart, encoder: Encoder, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's own tensors, prefixes removed (a whole checkpoint holds several)."""
    if part.role is Role.CHECKPOINT:
        for prefix in _ENCODER_PREFIXES.get(encoder, ()):
            if any(k.startswith(prefix) for k in tensors):
                return _unscale_fp8(_sub(tensors, prefix))
        raise CorruptModelError(f"{part.path.name} holds no {encoder.value} text encoder.")
    return _unscale_fp8(_sub(tensors, part.prefix))


def _clip_names(weights: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """transformers ≥ 5.6 has no ``text_model.`` level in CLIPTextModel; files do."""
    wrapped = any(k.startswith("text_model.") for k in model.state_dict())
    fixed = {}
    for key, value in weights.items():
        bare = key.removeprefix("transformer.").removeprefix("text_model.")
        if key.startswith(("text_projection", "logit_scale")):
            fixed[key] = value
        else:
            fixed[("text_model." + bare) if wrapped else bare] = value
    return fixed


def _qwen_vl_names(weights: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Qwen2.5-VL files name the language model ``model.…`` and the vision tower
    ``visual.…``; transformers 5 nests them as ``model.language_model.…``/``model.visual.…``."""
    expected = model.state_dict()
    fixed = {}
    for key, value in weights.items():
        if key in expected:
            fixed[key] = value
        elif key.startswith("visual."):
            fixed["model." + key] = value
        elif key.startswith("model.") and not key.startswith(("model.language_model.", "model.visual.")):
            fixed["model.language_model." + key[len("model."):]] = value
        else:
            fixed[key] = value
    return fixed


def _fit_qwen3_config(config: Any, weights: Mapping[str, torch.Tensor]) -> None:
    """Qwen3's sizes from its weights, so the shipped Qwen3-4B config also builds the
    Qwen3-8B that FLUX.2 Klein 9B reads (the head width, 128, is the same)."""
    lead = "model." if any(k.startswith("model.layers.") for k in weights) else ""
    embed = weights.get(f"{lead}embed_tokens.weight")
    q = weights.get(f"{lead}layers.0.self_attn.q_proj.weight")
    k = weights.get(f"{lead}layers.0.self_attn.k_proj.weight")
    gate = weights.get(f"{lead}layers.0.mlp.gate_proj.weight")
    if embed is None or q is None or k is None or gate is None or _is_gguf(q):
        return
    head = int(weights[f"{lead}layers.0.self_attn.q_norm.weight"].shape[0])
    config.head_dim = head
    config.hidden_size = int(embed.shape[1])
    config.vocab_size = int(embed.shape[0])
    config.num_hidden_layers = _count(weights, f"{lead}layers.")
    config.num_attention_heads = int(q.shape[0]) // head
    config.num_key_value_heads = int(k.shape[0]) // head
    config.intermediate_size = int(gate.shape[0])
    if hasattr(config, "max_window_layers"):
        config.max_window_layers = config.num_hidden_layers
    if "lm_head.weight" in weights:
        config.tie_word_embeddings = False


def load_text_encoder(
    part: ModelPart,
    encoder: Encoder,
    family: str,
    *,
    config: Path | None = None,
    torch_dtype: torch.dtype | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Any:
    """The transformers text encoder ``encoder`` from ``part``'s file, filled strictly.

    CLIP-L is a ``CLIPTextModel`` for FLUX.1 and a ``CLIPTextModelWithProjection`` for SD
    3.5 (as is CLIP-G); T5-XXL a ``T5EncoderModel``; Qwen3 a ``Qwen3Model`` (Z-Image) or
    ``Qwen3ForCausalLM`` (FLUX.2 Klein); Qwen2.5-VL a ``Qwen2_5_VLForConditionalGeneration``.
    """
    import transformers

    dtype = torch_dtype or torch.float32
    folder = _config_dir(family, config)
    sub = _ENCODER_FOLDERS[family][encoder]
    model_config = transformers.AutoConfig.from_pretrained(str(folder / sub), local_files_only=True)
    class_name = (model_config.architectures or [None])[0]
    tensors = state if state is not None else read_tensors(part.path)
    weights = _encoder_weights(part, encoder, tensors)
    ignore: Callable[[str], bool] = lambda name: False  # noqa: E731
    if encoder in (Encoder.CLIP_L, Encoder.CLIP_G):
        cls = transformers.CLIPTextModelWithProjection if family == SD3 else transformers.CLIPTextModel
        with torch.device("meta"):
            model = cls(model_config)
        weights = _clip_names(weights, model)

        def ignore(name: str) -> bool:
            return name.startswith(("text_projection", "logit_scale")) or name.endswith("position_ids")
    elif encoder is Encoder.T5XXL:
        with torch.device("meta"):
            model = transformers.T5EncoderModel(model_config)
        embed = weights.get("shared.weight", weights.get("encoder.embed_tokens.weight"))
        if embed is not None:
            weights.setdefault("shared.weight", embed)
            weights.setdefault("encoder.embed_tokens.weight", embed)

        def ignore(name: str) -> bool:
            return name.startswith("decoder.") or name == "lm_head.weight"
    else:
        cls = getattr(transformers, class_name or "Qwen3Model")
        if encoder is Encoder.QWEN3:
            _fit_qwen3_config(model_config, weights)
        with torch.device("meta"):
            model = cls(model_config)
        expected = model.state_dict()
        if encoder is Encoder.QWEN25VL:
            weights = _qwen_vl_names(weights, model)
        elif not any(k.startswith("model.") for k in expected):  # Qwen3Model: no ``model.`` level
            weights = {k.removeprefix("model."): v for k, v in weights.items()}
        if "lm_head.weight" in expected and "lm_head.weight" not in weights:
            tied = weights.get("model.embed_tokens.weight", weights.get("model.language_model.embed_tokens.weight"))
            if tied is not None and getattr(model_config, "tie_word_embeddings", False):
                weights["lm_head.weight"] = tied

        def ignore(name: str) -> bool:
            return name == "lm_head.weight" or name.startswith(("visual.", "model.visual."))
    try:
        _fill_strictly(model, weights, dtype, ignore=ignore)
    except _Mismatch as error:
        raise CorruptModelError(f"{part.path.name} does not fit the {encoder.value} text encoder: it {error}.") from None
    if encoder in (Encoder.CLIP_L, Encoder.CLIP_G, Encoder.T5XXL) or not hasattr(model, "tie_weights"):
        return model
    if getattr(model_config, "tie_word_embeddings", False):
        model.tie_weights()
    return model


# --------------------------------------------------------------------------- VAEs

_VAE_CLASSES = {VaeKind.LATENT16: "AutoencoderKL", VaeKind.FLUX2: "AutoencoderKLFlux2",
                VaeKind.QWENIMAGE: "AutoencoderKLQwenImage"}  # fmt: skip
_VAE_PREFIXES = ("first_stage_model.", "vae.")


def load_vae(
    part: ModelPart,
    kind: VaeKind,
    family: str,
    *,
    config: Path | None = None,
    torch_dtype: torch.dtype | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Any:
    """The family's VAE from ``part``'s file (the VAE alone, or inside a checkpoint), with
    the family's latent scale and shift from its ``vae/config.json``."""
    import diffusers
    from diffusers.loaders import single_file_utils as sfu

    dtype = torch_dtype or torch.float32
    folder = _config_dir(family, config)
    vae_config = _read_config(folder, "vae")
    tensors = state if state is not None else read_tensors(part.path)
    if part.role is Role.CHECKPOINT:
        prefix = next((p for p in _VAE_PREFIXES if any(k.startswith(p) for k in tensors)), None)
        if prefix is None:
            raise CorruptModelError(f"{part.path.name} holds no VAE.")
        bare = _sub(tensors, prefix)
    else:
        bare = _sub(tensors, part.prefix)
    bare = _unscale_fp8(bare)
    cls = getattr(diffusers, _VAE_CLASSES[kind])
    try:
        if kind is VaeKind.QWENIMAGE:
            weights = bare if any(".mid_block." in k for k in bare) else sfu.convert_wan_vae_to_diffusers(dict(bare))
        elif any(k.startswith("decoder.mid.") or k.startswith("encoder.down.") for k in bare):
            # FLUX.2's VAE keeps its quant convs inside the encoder and decoder
            bare = {("quant_conv." + k[len("encoder.quant_conv."):]) if k.startswith("encoder.quant_conv.")
                    else ("post_quant_conv." + k[len("decoder.post_quant_conv."):])
                    if k.startswith("decoder.post_quant_conv.") else k: v for k, v in bare.items()}
            weights = sfu.convert_ldm_vae_checkpoint(bare, vae_config)
            for key in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "bn.weight", "bn.bias"):
                if key in bare:
                    weights[key] = bare[key]
            if "bn.running_mean" in weights:  # a count only training reads; BFL's file has none
                weights.setdefault("bn.num_batches_tracked", torch.tensor(0))
        else:
            weights = bare
        with torch.device("meta"):
            model = cls.from_config(vae_config)
        _fill_strictly(model, weights, dtype)
    except _Mismatch as error:
        raise CorruptModelError(f"{part.path.name} does not fit the {kind.value}: it {error}.") from None
    except (KeyError, RuntimeError, ValueError, IndexError) as error:
        raise CorruptModelError(f"{part.path.name} does not fit the {kind.value} ({error}).") from error
    return model


# --------------------------------------------------------------------------- tokenizers

#: Hugging Face repositories (and sub-folders) whose cached copies hold each tokenizer.
_HUB_TOKENIZERS: dict[Encoder, tuple[tuple[str, str | None], ...]] = {
    Encoder.T5XXL: (("google/t5-v1_1-xxl", None), ("black-forest-labs/FLUX.1-dev", "tokenizer_2"),
                    ("black-forest-labs/FLUX.1-schnell", "tokenizer_2"),
                    ("stabilityai/stable-diffusion-3.5-large", "tokenizer_3"), ("lodestones/Chroma1-HD", "tokenizer")),
    Encoder.QWEN3: (("Qwen/Qwen3-4B", None), ("Tongyi-MAI/Z-Image-Turbo", "tokenizer"),
                    ("black-forest-labs/FLUX.2-klein-4B", "tokenizer"), ("Qwen/Qwen3-8B", None)),
    Encoder.QWEN25VL: (("Qwen/Qwen-Image", "tokenizer"), ("Qwen/Qwen2.5-VL-7B-Instruct", None)),
}  # fmt: skip
#: ComfyUI ships these tokenizers in ``comfy/text_encoders/``.
_COMFY_TOKENIZERS = {Encoder.T5XXL: ("t5_tokenizer",), Encoder.QWEN3: ("qwen25_tokenizer",),
                     Encoder.QWEN25VL: ("qwen25_tokenizer",)}  # fmt: skip
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "vocab.json", "tokenizer_config.json")


def _has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).is_file() for f in _TOKENIZER_FILES)


def find_tokenizer(encoder: Encoder, family: str, *, config: Path | None = None, near: Iterable[Path] = ()) -> Any:
    """The tokenizer for a T5-XXL or Qwen text encoder, from the first place that has it:

    the config folder's ``tokenizer*/`` for this encoder; a ``tokenizer`` folder (or one
    named after the encoder, e.g. ``t5_tokenizer``) beside any of the ``near`` files or in
    a ComfyUI install's ``comfy/text_encoders/`` above them; the Hugging Face cache (only
    what is already downloaded). Raises :class:`ModelNotFoundError` saying where to put it.
    """
    import transformers

    candidates: list[Path] = []
    folder = Path(config) if config is not None else CONFIGS_DIR / family
    sub = _ENCODER_FOLDERS[family][encoder].replace("text_encoder", "tokenizer")
    candidates.append(folder / sub)
    names = ("tokenizer", *_COMFY_TOKENIZERS.get(encoder, ()))
    for file in near:
        for parent in list(Path(file).parents)[:4]:
            candidates += [parent / n for n in names]
            candidates += [parent / "comfy" / "text_encoders" / n for n in _COMFY_TOKENIZERS.get(encoder, ())]
    cls = transformers.AutoTokenizer
    for candidate in candidates:
        if _has_tokenizer(candidate):
            try:
                return cls.from_pretrained(str(candidate), local_files_only=True)
            except (OSError, ValueError, TypeError) as error:
                log.info("tokenizer in %s cannot be read: %s", candidate, error)
    from huggingface_hub import snapshot_download

    for repo, subfolder in _HUB_TOKENIZERS.get(encoder, ()):
        try:
            root = Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or no cache at all)
            continue
        where = root / subfolder if subfolder else root
        if _has_tokenizer(where):
            return cls.from_pretrained(str(where), local_files_only=True)
    first = next(iter(near), None)
    place = (Path(first).parent / "tokenizer") if first is not None else folder / sub
    raise ModelNotFoundError(
        f"The {encoder.value} tokenizer was not found (it cannot be downloaded here).",
        f"Put the tokenizer's files (tokenizer.json, tokenizer_config.json…) in {place}{os.sep}, or keep a "
        f"ComfyUI install (comfy/text_encoders/) or a Hugging Face download of {_HUB_TOKENIZERS[encoder][0][0]}.",
    )


# --------------------------------------------------------------------------- pipelines


def _scheduler(folder: Path) -> Any:
    import diffusers

    file = folder / "scheduler" / "scheduler_config.json"
    name = json.loads(file.read_text()).get("_class_name", "FlowMatchEulerDiscreteScheduler") if file.is_file() else None
    cls = getattr(diffusers, name or "FlowMatchEulerDiscreteScheduler")
    if name is None:
        return cls()
    return cls.from_pretrained(str(folder), subfolder="scheduler", local_files_only=True)


def _clip_tokenizer(folder: Path, sub: str, pad_token: str | None = None) -> Any:
    if _has_tokenizer(folder / sub):
        return load_clip_tokenizer(folder / sub)
    return load_clip_tokenizer(pad_token=pad_token)


def assemble_pipeline(
    family: str,
    transformer: Any,
    encoders: Mapping[Encoder, Any],
    tokenizers: Mapping[Encoder, Any],
    vae: Any,
    *,
    config: Path | None = None,
    variant: str | None = None,
) -> DiffusionPipeline:
    """The family's diffusers pipeline (its ``variant``'s: FLUX.1 Fill, Depth/Canny) from
    loaded components, with the scheduler from the config folder."""
    import inspect

    import diffusers

    folder = _config_dir(family, config)
    cls = getattr(diffusers, _pipeline_class(family, variant))
    kwargs: dict[str, Any] = {"scheduler": _scheduler(folder), "vae": vae, "transformer": transformer}
    for encoder, sub in _ENCODER_FOLDERS[family].items():
        kwargs[sub] = encoders[encoder]
        kwargs[sub.replace("text_encoder", "tokenizer")] = tokenizers[encoder]
    if family == FLUX2:
        kwargs["is_distilled"] = not transformer.config.guidance_embeds and _is_distilled(folder)
    accepted = inspect.signature(cls.__init__).parameters
    for optional in ("image_encoder", "feature_extractor"):  # IP-Adapter parts: none here
        if optional in accepted:
            kwargs[optional] = None
    pipe: DiffusionPipeline = cls(**kwargs)
    return pipe


#: FLUX.1 variants whose transformer reads more than the noise: their own pipelines.
_VARIANT_PIPELINES = {(FLUX, "fill"): "FluxFillPipeline", (FLUX, "control"): "FluxControlPipeline"}


def _pipeline_class(family: str, variant: str | None) -> str:
    """The diffusers pipeline class for a family's variant (FLUX.1 Fill takes the masked
    image and the mask beside the noise; Depth/Canny the control image's latents)."""
    return _VARIANT_PIPELINES.get((family, variant or ""), PIPELINE_CLASSES[family])


def _is_distilled(folder: Path) -> bool:
    index = folder / "model_index.json"
    return bool(json.loads(index.read_text()).get("is_distilled", True)) if index.is_file() else True


def load_grouped_model(
    group: GroupedModel,
    *,
    config: Path | None = None,
    torch_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> DiffusionPipeline:
    """Load every file of ``group`` and assemble the family's pipeline.

    Raises :class:`ModelNotFoundError` with the group's problem when a file is missing.
    """
    from sfumato.inference.model_parts import needs_of

    if group.problem is not None:
        raise ModelNotFoundError(group.problem + ".")
    family = group.main.family
    assert family is not None
    dtype = torch_dtype or torch.float32
    needed, vae_kind = needs_of(family)
    cache: dict[Path, dict[str, torch.Tensor]] = {}

    def tensors(part: ModelPart) -> dict[str, torch.Tensor]:
        if part.path not in cache:
            cache[part.path] = read_tensors(part.path)
        return cache[part.path]

    transformer = load_transformer(group.main.path, part=group.main, config=config, torch_dtype=dtype,
                                   state=dict(tensors(group.main)))
    encoders: dict[Encoder, Any] = {}
    tokenizers: dict[Encoder, Any] = {}
    folder = _config_dir(family, config)
    for encoder, part in zip(needed, group.text_encoders, strict=True):
        encoders[encoder] = load_text_encoder(part, encoder, family, config=config, torch_dtype=dtype,
                                              state=tensors(part))
        sub = _ENCODER_FOLDERS[family][encoder].replace("text_encoder", "tokenizer")
        if encoder is Encoder.CLIP_L:
            tokenizers[encoder] = _clip_tokenizer(folder, sub)
        elif encoder is Encoder.CLIP_G:
            tokenizers[encoder] = _clip_tokenizer(folder, sub, pad_token="!")
        else:
            tokenizers[encoder] = find_tokenizer(encoder, family, config=config, near=(part.path, group.main.path))
    assert group.vae is not None
    vae = load_vae(group.vae, vae_kind, family, config=config, torch_dtype=dtype, state=tensors(group.vae))
    cache.clear()
    pipe = assemble_pipeline(family, transformer, encoders, tokenizers, vae, config=config,
                             variant=group.main.variant)
    if device is not None:
        pipe.to(device)
    log.info("assembled %s from %s", type(pipe).__name__, ", ".join(p.name for p in group.files))
    return pipe


def load_model_file(
    path: Path,
    *,
    config: Path | None = None,
    torch_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[DiffusionPipeline, str]:
    """``(pipeline, family)`` for a transformer file or whole checkpoint at ``path``, with
    its text encoders and VAE found around it (:func:`group_transformer_file`)."""
    path = Path(path)
    part = identify_part(path)
    group = group_transformer_file(path, part)
    if group is None or group.family is None:
        raise CorruptModelError(f"{path.name} is not a transformer-family model file.")
    return load_grouped_model(group, config=config, torch_dtype=torch_dtype, device=device), group.family

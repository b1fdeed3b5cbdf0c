"""Load the transformer of a FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image or Qwen-Image file,
strictly and offline; the reading and strict filling every part of such a model shares.

The transformer comes in one of three key layouts (see :mod:`.transformer_keys`: Black
Forest Labs' / the original authors', ComfyUI's ``model.diffusion_model.`` prefix,
diffusers'), maybe fp8 or GGUF-quantized. It is built on the meta device and filled with
the file's tensors (:func:`fill_strictly`): every tensor the architecture needs must come
from the file and every tensor of the file must find its place (:class:`CorruptModelError`
naming the first few otherwise: never a silently random layer, no time spent on random
initialisation). :mod:`.model_assembly` loads the text encoders and VAE the same way and
assembles the family's pipeline.

Configs come from ``resources/configs/<family>/`` (the full-size models, diffusers
format), or from a ``config=`` folder of the same shape (a custom model; the tests' tiny
ones). The layer counts and widths that the weights themselves show (blocks, text width,
input channels, guidance embedding) are read from the tensors, so one shipped config
serves FLUX.1 dev, schnell and Fill, SD 3.5 large and medium, FLUX.2 Klein 4B and 9B.

Memory: fp8 files (``float8_e4m3fn``/``e5m2``, ComfyUI's "fp8_scaled" with per-layer
``scale_weight``) are cast to the compute dtype while loading, so the loaded model takes
the compute dtype's size (an fp8 file of N bytes becomes 2N in bf16/fp16, 4N in fp32);
GGUF files stay quantized in memory (diffusers' ``GGUFLinear`` dequantizes per matmul).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from sfumato.inference.checkpoint_reading import load_checkpoint_state_dict
from sfumato.inference.detect import read_safetensors_header
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.inference.model_parts import (
    FAMILY_LABELS,
    UNLOADED_VARIANTS,
    Layout,
    ModelPart,
    identify_part,
)
from sfumato.inference.single_file import CONFIGS_DIR
from sfumato.vocabulary.families import CHROMA, FLUX, FLUX2, QWENIMAGE, SD3, ZIMAGE

__all__ = [
    "TRANSFORMER_CLASSES",
    "WeightsMismatch",
    "config_folder",
    "count_blocks",
    "fill_strictly",
    "is_gguf",
    "load_transformer",
    "read_config",
    "read_tensors",
    "unscale_fp8",
    "without_prefix",
]

log = logging.getLogger(__name__)

#: The diffusers transformer class of each family.
TRANSFORMER_CLASSES = {
    FLUX: "FluxTransformer2DModel", CHROMA: "ChromaTransformer2DModel", SD3: "SD3Transformer2DModel",
    FLUX2: "Flux2Transformer2DModel", ZIMAGE: "ZImageTransformer2DModel", QWENIMAGE: "QwenImageTransformer2DModel",
}  # fmt: skip

_COMFY = "model.diffusion_model."


# --------------------------------------------------------------------------- reading


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` (or pickle) checkpoint, of a ``.sft`` (Black Forest
    Labs' first name for safetensors files: ``flux1-dev.sft``, ``ae.sft``), or of a ``.gguf``
    file (quantized tensors as diffusers' ``GGUFParameter``, still quantized)."""
    path = Path(path)
    if path.suffix.lower() == ".sft":
        read_safetensors_header(path)  # a truncated download is named before torch reads it
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise CorruptModelError(f"{path.name} cannot be read: {error}.") from error
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


def unscale_fp8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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


def without_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if not prefix:
        return dict(state)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------- filling


class WeightsMismatch(Exception):
    """The tensors of a file do not fit the model built for them (the text says how, to
    follow "the file …")."""


def is_gguf(value: Any) -> bool:
    return type(value).__name__ == "GGUFParameter"


def fill_strictly(
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
        raise WeightsMismatch(" and ".join(words))
    for name, current in expected.items():
        value = weights[name]
        owner_name, _, attr = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        if is_gguf(value):
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
            raise WeightsMismatch(f"has {name} of shape {tuple(shape)} where the model needs {tuple(current.shape)}")
        if attr in owner._parameters:
            owner._parameters[attr] = value if is_gguf(value) else torch.nn.Parameter(value, requires_grad=False)
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
                raise WeightsMismatch(f"leaves the buffer {name + '.' if name else ''}{attr} uninitialised")


# --------------------------------------------------------------------------- configs


def config_folder(family: str, config: Path | None) -> Path:
    folder = Path(config) if config is not None else CONFIGS_DIR / family
    if not folder.is_dir():
        raise UnsupportedModeError(f"There are no model configs for the {family!r} family ({folder}).")
    return folder


def read_config(folder: Path, name: str) -> dict[str, Any]:
    file = folder / name / "config.json"
    if not file.is_file():
        raise CorruptModelError(f"The config folder {folder} has no {name}/config.json.")
    data: dict[str, Any] = json.loads(file.read_text())
    return data


def count_blocks(weights: Iterable[str], prefix: str) -> int:
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
        return int(shape[1]) if not is_gguf(w[key]) else _logical_cols(w[key])

    if family in (FLUX, CHROMA):
        head = rows("transformer_blocks.0.attn.norm_q.weight")
        c.update(num_layers=count_blocks(w, "transformer_blocks."), num_single_layers=count_blocks(w, "single_transformer_blocks."),
                 attention_head_dim=head, num_attention_heads=rows("x_embedder.weight") // head,
                 in_channels=cols("x_embedder.weight"), joint_attention_dim=cols("context_embedder.weight"))
        out = rows("proj_out.weight") // (c.get("patch_size", 1) ** 2)
        c["out_channels"] = out if out != c["in_channels"] else None
        if family == FLUX:
            c["guidance_embeds"] = "time_text_embed.guidance_embedder.linear_1.weight" in w
            c["pooled_projection_dim"] = cols("time_text_embed.text_embedder.linear_1.weight")
        else:
            c.update(approximator_layers=count_blocks(w, "distilled_guidance_layer.layers."),
                     approximator_hidden_dim=rows("distilled_guidance_layer.in_proj.weight"),
                     approximator_num_channels=cols("distilled_guidance_layer.in_proj.weight"))
    elif family == SD3:
        c["num_layers"] = count_blocks(w, "transformer_blocks.")
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
        c.update(num_layers=count_blocks(w, "transformer_blocks."), num_single_layers=count_blocks(w, "single_transformer_blocks."),
                 attention_head_dim=head, num_attention_heads=rows("x_embedder.weight") // head,
                 in_channels=cols("x_embedder.weight"), joint_attention_dim=cols("context_embedder.weight"),
                 guidance_embeds="time_guidance_embed.guidance_embedder.linear_1.weight" in w)
    elif family == ZIMAGE:
        c.update(n_layers=count_blocks(w, "layers."), n_refiner_layers=count_blocks(w, "noise_refiner."),
                 dim=rows("cap_embedder.1.weight"), cap_feat_dim=cols("cap_embedder.1.weight"))
    elif family == QWENIMAGE:
        c.update(num_layers=count_blocks(w, "transformer_blocks."), joint_attention_dim=cols("txt_in.weight"),
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
    doubles = count_blocks(state, "double_blocks.")
    singles = count_blocks(state, "single_blocks.")
    if chroma:
        move("distilled_guidance_layer.in_proj", "distilled_guidance_layer.in_proj")
        move("distilled_guidance_layer.out_proj", "distilled_guidance_layer.out_proj")
        for i in range(count_blocks(state, "distilled_guidance_layer.layers.")):
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


def _convert_transformer(family: str, layout: Layout, state: dict[str, torch.Tensor]) -> tuple[
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
    if (family, part.variant) in UNLOADED_VARIANTS:
        raise UnsupportedModeError(UNLOADED_VARIANTS[(family, part.variant)].format(name=path.name) + ".")
    dtype = torch_dtype or torch.float32
    folder = config_folder(family, config)
    name = f"transformer-{part.variant}" if part.variant and (folder / f"transformer-{part.variant}").is_dir() else "transformer"
    base_config = read_config(folder, name)
    tensors = state if state is not None else read_tensors(path)
    bare = unscale_fp8(without_prefix(tensors, part.prefix))
    cls = getattr(diffusers, TRANSFORMER_CLASSES[family])
    label = FAMILY_LABELS[family]
    try:
        weights, leftover = _convert_transformer(family, part.layout, bare)
        if leftover:
            raise WeightsMismatch(f"has {len(leftover)} tensors it cannot place ({', '.join(sorted(leftover)[:3])})")
        model_config = _fit_transformer_config(family, base_config, weights)
        with torch.device("meta"):
            model = cls.from_config(model_config)
        if any(is_gguf(v) for v in weights.values()):
            from diffusers.quantizers.gguf.utils import _replace_with_gguf_linear

            with torch.device("meta"):
                _replace_with_gguf_linear(model, dtype, weights)
        fill_strictly(model, weights, dtype)
    except KeyError as error:
        key = error.args[0] if error.args else "?"
        raise CorruptModelError(
            f"{path.name} is not a whole {label} transformer: it lacks the tensor {part.prefix}{key}.",
            "The download may be incomplete; download it again.",
        ) from None
    except WeightsMismatch as error:
        raise CorruptModelError(f"{path.name} does not fit the {label} transformer: it {error}.") from None
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        raise CorruptModelError(f"{path.name} does not fit the {label} transformer ({error}).") from error
    log.info("loaded the %s transformer of %s (%s, %s)", label, path.name, part.layout.value, dtype)
    return model

"""Assemble a transformer-family model from its files: text encoders, VAE, tokenizers, pipeline.

:mod:`.model_parts` groups a transformer file with the text encoders and VAE around it;
here each is built on the meta device and filled strictly (:func:`.transformer_files.fill_strictly`)
and the family's diffusers pipeline is put together: CLIP-L/CLIP-G (transformers'
``CLIPTextModel``/``…WithProjection``), T5-XXL, Qwen3 (``Qwen3Model`` for Z-Image,
``Qwen3ForCausalLM`` for FLUX.2 Klein), Qwen2.5-VL; the 16-channel FLUX/SD3 VAE, FLUX.2's
and Qwen-Image's. ComfyUI's key names (``text_encoders.clip_l.transformer.…`` in a whole
checkpoint, ``first_stage_model.…``, Qwen's ``model.…``/``visual.…``) are read as they are.

Tokenizers: CLIP's is shipped. T5's and Qwen's are not on any package index we may use;
:func:`find_tokenizer` looks where people have them (the config folder, beside the model
files, a ComfyUI install's ``comfy/text_encoders``, the Hugging Face cache) and otherwise
says what is missing and where to put it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sfumato.inference.checkpoint_reading import release_file_pages
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError
from sfumato.inference.model_parts import (
    Encoder,
    GroupedModel,
    ModelPart,
    Role,
    VaeKind,
    group_transformer_file,
    identify_part,
    needs_of,
)
from sfumato.inference.single_file import CONFIGS_DIR, load_clip_tokenizer
from sfumato.inference.transformer_files import (
    WeightsMismatch,
    config_folder,
    count_blocks,
    fill_strictly,
    is_gguf,
    load_transformer,
    read_config,
    read_tensors,
    unscale_fp8,
    without_prefix,
)
from sfumato.vocabulary.families import CHROMA, FLUX, FLUX2, QWENIMAGE, SD3, ZIMAGE

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

__all__ = [
    "PIPELINE_CLASSES",
    "assemble_pipeline",
    "find_tokenizer",
    "load_grouped_model",
    "load_model_file",
    "load_text_encoder",
    "load_vae",
]

log = logging.getLogger(__name__)

#: The diffusers pipeline class of each family.
PIPELINE_CLASSES = {
    FLUX: "FluxPipeline", CHROMA: "ChromaPipeline", SD3: "StableDiffusion3Pipeline",
    FLUX2: "Flux2KleinPipeline", ZIMAGE: "ZImagePipeline", QWENIMAGE: "QwenImagePipeline",
}  # fmt: skip

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
                return unscale_fp8(without_prefix(tensors, prefix))
        raise CorruptModelError(f"{part.path.name} holds no {encoder.value} text encoder.")
    return unscale_fp8(without_prefix(tensors, part.prefix))


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


_T5_GGUF_NAMES = {
    "attn_q": "layer.0.SelfAttention.q", "attn_k": "layer.0.SelfAttention.k", "attn_v": "layer.0.SelfAttention.v",
    "attn_o": "layer.0.SelfAttention.o", "attn_rel_b": "layer.0.SelfAttention.relative_attention_bias",
    "attn_norm": "layer.0.layer_norm", "ffn_gate": "layer.1.DenseReluDense.wi_0",
    "ffn_up": "layer.1.DenseReluDense.wi_1", "ffn_down": "layer.1.DenseReluDense.wo", "ffn_norm": "layer.1.layer_norm",
}  # fmt: skip


def _t5_from_llama_cpp_names(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A GGUF T5 encoder (city96's ``t5-v1_1-xxl-encoder-Q8_0.gguf``) names its tensors as
    llama.cpp does (``enc.blk.N.attn_q``, ``token_embd``); transformers' names for them.
    Its quantized weights are dequantized while filling: T5 casts its activations to its
    weights' dtype, which a quantized weight's bytes are not."""
    out: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if key == "token_embd.weight":
            out["shared.weight"] = value
        elif key == "enc.output_norm.weight":
            out["encoder.final_layer_norm.weight"] = value
        elif key.startswith("enc.blk."):
            block, name, part = key[len("enc.blk."):].split(".", 2)
            out[f"encoder.block.{block}.{_T5_GGUF_NAMES.get(name, name)}.{part}"] = value
        else:
            out[key] = value
    return out


def _fit_qwen3_config(config: Any, weights: Mapping[str, torch.Tensor]) -> None:
    """Qwen3's sizes from its weights, so the shipped Qwen3-4B config also builds the
    Qwen3-8B that FLUX.2 Klein 9B reads (the head width, 128, is the same)."""
    lead = "model." if any(k.startswith("model.layers.") for k in weights) else ""
    embed = weights.get(f"{lead}embed_tokens.weight")
    q = weights.get(f"{lead}layers.0.self_attn.q_proj.weight")
    k = weights.get(f"{lead}layers.0.self_attn.k_proj.weight")
    gate = weights.get(f"{lead}layers.0.mlp.gate_proj.weight")
    if embed is None or q is None or k is None or gate is None or is_gguf(q):
        return
    head = int(weights[f"{lead}layers.0.self_attn.q_norm.weight"].shape[0])
    config.head_dim = head
    config.hidden_size = int(embed.shape[1])
    config.vocab_size = int(embed.shape[0])
    config.num_hidden_layers = count_blocks(weights, f"{lead}layers.")
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
    folder = config_folder(family, config)
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
        if "enc.blk.0.attn_q.weight" in weights:
            weights = _t5_from_llama_cpp_names(weights)
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
        fill_strictly(model, weights, dtype, ignore=ignore)
    except WeightsMismatch as error:
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
    folder = config_folder(family, config)
    vae_config = read_config(folder, "vae")
    tensors = state if state is not None else read_tensors(part.path)
    if part.role is Role.CHECKPOINT:
        prefix = next((p for p in _VAE_PREFIXES if any(k.startswith(p) for k in tensors)), None)
        if prefix is None:
            raise CorruptModelError(f"{part.path.name} holds no VAE.")
        bare = without_prefix(tensors, prefix)
    else:
        bare = without_prefix(tensors, part.prefix)
    bare = unscale_fp8(bare)
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
        fill_strictly(model, weights, dtype)
    except WeightsMismatch as error:
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
    from huggingface_hub import snapshot_download

    for repo, subfolder in _HUB_TOKENIZERS.get(encoder, ()):
        try:
            root = Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or no cache at all)
            continue
        candidates.append(root / subfolder if subfolder else root)
    kind = "T5" if encoder is Encoder.T5XXL else "Qwen"
    for candidate in candidates:
        if not _has_tokenizer(candidate):
            continue
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(candidate), local_files_only=True)
        except (OSError, ValueError, TypeError) as error:
            log.info("tokenizer in %s cannot be read: %s", candidate, error)
            continue
        # a "tokenizer" folder beside the files may be another model's: the class must fit
        if kind in type(tokenizer).__name__:
            return tokenizer
        log.info("tokenizer in %s is a %s, not %s's", candidate, type(tokenizer).__name__, encoder.value)
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

    folder = config_folder(family, config)
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
_VARIANT_PIPELINES = {(FLUX, "fill"): "FluxFillPipeline", (FLUX, "control"): "FluxControlPipeline",
                      (FLUX, "kontext"): "FluxKontextPipeline"}  # fmt: skip


def _pipeline_class(family: str, variant: str | None) -> str:
    """The diffusers pipeline class for a family's variant (FLUX.1 Fill takes the masked
    image and the mask beside the noise; Depth/Canny the control image's latents; Kontext
    the picture to edit)."""
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
    folder = config_folder(family, config)
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
    pipe = assemble_pipeline(family, transformer, encoders, tokenizers, vae, config=config,
                             variant=group.main.variant)
    if device is not None:
        pipe.to(device)
    for path, read in cache.items():  # the unmapping below then holds the GIL ~1 ms, not 0.1-0.3 s
        release_file_pages(path, read)
    cache.clear()
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

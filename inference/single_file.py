"""Load single-file checkpoints (the format artists download) fully offline.

A ``.safetensors`` checkpoint in the original LDM key layout holds the UNet, the VAE
and the text encoder(s) but no configs and no tokenizer. diffusers would fetch those
from the hub; here they come from ``resources/configs/<family>/`` (diffusers-format
config JSONs) and ``resources/configs/clip-tokenizer/`` (CLIP's BPE files), and nothing
touches the network.

- Files are read by :mod:`.checkpoint_reading` (safetensors validated first; pickles only
  through ``weights_only`` and only when they need no code).
- Every component is built on the meta device and filled strictly: a tensor missing
  from the file is a :class:`CorruptModelError` naming it, never a silently random
  layer (diffusers loads with ``strict=False`` when accelerate is absent), and no time
  goes into random initialisation.
- The family comes from the keys (:func:`sfumato.inference.detect.detect_family`); a
  UNet whose first convolution takes 9 channels gives the inpainting pipeline.
- SD 2.x files do not say whether they predict v (768) or epsilon (512): the sidecar
  ``<name>.yaml``, the file name or a tell-tale tensor decides
  (:func:`sfumato.inference.families.sd2.single_file_kind`), else the config's own
  (shipped: v-prediction at 768).
- ``config=`` overrides the shipped configs with any diffusers-format folder (a
  checkpoint of a custom architecture; the tests' tiny models). The folder needs
  ``unet/``, ``vae/``, ``text_encoder/`` (``text_encoder_2/`` for SDXL) and
  ``scheduler/`` configs; ``tokenizer/`` folders are used when present, the shipped CLIP
  tokenizer otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sfumato.resources
import torch
from sfumato.inference.checkpoint_reading import (
    PICKLE_SUFFIXES,
    load_checkpoint_state_dict,
    release_file_pages,
)
from sfumato.inference.detect import (
    SD2,
    SD15,
    SDXL,
    SUPPORTED_FAMILIES,
    detect_family,
    is_inpaint_unet,
)
from sfumato.inference.errors import (
    CorruptModelError,
    UnsupportedModeError,
)
from sfumato.inference.families.sd2 import PAD_TOKEN, SingleFileKind

if TYPE_CHECKING:
    from diffusers import ControlNetModel, DiffusionPipeline
    from transformers import CLIPTokenizer

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "CONFIGS_DIR",
    "PICKLE_SUFFIXES",
    "family_config_dir",
    "load_checkpoint_state_dict",
    "load_clip_tokenizer",
    "load_controlnet_file",
    "load_single_file",
]

log = logging.getLogger(__name__)

CONFIGS_DIR = Path(sfumato.resources.__file__).parent / "configs"
TOKENIZER_DIR = CONFIGS_DIR / "clip-tokenizer"
CHECKPOINT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


def family_config_dir(family: str) -> Path:
    """The shipped diffusers-format config folder for ``family`` (``sd15`` / ``sd2`` / ``sdxl``)."""
    if family not in SUPPORTED_FAMILIES:
        raise UnsupportedModeError(f"There are no model configs for the {family!r} family.")
    return CONFIGS_DIR / family


_TOKENIZERS: dict[tuple[str, str | None, tuple[tuple[str, int, int], ...]], CLIPTokenizer] = {}
_TOKENIZERS_LOCK = threading.Lock()


def load_clip_tokenizer(folder: Path | None = None, *, pad_token: str | None = None) -> CLIPTokenizer:
    """A CLIP tokenizer from ``folder`` (default: the shipped OpenAI CLIP vocabulary).

    ``pad_token="!"`` gives SDXL's second tokenizer (same vocabulary, other padding).

    Made once per process for each folder (and its files' sizes and times) and pad token,
    then shared by every pipeline that asks: building one turns the 49,408-word
    vocabulary and 48,894 merges into the Rust BPE model in a single call that holds the
    GIL for 0.1–0.4 s on a 2-core CPU, which froze the window during every model load.
    The pipelines only call their tokenizers; nothing may change a shared one.
    """
    from transformers import CLIPTokenizer

    folder = TOKENIZER_DIR if folder is None else Path(folder)
    files = tuple(
        (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.is_file()
    ) if folder.is_dir() else ()
    key = (str(folder.resolve()), pad_token, files)
    with _TOKENIZERS_LOCK:  # two threads asking at once build it once
        tokenizer = _TOKENIZERS.get(key)
        if tokenizer is None:
            kwargs: dict[str, Any] = {"local_files_only": True}
            if pad_token is not None:
                kwargs["pad_token"] = pad_token
            tokenizer = CLIPTokenizer.from_pretrained(str(folder), **kwargs)
            _TOKENIZERS[key] = tokenizer
    return tokenizer


# --------------------------------------------------------------------------- loading


def _component_location(folder: Path, name: str) -> tuple[str, str | None]:
    """``(config path, subfolder)`` for a component: ``folder/name/`` or ``folder`` itself."""
    if (folder / name / "config.json").is_file():
        return str(folder), name
    if (folder / "config.json").is_file():
        return str(folder), None
    raise CorruptModelError(
        f"The config folder {folder} has no {name}/config.json.",
        "Point the config at a diffusers-format model folder.",
    )


def _tokenizer_for(config_dir: Path, name: str, pad_token: str | None) -> CLIPTokenizer:
    folder = config_dir / name
    if any((folder / f).is_file() for f in ("vocab.json", "tokenizer.json", "tokenizer_config.json")):
        return load_clip_tokenizer(folder)
    return load_clip_tokenizer(pad_token=pad_token)


def _scheduler_for(config_dir: Path) -> Any:
    import diffusers

    config_file = config_dir / "scheduler" / "scheduler_config.json"
    name = json.loads(config_file.read_text()).get("_class_name", "EulerDiscreteScheduler")
    cls = getattr(diffusers, name, diffusers.EulerDiscreteScheduler)
    return cls.from_pretrained(str(config_dir), subfolder="scheduler", local_files_only=True)


class _MissingWeightsError(RuntimeError):
    """A component's converted weights lack tensors the architecture needs."""


def _strict_build(model: torch.nn.Module, weights: dict[str, torch.Tensor], dtype: torch.dtype, what: str) -> Any:
    """Fill a model built on the meta device with ``weights``; every parameter must be there.

    diffusers/transformers load single files with ``strict=False`` when accelerate is
    absent, which would leave missing layers random; here a missing tensor is an error.
    Building on the meta device also skips the random initialisation (seconds per GB).
    """
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    result = model.load_state_dict(weights, strict=False, assign=True)
    if result.missing_keys:
        raise _MissingWeightsError(
            f"the {what} lacks {len(result.missing_keys)} tensors (e.g. {result.missing_keys[0]})"
        )
    if result.unexpected_keys:
        log.debug("%s: %d unused tensors (e.g. %s)", what, len(result.unexpected_keys), result.unexpected_keys[0])
    for name, buffer in list(model.named_buffers()):
        if not buffer.is_meta:
            continue
        if name.endswith("position_ids"):  # CLIP's non-persistent index buffer
            owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            owner.register_buffer(
                name.rpartition(".")[2], torch.arange(buffer.shape[-1]).expand(buffer.shape), persistent=False
            )
        else:
            raise _MissingWeightsError(f"the {what} has an uninitialised buffer {name}")
    return model.eval()


def _config_json(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "config.json").read_text())
    return data


def _build_unet(state: dict[str, torch.Tensor], config_dir: Path, dtype: torch.dtype) -> Any:
    import diffusers
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = _config_json(config_dir / "unet")
    conv_in = state.get("model.diffusion_model.input_blocks.0.0.weight")
    if conv_in is not None:
        config["in_channels"] = int(conv_in.shape[1])
    weights = convert_ldm_unet_checkpoint(state, config)
    with torch.device("meta"):
        model = diffusers.UNet2DConditionModel.from_config(config)
    return _strict_build(model, weights, dtype, "UNet")


def _build_vae(state: dict[str, torch.Tensor], config_dir: Path, dtype: torch.dtype) -> Any:
    import diffusers
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = _config_json(config_dir / "vae")
    weights = convert_ldm_vae_checkpoint(state, config)
    with torch.device("meta"):
        model = diffusers.AutoencoderKL.from_config(config)
    return _strict_build(model, weights, dtype, "VAE")


def _build_text_encoder(
    state: dict[str, torch.Tensor],
    config_dir: Path,
    name: str,
    dtype: torch.dtype,
    open_clip_prefix: str | None,
    with_projection: bool | None = None,
) -> Any:
    """CLIP-L from ``…transformer.text_model.*`` keys, or OpenCLIP (``open_clip_prefix``).

    ``with_projection`` (default: with OpenCLIP) builds ``CLIPTextModelWithProjection``:
    SDXL's second encoder needs its pooled projection, SD 2.x's encoder none.
    """
    import transformers
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_open_clip_checkpoint,
    )

    config = transformers.CLIPTextConfig.from_pretrained(str(config_dir), subfolder=name, local_files_only=True)
    projected = bool(open_clip_prefix) if with_projection is None else with_projection
    cls = transformers.CLIPTextModelWithProjection if projected else transformers.CLIPTextModel
    with torch.device("meta"):
        model = cls(config)
    if open_clip_prefix:
        weights = convert_open_clip_checkpoint(model, state, prefix=open_clip_prefix)
    else:
        weights = convert_ldm_clip_checkpoint(state)
    # transformers >= 5.6 flattened CLIPTextModel (no ``text_model.`` level); old SD 1.x
    # files may also lack it. Match the names to the model at hand.
    wrapped = hasattr(model, "text_model")
    fixed: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if key.startswith("text_projection"):
            fixed[key] = value
        elif wrapped:
            fixed[key if key.startswith("text_model.") else "text_model." + key] = value
        else:
            fixed[key.removeprefix("text_model.")] = value
    return _strict_build(model, fixed, dtype, f"text encoder ({name})")


#: what building a model from a checkpoint's tensors raises when they do not fit its config
_BUILD_ERRORS = (KeyError, RuntimeError, ValueError, IndexError, TypeError, AttributeError)


def _read_checkpoint(
    path: Path, family: str | None, config: Path | None
) -> tuple[dict[str, torch.Tensor], str, Path]:
    """A checkpoint's tensors, its family (``family``, else detected from the tensors) and
    the config folder to build it with (``config``, else the family's shipped one)."""
    state = load_checkpoint_state_dict(path)
    family = family or detect_family(state)
    return state, family, Path(config) if config is not None else family_config_dir(family)


def load_single_file(
    path: Path,
    family: str | None = None,
    *,
    torch_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    config: Path | None = None,
) -> DiffusionPipeline:
    """Load a single-file SD 1.x / SD 2.x / SDXL checkpoint as a diffusers pipeline, offline.

    Returns a ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline`` (their
    ``Inpaint`` variants when the UNet takes 9 input channels), with no safety checker.
    ``family`` skips detection; ``config`` is a diffusers-format folder replacing the
    shipped configs (see the module docstring). ``torch_dtype`` defaults to float32.
    """
    path = Path(path)
    state, family, config_dir = _read_checkpoint(path, family, config)
    if not (config_dir / "unet").is_dir():
        raise CorruptModelError(f"The config folder {config_dir} has no unet/ config.")
    dtype = torch_dtype or torch.float32
    inpaint = is_inpaint_unet(state)
    kind = None
    if family == SD2:
        from sfumato.inference.families.sd2 import single_file_kind, unsupported_variant

        variant = unsupported_variant(state)
        if variant is not None:
            raise UnsupportedModeError(variant)
        kind = single_file_kind(path, inpaint=inpaint, state=state)
        log.info("%s: SD 2.x, %s (%s)", path.name, kind.prediction_type or "the config's prediction", kind.reason)
        if config is not None:  # a config folder of its own keeps its own size
            kind = replace(kind, sample_size=None)
    try:
        pipe: Any = _assemble(state, family, config_dir, dtype, inpaint, kind)
    except _BUILD_ERRORS as error:
        raise CorruptModelError(
            f"{path.name} does not match the {family} architecture it looks like ({error}).",
            "The file may be damaged, or a custom model that needs its own config folder.",
        ) from error
    if device is not None:
        pipe.to(device)
    release_file_pages(path, state)  # the unmapping below then holds the GIL ~1 ms, not 0.1-0.3 s
    del state
    log.info("loaded %s as %s%s (%s)", path.name, family, " inpaint" if inpaint else "", dtype)
    return pipe


def _assemble(
    state: dict[str, torch.Tensor],
    family: str,
    config_dir: Path,
    dtype: torch.dtype,
    inpaint: bool,
    kind: SingleFileKind | None = None,
) -> DiffusionPipeline:
    import diffusers

    unet = _build_unet(state, config_dir, dtype)
    vae = _build_vae(state, config_dir, dtype)
    scheduler = _scheduler_for(config_dir)
    if kind is not None and kind.prediction_type is not None:
        scheduler = type(scheduler).from_config(scheduler.config, prediction_type=kind.prediction_type)
    if kind is not None and kind.sample_size is not None:
        unet.register_to_config(sample_size=kind.sample_size)

    if family == SD15:
        text_encoder = _build_text_encoder(state, config_dir, "text_encoder", dtype, None)
        cls: Any = diffusers.StableDiffusionInpaintPipeline if inpaint else diffusers.StableDiffusionPipeline
        pipe: DiffusionPipeline = cls(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=_tokenizer_for(config_dir, "tokenizer", None),
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        return pipe
    if family == SD2:
        # OpenCLIP-H as diffusers ships it: no projection, the last of its 24 blocks dropped.
        text_encoder = _build_text_encoder(
            state, config_dir, "text_encoder", dtype, "cond_stage_model.model.", with_projection=False
        )
        cls = diffusers.StableDiffusionInpaintPipeline if inpaint else diffusers.StableDiffusionPipeline
        pipe = cls(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=_tokenizer_for(config_dir, "tokenizer", PAD_TOKEN),
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        return pipe
    if family == SDXL:
        text_encoder = _build_text_encoder(state, config_dir, "text_encoder", dtype, None)
        text_encoder_2 = _build_text_encoder(
            state, config_dir, "text_encoder_2", dtype, "conditioner.embedders.1.model."
        )
        index = json.loads((config_dir / "model_index.json").read_text()) if (config_dir / "model_index.json").is_file() else {}
        kwargs: dict[str, Any] = {}
        if inpaint:
            kwargs["requires_aesthetics_score"] = False
            cls = diffusers.StableDiffusionXLInpaintPipeline
        else:
            cls = diffusers.StableDiffusionXLPipeline
        pipe = cls(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=_tokenizer_for(config_dir, "tokenizer", None),
            tokenizer_2=_tokenizer_for(config_dir, "tokenizer_2", "!"),
            unet=unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", True)),
            **kwargs,
        )
        return pipe
    raise UnsupportedModeError(f"Single-file loading does not support the {family!r} family.")


def load_controlnet_file(
    path: Path,
    family: str | None = None,
    *,
    torch_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    config: Path | None = None,
) -> ControlNetModel:
    """Load a single-file ControlNet (LDM ``control_model.`` or diffusers layout), offline.

    ``config`` is a folder holding the ControlNet's ``config.json`` (directly or under
    ``controlnet/``); by default ``resources/configs/<family>/controlnet``.
    """
    import diffusers

    path = Path(path)
    state, family, folder = _read_checkpoint(path, family, config)
    location, subfolder = _component_location(folder, "controlnet")
    dtype = torch_dtype or torch.float32
    try:
        net_config = _config_json(Path(location) / (subfolder or ""))
        hint = state.get("control_model.input_hint_block.0.weight", state.get("controlnet_cond_embedding.conv_in.weight"))
        if hint is not None:
            net_config["conditioning_channels"] = int(hint.shape[1])
        weights = _convert_ldm_controlnet(state, net_config)
        with torch.device("meta"):
            model = diffusers.ControlNetModel.from_config(net_config)
        model = _strict_build(model, weights, dtype, "ControlNet")
    except _BUILD_ERRORS as error:
        raise CorruptModelError(
            f"{path.name} does not match the {family} ControlNet architecture ({error}).",
            "The file may be damaged, or it needs its own config folder.",
        ) from error
    if device is not None:
        model.to(device)
    release_file_pages(path, state)
    del state, weights
    return model


def _convert_ldm_controlnet(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """ControlNet weights in diffusers naming, from either layout.

    diffusers' own converter drops ``label_emb`` (SDXL ControlNets' ``add_embedding``),
    which would leave those layers random; it is mapped here. A state dict already in
    the diffusers layout is returned unchanged.
    """
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    converted: dict[str, torch.Tensor] = convert_controlnet_checkpoint(state, config)
    if converted is state:
        return state
    for new, old in (("linear_1", "label_emb.0.0"), ("linear_2", "label_emb.0.2")):
        for part in ("weight", "bias"):
            key = f"control_model.{old}.{part}"
            if key in state:
                converted[f"add_embedding.{new}.{part}"] = state[key]
    return converted

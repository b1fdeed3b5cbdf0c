"""Reference pictures for FLUX.1 through Redux, in our own loop (no pipeline call).

FLUX.1 Redux reads a picture with a SigLIP vision encoder (``SiglipVisionModel``,
siglip-so400m-patch14-384: 729 tokens 1152 wide) and maps its last hidden states into
T5's space with a two-layer MLP (diffusers' ``ReduxImageEncoder``:
``redux_down(silu(redux_up(x)))``). ``FluxPriorReduxPipeline`` appends those tokens to the
prompt's T5 tokens; the FLUX transformer then reads them as more text. Here:

- **files**: ComfyUI's ``models/style_models/flux1-redux-dev.safetensors`` (``redux_up.*``,
  ``redux_down.*``) with ``models/clip_vision/sigclip_vision_patch14_384.safetensors``
  (transformers' ``vision_model.*`` names, as ComfyUI reads them; its attention-pooling
  ``head`` is not needed: Redux reads the last hidden states), or the diffusers folder
  ``FLUX.1-Redux-dev`` (``image_embedder/``, ``image_encoder/``, ``feature_extractor/``);
  the encoder's config comes from a ``<file>.json``/``config.json`` beside it, else from
  the weights' shapes (16 heads at so400m's width 1152, else 64-wide heads);
- **preprocessing**: ``SiglipImageProcessor``'s (the folder's ``feature_extractor``, else
  SigLIP's defaults at the encoder's size: a bicubic resize to 384², ``x/255``, mean and
  std 0.5) — the picture's aspect ratio is not kept, as the pipeline does it;
- **per run** (:class:`ReduxInput`): each picture's tokens ``(1, 729, D)``, appended
  after the prompt's tokens of the conditional rows only inside the reference's
  ``[start, end)`` fraction of the steps (:mod:`.denoisers.flux`). The strength ``s`` is
  an attention bias ``log s`` on the picture's tokens as keys — each one's attention
  weight times ``s`` before the softmax renormalises, ComfyUI's *StyleModelApply*
  ``attn_bias`` strength. Its ``multiply`` strength (the tokens times ``s``) does almost
  nothing on FLUX: the context is layer-normed and the keys RMS-normed in every block,
  so only the context projection's bias tells a scaled token from the original. A
  reference of strength 0 is left out, so the run is the plain one byte for byte. Under true CFG
  (FLUX.1 schnell above 1) the negative reads no picture, as diffusers' pipeline encodes
  ``negative_prompt`` as text alone: its rows get zero tokens the attention bias hides.
- **kinds** all read the picture whole (Redux has no layer-wise weights);
- **masks**: a reference inside a region reads like one more regional prompt in the
  joint-attention bias (:mod:`.joint_regions`): the picture's tokens and the image tokens
  attend to each other with ``log(coverage)`` of its mask, and to no other prompt's text.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sfumato.inference.errors import CorruptModelError, MissingReduxEncoderError
from sfumato.vocabulary.config import read_json

__all__ = ["Redux", "ReduxCache", "ReduxInput", "load_redux", "redux_encoder_path"]

log = logging.getLogger(__name__)

#: ComfyUI's name for the encoder Redux was trained with
ENCODER_FILE = "sigclip_vision_patch14_384.safetensors"
#: the folder ComfyUI keeps it in
ENCODER_FOLDER = "ComfyUI/models/clip_vision"
#: cached picture encodings per Redux
_TOKEN_CACHE = 8


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load
    from sfumato.inference.detect import open_model_file

    with open_model_file(path) as f:
        return dict(load(f.read()))


def _embedder_file(path: Path) -> Path:
    """The Redux weights: the file itself, or the diffusers folder's ``image_embedder``."""
    return path / "image_embedder" if path.is_dir() else path


def is_siglip_vision(shapes: dict[str, Any]) -> bool:
    """Whether tensor names are a SigLIP vision tower in transformers' layout."""
    return (
        "vision_model.post_layernorm.weight" in shapes
        and "vision_model.encoder.layers.0.layer_norm1.weight" in shapes
        and "visual_projection.weight" not in shapes
        and "vision_model.pre_layrnorm.weight" not in shapes  # CLIP's, misspelt as it is
    )


def redux_encoder_path(redux: Path, width: int, candidates: list[Path]) -> Path | None:
    """The SigLIP encoder a Redux of input ``width`` reads with: the diffusers folder's
    ``image_encoder``, else one beside the file (``image_encoder``, ``../clip_vision``),
    else the first of ``candidates`` (the catalog's clip_vision entries) whose width fits."""
    from sfumato.inference.catalog import encoder_files

    look: list[Path] = []
    if redux.is_dir():
        look.append(redux / "image_encoder")
    else:
        look += [redux.parent / "image_encoder", redux.parent.parent / "clip_vision"]
    look += candidates
    for candidate in look:
        for path in encoder_files(candidate, (".safetensors",)):
            if _siglip_width(path) == width:
                return path
    return None


def _siglip_width(path: Path) -> int | None:
    from sfumato.inference.detect import read_safetensors_header
    from sfumato.inference.errors import EngineError

    if path.is_dir():
        config = read_json(path / "config.json") or {}
        if config.get("model_type") not in ("siglip_vision_model", "siglip"):
            return None
        vision = config.get("vision_config", config)
        return int(vision.get("hidden_size", 0)) or None
    if path.suffix.lower() != ".safetensors":
        return None
    try:
        shapes = read_safetensors_header(path).shapes
    except EngineError:
        return None
    if not is_siglip_vision(shapes):
        return None
    return int(shapes["vision_model.post_layernorm.weight"][0])


# --------------------------------------------------------------------------- loading


@dataclass
class Redux:
    """A loaded Redux: its MLP, the SigLIP encoder and its preprocessing."""

    name: str
    path: Path
    embedder: Any  # diffusers ReduxImageEncoder
    encoder: Any  # transformers SiglipVisionModel
    processor: Any  # transformers SiglipImageProcessor
    tokens: OrderedDict[str, torch.Tensor]

    def encode(self, image: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``(1, T, D)`` the picture's tokens in T5's space (``FluxPriorReduxPipeline``'s
        ``image_embeds``), cached by the picture's bytes."""
        from PIL import Image

        key = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + str(image.shape)
        hit = self.tokens.get(key)
        if hit is not None:
            self.tokens.move_to_end(key)
            return hit.to(dtype)
        pixels = self.processor.preprocess(images=Image.fromarray(np.ascontiguousarray(image)), do_resize=True,
                                           return_tensors="pt", do_convert_rgb=True).pixel_values  # fmt: skip
        encoder_dtype = next(self.encoder.parameters()).dtype
        with torch.inference_mode():
            states = self.encoder(pixel_values=pixels.to(device=device, dtype=encoder_dtype)).last_hidden_state
            tokens = self.embedder(states.to(next(self.embedder.parameters()).dtype)).image_embeds
        self.tokens[key] = tokens
        while len(self.tokens) > _TOKEN_CACHE:
            self.tokens.popitem(last=False)
        return tokens.to(dtype)


def _siglip_config(path: Path, shapes: dict[str, tuple[int, ...]]) -> Any:
    from transformers import SiglipVisionConfig

    for sidecar in (path.with_suffix(".json"), path.parent / "config.json"):
        config = read_json(sidecar) or {}
        if config.get("model_type") in ("siglip_vision_model", "siglip"):
            return SiglipVisionConfig.from_dict(config.get("vision_config", config))
    hidden = shapes["vision_model.post_layernorm.weight"][0]
    patch = shapes["vision_model.embeddings.patch_embedding.weight"]
    positions = shapes["vision_model.embeddings.position_embedding.weight"][0]
    layers = 1 + max(int(k.split(".")[3]) for k in shapes if k.startswith("vision_model.encoder.layers."))
    side = round(positions**0.5) * patch[-1]
    return SiglipVisionConfig(
        hidden_size=hidden, intermediate_size=shapes["vision_model.encoder.layers.0.mlp.fc1.weight"][0],
        num_hidden_layers=layers, num_attention_heads=16 if hidden == 1152 else max(1, hidden // 64),
        num_channels=patch[1], image_size=side, patch_size=patch[-1],
    )  # fmt: skip


def _load_encoder(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """``(SiglipVisionModel, SiglipImageProcessor)`` from a folder or one ComfyUI file."""
    from transformers import SiglipImageProcessor, SiglipVisionModel

    if path.is_dir():
        model = SiglipVisionModel.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        features = path.parent / "feature_extractor"
        if (features / "preprocessor_config.json").is_file():
            return model, SiglipImageProcessor.from_pretrained(str(features), local_files_only=True)
    else:
        tensors = _read_safetensors(path)
        for prefix in ("clip_vision_model.", "model."):  # wrappers some exports add
            if not any(k.startswith("vision_model.") for k in tensors):
                tensors = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in tensors.items()}
        if not any(k.startswith("vision_model.") for k in tensors):  # saved by transformers 5
            tensors = {"vision_model." + k: v for k, v in tensors.items()}
        tensors.pop("vision_model.embeddings.position_ids", None)
        if not is_siglip_vision(tensors):
            raise CorruptModelError(f"{path.name} is not a SigLIP vision encoder (vision_model.*, no projection).")
        config = _siglip_config(path, {k: tuple(v.shape) for k, v in tensors.items()})
        config.vision_use_head = any(k.startswith("vision_model.head.") for k in tensors)
        model = SiglipVisionModel(config)
        # transformers 5's SiglipVisionModel holds the tower itself (its base_model_prefix)
        own = set(model.state_dict())
        if not any(k.startswith("vision_model.") for k in own):
            tensors = {k[len("vision_model."):]: v for k, v in tensors.items()}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if not k.split("vision_model.")[-1].startswith("head.")]
        if missing or unexpected:
            raise CorruptModelError(f"{path.name} does not fit a SigLIP vision encoder: missing {missing[:3]}, "
                                    f"unexpected {unexpected[:3]}")  # fmt: skip
        model.to(dtype=dtype)  # type: ignore[call-arg]
    side = int(model.config.image_size)  # type: ignore[arg-type]
    return model, SiglipImageProcessor(size={"height": side, "width": side})


def load_redux(path: Path, encoder_candidates: list[Path], device: torch.device, dtype: torch.dtype) -> Redux:
    """The Redux at ``path`` (a ComfyUI file or the diffusers folder) and its SigLIP encoder.

    Raises :class:`MissingReduxEncoderError` naming the encoder file and its folder when
    none is found, :class:`CorruptModelError` for files that are not what they should be.
    """
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder

    weights = _embedder_file(path)
    try:
        if weights.is_dir():
            embedder = ReduxImageEncoder.from_pretrained(str(weights), local_files_only=True, torch_dtype=dtype)
        else:
            tensors = _read_safetensors(weights)
            if "redux_up.weight" not in tensors or "redux_down.weight" not in tensors:
                raise CorruptModelError(f"{weights.name} is not a FLUX.1 Redux (no redux_up / redux_down weights).")
            up, down = tensors["redux_up.weight"], tensors["redux_down.weight"]
            embedder = ReduxImageEncoder(redux_dim=int(up.shape[1]), txt_in_features=int(down.shape[0]))
            embedder.load_state_dict(tensors, strict=True)
            embedder.to(dtype=dtype)
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        raise CorruptModelError(f"Could not load the FLUX.1 Redux {path.name}: {error}") from error
    width = int(embedder.config.redux_dim)
    encoder_path = redux_encoder_path(path, width, encoder_candidates)
    if encoder_path is None:
        raise MissingReduxEncoderError(path.name, ENCODER_FILE, ENCODER_FOLDER)
    try:
        encoder, processor = _load_encoder(encoder_path, dtype)
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        raise CorruptModelError(f"Could not load the image encoder {encoder_path.name}: {error}") from error
    return Redux(path.name if path.is_dir() else path.stem, path, embedder.to(device).eval(), encoder.to(device).eval(), processor, OrderedDict())


class ReduxCache:
    """Loaded Reduxes by path (two kept), like the model cache's adapters."""

    def __init__(self) -> None:
        self._loaded: OrderedDict[str, Redux] = OrderedDict()
        self.load_count = 0

    def get(self, path: Path, encoder_candidates: list[Path], device: torch.device, dtype: torch.dtype) -> Redux:
        key = str(path)
        hit = self._loaded.get(key)
        if hit is not None:
            self._loaded.move_to_end(key)
            return hit
        redux = load_redux(path, encoder_candidates, device, dtype)
        while len(self._loaded) >= 2:
            self._loaded.popitem(last=False)
        self._loaded[key] = redux
        self.load_count += 1
        return redux


# --------------------------------------------------------------------------- one run


@dataclass
class ReduxInput:
    """One reference of a run through Redux: its tokens ``(1, T, D)``, its strength (> 0:
    the attention bias ``log strength``), its ``[start, end)`` fraction of the steps and
    its region mask, if any."""

    adapter: Redux
    tokens: torch.Tensor
    strength: float
    start: float
    end: float
    #: float32 ``(H, W)`` at the request's size: where the picture applies (a reference
    #: inside a region), or ``None`` for everywhere
    mask: np.ndarray | None = None

    def active(self, j: int, n: int) -> bool:
        """Whether the picture's tokens are read at step ``j`` of ``n`` (as a control's range)."""
        return not (j / n < self.start or (j + 1) / n > self.end + 1e-9)

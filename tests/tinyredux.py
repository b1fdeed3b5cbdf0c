"""A tiny FLUX.1 Redux for tests, in both layouts artists have it, built in the session.

The SigLIP vision tower is 56 px, 14 px patches (16 tokens), 64 wide, 1 head (what the
loader reads from the shapes of a file without a config: 64-wide heads), two layers;
the Redux MLP maps its 64 to the tiny FLUX's ``joint_attention_dim`` (32).

- ``folder``: the diffusers ``FLUX.1-Redux-dev`` layout (``model_index.json`` naming
  ``FluxPriorReduxPipeline``, ``image_encoder/``, ``feature_extractor/``, ``image_embedder/``);
- ``comfy``: ComfyUI's ``models/style_models/flux1-redux-dev.safetensors`` and
  ``models/clip_vision/sigclip_vision_patch14_384.safetensors`` — the same weights, the
  encoder in transformers' ``vision_model.*`` names without the pooling head (not read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["ReduxFiles", "build_tiny_redux"]

SIGLIP: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 1,
          "image_size": 56, "patch_size": 14}  # fmt: skip


@dataclass(frozen=True)
class ReduxFiles:
    folder: Path  # FLUX.1-Redux-dev
    redux: Path  # ComfyUI's style_models file
    encoder: Path  # ComfyUI's clip_vision file


def build_tiny_redux(root: Path, *, text_width: int = 32, seed: int = 0) -> ReduxFiles:
    from diffusers import FluxPriorReduxPipeline
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from safetensors.torch import save_file
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    encoder = SiglipVisionModel(SiglipVisionConfig(**SIGLIP)).eval()
    embedder = ReduxImageEncoder(redux_dim=SIGLIP["hidden_size"], txt_in_features=text_width).eval()
    with torch.no_grad():  # tokens of about unit size, like T5's
        embedder.redux_up.weight.normal_(0.0, 0.125)
        embedder.redux_down.weight.normal_(0.0, 0.15)
    side = SIGLIP["image_size"]
    processor = SiglipImageProcessor(size={"height": side, "width": side})
    folder = root / "FLUX.1-Redux-dev"
    prior = FluxPriorReduxPipeline(image_encoder=encoder, feature_extractor=processor, image_embedder=embedder)
    prior.save_pretrained(str(folder))  # type: ignore[attr-defined]
    models = root / "ComfyUI" / "models"
    (models / "style_models").mkdir(parents=True)
    (models / "clip_vision").mkdir(parents=True)
    redux = models / "style_models" / "flux1-redux-dev.safetensors"
    save_file({k: v.contiguous() for k, v in embedder.state_dict().items()}, str(redux))
    # ComfyUI's names: transformers' ``vision_model.*`` (transformers 5 leaves the prefix out)
    state = {k if k.startswith("vision_model.") else "vision_model." + k: v for k, v in encoder.state_dict().items()}
    tensors = {k: v.contiguous() for k, v in state.items() if not k.startswith("vision_model.head.")}
    encoder_file = models / "clip_vision" / "sigclip_vision_patch14_384.safetensors"
    save_file(tensors, str(encoder_file))
    return ReduxFiles(folder, redux, encoder_file)

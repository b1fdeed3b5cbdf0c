"""Stable Diffusion 2.x (2.0, 2.1, their -base, inpainting and fine-tunes): one OpenCLIP-H
text encoder (1024 wide, 23 layers as diffusers ships it, last hidden state after the final
layer norm), a UNet with linear attention projections cross-attending to 1024-wide tokens,
and the SD 1.x VAE (latents scaled by 0.18215).

Two kinds share the architecture and differ in what the UNet predicts and how big it was
trained: the 768-v models (``v2-1_768-ema-pruned``, ``768-v-ema``) predict *v* at 768 px;
the 512 models (``-base``, ``inpainting``) predict the noise (epsilon) at 512 px. A
diffusers folder says which in its scheduler config and UNet ``sample_size`` (96 → 768,
64 → 512), which the engine reads as for any family.

**Single files cannot say.** An LDM ``.safetensors``/``.ckpt`` has the same tensors either
way (diffusers guesses from ``global_step``; A1111 reads a sidecar ``.yaml`` or test-runs
the UNet). Sfumato decides, in this order (:func:`single_file_kind`):

1. a sidecar ``<name>.yaml`` next to the checkpoint (A1111's convention): ``parameterization:
   "v"`` → v-prediction at 768; a yaml without it → epsilon at 512;
2. the file name: ``768`` or a ``v`` word (``768-v-ema``, ``sd21-v``) → v-prediction at 768;
   ``base``, ``512`` or ``inpaint`` → epsilon at 512;
3. a 9-channel inpainting UNet: epsilon at 512, as 2.x inpainting is;
4. the weights, as ComfyUI tells them (``supported_models.SD20.model_type``): the bias of
   the first norm in the last output block's transformer
   (``output_blocks.11.1.transformer_blocks.0.norm1.bias``) spreads wider in v models, a
   standard deviation over 0.09 → v-prediction at 768, else epsilon at 512 (SD-Turbo,
   512 fine-tunes named otherwise);
5. otherwise (a UNet without that block) the config's own (the shipped config:
   v-prediction at 768, as 2.0/2.1 are).

Rename the file or add the yaml when a fine-tune is named otherwise and the weights guess wrong.

The tokenizer is CLIP's BPE (``resources/configs/clip-tokenizer``) padding with ``"!"``
(id 0) as stabilityai's ships it: SD 2.x conditions on every one of the 77 tokens, so the
padding ids change the picture. Prompts encode as SD 1.x's do (chunks, weights,
embeddings); the preview factors are SD 1.x's, the VAE being the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfumato.inference.families.sd15 import SD15Family
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import SD2

__all__ = ["SD2Family", "SingleFileKind", "single_file_kind", "unsupported_variant"]

#: what the SD 2.x tokenizer pads with (stabilityai/stable-diffusion-2*/tokenizer)
PAD_TOKEN = "!"


class SD2Family(SD15Family):
    name = SD2
    label = "Stable Diffusion 2.x"
    native_side = 768  # 2.0/2.1 768-v; a loaded 512 model (base, inpainting) says 512 itself
    min_side_fraction = 2 / 3  # 512: the 768-v models still draw well there
    max_side_fraction = 4 / 3  # 1024
    pixel_fractions = (0.75, 1.25)  # ~665² to ~858²: around the 768² it was trained at
    supported_modes = frozenset(Mode)
    default_scheduler = "DDIMScheduler"
    pipelines = ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline")
    # preview_factors / reference_vae: SD 1.x's (the SD 2.x VAE is the SD 1.x VAE).
    # No IP-Adapter was published for SD 2.x (h94's are SD 1.5 and SDXL): no references.
    takes_references = False
    reference_adapter = None
    reference_settings: frozenset[str] = frozenset()

    def matches_diffusers(self, model_index: dict[str, Any], unet_config: dict[str, Any]) -> bool:
        cls = str(model_index.get("_class_name", ""))
        if cls.startswith("StableDiffusionXL") or "text_encoder_2" in model_index:
            return False
        if unet_config.get("addition_embed_type") == "text_time":
            return False
        return int(unet_config.get("cross_attention_dim", 0) or 0) == 1024


@dataclass(frozen=True)
class SingleFileKind:
    """What a single-file SD 2.x checkpoint is: its prediction type and UNet sample size,
    with the reason (for the log). ``None`` fields: keep the config's own."""

    prediction_type: str | None
    sample_size: int | None
    reason: str


_V_NAME = re.compile(r"768|(?<![a-z0-9])v(?![a-z0-9])")
_EPS_NAME = re.compile(r"base|512|inpaint")
_V_YAML = re.compile(r"""^\s*parameterization\s*:\s*["']?v["']?\s*(#.*)?$""", re.MULTILINE)


def unsupported_variant(shapes: Mapping[str, Any]) -> str | None:
    """Why an SD 2.x checkpoint (LDM names → tensors or shapes) is a variant the engine
    cannot run, or ``None``: the depth model (5 input channels), the ×4 upscaler (7) and
    unCLIP (an image-embedding input, ``label_emb``) share the text encoder but need
    inputs no mode gives; loaded as plain SD 2.x they would fail or draw noise."""
    conv_in = shapes.get("model.diffusion_model.input_blocks.0.0.weight")
    channels = tuple(getattr(conv_in, "shape", conv_in) or ())[1:2]
    if channels and int(channels[0]) not in (4, 9):
        what = {5: "the depth-conditioned model", 7: "the ×4 upscaler"}.get(int(channels[0]), "a variant")
        return f"This checkpoint is Stable Diffusion 2.x {what} ({int(channels[0])} input channels), which is not supported."
    if "model.diffusion_model.label_emb.0.0.weight" in shapes:
        return "This checkpoint is Stable Diffusion 2.x unCLIP (image variations), which is not supported."
    return None


#: ComfyUI's tell-tale tensor for v-prediction, and the spread above which it says v
_V_TELL = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
_V_TELL_STD = 0.09


def single_file_kind(path: Path, *, inpaint: bool = False, state: Mapping[str, Any] | None = None) -> SingleFileKind:
    """v-prediction at 768 or epsilon at 512 for the SD 2.x checkpoint ``path`` (see the
    module docstring for the rules). ``state``: the file's tensors (LDM names), for rule 4;
    reads the sidecar ``.yaml``, nothing else of the disk."""
    path = Path(path)
    yaml = path.with_suffix(".yaml")
    if yaml.is_file():
        try:
            text = yaml.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = None
        if text is not None:
            if _V_YAML.search(text):
                return SingleFileKind("v_prediction", 96, f"{yaml.name} says parameterization v")
            return SingleFileKind("epsilon", 64, f"{yaml.name} has no v parameterization")
    stem = path.stem.lower()
    if _V_NAME.search(stem):
        return SingleFileKind("v_prediction", 96, "its name says 768/v")
    if _EPS_NAME.search(stem):
        return SingleFileKind("epsilon", 64, "its name says base/512/inpainting")
    if inpaint:
        return SingleFileKind("epsilon", 64, "SD 2.x inpainting is epsilon at 512")
    tell = None if state is None else state.get(_V_TELL)
    if tell is not None and getattr(tell, "ndim", 0) == 1 and tell.numel() > 1:
        spread = float(tell.float().std(unbiased=False))
        if spread > _V_TELL_STD:
            return SingleFileKind("v_prediction", 96, f"its weights look v-trained (spread {spread:.3f})")
        return SingleFileKind("epsilon", 64, f"its weights look epsilon-trained (spread {spread:.3f})")
    return SingleFileKind(None, None, "the config's own (2.0/2.1: v-prediction at 768)")

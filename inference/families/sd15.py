"""Stable Diffusion 1.x (1.4, 1.5 and their fine-tunes, LCM/Hyper variants): one CLIP-L
text encoder, 512 px native, 4-channel latents scaled by 0.18215."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfumato.inference.families.base import REFERENCE_SETTINGS, Family, PreviewFactors
from sfumato.inference.families.clip import (
    emphasize,
    encode_chunks,
    join_chunks,
    weighted_token_inputs,
)
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import SD15
from sfumato.vocabulary.kinds import ReferenceKind

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary
__all__ = ["SD15Family"]


class SD15Family(Family):
    name = SD15
    label = "Stable Diffusion 1.x"
    native_side = 512
    min_side_fraction = 1.0  # 512
    max_side_fraction = 1.5  # 768
    pixel_fractions = (1.0, 1.5)  # 512² to 512 × 768
    supported_modes = frozenset(Mode)
    takes_references = True
    reference_adapter = "ip-adapter"
    reference_settings = REFERENCE_SETTINGS  # layer-wise scales, the scale, the steps, ip_adapter_masks
    # Layer-wise IP-Adapter scales: ComfyUI_IPAdapter_plus's "style transfer" and
    # "composition" weight types for SD 1.5 (its cross-attention index k counts the
    # SpatialTransformers in forward order: down 0-5, mid 6, up 7-15), written as
    # diffusers' block names; SDXL's are InstantStyle's (docs/engine.md, "References").
    reference_layers = {
        ReferenceKind.STYLE: {
            "down_blocks.0.attentions.0": 1.0, "down_blocks.0.attentions.1": 1.0,
            "down_blocks.1.attentions.0": 1.0, "down_blocks.1.attentions.1": 1.0,
            "up_blocks.1.attentions.2": 1.0, "up_blocks.2.attentions": 1.0, "up_blocks.3.attentions": 1.0,
        },
        ReferenceKind.COMPOSITION: {"down_blocks.2.attentions.0": 0.25, "down_blocks.2.attentions.1": 1.0},
    }  # fmt: skip
    default_scheduler = "PNDMScheduler"
    # Community-standard factors (ComfyUI/InvokeAI) for the SD 1.x VAE: latent → RGB in [-1, 1].
    pipelines = ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline")
    preview_factors = PreviewFactors(
        weights=(
            (0.3512, 0.2297, 0.3227),
            (0.3250, 0.4974, 0.2350),
            (-0.2829, 0.1762, 0.2721),
            (-0.2120, -0.2616, -0.7177),
        ),
        bias=(0.0, 0.0, 0.0),
    )
    reference_vae = {"latent_channels": 4, "block_out_channels": [128, 256, 512, 512], "scaling_factor": 0.18215}

    def matches_diffusers(self, model_index: dict[str, Any], unet_config: dict[str, Any]) -> bool:
        cls = str(model_index.get("_class_name", ""))
        if cls.startswith("StableDiffusionXL"):
            return False
        if "text_encoder_2" in model_index or "transformer" in model_index:  # SDXL, the transformer families
            return False
        if unet_config.get("addition_embed_type") == "text_time":
            return False
        # SD 2.x has 1024-wide OpenCLIP tokens and a v-prediction scheduler: another family.
        return int(unet_config.get("cross_attention_dim", 768) or 768) != 1024

    def pipeline_kwargs(self) -> dict[str, Any]:
        return {"safety_checker": None, "requires_safety_checker": False}

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        lookup = None
        if embeddings is not None:
            lookup = embeddings.lookups((("sd1", int(pipe.text_encoder.config.hidden_size)),))[0]
        ids, weights, vectors = weighted_token_inputs(pipe.tokenizer, prompts, 1, lookup)  # (N, C, 77) each
        hidden = encode_chunks(pipe.text_encoder, ids, device, vectors)[0]  # (N·C, 77, D)
        return join_chunks(emphasize(hidden, weights.flatten(0, 1)), len(prompts)), None

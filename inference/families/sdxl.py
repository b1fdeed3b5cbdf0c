"""Stable Diffusion XL (base, Turbo, Lightning, LCM and their fine-tunes): two CLIP text
encoders (penultimate hidden states concatenated, 768 + 1280 wide), a pooled embedding
and "time ids" (original size, crop, target size) fed to the UNet, 1024 px native,
latents scaled by 0.13025.

Turbo/Lightning/LCM checkpoints are the same architecture; they differ only in the
scheduler config they ship, which :mod:`sfumato.inference.schedulers` honours.
"""

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
from sfumato.vocabulary.families import SDXL
from sfumato.vocabulary.kinds import ReferenceKind

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary
__all__ = ["SDXLFamily"]


class SDXLFamily(Family):
    name = SDXL
    label = "Stable Diffusion XL"
    native_side = 1024
    min_side_fraction = 0.625  # 640
    max_side_fraction = 1.25  # 1280
    pixel_fractions = (0.765625, 1.0)  # 896² to 1024²: its aspect buckets are about 1 megapixel
    supported_modes = frozenset(Mode)
    takes_references = True
    reference_adapter = "ip-adapter"
    reference_settings = REFERENCE_SETTINGS
    # Layer-wise IP-Adapter scales: InstantStyle's blocks for SDXL (style:
    # up_blocks.0.attentions.1, composition: down_blocks.2.attentions.1), the same as
    # ComfyUI_IPAdapter_plus's "style transfer" and "composition" weight types.
    reference_layers = {
        ReferenceKind.STYLE: {"up_blocks.0.attentions.1": 1.0},
        ReferenceKind.COMPOSITION: {"down_blocks.2.attentions.1": 1.0},
    }
    default_scheduler = "EulerDiscreteScheduler"
    # Community-standard factors (ComfyUI) for the SDXL VAE: latent → RGB in [-1, 1].
    pipelines = ("StableDiffusionXLPipeline", "StableDiffusionXLInpaintPipeline")
    preview_factors = PreviewFactors(
        weights=(
            (0.3651, 0.4232, 0.4341),
            (-0.2533, -0.0042, 0.1068),
            (0.1076, 0.1111, -0.0362),
            (-0.3165, -0.2492, -0.2188),
        ),
        bias=(0.1084, -0.0175, -0.0011),
    )
    reference_vae = {"latent_channels": 4, "block_out_channels": [128, 256, 512, 512], "scaling_factor": 0.13025}

    union_controlnet_class = "ControlNetUnionModel"

    def control_mode(self, net: Any, kind: Any) -> int | None:
        """A union ControlNet's (xinsir's Union/ProMax) control type for ``kind``
        (:data:`sfumato.inference.detect.UNION_CONTROL_TYPES`); ``None`` for other nets."""
        count = getattr(net.config, "num_control_type", None)
        if not count:
            return None
        from sfumato.inference.detect import UNION_CONTROL_TYPES

        index = UNION_CONTROL_TYPES.get(kind)
        if index is None or index >= int(count):
            from sfumato.inference.errors import UnsupportedModeError

            raise UnsupportedModeError(f"This SDXL union ControlNet has no {kind.value} control type.")
        return index

    def matches_diffusers(self, model_index: dict[str, Any], unet_config: dict[str, Any]) -> bool:
        cls = str(model_index.get("_class_name", ""))
        if cls.startswith("StableDiffusionXL"):
            # The refiner has no first text encoder: not supported as a base model.
            return bool(model_index.get("text_encoder")) and model_index["text_encoder"][0] is not None
        return unet_config.get("addition_embed_type") == "text_time" and "text_encoder_2" in model_index

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        import torch

        pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
        pairs = [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]
        lookups: list[Any] = [None] * len(pairs)
        if embeddings is not None:
            # clip_l vectors go into the first encoder, clip_g into the second.
            roles = tuple(zip(("clip_l", "clip_g"), (int(enc.config.hidden_size) for _, enc in pairs)))
            lookups = list(embeddings.lookups(roles))
        id_sets = [weighted_token_inputs(tok, prompts, 1, lookup) for (tok, _), lookup in zip(pairs, lookups)]
        chunks = max(ids.shape[1] for ids, _, _ in id_sets)
        # Both CLIP tokenizers split alike; should they not, pad to the same chunk count.
        id_sets = [
            found if found[0].shape[1] == chunks else weighted_token_inputs(tok, prompts, chunks, lookup)
            for found, (tok, _), lookup in zip(id_sets, pairs, lookups)
        ]
        hidden: list[torch.Tensor] = []
        pooled: torch.Tensor | None = None
        for (ids, weights, vectors), (_, encoder) in zip(id_sets, pairs):
            out = encode_chunks(encoder, ids, device, vectors, output_hidden_states=True)
            # The last encoder's first output is the pooled (projected) embedding; a long
            # prompt's pooled embedding is its first chunk's, unweighted (as A1111 does).
            pooled = out[0].view(len(prompts), ids.shape[1], -1)[:, 0]
            # Each encoder's penultimate states are weighted on their own, then joined.
            weighted = emphasize(out.hidden_states[-2], weights.flatten(0, 1))
            hidden.append(join_chunks(weighted, len(prompts)))
        tokens = torch.cat(hidden, dim=-1)
        if negative and getattr(pipe.config, "force_zeros_for_empty_prompt", True):
            empty = torch.tensor([not p.strip() for p in prompts], device=tokens.device)
            if bool(empty.any()):
                # SDXL was trained with zeroed conditioning for an empty negative prompt.
                tokens = torch.where(empty[:, None, None], torch.zeros_like(tokens), tokens)
                assert pooled is not None
                pooled = torch.where(empty[:, None], torch.zeros_like(pooled), pooled)
        return tokens, pooled

    def extra_unet_kwargs(
        self,
        pipe: Any,
        pooled: torch.Tensor | None,
        *,
        gen_size: tuple[int, int],
        crop_top_left: tuple[int, int] = (0, 0),
    ) -> dict[str, Any]:
        import torch

        assert pooled is not None, "SDXL needs pooled text embeddings"
        width, height = gen_size
        ids = [height, width, crop_top_left[0], crop_top_left[1], height, width]
        time_ids = torch.tensor([ids], dtype=pooled.dtype, device=pooled.device).repeat(pooled.shape[0], 1)
        return {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}

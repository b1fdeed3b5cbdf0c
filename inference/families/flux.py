"""FLUX.1 (dev, schnell, Krea and their fine-tunes; Fill for inpainting): a 12B MMDiT over
CLIP-L (pooled) and T5-XXL (512 tokens), a 16-channel VAE with shift and scale, 2×2
latent patches, flow matching with a resolution-dependent shift, 1024 px native.

Guidance: dev and Krea were distilled with the guidance scale as an input (the
transformer's ``guidance_embeds``): one unguided pass, the scale (3.5 is typical) goes in.
schnell has none: it runs without guidance at a scale of 1, and with true
classifier-free guidance (a negative prompt, a doubled batch) above 1.

Regions: FLUX attends to all 512 T5 tokens of a prompt, padding included, so four
regional prompts would add 2048 tokens to every attention call of every block. With
regions every prompt — the global one and each region's alike, so a region repeating the
global prompt reads exactly what the global prompt gives — is cut to the longest prompt's
tokens plus padding up to a multiple of 64 (:data:`.flow.REGION_TOKEN_STEP`; FLUX.1
schnell was trained with 256 and runs with fewer): the request's words all stay, the padding shrinks. Without regions the
prompt keeps its 512 tokens, as diffusers encodes it.

Fill (``in_channels`` 384) is chosen when the folder's transformer is Fill: it takes the
masked picture's latents and the mask, 8×8 pixels a channel, packed beside the noise
tokens (:meth:`FluxFamily.inpaint_model_input`).

Reference pictures go through FLUX.1 Redux (:attr:`FluxFamily.reference_adapter`,
:mod:`sfumato.inference.redux`): the picture's tokens follow the prompt's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfumato.inference.families.flow import REGION_TOKEN_STEP, FlowFamily, pack_latents, round_up
from sfumato.inference.families.t5 import needs_weighting, plain_text, weighted_t5
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import FLUX

if TYPE_CHECKING:
    import numpy as np
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["FluxFamily"]

#: T5 tokens a FLUX prompt is padded to (diffusers' ``max_sequence_length`` default)
T5_TOKENS = 512


class FluxFamily(FlowFamily):
    name = FLUX
    label = "FLUX.1"
    native_side = 1024
    min_side_fraction = 0.5  # 512
    max_side_fraction = 1.5  # 1536
    pixel_fractions = (0.75, 1.25)  # FLUX is at ease from about 0.8 to 1.3 megapixels
    supported_modes = frozenset(Mode)
    pipelines = ("FluxPipeline", "FluxFillPipeline")
    transformer_class = "FluxTransformer2DModel"
    # No published factors are shipped: the map is fitted to the loaded VAE at load time
    # (:func:`sfumato.inference.preview.fit_latent_rgb_map`, a few milliseconds).
    preview_factors = None

    def is_inpaint_config(self, config: dict[str, Any]) -> bool:
        # Fill's transformer takes 64 noise + 64 masked-image + 256 mask channels a token.
        return int(config.get("in_channels", 64)) > 64

    controlnet_class = "FluxControlNetModel"
    #: reference pictures through FLUX.1 Redux (:mod:`sfumato.inference.redux`): the
    #: picture's SigLIP tokens mapped into T5's space, appended to the prompt's tokens;
    #: every kind reads the picture whole, the strength weights the tokens, start/end say
    #: when they are read, a region's mask where (one more regional prompt in the bias)
    takes_references = True
    reference_adapter = "redux"
    reference_settings = frozenset({"strength", "range", "region"})

    def controlnet_mismatch(self, net: Any, pipe: Any) -> str | None:
        expected = int(pipe.transformer.config.joint_attention_dim)
        got = int(getattr(net.config, "joint_attention_dim", 0) or 0)
        if expected != got or "num_single_layers" not in net.config:
            return f"not a FLUX ControlNet of text width {expected}"
        return None

    def control_mode(self, net: Any, kind: Any) -> int | None:
        """The FLUX union ControlNets' (InstantX/Shakker-Labs) control types."""
        if not getattr(net.config, "num_mode", None):
            return None
        from sfumato.vocabulary.kinds import ControlKind

        modes = {ControlKind.CANNY: 0, ControlKind.DEPTH: 2, ControlKind.POSE: 4, ControlKind.LINEART: 0,
                 ControlKind.SCRIBBLE: 0, ControlKind.SOFTEDGE: 0}  # fmt: skip
        if kind not in modes:
            from sfumato.inference.errors import UnsupportedModeError

            raise UnsupportedModeError(f"This FLUX union ControlNet has no {kind.value} control type.")
        return modes[kind]

    def embeds_guidance(self, pipe: Any) -> bool:
        return bool(getattr(pipe.transformer.config, "guidance_embeds", False))

    # ----------------------------------------------------------------- conditioning

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(T5 tokens (N, 512, 4096), CLIP-L pooled (N, 768))``."""
        import torch

        plain = [plain_text(p) for p in prompts]
        with torch.inference_mode():
            pooled = pipe._get_clip_prompt_embeds(prompt=plain, device=device, num_images_per_prompt=1)
            rows = []
            for prompt, text in zip(prompts, plain):
                if needs_weighting(prompt):
                    rows.append(weighted_t5(pipe.tokenizer_2, pipe.text_encoder_2, prompt, T5_TOKENS, device))
                else:
                    rows.append(
                        pipe._get_t5_prompt_embeds(
                            prompt=[text], num_images_per_prompt=1, max_sequence_length=T5_TOKENS, device=device
                        )
                    )
        return torch.cat(rows), pooled

    def regional_tokens(self, pipe: Any, texts: list[str], length: int) -> list[slice] | None:
        """The longest prompt's T5 tokens (end token included) and at least one pad, rounded
        up to a multiple of :data:`REGION_TOKEN_STEP` (module docstring)."""
        longest = max(len(pipe.tokenizer_2(plain_text(text), add_special_tokens=True)["input_ids"]) for text in texts)
        return [slice(0, min(length, round_up(longest + 1, REGION_TOKEN_STEP)))]

    # ----------------------------------------------------------------- inpainting model

    def inpaint_model_input(
        self,
        pipe: Any,
        mask: np.ndarray,
        masked: np.ndarray,
        lat_size: tuple[int, int],
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """FLUX Fill's extra tokens ``(1, N, 64 + 256)``: the masked picture's packed latents,
        then the mask, each latent pixel's 8×8 pixels as channels, packed."""
        import torch
        from sfumato.inference.families.vae import images_to_tensor, vae_dtype

        # Hidden pixels are exactly 0 in [-1, 1], as FluxFillPipeline makes them.
        pixels = images_to_tensor([masked], device, vae_dtype(pipe.vae))
        keep = torch.from_numpy(1.0 - mask).to(device=device, dtype=pixels.dtype)
        masked_latents = self.encode_pixels(pipe, pixels * keep).to(dtype)
        scale = self.vae_scale(pipe)
        h, w = lat_size
        mask_t = torch.from_numpy(mask).to(device=device, dtype=dtype)
        mask_t = mask_t.view(1, h, scale, w, scale).permute(0, 2, 4, 1, 3).reshape(1, scale * scale, h, w)
        return torch.cat([pack_latents(masked_latents), pack_latents(mask_t)], dim=-1)

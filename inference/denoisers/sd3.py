"""SD 3 / 3.5's call a step: the latents as they are (the transformer patchifies them), the
timestep as the scheduler gives it (0–1000), true classifier-free guidance, ControlNet
residuals (``SD3ControlNetModel``) and regions as one joint-attention bias.

**Regions.** diffusers' ``JointAttnProcessor2_0`` takes an ``attention_mask`` argument and
drops it (it calls ``scaled_dot_product_attention`` without one). While a run has regions,
each joint block's attention gets :class:`MaskedJointAttnProcessor` — the same computation
with the bias of :func:`~sfumato.inference.joint_regions.joint_attention_bias` added, its
unmasked image block run apart on the CPU (:mod:`sfumato.inference.split_attention`) — and
:meth:`SD3Denoiser.close` puts the blocks' own processors back. SD3 puts the image tokens
*before* the text in the joint sequence (``JointLayout(image_first=True)``). 3.5 Medium's
second, image-only attention (``attn2``) gets the same keyword arguments; image tokens
attend to each other freely, so it runs unmasked.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.attention_processor import Attention, JointAttnProcessor2_0
from sfumato.inference.denoise import ControlInput, DenoiseJob
from sfumato.inference.joint_regions import JointLayout, joint_attention_bias
from sfumato.inference.model_cache import LoadedModel
from sfumato.inference.split_attention import image_first_attention

__all__ = ["MaskedJointAttnProcessor", "SD3Denoiser"]


class MaskedJointAttnProcessor(JointAttnProcessor2_0):
    """``JointAttnProcessor2_0`` that adds ``attention_mask`` to the joint attention's scores
    (image tokens first, then text). Without encoder states (``attn2``) or a mask it is the
    stock computation."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if encoder_hidden_states is None or attention_mask is None:
            # diffusers annotates these ``FloatTensor``, the old alias of float32 tensors.
            return super().__call__(attn, hidden_states, encoder_hidden_states, None, *args, **kwargs)  # type: ignore[arg-type]
        batch, image = hidden_states.shape[0], hidden_states.shape[1]
        heads = attn.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, heads, x.shape[-1] // heads).transpose(1, 2)

        query, key, value = split(attn.to_q(hidden_states)), split(attn.to_k(hidden_states)), split(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        text_q = split(attn.add_q_proj(encoder_hidden_states))
        text_k = split(attn.add_k_proj(encoder_hidden_states))
        text_v = split(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_added_q is not None:
            text_q = attn.norm_added_q(text_q)
        if attn.norm_added_k is not None:
            text_k = attn.norm_added_k(text_k)
        query = torch.cat([query, text_q], dim=2)
        key = torch.cat([key, text_k], dim=2)
        value = torch.cat([value, text_v], dim=2)
        out = image_first_attention(query, key, value, attention_mask, image=image)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1]).to(query.dtype)
        image_out, text_out = out[:, :image], out[:, image:]
        if not attn.context_pre_only:
            text_out = attn.to_add_out(text_out)
        image_out = attn.to_out[1](attn.to_out[0](image_out))
        return image_out, text_out


class SD3Denoiser:
    """One SD3 transformer call a step: guidance, regions, controls (module docstring)."""

    def __init__(self, model: LoadedModel, job: DenoiseJob) -> None:
        self.transformer = model.denoiser
        self.job = job
        self.family = model.family
        self.cfg = job.cfg if job.text.guided else 1.0
        tokens = job.text.tokens
        self.attention: dict[str, Any] = {}
        self._replaced: list[tuple[Attention, Any]] = []
        if job.region_masks is not None:
            layout = JointLayout(job.text.region_spans, tokens.shape[1], image_first=True)
            patch = int(self.transformer.config.patch_size)
            bias = joint_attention_bias(job.region_masks, layout, patch=patch, dtype=tokens.dtype, device=tokens.device)
            self.attention = {"attention_mask": bias}
            masked = MaskedJointAttnProcessor()
            for block in self.transformer.transformer_blocks:
                self._replaced.append((block.attn, block.attn.processor))
                block.attn.set_processor(masked)
        self.controls = [(c, self._control_inputs(model, c)) for c in job.controls]

    def _control_inputs(self, model: LoadedModel, control: ControlInput) -> dict[str, Any]:
        """What an SD3 ControlNet reads besides the latents, as the ControlNet pipeline
        prepares it: the control image's latents (InstantX's nets, which zero the pooled
        embedding, were trained without the VAE's shift), the text (none for Stability's
        3.5 nets, whose config has no text width) and the net's position embedding (those
        same nets borrow the transformer's)."""
        net, text, pipe = control.net, self.job.text, model.pipe
        if not net.config.get("use_pos_embed", True):  # this model's, whichever ran before
            net.pos_embed = net._get_pos_embed_from_transformer(self.transformer).to(
                device=control.image.device, dtype=next(net.parameters()).dtype
            )
        zero_pooled = bool(net.config.get("force_zeros_for_pooled_projection", True))
        pixels = control.image[:1] * 2.0 - 1.0
        vae = pipe.vae
        with torch.inference_mode():
            latents = vae.encode(pixels.to(next(vae.parameters()).dtype)).latent_dist.mode()
        shift = 0.0 if zero_pooled else (getattr(vae.config, "shift_factor", None) or 0.0)
        latents = ((latents - shift) * vae.config.scaling_factor).to(control.image.dtype)
        assert text.pooled is not None
        return {
            "controlnet_cond": latents.expand(control.image.shape[0], -1, -1, -1),
            "pooled_projections": torch.zeros_like(text.pooled) if zero_pooled else text.pooled,
            "encoder_hidden_states": text.control_tokens if net.config.get("joint_attention_dim") else None,
        }

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        x = job.text.unet_batch(latents)
        timestep = t.expand(x.shape[0])
        out = self.transformer(
            hidden_states=x,
            timestep=timestep,
            encoder_hidden_states=job.text.tokens,
            pooled_projections=job.text.pooled,
            block_controlnet_hidden_states=self._control_residuals(x, timestep, j, n),
            joint_attention_kwargs=self.attention or None,
            return_dict=False,
        )[0]
        return job.text.guide(out, self.cfg)

    def _control_residuals(self, x: torch.Tensor, timestep: torch.Tensor, j: int, n: int) -> list[torch.Tensor] | None:
        """The active controls' block residuals, summed (as ``SD3MultiControlNetModel`` does)."""
        total: list[torch.Tensor] | None = None
        for control, inputs in self.controls:
            if not control.active(j, n):
                continue
            samples = control.net(
                hidden_states=x, timestep=timestep, conditioning_scale=control.strength, return_dict=False, **inputs
            )[0]
            total = list(samples) if total is None else [a + b for a, b in zip(total, samples)]
        return total

    def close(self) -> None:
        for attn, processor in self._replaced:
            attn.set_processor(processor)
        self._replaced = []
        self.attention = {}

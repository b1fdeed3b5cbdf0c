"""Qwen-Image's call a step: pack the latents into 2×2 patch tokens, the text padding mask
(the conditioning's :attr:`~sfumato.inference.text_conditioning.TextConditioning.token_mask`,
:mod:`sfumato.inference.families.qwenimage`), the timestep over 1000, true CFG with
Qwen-Image's rescale of each token's guided prediction to its conditional norm, ControlNet
residuals (computed once from the conditional prompt, for both guidance halves, as
diffusers does), and regions as one joint-attention bias
(:mod:`sfumato.inference.joint_regions`).

Qwen-Image-Edit (:mod:`sfumato.inference.families.qwenimage_edit`): the edit's pictures
(the job's references, the picture to edit first) packed like the noise and appended to
the image tokens, each one more frame of ``img_shapes``, as ``QwenImageEditPipeline`` and
``QwenImageEditPlusPipeline`` give them; the prediction keeps the noise tokens' part.

diffusers' Qwen-Image attention processor builds its mask from the text padding and
refuses any other; with regions, :func:`biased_attention`'s processor (the same computation, with
an external bias) replaces it for the run and :meth:`QwenImageDenoiser.close` puts the
original back. The positive and negative prompts run as one doubled batch, each half
with its own padding, where diffusers makes two calls: the same picture, in one pass.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from sfumato.inference.denoise import DenoiseJob
from sfumato.inference.families.flow import pack_latents, unpack_latents
from sfumato.inference.joint_regions import JointLayout, joint_attention_bias
from sfumato.inference.model_cache import LoadedModel
from sfumato.inference.regions import NEGATIVE_BIAS

__all__ = ["QwenImageDenoiser", "biased_attention", "padding_mask"]


def padding_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """The transformer's ``encoder_hidden_states_mask`` for a conditioning's token mask
    ``(B, T)``: the mask itself, ``None`` where every token is real (as diffusers' pipeline
    passes it: no mask, no masked attention)."""
    return None if mask is None or bool(mask.all()) else mask


@cache
def biased_attention() -> type[Any]:
    """diffusers' Qwen-Image joint attention processor with an additive ``attention_mask``
    over the ``[text, image]`` sequence (``(B, 1, L, L)``) instead of the padding mask it
    builds. Made on first use: diffusers' transformer module loads only when a Qwen-Image
    model runs (the engine imports every denoiser)."""
    import diffusers.models.transformers.transformer_qwenimage as qwen_module

    class BiasedQwenAttention(qwen_module.QwenDoubleStreamAttnProcessor2_0):  # type: ignore[misc]
        __call__ = _biased_call

    return BiasedQwenAttention


def _biased_call(
    self: Any,
    attn: Any,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None = None,
    encoder_hidden_states_mask: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The processor's computation step for step, the bias handed to the attention."""
    import diffusers.models.transformers.transformer_qwenimage as qwen_module

    if attention_mask is None:
        base = qwen_module.QwenDoubleStreamAttnProcessor2_0.__call__
        return base(self, attn, hidden_states, encoder_hidden_states, encoder_hidden_states_mask, None, image_rotary_emb)  # type: ignore[no-any-return]
    assert encoder_hidden_states is not None
    seq_txt = encoder_hidden_states.shape[1]
    head_dim = attn.inner_dim // attn.heads

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, head_dim))

    img_q, img_k, img_v = (heads(f(hidden_states)) for f in (attn.to_q, attn.to_k, attn.to_v))
    txt_q, txt_k, txt_v = (heads(f(encoder_hidden_states)) for f in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
    if attn.norm_q is not None:
        img_q = attn.norm_q(img_q)
    if attn.norm_k is not None:
        img_k = attn.norm_k(img_k)
    if attn.norm_added_q is not None:
        txt_q = attn.norm_added_q(txt_q)
    if attn.norm_added_k is not None:
        txt_k = attn.norm_added_k(txt_k)
    if image_rotary_emb is not None:
        img_freqs, txt_freqs = image_rotary_emb
        img_q = qwen_module.apply_rotary_emb_qwen(img_q, img_freqs, use_real=False)
        img_k = qwen_module.apply_rotary_emb_qwen(img_k, img_freqs, use_real=False)
        txt_q = qwen_module.apply_rotary_emb_qwen(txt_q, txt_freqs, use_real=False)
        txt_k = qwen_module.apply_rotary_emb_qwen(txt_k, txt_freqs, use_real=False)
    joint = qwen_module.dispatch_attention_fn(
        torch.cat([txt_q, img_q], dim=1),
        torch.cat([txt_k, img_k], dim=1),
        torch.cat([txt_v, img_v], dim=1),
        attn_mask=attention_mask.to(img_q.dtype),
        dropout_p=0.0,
        is_causal=False,
        backend=self._attention_backend,
        parallel_config=self._parallel_config,
    )
    joint = joint.flatten(2, 3).to(img_q.dtype)
    img_out = attn.to_out[0](joint[:, seq_txt:].contiguous())
    if len(attn.to_out) > 1:
        img_out = attn.to_out[1](img_out)
    txt_out = attn.to_add_out(joint[:, :seq_txt].contiguous())
    return img_out, txt_out


class QwenImageDenoiser:
    """One Qwen-Image transformer call a step: pack, padding mask, true CFG, regions, controls."""

    def __init__(self, model: LoadedModel, job: DenoiseJob) -> None:
        self.transformer = model.denoiser
        self.job = job
        self.family = model.family
        text = job.text
        tokens = text.tokens
        device, dtype = tokens.device, tokens.dtype
        h, w = job.lat_size
        self.img_shapes: list[Any] = [(1, h // 2, w // 2)] * tokens.shape[0]
        self.noise_tokens = (h // 2) * (w // 2)
        self.context: torch.Tensor | None = None
        if job.references:  # Qwen-Image-Edit's pictures (Qwen-Image takes no references)
            self.context = torch.cat([pack_latents(x) for x in job.references], dim=1).to(dtype)
            self.context = self.context.expand(tokens.shape[0], -1, -1)
            frames = [(1, x.shape[-2] // 2, x.shape[-1] // 2) for x in job.references]
            self.img_shapes = [[(1, h // 2, w // 2), *frames]] * tokens.shape[0]
        self.valid = padding_mask(text.token_mask)
        self.guidance = None
        if model.family.embeds_guidance(model.pipe):
            self.guidance = torch.full([1], job.cfg, device=device, dtype=torch.float32).expand(tokens.shape[0])
        self.cfg = job.cfg if text.guided else 1.0
        self.attention: dict[str, Any] = {}
        self._processors: dict[str, Any] | None = None
        if job.region_masks is not None:
            layout = JointLayout(text.region_spans, tokens.shape[1])
            bias = joint_attention_bias(job.region_masks, layout, patch=2, dtype=torch.float32, device=device)
            padding = torch.zeros(tokens.shape[0], 1, 1, bias.shape[-1], device=device)
            if self.valid is not None:
                padding[:, 0, 0, : tokens.shape[1]].masked_fill_(~self.valid, NEGATIVE_BIAS)
            self.attention = {"attention_mask": (bias + padding).clamp_min(NEGATIVE_BIAS).to(dtype)}
        control_mask = text.control_token_mask
        self.control_valid = None if control_mask is None else padding_mask(control_mask[-job.batch :])  # cond half
        self.controls = [(c, self._control_condition(model, c)) for c in job.controls]
        if self.attention:  # last: nothing after it can fail before the engine owns close()
            self._processors = dict(self.transformer.attn_processors)
            self.transformer.set_attn_processor(biased_attention()())

    def _control_condition(self, model: LoadedModel, control: Any) -> torch.Tensor:
        """A Qwen-Image ControlNet's condition: the control image's packed latents, one per
        image of the conditional half."""
        latents = self.family.encode_pixels(model.pipe, control.image[:1] * 2.0 - 1.0).to(control.image.dtype)
        return pack_latents(latents).expand(self.job.batch, -1, -1)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        x = pack_latents(job.text.unet_batch(latents))
        timestep = t.expand(x.shape[0]).to(x.dtype) / 1000
        out = self.transformer(
            hidden_states=x if self.context is None else torch.cat([x, self.context], dim=1),
            timestep=timestep,
            guidance=self.guidance,
            encoder_hidden_states=job.text.tokens,
            encoder_hidden_states_mask=None if self.attention else self.valid,
            img_shapes=self.img_shapes,
            attention_kwargs=self.attention or None,
            controlnet_block_samples=self._control_residuals(x, timestep, j, n),
            return_dict=False,
        )[0][:, : self.noise_tokens]
        if job.text.guided:
            uncond, cond = out.chunk(2)
            guided = uncond + self.cfg * (cond - uncond)
            out = guided * (cond.norm(dim=-1, keepdim=True) / guided.norm(dim=-1, keepdim=True))
        return unpack_latents(out, job.lat_size)

    def _control_residuals(self, x: torch.Tensor, timestep: torch.Tensor, j: int, n: int) -> list[torch.Tensor] | None:
        """The controls' block residuals, from the conditional half, repeated for both halves."""
        text, b = self.job.text, self.job.batch
        total: list[torch.Tensor] | None = None
        for control, condition in self.controls:
            if not control.active(j, n):
                continue
            samples = control.net(
                hidden_states=x[-b:],
                controlnet_cond=condition,
                conditioning_scale=control.strength,
                timestep=timestep[-b:],
                encoder_hidden_states=text.control_tokens[-b:],
                encoder_hidden_states_mask=self.control_valid,
                img_shapes=self.img_shapes[-b:],
                return_dict=False,
            )
            total = list(samples) if total is None else [a + c for a, c in zip(total, samples)]
        if total is None or not text.guided:
            return total
        return [torch.cat([r] * text.copies) for r in total]

    def close(self) -> None:
        if self._processors is not None:
            self.transformer.set_attn_processor(self._processors)
            self._processors = None
        self.attention = {}
        self.context = None

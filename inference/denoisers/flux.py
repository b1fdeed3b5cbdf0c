"""FLUX.1's call a step: pack the latents into 2×2 patch tokens, FLUX's position ids
(``(0, row, col)`` for image tokens, zeros for text), the timestep over 1000, the guidance
embedding (dev) or true CFG (schnell above a scale of 1), the joint-attention region bias
(:mod:`sfumato.inference.joint_regions`), ControlNet residuals (the FLUX ControlNets and
their union variants), FLUX Fill's masked-picture tokens beside the noise, and FLUX.1
Kontext's context: the picture to edit (the job's first reference, :mod:`..families.kontext`)
packed like the noise and appended to the image tokens with ids ``(1, row, col)``, as
``FluxKontextPipeline`` does; the prediction keeps the noise tokens' part. FLUX.1 Redux
references (:mod:`sfumato.inference.redux`, the job's ``adapters``) append their picture
tokens to the prompt's on the steps they are active (:meth:`FluxDenoiser._text`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from sfumato.inference.denoise import DenoiseJob
from sfumato.inference.families.flow import pack_latents, unpack_latents
from sfumato.inference.joint_regions import JointLayout, joint_attention_bias
from sfumato.inference.model_cache import LoadedModel

__all__ = ["FluxDenoiser", "image_ids"]


def image_ids(rows: int, cols: int, device: torch.device, dtype: torch.dtype, index: int = 0) -> torch.Tensor:
    """``(rows·cols, 3)`` FLUX position ids of the image tokens: ``(index, row, col)`` (0 for
    the noise, 1 for Kontext's context picture)."""
    ids = torch.zeros(rows, cols, 3)
    ids[..., 0] = index
    ids[..., 1] = torch.arange(rows)[:, None]
    ids[..., 2] = torch.arange(cols)[None, :]
    return ids.reshape(rows * cols, 3).to(device=device, dtype=dtype)


class FluxDenoiser:
    """One FLUX transformer call a step: pack, position ids, guidance, regions, controls."""

    def __init__(self, model: LoadedModel, job: DenoiseJob) -> None:
        family = model.family
        self.transformer = model.denoiser
        self.job = job
        self.family = family
        tokens = job.text.tokens
        device, dtype = tokens.device, tokens.dtype
        h, w = job.lat_size
        self.img_ids = image_ids(h // 2, w // 2, device, dtype)
        #: the noise's ids, what a ControlNet sees (the context is the transformer's alone)
        self.noise_ids = self.img_ids
        self.noise_tokens = self.img_ids.shape[0]
        self.context: torch.Tensor | None = None
        if job.references:  # Kontext's picture to edit (FLUX.1 takes no other references)
            self.context = torch.cat([pack_latents(x) for x in job.references], dim=1).to(dtype)
            self.context = self.context.expand(tokens.shape[0], -1, -1)
            context_ids = [image_ids(x.shape[-2] // 2, x.shape[-1] // 2, device, dtype, 1) for x in job.references]
            self.img_ids = torch.cat([self.img_ids, *context_ids])
        self.txt_ids = torch.zeros(tokens.shape[1], 3, device=device, dtype=dtype)
        self.control_txt_ids = torch.zeros(job.text.control_tokens.shape[1], 3, device=device, dtype=dtype)
        rows = tokens.shape[0]
        self.guidance = None
        if family.embeds_guidance(model.pipe):
            self.guidance = torch.full([1], job.cfg, device=device, dtype=torch.float32).expand(rows)
        self.cfg = job.cfg if job.text.guided else 1.0
        self.attention: dict[str, Any] = {}
        if job.region_masks is not None:
            layout = JointLayout(job.text.region_spans, tokens.shape[1])
            bias = joint_attention_bias(job.region_masks, layout, patch=2, dtype=dtype, device=device)
            extra = self.img_ids.shape[0] - self.noise_tokens
            if extra:  # context tokens see and are seen by every token alike
                bias = torch.nn.functional.pad(bias, (0, extra, 0, extra))
            self.attention = {"attention_mask": bias}
        self.controls = [(c, self._control_condition(model, c)) for c in job.controls]
        #: FLUX.1 Redux references (:mod:`sfumato.inference.redux`): their tokens follow the
        #: prompt's on the steps they are active; the joint inputs per set of active ones
        self.redux = [r for r in job.adapters if getattr(r, "tokens", None) is not None]
        self._joint: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = {}

    def _control_condition(self, model: LoadedModel, control: Any) -> torch.Tensor:
        """A FLUX ControlNet's condition: the control image's packed latents (or the image
        itself, in [-1, 1], for the early nets with their own hint encoder)."""
        pixels = control.image[:1] * 2.0 - 1.0
        if getattr(control.net, "input_hint_block", None) is not None:
            return pixels.expand(control.image.shape[0], -1, -1, -1)
        latents = self.family.encode_pixels(model.pipe, pixels).to(control.image.dtype)
        packed = pack_latents(latents)
        return packed.expand(control.image.shape[0], -1, -1)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        x = pack_latents(job.text.unet_batch(latents))
        if job.inpaint_extra is not None:
            x = torch.cat([x, job.inpaint_extra], dim=-1)
        timestep = t.expand(x.shape[0]).to(x.dtype) / 1000
        residuals = self._control_residuals(x, timestep, j, n)
        tokens, txt_ids, attention = self._text(j, n)
        out = self.transformer(
            hidden_states=x if self.context is None else torch.cat([x, self.context], dim=1),
            timestep=timestep,
            guidance=self.guidance,
            pooled_projections=job.text.pooled,
            encoder_hidden_states=tokens,
            txt_ids=txt_ids,
            img_ids=self.img_ids,
            joint_attention_kwargs=attention or None,
            return_dict=False,
            **residuals,
        )[0][:, : self.noise_tokens]
        return job.text.guide(unpack_latents(out, job.lat_size), self.cfg)

    def _text(self, j: int, n: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """``(text tokens, their ids, joint attention kwargs)`` at step ``j`` of ``n``: the
        prompts', then the tokens of each Redux reference active at this step (ids zero, as
        ``FluxPipeline`` gives all text), each weighted by its strength through the
        attention bias (``log strength`` on its keys; none at strength 1). Under true CFG the negative rows read no picture,
        as diffusers' negative is text alone: they get zero tokens that the attention bias
        hides from every query (``exp`` of the bias is exactly 0), and the region bias, if
        any, counts the picture's tokens as the global prompt's — or, for a reference with a
        mask, as a regional prompt of their own (:meth:`_masked_pictures`)."""
        active = tuple(i for i, r in enumerate(self.redux) if r.active(j, n))
        if not active:
            return self.job.text.tokens, self.txt_ids, self.attention
        hit = self._joint.get(active)
        if hit is not None:
            return hit
        job = self.job
        tokens = job.text.tokens
        rows, length = tokens.shape[0], tokens.shape[1]
        extra = torch.cat([self.redux[i].tokens for i in active], dim=1).to(tokens.dtype)
        count = extra.shape[1]
        if job.text.guided:
            half = rows // 2
            extra_rows = torch.cat([extra.new_zeros((half, count, extra.shape[2])), extra.expand(half, -1, -1)])
        else:
            extra_rows = extra.expand(rows, -1, -1)
        joint = torch.cat([tokens, extra_rows], dim=1)
        txt_ids = torch.zeros(joint.shape[1], 3, device=tokens.device, dtype=self.txt_ids.dtype)
        total = joint.shape[1] + self.img_ids.shape[0]
        bias: torch.Tensor | None = None
        if job.region_masks is not None:
            layout = JointLayout(job.text.region_spans, joint.shape[1])
            bias = joint_attention_bias(job.region_masks, layout, patch=2, dtype=tokens.dtype, device=tokens.device)
            extra_image = self.img_ids.shape[0] - self.noise_tokens
            if extra_image:
                bias = torch.nn.functional.pad(bias, (0, extra_image, 0, extra_image))
        if any(self.redux[i].mask is not None for i in active):
            bias = self._masked_pictures(active, bias, length, joint.shape[1], total, tokens)
        strengths = [self.redux[i].strength for i in active]
        if job.text.guided or any(s != 1.0 for s in strengths):
            # the strength s multiplies each picture token's attention weight before the
            # softmax renormalises (log s added to its logits: ComfyUI's "attn_bias"
            # strength); FLUX normalises keys and context, so scaling the tokens would not
            hide = torch.zeros((rows, 1, 1, total), device=tokens.device, dtype=tokens.dtype)
            start = length
            for i, strength in zip(active, strengths):
                size = self.redux[i].tokens.shape[1]
                hide[:, :, :, start : start + size] = math.log(strength)
                start += size
            if job.text.guided:
                hide[: rows // 2, :, :, length : length + count] = float("-inf")
            bias = hide if bias is None else bias + hide
        attention = {} if bias is None else {"attention_mask": bias}
        self._joint[active] = (joint, txt_ids, attention)
        return joint, txt_ids, attention

    def _masked_pictures(
        self, active: tuple[int, ...], bias: torch.Tensor | None, first: int, text: int, total: int,
        tokens: torch.Tensor,
    ) -> torch.Tensor:
        """``bias`` ``(1, 1, L, L)`` (zeros when ``None``) with each masked reference's
        tokens made a regional prompt of its own (:mod:`sfumato.inference.joint_regions`):
        they and the noise's image tokens attend to each other with ``log(coverage)`` of
        its mask, and they neither see nor are seen by any other text token."""
        from sfumato.inference.joint_regions import token_coverage
        from sfumato.inference.regions import NEGATIVE_BIAS, latent_masks

        out = torch.zeros((1, 1, total, total), device=tokens.device, dtype=tokens.dtype) if bias is None else bias.clone()
        noise = slice(text, text + self.noise_tokens)
        start = first
        for i in active:
            reference = self.redux[i]
            span = slice(start, start + reference.tokens.shape[1])
            start = span.stop
            if reference.mask is None:
                continue
            cover = token_coverage(latent_masks([reference.mask], self.job.lat_size), 2)[0].clamp(0.0, 1.0)
            logs = torch.where(cover > 0, cover.clamp_min(1e-30).log(), torch.full_like(cover, NEGATIVE_BIAS))
            logs = logs.clamp_min(NEGATIVE_BIAS).to(device=out.device, dtype=out.dtype)
            out[0, 0, :text, span] = NEGATIVE_BIAS
            out[0, 0, span, :text] = NEGATIVE_BIAS
            out[0, 0, span, span] = 0.0
            out[0, 0, noise, span] = logs[:, None]
            out[0, 0, span, noise] = logs[None, :]
        return out

    def _control_residuals(self, x: torch.Tensor, timestep: torch.Tensor, j: int, n: int) -> dict[str, Any]:
        blocks: list[torch.Tensor] | None = None
        singles: list[torch.Tensor] | None = None
        repeat = False
        for control, condition in self.controls:
            if not control.active(j, n):
                continue
            net = control.net
            mode = None
            if control.mode is not None:
                mode = torch.full((x.shape[0], 1), control.mode, device=x.device, dtype=torch.long)
            guidance = self.guidance if getattr(net.config, "guidance_embeds", False) else None
            b, s = net(
                hidden_states=x,
                controlnet_cond=condition,
                controlnet_mode=mode,
                conditioning_scale=control.strength,
                timestep=timestep,
                guidance=guidance,
                pooled_projections=self.job.text.pooled,
                encoder_hidden_states=self.job.text.control_tokens,
                txt_ids=self.control_txt_ids,
                img_ids=self.noise_ids,
                return_dict=False,
            )
            repeat = repeat or getattr(net, "input_hint_block", None) is not None
            blocks = list(b) if blocks is None else [a + c for a, c in zip(blocks, b)]
            if s is not None:
                singles = list(s) if singles is None else [a + c for a, c in zip(singles, s)]
        if blocks is None:
            return {}
        return {
            "controlnet_block_samples": blocks,
            "controlnet_single_block_samples": singles,
            "controlnet_blocks_repeat": repeat,
        }

    def close(self) -> None:
        self.attention = {}
        self.context = None
        self._joint = {}

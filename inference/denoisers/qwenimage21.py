"""Qwen-Image 2.1's call a step (:mod:`sfumato.inference.families.qwenimage21`).

The transformer reads one sequence ``[prompt, picture]``, with the picture's rotary
positions counted from the prompt's length: a prompt padded to another's length would put
the picture elsewhere, so each guidance half runs as its own call with its own prompt's
real tokens (:meth:`~sfumato.inference.text_conditioning.TextConditioning.prompt_tokens`),
as diffusers' pipeline runs them. The prompt's keys and values do not change between
steps (the model modulates text from ``t = 0``), so each half keeps a key/value cache that
its first call fills and the later calls read: after the first step only the picture's
tokens are computed. The cache lives as long as the run; :meth:`close` drops it.

The picture's tokens are the latents unpatched (one per latent pixel, row-major); the
transformer's ``img_mask`` marks, in the text encoder's slots, which positions are the
picture's (one slot for every 2×2 of its tokens, after the prompt's).
"""

from __future__ import annotations

from typing import Any

import torch
from sfumato.inference.denoise import DenoiseJob
from sfumato.inference.families.flow import pack_latents, unpack_latents
from sfumato.inference.model_cache import LoadedModel

__all__ = ["QwenImage21Denoiser"]


class QwenImage21Denoiser:
    """One transformer call per guidance half a step, each half with its prompt's cache."""

    def __init__(self, model: LoadedModel, job: DenoiseJob) -> None:
        from diffusers.models.transformers.transformer_qwenimage21 import QwenImage21KVCache

        self.transformer = model.denoiser
        self.job = job
        text = job.text
        h, w = job.lat_size
        self.noise_tokens = h * w
        self.img_shapes: list[Any] = [[(1, h, w)]] * job.batch
        rows = text.prompt_tokens()  # each row's prompts, real tokens only: the global one here
        b = job.batch
        halves = [rows[:b], rows[b:]] if text.guided else [rows]
        self.prompts = [torch.stack([row[0] for row in half]) for half in halves]  # (b, T_half, D) each
        self.slots = [self._slots(p.shape[1]) for p in self.prompts]
        self.cfg = job.cfg if text.guided else 1.0
        cache = bool(self.transformer.config.causal_condition)
        blocks = len(self.transformer.transformer_blocks)
        self.caches: list[Any] | None = [QwenImage21KVCache(blocks) for _ in halves] if cache else None
        self.filled = False

    def _slots(self, prompt_tokens: int) -> torch.Tensor:
        """``(b, T + N/4)``: False at the prompt's positions, True at the picture's slots."""
        mask = torch.ones(self.job.batch, prompt_tokens + self.noise_tokens // 4, dtype=torch.bool)
        mask[:, :prompt_tokens] = False
        return mask.to(self.prompts[0].device)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        x = pack_latents(latents, patch=1)
        timestep = t.expand(x.shape[0]).to(x.dtype) / 1000
        mode = None if self.caches is None else ("cached" if self.filled else "extract")
        outs = []
        for i, (prompt, slots) in enumerate(zip(self.prompts, self.slots)):
            out = self.transformer(
                hidden_states=x,
                timestep=timestep,
                encoder_hidden_states=prompt,
                img_shapes=self.img_shapes,
                img_mask=slots,
                kv_cache=None if self.caches is None else self.caches[i],
                kv_cache_mode=mode,
                return_dict=False,
            )[0]
            outs.append(out[:, -self.noise_tokens :])
        self.filled = True
        if len(outs) == 2:
            uncond, cond = outs
            guided = uncond + self.cfg * (cond - uncond)
        else:
            guided = outs[0]
        return unpack_latents(guided, self.job.lat_size, patch=1)

    def close(self) -> None:
        self.caches = None

"""Chroma's call a step: FLUX's packing and position ids, no pooled embedding and no
guidance input (true CFG through the doubled batch), and the text padding masked out as
keys and queries, as the model was trained (:mod:`sfumato.inference.families.chroma`)."""

from __future__ import annotations

import torch
from sfumato.inference.denoise import DenoiseJob
from sfumato.inference.denoisers.flux import image_ids
from sfumato.inference.families.flow import pack_latents, unpack_latents
from sfumato.inference.model_cache import LoadedModel

__all__ = ["ChromaDenoiser"]


class ChromaDenoiser:
    """One Chroma transformer call a step."""

    def __init__(self, model: LoadedModel, job: DenoiseJob) -> None:
        self.transformer = model.denoiser
        self.job = job
        tokens = job.text.tokens
        device, dtype = tokens.device, tokens.dtype
        h, w = job.lat_size
        self.img_ids = image_ids(h // 2, w // 2, device, dtype)
        self.txt_ids = torch.zeros(tokens.shape[1], 3, device=device, dtype=dtype)
        self.mask = None
        if job.text.token_mask is not None and not bool(job.text.token_mask.all()):
            image = torch.ones((tokens.shape[0], (h // 2) * (w // 2)), dtype=torch.bool, device=device)
            self.mask = torch.cat([job.text.token_mask, image], dim=1)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        x = pack_latents(job.text.unet_batch(latents))
        out = self.transformer(
            hidden_states=x,
            timestep=t.expand(x.shape[0]).to(x.dtype) / 1000,
            encoder_hidden_states=job.text.tokens,
            txt_ids=self.txt_ids,
            img_ids=self.img_ids,
            attention_mask=self.mask,
            return_dict=False,
        )[0]
        return job.text.guide(unpack_latents(out, job.lat_size), job.cfg)

    def close(self) -> None:
        self.mask = None

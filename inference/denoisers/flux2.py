"""FLUX.2 Klein's call a step: the loop's patchified latents ``(B, 128, h, w)`` become one
token a latent pixel (row-major), FLUX.2's 4-axis position ids ``(t, row, col, l)`` —
image tokens ``(0, row, col, 0)``, text tokens ``(0, 0, 0, index)``, reference images
``(10·(i+1), row, col, 0)`` —, the timestep over 1000, true CFG for Klein Base, the
joint-attention region bias (:mod:`sfumato.inference.joint_regions`; both of FLUX.2's
attention processors pass ``attention_mask`` on to the attention call), and reference
tokens: when inpainting, the init picture's latents, as diffusers' Klein inpainting
pipeline gives them (the prediction keeps only the noise tokens' part).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sfumato.inference.denoise import DenoiseJob
from sfumato.inference.joint_regions import JointLayout, joint_attention_bias
from sfumato.inference.model_cache import LoadedModel

__all__ = ["Flux2Denoiser", "latent_ids", "reference_ids", "text_ids"]

#: the time coordinate between reference images (diffusers' ``_prepare_image_ids`` scale)
REFERENCE_STRIDE = 10


def latent_ids(rows: int, cols: int, t: int = 0) -> torch.Tensor:
    """``(rows·cols, 4)`` ids of one latent grid: ``(t, row, col, 0)``, row-major."""
    return torch.cartesian_prod(torch.tensor([t]), torch.arange(rows), torch.arange(cols), torch.arange(1))


def text_ids(length: int, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``(length, 4)`` text ids ``(0, 0, 0, index)``; each region's prompt counts its tokens
    from 0 again, so every prompt sits where it would sit alone."""
    index = torch.arange(length)
    for start, end in spans:
        index[start:end] = torch.arange(end - start)
    ids = torch.zeros(length, 4, dtype=torch.long)
    ids[:, 3] = index
    return ids


def reference_ids(latents: Sequence[torch.Tensor]) -> torch.Tensor:
    """Ids of reference images' latents ``(1, C, h, w)`` each: image ``i`` at time ``10·(i+1)``."""
    return torch.cat(
        [latent_ids(x.shape[-2], x.shape[-1], REFERENCE_STRIDE * (i + 1)) for i, x in enumerate(latents)]
    )


def _tokens(latents: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` → ``(B, h·w, C)``: one token a latent pixel, row-major."""
    return latents.flatten(2).transpose(1, 2)


class Flux2Denoiser:
    """One FLUX.2 transformer call a step (module docstring)."""

    def __init__(self, model: LoadedModel, job: DenoiseJob) -> None:
        self.transformer = model.denoiser
        self.job = job
        tokens = job.text.tokens
        device = tokens.device
        h, w = job.lat_size
        self.noise_tokens = h * w
        references = self._references(job)
        ids = [latent_ids(h, w)]
        self.reference: torch.Tensor | None = None
        if references:
            ids.append(reference_ids(references))
            packed = torch.cat([_tokens(x) for x in references], dim=1)
            self.reference = packed.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        self.img_ids = torch.cat(ids).to(device)
        self.txt_ids = text_ids(tokens.shape[1], job.text.region_spans).to(device)
        self.cfg = job.cfg if job.text.guided else 1.0
        self.attention: dict[str, Any] = {}
        if job.region_masks is not None:
            layout = JointLayout(job.text.region_spans, tokens.shape[1])
            bias = joint_attention_bias(job.region_masks, layout, patch=1, dtype=tokens.dtype, device=device)
            extra = self.img_ids.shape[0] - self.noise_tokens
            if extra:  # reference tokens see and are seen by every token alike
                bias = torch.nn.functional.pad(bias, (0, extra, 0, extra))
            self.attention = {"attention_mask": bias}

    @staticmethod
    def _references(job: DenoiseJob) -> list[torch.Tensor]:
        """The reference images' latents ``(1, C, h, w)``: the request's reference pictures,
        in order, then the init picture when inpainting (Klein's inpainting pipeline shows
        the model the whole picture) — unless the run is an edit, whose picture is already
        the first reference."""
        references = list(job.references)
        if job.denoise_mask is not None and job.init_latents is not None and not job.edit:
            references.append(job.init_latents[:1])
        return references

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        x = _tokens(job.text.unet_batch(latents))
        if self.reference is not None:
            x = torch.cat([x, self.reference], dim=1)
        timestep = t.expand(x.shape[0]).to(x.dtype) / 1000
        out = self.transformer(
            hidden_states=x,
            timestep=timestep,
            guidance=None,
            encoder_hidden_states=job.text.tokens,
            txt_ids=self.txt_ids,
            img_ids=self.img_ids,
            joint_attention_kwargs=self.attention or None,
            return_dict=False,
        )[0][:, : self.noise_tokens]
        b, c = latents.shape[0] * job.text.copies, latents.shape[1]
        prediction = out.transpose(1, 2).reshape(b, c, *job.lat_size)
        return job.text.guide(prediction, self.cfg)

    def close(self) -> None:
        self.attention = {}
        self.reference = None

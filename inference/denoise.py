"""What the denoise loop calls once a step: the family's denoiser, behind one interface.

The engine's loop (:mod:`.engine`) owns what every mode shares — the noise, the
schedule's stepping, inpainting's known-area blending, x0 previews, progress, cancel —
and works on latents in the VAE's own layout ``(B, C, h, w)``. What differs between
architectures is one call: turn the current latents at timestep ``t`` into the guided
prediction the scheduler steps with. That call is a :class:`Denoiser`, made per run by the
model's family (:meth:`~.families.base.Family.make_denoiser`) from the prepared
:class:`DenoiseJob`:

- :class:`UNetDenoiser` (SD 1.x, SD 2.x, SDXL): the scheduler's input scaling, a
  9-channel inpainting UNet's extra channels, ControlNet residuals, regional
  cross-attention, embedded (LCM) guidance or classifier-free guidance over a doubled
  batch.
- the flow-matching transformers (:mod:`.families.flow`): packing into patch tokens,
  position ids, timestep ``t / 1000``, guidance embeddings or true CFG, joint-attention
  region masks (:mod:`.joint_regions`) — each family's own call.

A denoiser may install hooks into the model (attention processors); :meth:`Denoiser.close`
takes them out again, whatever happened during the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from sfumato.inference.regions import RegionalAttention
from sfumato.inference.steps import StepPlan
from sfumato.inference.text_conditioning import TextConditioning

__all__ = ["ControlInput", "DenoiseJob", "Denoiser", "UNetDenoiser"]


@dataclass
class ControlInput:
    """One control of the run: its loaded net, its image at generation size and timing."""

    net: Any
    image: torch.Tensor  # (B_model, 3, H, W) in [0, 1]
    strength: float
    start: float
    end: float
    #: a union ControlNet's control type index, else ``None``
    mode: int | None = None

    def active(self, j: int, n: int) -> bool:
        """Whether the control acts at step ``j`` of ``n`` (its ``[start, end)`` fraction)."""
        return not (j / n < self.start or (j + 1) / n > self.end + 1e-9)


@dataclass
class DenoiseJob:
    """Everything prepared for the denoise loop, at generation size."""

    gen: tuple[int, int]  # (width, height): the request's size, what the model denoises
    lat_size: tuple[int, int]  # (h, w): the latents' size
    channels: int  # the latents' channel count (the VAE's latent channels)
    scheduler: Any  # a fresh diffusers scheduler for this run (timesteps not yet set)
    steps: StepPlan
    batch: int
    cfg: float
    text: TextConditioning  # the prompts, in the CFG batch layout (B_model images)
    unet_kwargs: dict[str, Any]  # the family's extra UNet (and ControlNet) inputs
    timestep_cond: torch.Tensor | None  # (B, D): the embedded guidance scale (LCM UNets), else None
    init_latents: torch.Tensor | None  # (B, C, h, w)
    denoise_mask: torch.Tensor | None  # (1, 1, h, w) latent-res soft mask (inpaint)
    inpaint_extra: torch.Tensor | None  # the inpainting model's extra input (mask, masked image)
    region_masks: torch.Tensor | None  # (R, h, w)
    controls: list[ControlInput]
    step_seconds: float = 0.0  # mean wall time of a denoising step (with events), measured


class Denoiser(Protocol):
    """One model call per step: latents ``(B, C, h, w)`` at ``t`` → the guided prediction."""

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor: ...

    def close(self) -> None: ...


class UNetDenoiser:
    """The UNet families' call (SD 1.x, SD 2.x, SDXL)."""

    def __init__(self, unet: Any, job: DenoiseJob) -> None:
        self.unet = unet
        self.job = job
        self.guidance = {} if job.timestep_cond is None else {"timestep_cond": job.timestep_cond}
        self.regional: RegionalAttention | None = None
        if job.region_masks is not None:
            self.regional = RegionalAttention(unet).install()
            self.regional.set_regions(job.region_masks, job.text.region_spans)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        model_in = job.scheduler.scale_model_input(job.text.unet_batch(latents), t)
        residuals = self._control_residuals(model_in, t, j, n)
        unet_in = model_in if job.inpaint_extra is None else torch.cat([model_in, job.inpaint_extra], dim=1)
        out = self.unet(
            unet_in,
            t,
            encoder_hidden_states=job.text.tokens,
            return_dict=False,
            **job.unet_kwargs,
            **self.guidance,
            **residuals,
        )[0]
        return job.text.guide(out, job.cfg)

    def close(self) -> None:
        if self.regional is not None:
            self.regional.remove()
            self.regional = None

    def _control_residuals(self, model_in: torch.Tensor, t: torch.Tensor, j: int, n: int) -> dict[str, Any]:
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        for control in self.job.controls:
            if not control.active(j, n):
                continue
            d, m = control.net(
                model_in,
                t,
                encoder_hidden_states=self.job.text.control_tokens,
                controlnet_cond=control.image,
                conditioning_scale=control.strength,
                return_dict=False,
                **self.job.unet_kwargs,
            )
            if down is None:
                down, mid = list(d), m
            else:
                down = [a + b for a, b in zip(down, d)]
                mid = mid + m  # type: ignore[operator]
        if down is None:
            return {}
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

"""The UNet families' call a step (SD 1.x, SD 2.x, SDXL)."""

from __future__ import annotations

from typing import Any

import torch
from sfumato.inference.denoise import DenoiseJob
from sfumato.inference.reference_adapters import ReferenceAttention
from sfumato.inference.regions import RegionalAttention

__all__ = ["UNetDenoiser"]


class UNetDenoiser:
    """The UNet families' call (SD 1.x, SD 2.x, SDXL)."""

    def __init__(self, unet: Any, job: DenoiseJob) -> None:
        self.unet = unet
        self.job = job
        self.guidance = {} if job.timestep_cond is None else {"timestep_cond": job.timestep_cond}
        self.regional: RegionalAttention | None = None
        self.references: ReferenceAttention | None = None
        self.unet_kwargs = job.unet_kwargs
        if job.region_masks is not None:
            self.regional = RegionalAttention(unet).install()
            self.regional.set_regions(job.region_masks, job.text.region_spans)
        if job.adapters:
            # In front of the regional processors (installed first), removed first.
            try:
                self.references = ReferenceAttention(unet, job.adapters).install()
            except BaseException:
                self.close()
                raise
            self.unet_kwargs = self.references.unet_kwargs(job.unet_kwargs)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        model_in = job.scheduler.scale_model_input(job.text.unet_batch(latents), t)
        residuals = self._control_residuals(model_in, t, j, n)
        unet_in = model_in if job.inpaint_extra is None else torch.cat([model_in, job.inpaint_extra], dim=1)
        if self.references is not None:
            self.references.set_step(j, n)
        out = self.unet(
            unet_in,
            t,
            encoder_hidden_states=job.text.tokens,
            return_dict=False,
            **self.unet_kwargs,
            **self.guidance,
            **residuals,
        )[0]
        return job.text.guide(out, job.cfg)

    def close(self) -> None:
        if self.references is not None:
            self.references.remove()
            self.references = None
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

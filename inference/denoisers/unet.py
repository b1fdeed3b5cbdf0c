"""The UNet families' call a step (SD 1.x, SD 2.x, SDXL)."""

from __future__ import annotations

from typing import Any

import torch
from sfumato.inference.controlnets import union_control_type
from sfumato.inference.denoise import ControlInput, DenoiseJob
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
        """The summed residuals of the controls active at step ``j``: one call per
        single-kind ControlNet, and one per union ControlNet with all of its active
        controls' images, types and scales (:func:`_union_groups`)."""
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        for net, controls in _union_groups([c for c in self.job.controls if c.active(j, n)]):
            if controls[0].mode is None:
                control = controls[0]
                d, m = net(
                    model_in,
                    t,
                    encoder_hidden_states=self.job.text.control_tokens,
                    controlnet_cond=control.image,
                    conditioning_scale=control.strength,
                    return_dict=False,
                    **self.job.unet_kwargs,
                )
            else:
                controls = [c for c in controls if c.strength != 0.0]
                if not controls:
                    continue
                modes = [int(c.mode) for c in controls]  # type: ignore[arg-type]
                d, m = net(
                    model_in,
                    t,
                    encoder_hidden_states=self.job.text.control_tokens,
                    controlnet_cond=[c.image for c in controls],
                    control_type=union_control_type(net, modes, model_in.shape[0], model_in.device, model_in.dtype),
                    control_type_idx=modes,
                    conditioning_scale=[float(c.strength) for c in controls],
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


def _union_groups(controls: list[ControlInput]) -> list[tuple[Any, list[ControlInput]]]:
    """``controls`` as calls: each single-kind ControlNet's control alone, and the controls
    on one union ControlNet (a control type, ``mode``, set) together, in the order of their
    first control — as ``StableDiffusionXLControlNetUnionPipeline`` passes several images
    and types to one union net in one call.

    Unlike the pipeline, a control outside its step range or at strength 0 is left out of
    its union call (the pipeline keeps it in at scale 0, where its zero token still changes
    the mixing transformer's attention and its type bit the time embedding): a control
    that does not act is absent, as for single-kind nets."""
    calls: list[tuple[Any, list[ControlInput]]] = []
    unions: dict[int, list[ControlInput]] = {}
    for control in controls:
        if control.mode is None:
            calls.append((control.net, [control]))
        elif id(control.net) in unions:
            unions[id(control.net)].append(control)
        else:
            unions[id(control.net)] = [control]
            calls.append((control.net, unions[id(control.net)]))
    return calls

"""What the denoise loop calls once a step: the family's denoiser, behind one interface.

The engine's loop (:mod:`.engine`) owns what every mode shares — the noise, the
schedule's stepping, inpainting's known-area blending, x0 previews, progress, cancel —
and works on latents in the VAE's own layout ``(B, C, h, w)``. What differs between
architectures is one call: turn the current latents at timestep ``t`` into the guided
prediction the scheduler steps with. That call is a :class:`Denoiser`, made per run by the
model's family (:func:`sfumato.inference.denoisers.make_denoiser`) from the prepared
:class:`DenoiseJob`:

- the UNet families (SD 1.x, SD 2.x, SDXL, :mod:`.denoisers.unet`): the scheduler's input
  scaling, a 9-channel inpainting UNet's extra channels, ControlNet residuals, regional
  cross-attention, embedded (LCM) guidance or classifier-free guidance over a doubled
  batch;
- the flow-matching transformers (:mod:`.families.flow`; :mod:`.denoisers.flux` and its
  siblings): packing into patch tokens, position ids, timestep ``t / 1000``, guidance
  embeddings or true CFG, joint-attention region masks (:mod:`.joint_regions`) — each
  family's own call.

The families themselves (:mod:`.families`) hold only what the planner may read without
torch and the hooks that need torch alone; the denoisers, which need the rest of the
engine room, live beside them in :mod:`.denoisers`.

A denoiser may install hooks into the model (attention processors); :meth:`Denoiser.close`
takes them out again, whatever happened during the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from sfumato.inference.steps import StepPlan
from sfumato.inference.text_conditioning import TextConditioning

__all__ = ["ControlInput", "DenoiseJob", "Denoiser"]


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
    #: the request's reference pictures as model-space latents ``(1, C, h, w)`` each
    references: list[torch.Tensor] = field(default_factory=list)
    #: the request's reference pictures through IP-Adapters (SD 1.x, SDXL): encoded
    #: :class:`~sfumato.inference.reference_adapters.ReferenceInput` each
    adapters: list[Any] = field(default_factory=list)
    #: an instruction edit: the first of ``references`` is the picture to edit (the init)
    edit: bool = False
    step_seconds: float = 0.0  # mean wall time of a denoising step (with events), measured


class Denoiser(Protocol):
    """One model call per step: latents ``(B, C, h, w)`` at ``t`` → the guided prediction."""

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor: ...

    def close(self) -> None: ...

"""What the flow-matching transformer families share (FLUX.1, Chroma, FLUX.2, SD 3.5,
Z-Image, Qwen-Image).

They differ from the UNet families in four ways the engine's loop must not care about,
and each is a hook of :class:`~.base.Family` overridden here or by one family:

- **the denoiser** is a transformer over patch tokens (``pipe.transformer``); the loop
  keeps latents in the VAE's layout ``(B, C, h, w)`` and the family's
  :class:`~sfumato.inference.denoise.Denoiser` packs them into tokens for its one call and
  unpacks the prediction (the scheduler's step is elementwise, so where the packing
  happens does not change a bit);
- **the schedule** is flow matching: ``x_t = (1 − σ)·x0 + σ·noise``, the model predicts
  the velocity, and the sigmas are shifted towards noise for larger images (FLUX's
  resolution-dependent ``mu``, :func:`flux_shift`); only Euler (and Heun where diffusers
  has it) sample it, which :attr:`FlowFamily.samplers` tells the planner;
- **guidance** is either distilled into the model (FLUX.1 dev's guidance embedding: one
  pass, the scale is an input) or true classifier-free guidance over a doubled batch
  (Chroma, SD 3.5, Qwen-Image, Z-Image);
- **the latents** have 16 channels (or more), with a shift and a scale (or per-channel
  statistics) between the VAE's space and the model's.

Sides are multiples of the VAE factor times the patch size (16 px for FLUX).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfumato.inference.families.base import Family
from sfumato.vocabulary.families import pipeline_names
from sfumato.vocabulary.kinds import Sampler

if TYPE_CHECKING:
    import torch

__all__ = ["REGION_TOKEN_STEP", "FlowFamily", "flux_shift", "pack_latents", "round_up", "unpack_latents"]


def flux_shift(
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """FLUX's resolution-dependent shift ``mu``: linear in the image's token count, from
    ``base_shift`` at ``base_seq_len`` tokens to ``max_shift`` at ``max_seq_len``."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + base_shift - slope * base_seq_len


#: with regions, every prompt of a family whose prompts are padded to a fixed length
#: (FLUX's 512 T5 tokens, Klein's 512 Qwen3 tokens, SD 3.5's 256 T5 tokens) is cut to the
#: longest prompt's tokens and a pad, rounded up to a multiple of this
#: (:meth:`~.base.Family.regional_tokens`): the words all stay, the padding shrinks. The
#: models attend to their padding: cut to 16, the part of a FLUX.2 Klein picture outside
#: every region drifted 0.37 levels from the picture without regions, at 64 less than
#: 0.25 (``test_flux2.py``'s regions test)
REGION_TOKEN_STEP = 64


def round_up(value: int, step: int) -> int:
    """``value`` rounded up to a multiple of ``step``."""
    return -(-value // step) * step


def pack_latents(latents: torch.Tensor, patch: int = 2) -> torch.Tensor:
    """``(B, C, h, w)`` → ``(B, (h/p)·(w/p), C·p²)``: one token per ``p × p`` patch, row-major."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpack_latents(tokens: torch.Tensor, lat_size: tuple[int, int], patch: int = 2) -> torch.Tensor:
    """The inverse of :func:`pack_latents` for latents of ``lat_size`` ``(h, w)``."""
    b, _, d = tokens.shape
    h, w = lat_size
    c = d // (patch * patch)
    x = tokens.view(b, h // patch, w // patch, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


class FlowFamily(Family):
    """A flow-matching transformer family (see the module docstring)."""

    denoiser_component = "transformer"
    default_scheduler = "FlowMatchEulerDiscreteScheduler"
    samplers = frozenset({Sampler.DEFAULT, Sampler.EULER})
    #: latent pixels per token side
    patch = 2
    size_multiple = 16

    def loaded_native_side(self, pipe: Any) -> int:
        return self.native_side

    #: the diffusers transformer class, for a folder that names no pipeline class
    transformer_class: str = ""

    def matches_diffusers(self, model_index: dict[str, Any], unet_config: dict[str, Any]) -> bool:
        """A folder of this family declares one of its pipeline classes exactly (not
        Kontext's, Qwen-Image-Edit's or Z-Image Omni's, which take reference pictures), or,
        naming none, holds this family's transformer."""
        cls = str(model_index.get("_class_name", ""))
        if cls:
            return cls in self.pipeline_names()
        return bool(self.transformer_class) and unet_config.get("_class_name") == self.transformer_class

    def pipeline_names(self) -> tuple[str, ...]:
        """The diffusers pipeline class names a folder of this family declares
        (:data:`sfumato.vocabulary.families.PIPELINE_FAMILIES`)."""
        return pipeline_names(self.name)

    def is_inpaint_config(self, config: dict[str, Any]) -> bool:
        return False

    def set_timesteps(self, scheduler: Any, steps: int, lat_size: tuple[int, int], device: torch.device) -> None:
        """FLUX's schedule: sigmas evenly from 1 to ``1/steps``, shifted by ``mu`` for the
        image's token count when the scheduler shifts dynamically."""
        import numpy as np

        sigmas = np.linspace(1.0, 1.0 / steps, steps)
        config = scheduler.config
        mu = None
        if config.get("use_dynamic_shifting", False):
            tokens = (lat_size[0] // self.patch) * (lat_size[1] // self.patch)
            mu = flux_shift(
                tokens,
                config.get("base_image_seq_len", 256),
                config.get("max_image_seq_len", 4096),
                config.get("base_shift", 0.5),
                config.get("max_shift", 1.15),
            )
        # One step with a terminal shift divides 0 by 0 inside diffusers (mended below).
        with np.errstate(divide="ignore", invalid="ignore"):
            if config.get("use_flow_sigmas", False):
                scheduler.set_timesteps(steps, device=device, mu=mu)
            else:
                scheduler.set_timesteps(device=device, sigmas=list(sigmas), mu=mu)
        _mend_single_step(scheduler)


def _mend_single_step(scheduler: Any) -> None:
    """Qwen-Image's scheduler stretches its sigmas to end at ``shift_terminal``; with one step
    that stretch divides 0 by 0 (diffusers' own pipeline then draws NaN). One step from pure
    noise has the single sigma 1: put it back, and its timestep."""
    import torch

    sigmas = scheduler.sigmas
    if not bool(torch.isnan(sigmas).any()):
        return
    scheduler.sigmas = torch.nan_to_num(sigmas, nan=1.0)
    scale = float(scheduler.config.get("num_train_timesteps", 1000))
    scheduler.timesteps = (scheduler.sigmas[:-1] * scale).to(scheduler.timesteps.dtype)

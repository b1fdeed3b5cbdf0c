"""The noise-level arithmetic of a schedule (and, re-exported from
:mod:`sfumato.inference.families.vae`, pixels ↔ latents through a stock VAE).

Latents are torch tensors ``(B, C, h, w)`` in the *model's* space, what denoisers and
schedulers see.

:class:`NoiseLevels` expresses every scheduler's state with one number per step, the
k-diffusion ``sigma``: schedulers in "k space" (Euler, Heun, DPM-SDE…, whose
``init_noise_sigma`` > 1) hold ``x = x0 + sigma·eps``; the others (DDIM, DPM++ multistep,
UniPC, LCM) hold ``x = alpha·x0 + alpha·sigma·eps`` with ``alpha = 1/sqrt(1 + sigma²)``.
From it come both the predicted clean latents (x0, for previews) and the original image
noised to the level of any step (for inpainting's known-area blending).
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "NoiseLevels",
    "decode_latents",
    "decode_pixels",
    "encode_images",
    "encode_pixels",
    "images_to_tensor",
    "initial_sigma",
    "is_flow_schedule",
    "pixels_to_images",
]

# The stock VAE's pixel ↔ latent maps live with the families, which use them as defaults.
from sfumato.inference.families.vae import (  # noqa: E402
    decode_latents,
    decode_pixels,
    encode_images,
    encode_pixels,
    images_to_tensor,
    pixels_to_images,
)


def is_flow_schedule(scheduler: Any) -> bool:
    """Whether ``scheduler`` samples a flow-matching model (diffusers' ``FlowMatch*``)."""
    return type(scheduler).__name__.startswith("FlowMatch")


def initial_sigma(scheduler: Any) -> float:
    """What pure noise is multiplied by to start a run (1 for flow matching)."""
    return float(getattr(scheduler, "init_noise_sigma", 1.0))


class NoiseLevels:
    """Per-step noise levels of a configured scheduler (after ``set_timesteps``).

    ``first`` is the index in ``scheduler.timesteps`` of the first step the run takes;
    index ``j`` of this object is the run's ``j``-th step (``j == len(run)`` is "clean").
    """

    def __init__(self, scheduler: Any, first: int = 0) -> None:
        #: a flow-matching schedule (``x = (1 − sigma)·x0 + sigma·noise``, the model predicts
        #: the velocity ``noise − x0``): FLUX, SD3, Z-Image, Qwen-Image
        self.flow = is_flow_schedule(scheduler)
        self.k_space = not self.flow and float(scheduler.init_noise_sigma) > 1.0 + 1e-3
        self.prediction = str(getattr(scheduler.config, "prediction_type", "epsilon"))
        timesteps = scheduler.timesteps
        sigmas = getattr(scheduler, "sigmas", None)
        if sigmas is not None and len(sigmas) == len(timesteps) + 1:
            values = [float(s) for s in sigmas.flatten().tolist()]
        else:
            ac = scheduler.alphas_cumprod
            values = []
            for t in timesteps.tolist():
                a = float(ac[int(round(t))])
                values.append(math.sqrt((1.0 - a) / a))
            values.append(0.0)
        self.sigmas = values[first:]

    def __len__(self) -> int:
        return len(self.sigmas) - 1

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, j: int) -> torch.Tensor:
        """``x0`` noised with ``noise`` to the level the scheduler expects at step ``j``."""
        s = self.sigmas[j]
        if s == 0.0:
            return x0
        if self.flow:
            return (1.0 - s) * x0 + s * noise
        if self.k_space:
            return x0 + s * noise
        alpha = 1.0 / math.sqrt(1.0 + s * s)
        return alpha * x0 + alpha * s * noise

    def predict_x0(self, x: torch.Tensor, model_output: torch.Tensor, j: int) -> torch.Tensor:
        """The clean latents the model predicts from sample ``x`` at step ``j``."""
        s = self.sigmas[j]
        if self.flow:
            return x - s * model_output
        if self.prediction == "sample":
            return model_output
        if self.k_space:
            if self.prediction == "v_prediction":
                return x / (s * s + 1.0) - model_output * (s / math.sqrt(s * s + 1.0))
            return x - s * model_output
        alpha = 1.0 / math.sqrt(1.0 + s * s)
        sigma_t = alpha * s
        if self.prediction == "v_prediction":
            return alpha * x - sigma_t * model_output
        return (x - sigma_t * model_output) / alpha

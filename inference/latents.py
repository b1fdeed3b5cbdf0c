"""Pixels ↔ latents through a model's VAE, and the noise-level arithmetic of a schedule.

Pixel images here are numpy ``uint8 (H, W, 3)`` RGB; latents are torch tensors
``(B, C, H/8, W/8)`` in the *model's* space (VAE latents × ``scaling_factor``, minus
``shift_factor`` where the VAE has one), which is what UNets and schedulers see.

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

import numpy as np
import torch

__all__ = [
    "NoiseLevels",
    "decode_latents",
    "decode_pixels",
    "encode_images",
    "encode_pixels",
    "images_to_tensor",
    "pixels_to_images",
]


def images_to_tensor(images: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` images → ``(B, 3, H, W)`` in [-1, 1]."""
    array = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).to(device=device, dtype=dtype)


def _vae_dtype(vae: Any) -> torch.dtype:
    return next(vae.parameters()).dtype


@torch.inference_mode()
def encode_pixels(vae: Any, x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` pixels in [-1, 1] → model-space latents (the distribution's mode)."""
    latents = vae.encode(x.to(_vae_dtype(vae))).latent_dist.mode()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * vae.config.scaling_factor


@torch.inference_mode()
def decode_pixels(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Model-space latents → ``(B, 3, H, W)`` pixels in about [-1, 1] (not clamped)."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    z = latents.to(_vae_dtype(vae)) / vae.config.scaling_factor + shift
    return vae.decode(z).sample


def pixels_to_images(pixels: torch.Tensor) -> list[np.ndarray]:
    """``(B, 3, H, W)`` pixels in [-1, 1] → uint8 ``(H, W, 3)`` images (clamped, rounded)."""
    pixels = ((pixels.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a) for a in array]


@torch.inference_mode()
def encode_images(vae: Any, images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Encode uint8 images to model-space latents (the distribution's mode: deterministic)."""
    return encode_pixels(vae, images_to_tensor(images, device, _vae_dtype(vae)))


@torch.inference_mode()
def decode_latents(vae: Any, latents: torch.Tensor) -> list[np.ndarray]:
    """Decode model-space latents to uint8 ``(H, W, 3)`` images."""
    return pixels_to_images(decode_pixels(vae, latents))


class NoiseLevels:
    """Per-step noise levels of a configured scheduler (after ``set_timesteps``).

    ``first`` is the index in ``scheduler.timesteps`` of the first step the run takes;
    index ``j`` of this object is the run's ``j``-th step (``j == len(run)`` is "clean").
    """

    def __init__(self, scheduler: Any, first: int = 0) -> None:
        self.k_space = float(scheduler.init_noise_sigma) > 1.0 + 1e-3
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
        if self.k_space:
            return x0 + s * noise
        alpha = 1.0 / math.sqrt(1.0 + s * s)
        return alpha * x0 + alpha * s * noise

    def predict_x0(self, x: torch.Tensor, model_output: torch.Tensor, j: int) -> torch.Tensor:
        """The clean latents the model predicts from sample ``x`` at step ``j``."""
        s = self.sigmas[j]
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

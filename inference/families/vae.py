"""Pixels ↔ model-space latents through a stock VAE (the families' default encode/decode).

Pixel images are numpy ``uint8 (H, W, 3)`` RGB; latents are torch tensors ``(B, C, H/8,
W/8)`` in the *model's* space: VAE latents minus ``shift_factor`` (where the VAE has one,
FLUX's and SD 3.5's) times ``scaling_factor``, which is what the denoiser and the
scheduler see. Encoding takes the latent distribution's mode, so it is deterministic.

Part of the families package, so it imports torch only inside its functions (the planner
imports the families for their sizing facts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "decode_latents",
    "decode_pixels",
    "encode_images",
    "encode_pixels",
    "images_to_tensor",
    "pixels_to_images",
    "vae_dtype",
]


def vae_dtype(vae: Any) -> torch.dtype:
    return next(vae.parameters()).dtype


def images_to_tensor(images: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` images → ``(B, 3, H, W)`` in [-1, 1]."""
    import torch

    array = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).to(device=device, dtype=dtype)


def pixels_to_images(pixels: torch.Tensor) -> list[np.ndarray]:
    """``(B, 3, H, W)`` pixels in [-1, 1] → uint8 ``(H, W, 3)`` images (clamped, rounded)."""
    import torch

    pixels = ((pixels.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a) for a in array]


def encode_pixels(vae: Any, x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` pixels in [-1, 1] → model-space latents (the distribution's mode)."""
    import torch

    with torch.inference_mode():
        latents = vae.encode(x.to(vae_dtype(vae))).latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * vae.config.scaling_factor


def decode_pixels(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Model-space latents → ``(B, 3, H, W)`` pixels in about [-1, 1] (not clamped)."""
    import torch

    with torch.inference_mode():
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        z = latents.to(vae_dtype(vae)) / vae.config.scaling_factor + shift
        return vae.decode(z).sample


def encode_images(vae: Any, images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Encode uint8 images to model-space latents (deterministic)."""
    return encode_pixels(vae, images_to_tensor(images, device, vae_dtype(vae)))


def decode_latents(vae: Any, latents: torch.Tensor) -> list[np.ndarray]:
    """Decode model-space latents to uint8 ``(H, W, 3)`` images."""
    return pixels_to_images(decode_pixels(vae, latents))

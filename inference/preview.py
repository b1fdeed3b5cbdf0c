"""Cheap previews of the predicted clean image (x0) while a run denoises.

The default is a linear map per latent pixel (``rgb = latent @ W + b``, 4×3 + bias for
SD 1.x/SDXL latents), applied at latent resolution: a few microseconds a step, the
preview is 1/8 of the generation size and the GUI scales it up. Families ship the
community-standard factors for their stock VAEs; for any other VAE
:func:`fit_latent_rgb_map` fits the map from a few encode/decode round trips of smooth
synthetic images (so a new family or a custom VAE gets previews for free).

TAESD (``AutoencoderTiny``) gives sharper previews when its weights are present locally
(``resources/models/taesd`` for SD 1.x, ``resources/models/taesdxl`` for SDXL); it is
never downloaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sfumato.inference.families.base import Family, PreviewFactors

__all__ = ["LatentPreviewer", "TaesdPreviewer", "fit_latent_rgb_map", "load_taesd"]

log = logging.getLogger(__name__)


class LatentPreviewer:
    """Maps model-space latents ``(C, h, w)`` to a uint8 ``(h, w, 3)`` preview."""

    def __init__(self, factors: PreviewFactors, device: torch.device, dtype: torch.dtype) -> None:
        self.factors = factors
        self.weights = torch.tensor(factors.weights, dtype=dtype, device=device)  # (C, 3)
        self.bias = torch.tensor(factors.bias, dtype=dtype, device=device)

    def linear_rgb(self, latents: torch.Tensor) -> torch.Tensor:
        """``(C, h, w)`` latents → ``(h, w, 3)`` float RGB in about [-1, 1] (no clamping)."""
        lat = latents.to(self.weights.dtype)
        return torch.einsum("chw,cd->hwd", lat, self.weights) + self.bias

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        rgb = self.linear_rgb(latents)
        rgb = ((rgb.clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)
        return rgb.cpu().numpy()


class TaesdPreviewer:
    """Decodes latents with TAESD (an ``AutoencoderTiny``); full-resolution previews."""

    def __init__(self, taesd: Any, scaling_factor: float) -> None:
        self.taesd = taesd
        self.scaling_factor = scaling_factor

    @torch.inference_mode()
    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        param = next(self.taesd.parameters())
        z = latents[None].to(param.dtype) / self.scaling_factor
        pixels = self.taesd.decode(z).sample[0]
        rgb = ((pixels.float().clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)
        return rgb.permute(1, 2, 0).cpu().numpy()


def load_taesd(folder: Path, device: torch.device, dtype: torch.dtype) -> Any | None:
    """An ``AutoencoderTiny`` from a local diffusers folder, or ``None`` when it is absent."""
    if not (folder / "config.json").is_file():
        return None
    from diffusers import AutoencoderTiny

    try:
        return AutoencoderTiny.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True).to(device)
    except Exception:  # a broken optional preview model must not break generation
        log.warning("could not load TAESD from %s; using linear previews", folder, exc_info=True)
        return None


def _smooth_fields(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` smooth random colour images ``(count, 3, size, size)`` in [-1, 1]:
    blurred colour blobs plus gradients, the low-frequency content a preview shows."""
    coarse = torch.rand((count, 3, 4, 4), generator=generator) * 2.0 - 1.0
    fields = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    ramp = torch.linspace(-1.0, 1.0, size)
    grad = (ramp[None, :] * torch.rand((count, 3, 1, 1), generator=generator) - 0.5)
    return (fields + 0.3 * grad).clamp(-1.0, 1.0)


@torch.inference_mode()
def fit_latent_rgb_map(
    pipe: Any, family: Family, *, samples: int = 8, size: int = 64, seed: int = 0
) -> PreviewFactors:
    """Fit a linear latent→RGB map for ``pipe``'s VAE by least squares.

    Encodes ``samples`` smooth synthetic images of ``size``² pixels through the family's
    encoder (so latents are in model space: scaled, shifted or normalised as the
    denoiser sees them), decodes them again, and regresses each decoded pixel
    (area-averaged down to latent resolution) on its latent pixel plus a constant: the
    map predicts what the VAE itself would decode.
    """
    param = next(pipe.vae.parameters())
    generator = torch.Generator().manual_seed(seed)
    images = _smooth_fields(samples, size, generator).to(device=param.device, dtype=param.dtype)
    model_latents = family.encode_pixels(pipe, images).float()
    decoded = family.decode_pixels(pipe, model_latents).float().clamp(-1.0, 1.0)
    h, w = model_latents.shape[-2:]
    target = torch.nn.functional.adaptive_avg_pool2d(decoded, (h, w))  # (N, 3, h, w)
    channels = model_latents.shape[1]
    x = model_latents.permute(0, 2, 3, 1).reshape(-1, channels).cpu()
    y = target.permute(0, 2, 3, 1).reshape(-1, 3).cpu()
    x1 = torch.cat([x, torch.ones((x.shape[0], 1))], dim=1)
    solution = torch.linalg.lstsq(x1.double(), y.double()).solution.float()  # (C + 1, 3)
    weights = tuple(tuple(float(v) for v in row) for row in solution[:channels].tolist())
    bias = tuple(float(v) for v in solution[channels].tolist())
    return PreviewFactors(weights=weights, bias=(bias[0], bias[1], bias[2]))  # type: ignore[arg-type]

"""Previews: every step, of the predicted clean image (x0), through a linear map or TAESD."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sfumato.inference.engine as engine_module
import torch
from enginehelpers import Recorder, box_mask, noise_image, request
from sfumato.inference.devices import PreviewMode
from sfumato.inference.families.base import Family, PreviewFactors
from sfumato.inference.families.sd15 import SD15Family
from sfumato.inference.preview import LatentPreviewer, fit_latent_rgb_map
from sfumato.inference.request import InitImage, InpaintSpec, ModelRef, Sampler


def test_a_preview_after_every_step_over_the_area(shared_engine: Any, tiny_sd15: Path) -> None:
    rec = Recorder()
    shared_engine.run(request(tiny_sd15, width=104, height=64, steps=5), rec)
    previews = rec.previews
    assert [p.step for p in previews] == [1, 2, 3, 4, 5]
    # Each preview follows its Progress event.
    kinds = [type(e).__name__ for e in rec.events]
    assert kinds[:4] == ["Progress", "Preview", "Progress", "Preview"]
    meta = rec.finished.metadata
    for p in previews:
        assert p.rgb.dtype == np.uint8
        assert p.rgb.shape == (meta["gen_height"] // 8, meta["gen_width"] // 8, 3)


def test_inpaint_previews_cover_the_whole_request(shared_engine: Any, tiny_sd15: Path) -> None:
    """The engine denoises the request as planned (the area around the mask is the
    planner's choice), so every preview shows all of it, at latent resolution."""
    w, h = 400, 304
    mask = box_mask(w, h, 300, 200, 320, 220)
    req = request(tiny_sd15, width=w, height=h, init=InitImage(noise_image(w, h), 1.0), inpaint=InpaintSpec(mask))
    rec = Recorder()
    assert shared_engine.run(req, rec).ok
    assert len(rec.previews) == 3
    assert rec.previews[0].rgb.shape == (h // 8, w // 8, 3)


def test_previews_off(fresh_engine: Any, tiny_sd15: Path) -> None:
    rec = Recorder()
    fresh_engine(preview=PreviewMode.OFF).run(request(tiny_sd15), rec)
    assert rec.previews == [] and len(rec.progress) == 3


def test_preview_is_x0_not_the_noisy_latent(
    fresh_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The latents previewed are the scheduler's own predicted original sample; the last
    one is exactly what gets decoded."""
    engine = fresh_engine()
    previewed: list[torch.Tensor] = []
    scheduler_x0: list[torch.Tensor] = []
    samples: list[torch.Tensor] = []
    decoded: list[torch.Tensor] = []

    original_call = LatentPreviewer.__call__

    def record_preview(self: LatentPreviewer, latents: torch.Tensor) -> np.ndarray:
        previewed.append(latents.clone())
        return original_call(self, latents)

    original_make = engine_module.make_scheduler

    def make_recording(sampler: Any, config: Any, tweaks: Any = None, family: Any = None) -> Any:
        scheduler = original_make(sampler, config, tweaks, family)
        step = scheduler.step

        def recording_step(model_output: Any, t: Any, sample: Any, **kwargs: Any) -> Any:
            samples.append(sample[0].clone())
            out = step(model_output, t, sample, **{**kwargs, "return_dict": True})
            scheduler_x0.append(out.pred_original_sample[0].clone())
            return (out.prev_sample,)

        scheduler.step = recording_step
        return scheduler

    original_decode = Family.decode_latents

    def record_decode(family: Any, pipe: Any, latents: torch.Tensor) -> Any:
        decoded.append(latents.clone())
        return original_decode(family, pipe, latents)

    monkeypatch.setattr(LatentPreviewer, "__call__", record_preview)
    monkeypatch.setattr(engine_module, "make_scheduler", make_recording)
    monkeypatch.setattr(Family, "decode_latents", record_decode)
    rec = Recorder()
    engine.run(request(tiny_sd15, steps=4, sampler=Sampler.EULER), rec)
    assert len(previewed) == len(scheduler_x0) == 4
    for ours, theirs, noisy in zip(previewed, scheduler_x0, samples):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(ours, noisy, atol=1e-2)
    torch.testing.assert_close(previewed[-1], decoded[0][0], rtol=1e-4, atol=1e-4)
    model = engine.cache.get(ModelRef(str(tiny_sd15)))
    final_map = LatentPreviewer(model.preview, torch.device("cpu"), torch.float32)(decoded[0][0])
    assert np.array_equal(rec.previews[-1].rgb, final_map)


class _LinearVae(torch.nn.Module):
    """A VAE whose decoder is an exact linear map per 8×8 block: fitting must recover it."""

    def __init__(self, weights: torch.Tensor, bias: torch.Tensor, scaling_factor: float) -> None:
        super().__init__()
        self.weights = torch.nn.Parameter(weights)  # (4, 3) model-space latent → rgb
        self.bias_rgb = torch.nn.Parameter(bias)
        self.config = type("Cfg", (), {"scaling_factor": scaling_factor})()
        gen = torch.Generator().manual_seed(3)
        self.encoder = torch.randn((3, 3), generator=gen)

    def encode(self, images: torch.Tensor) -> Any:
        pooled = torch.nn.functional.avg_pool2d(images, 8)  # (N, 3, h, w)
        # Three linear channels and one nonlinear one, so the four latents are independent.
        linear = torch.einsum("nchw,cd->ndhw", pooled, self.encoder)
        latents = torch.cat([linear, pooled[:, :1] * pooled[:, 1:2]], dim=1)
        dist = type("Dist", (), {"mode": lambda self_: latents})()
        return type("Enc", (), {"latent_dist": dist})()

    def decode(self, latents: torch.Tensor) -> Any:
        model = latents * self.config.scaling_factor
        rgb = torch.einsum("ndhw,dc->nchw", model, self.weights) + self.bias_rgb[None, :, None, None]
        up = torch.nn.functional.interpolate(rgb, scale_factor=8, mode="nearest")
        return type("Dec", (), {"sample": up})()


def test_fit_recovers_a_linear_decoder() -> None:
    gen = torch.Generator().manual_seed(0)
    weights = torch.randn((4, 3), generator=gen) * 0.05
    bias = torch.tensor([0.1, -0.05, 0.02])
    vae = _LinearVae(weights, bias, scaling_factor=0.5)
    fitted = fit_latent_rgb_map(SimpleNamespace(vae=vae), SD15Family(), samples=6, size=64)
    assert np.allclose(np.array(fitted.weights), weights.numpy(), atol=1e-3)
    assert np.allclose(np.array(fitted.bias), bias.numpy(), atol=1e-3)


def test_fit_on_a_real_tiny_vae_is_finite(shared_engine: Any, tiny_sd15: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(tiny_sd15)))
    factors = fit_latent_rgb_map(model.pipe, model.family)
    assert len(factors.weights) == 4 and all(len(row) == 3 for row in factors.weights)
    assert np.isfinite(np.array(factors.weights)).all() and np.isfinite(factors.bias).all()
    # The tiny VAE is not the SD VAE: the engine fitted its own map rather than the stock one.
    assert model.preview != model.family.preview_factors


def test_latent_previewer_maps_and_clamps() -> None:
    factors = PreviewFactors(weights=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)))
    previewer = LatentPreviewer(factors, torch.device("cpu"), torch.float32)
    latents = torch.zeros((4, 2, 2))
    latents[0] = 1.0  # red at full
    latents[1, 0, 0] = -5.0  # clamped to 0
    rgb = previewer(latents)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[1, 1, 0] == 255 and rgb[1, 1, 2] == 127 and rgb[0, 0, 1] == 0


def test_taesd_previews_when_weights_are_local(fresh_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    from diffusers import AutoencoderTiny

    root = tmp_path / "models"
    taesd = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4,
    )  # fmt: skip
    taesd.save_pretrained(str(root / "taesd"))
    engine = fresh_engine(models_root=root, preview=PreviewMode.TAESD)
    rec = Recorder()
    engine.run(request(tiny_sd15, width=64, height=64), rec)
    meta = rec.finished.metadata
    # TAESD decodes to full generation resolution (the linear map gives 1/8 of it).
    assert rec.previews[0].rgb.shape == (meta["gen_height"], meta["gen_width"], 3)

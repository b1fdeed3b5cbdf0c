"""Inpainting uses the picture around the mask, and a soft mask sets how much may change.

These tests look at what the engine makes *before* paste-back: paste-back alone keeps
every unmasked pixel and blends a soft mask's share in, so the final image cannot show
whether the denoise loop itself used the surroundings or honoured the mask values.

The tiny models have random weights, so the figures are about the loop, not about
meaning (the built-in model's semantic test, ``tests/semantic/test_semantic_inpaint.py``,
checks that the new pixels continue the surroundings):

- *context*: during the loop the latents outside the mask are the source's, noised to
  each step's level, so the model's estimate of the clean picture (the previews) shows
  the source there by the last step, whatever the seed;
- *soft mask* (differential diffusion): a latent pixel of mask value ``m`` is denoised
  only for the last ``m`` fraction of the steps, so the raw result moves away from the
  source less where ``m`` is low.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, request, smooth_image
from sfumato.inference.families.base import Family
from sfumato.inference.latents import encode_images
from sfumato.inference.preview import LatentPreviewer
from sfumato.inference.request import InitImage, InpaintSpec, ModelRef

SEEDS = (0, 1, 2)


def _preview_map(engine: Any, model: Path) -> LatentPreviewer:
    loaded = engine.cache.get(ModelRef(str(model)))
    return LatentPreviewer(loaded.preview, torch.device("cpu"), torch.float32)


def _source_latents(engine: Any, model: Path, image: np.ndarray) -> torch.Tensor:
    loaded = engine.cache.get(ModelRef(str(model)))
    return encode_images(loaded.vae, [image], torch.device("cpu"))[0].float()


def test_previews_show_the_source_outside_the_mask_by_the_last_step(
    shared_engine: Any, tiny_sd15: Path
) -> None:
    """A 64² area (the tiny model's native size, so the crop is the area and one latent
    pixel is 8×8 pixels) with a 32² hole in the middle: latents 2..5 are the hole,
    the two-latent ring around it is outside.

    Measured (3 seeds, 8 steps, mean |preview − source's preview| on the 0..255 scale):
    outside the hole 5.5–7.3 with the loop's re-injection of the known latents, 119–124
    without it (inpaint becomes txt2img of the area); inside the hole 112–118 either way.
    The bound, a quarter of the inside figure (~29), sits far from both."""
    init = smooth_image(64, 64)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    hole = np.zeros((8, 8), bool)
    hole[2:6, 2:6] = True
    outside = np.ones((8, 8), bool)
    outside[1:7, 1:7] = False  # cells that share no pixel with the mask, nor touch it
    source = _preview_map(shared_engine, tiny_sd15)(
        _source_latents(shared_engine, tiny_sd15, init)
    ).astype(int)
    figures = []
    for seed in SEEDS:
        rec = Recorder()
        req = request(tiny_sd15, width=64, height=64, steps=8, seed=seed,
                      init=InitImage(init, 1.0), inpaint=InpaintSpec(mask))  # fmt: skip
        result = shared_engine.run(req, rec)
        assert result.ok, result.error
        last = rec.previews[-1].rgb.astype(int)
        assert last.shape[:2] == (8, 8)
        d_out = float(np.abs(last[outside] - source[outside]).mean())
        d_in = float(np.abs(last[hole] - source[hole]).mean())
        figures.append((seed, round(d_out, 1), round(d_in, 1)))
    print("seed, |preview - source| outside, inside:", figures)
    for seed, d_out, d_in in figures:
        assert d_in > 40, f"seed {seed}: the hole was not regenerated ({figures})"
        assert d_out < 0.25 * d_in, (
            f"seed {seed}: the loop did not keep the source outside the mask ({figures})"
        )


def test_soft_mask_value_sets_how_far_the_raw_result_moves(
    shared_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three bands of mask value 1, 0.5 and 0.25 in a 96×64 area (generated at that size,
    one latent pixel per 8×8); the latents the engine decodes — before any paste-back —
    are compared with the source's latents, band by band.

    Measured (3 seeds, 8 steps, mean |latent − source latent|): 6.1–7.3 at 1.0, 1.1–1.4
    at 0.5, 0.50–0.71 at 0.25 (0.25/1.0 = 0.08–0.10) with differential diffusion;
    with every masked pixel free from the first step instead, 6.9–7.0 at 1.0, 4.9–5.1 at
    0.5 and 7.8–7.9 at 0.25 (ratio 1.13). Bounds: 0.25 moves less than a third of 1.0,
    and 0.5 sits in between."""
    w, h = 96, 64
    init = smooth_image(w, h)
    mask = np.zeros((h, w), np.float32)
    mask[8:56, 8:24] = 1.0
    mask[8:56, 40:56] = 0.5
    mask[8:56, 72:88] = 0.25
    bands = {1.0: np.s_[2:6, 1:3], 0.5: np.s_[2:6, 5:7], 0.25: np.s_[2:6, 9:11]}
    source = _source_latents(shared_engine, tiny_sd15, init)
    decoded: list[torch.Tensor] = []
    original_decode = Family.decode_latents

    def record_decode(family: Any, pipe: Any, latents: torch.Tensor) -> Any:
        decoded.append(latents[0].float().clone())
        return original_decode(family, pipe, latents)

    monkeypatch.setattr(Family, "decode_latents", record_decode)
    figures = []
    for seed in SEEDS:
        decoded.clear()
        rec = Recorder()
        req = request(tiny_sd15, width=w, height=h, steps=8, seed=seed,
                      init=InitImage(init, 1.0), inpaint=InpaintSpec(mask))  # fmt: skip
        result = shared_engine.run(req, rec)
        assert result.ok, result.error
        meta = rec.finished.metadata
        assert (meta["gen_width"], meta["gen_height"]) == (w, h)
        moved = (decoded[0] - source).abs().mean(0)
        change = {m: float(moved[band].mean()) for m, band in bands.items()}
        figures.append((seed, {m: round(v, 3) for m, v in change.items()}))
        assert change[0.25] < change[1.0] / 3, figures
        assert change[0.25] < change[0.5] < change[1.0], figures
    print("seed, mean |latent - source| per mask value:", figures)

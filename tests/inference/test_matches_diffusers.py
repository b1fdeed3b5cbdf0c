"""The engine's own denoise loop gives the same picture as diffusers' pipeline.

Same model, prompt, negative, seed, steps, CFG and scheduler, at the model's native size
(so no rescaling): txt2img through the engine must equal ``StableDiffusionPipeline`` /
``StableDiffusionXLPipeline`` to within rounding. This checks the whole loop: noise,
prompt encoding (incl. SDXL's two encoders, pooled embedding, time ids and zeroed empty
negative), classifier-free guidance, scheduler stepping and decoding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, request
from sfumato.inference.request import ModelRef


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@pytest.mark.parametrize("negative", ["", "blurry, low quality"])
def test_txt2img_equals_the_diffusers_pipeline(
    shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str, negative: str
) -> None:
    model_path = tiny_sd15 if family == "sd15" else tiny_sdxl
    model = shared_engine.cache.get(ModelRef(str(model_path)))
    side = model.native_side
    req = request(model_path, width=side, height=side, steps=4, cfg=5.0, seed=42, prompt="a red cat on a mat",
                  negative=negative)  # fmt: skip
    result = shared_engine.run(req, Recorder())
    assert result.ok, result.error
    pipe = model.pipe
    expected = pipe(
        prompt=req.prompt,
        negative_prompt=negative or None,
        num_inference_steps=4,
        guidance_scale=5.0,
        height=side,
        width=side,
        generator=torch.Generator("cpu").manual_seed(42),
        output_type="np",
    ).images[0]
    expected_u8 = np.round(expected * 255.0).astype(np.int16)
    diff = np.abs(result.images[0].astype(np.int16) - expected_u8)
    assert diff.max() <= 1, f"max difference {diff.max()}"

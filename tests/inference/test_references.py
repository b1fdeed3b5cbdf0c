"""Reference pictures beside the prompt (FLUX.2 Klein): the engine equals
``Flux2KleinPipeline(image=[...])`` for the same seed; other families refuse them by name;
the request validates and records them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, request, smooth_image
from PIL import Image
from sfumato.inference.request import ModelRef, ReferenceImage, RequestError
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def klein() -> Path:
    return tiny_flow_model("flux2-klein")


def _reference(width: int, height: int) -> np.ndarray:
    picture = smooth_image(width, height)
    picture[height // 4 : height // 2, width // 4 : width // 2] = (250, 220, 30)
    return picture


@pytest.mark.parametrize("count", [1, 2])
def test_klein_with_references_equals_the_pipeline(shared_engine: Any, klein: Path, count: int) -> None:
    """One or two references (the second of another size) reach the model as the
    pipeline gives them; and they change the picture."""
    model = shared_engine.cache.get(ModelRef(str(klein)))
    pictures = [_reference(SIDE, SIDE), _reference(96, 64)][:count]
    req = request(klein, width=SIDE, height=SIDE, steps=3, cfg=1.0, seed=5, prompt="a red cat",
                  references=tuple(ReferenceImage(p) for p in pictures))  # fmt: skip
    result = shared_engine.run(req, Recorder())
    assert result.ok, result.error
    theirs = model.pipe(prompt=req.prompt, image=[Image.fromarray(p) for p in pictures], num_inference_steps=3,
                        guidance_scale=1.0, height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(5),
                        output_type="np").images[0]  # fmt: skip
    diff = np.abs(result.images[0].astype(np.int16) - np.round(theirs * 255).astype(np.int16))
    assert diff.max() <= 1, diff.max()
    plain = shared_engine.run(req.replace(references=()), Recorder())
    # The tiny model reads its references weakly (measured: 0.07 levels on average).
    assert not np.array_equal(plain.images[0], result.images[0])
    assert [(r["width"], r["height"], r["kind"], r["regional"]) for r in result.metadata["references"]] == [
        (p.shape[1], p.shape[0], "content", False) for p in pictures
    ]


def test_a_reference_off_the_grid_is_refused_by_name(shared_engine: Any, klein: Path) -> None:
    req = request(klein, width=SIDE, height=SIDE, steps=2, references=(ReferenceImage(_reference(72, 64)),))
    result = shared_engine.run(req, Recorder())
    assert result.error is not None and "reference 1 is 72x64" in str(result.error)


def test_families_without_references_refuse_them(shared_engine: Any) -> None:
    # (FLUX.1 takes references through Redux since issue 14: tests/inference/test_redux.py)
    chroma = tiny_flow_model("chroma")
    req = request(chroma, width=SIDE, height=SIDE, steps=2, references=(ReferenceImage(_reference(SIDE, SIDE)),))
    result = shared_engine.run(req, Recorder())
    assert result.error is not None and "Chroma models take no reference pictures" in str(result.error)


def test_a_reference_must_be_an_rgb_picture() -> None:
    with pytest.raises(RequestError, match="reference image must be uint8"):
        ReferenceImage(np.zeros((8, 8, 3), np.float32))
    req = request("m", width=SIDE, height=SIDE, references=(ReferenceImage(np.zeros((8, 8), np.uint8)),))
    with pytest.raises(RequestError, match="reference 1 must be RGB"):
        req.validate()

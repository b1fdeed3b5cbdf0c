"""FLUX.1 Kontext through the engine's own loop equals diffusers' Kontext pipelines.

A tiny Kontext folder (``tinyedit``: tinyflow's dev-like FLUX declaring
``FluxKontextPipeline``). An edit request (``GenerationRequest.edit``) shows the model the
picture to edit as context tokens; the engine equals ``FluxKontextPipeline(image=...)``
and, with a selection, ``FluxKontextInpaintPipeline`` for the same seed. The pipelines
resize the picture (``_auto_resize``: BFL's preferred resolutions) and the generation
(``max_area``) themselves; the engine takes both at the request's size, the planner's
choice, so the reference runs turn those off (``_auto_resize=False``,
``max_area = width × height``): the only intended difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flowtests as flow
import numpy as np
import pytest
import torch
from enginehelpers import Recorder, request, run_keeping_latents, smooth_image
from PIL import Image
from sfumato.inference.errors import UnsupportedModeError
from sfumato.inference.families.flow import pack_latents
from sfumato.inference.request import InitImage, InpaintSpec, ModelRef, RequestError
from tinyedit import tiny_edit_model
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def kontext() -> Path:
    return tiny_edit_model("kontext")


def _picture(width: int, height: int) -> np.ndarray:
    picture = smooth_image(width, height)
    picture[height // 4 : height // 2, width // 4 : width // 2] = (250, 220, 30)
    return picture


def _edit(model: Path, width: int, height: int, **kw: Any) -> Any:
    picture = _picture(width, height)
    return request(model, width=width, height=height, steps=3, cfg=2.5, seed=7, prompt="make it red",
                   init=InitImage(picture, 1.0), edit=True, **kw)  # fmt: skip


def test_a_kontext_folder_is_its_own_edit_family(shared_engine: Any, kontext: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(kontext)))
    assert model.family.name == "flux-kontext" and model.family.edits
    assert type(model.pipe).__name__ == "FluxKontextPipeline"
    flux = shared_engine.cache.get(ModelRef(str(tiny_flow_model("flux"))))
    assert flux.family.name == "flux" and not flux.family.edits


@pytest.mark.parametrize("width", [SIDE, 96])
def test_edit_equals_kontext_pipeline(
    shared_engine: Any, kontext: Path, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The picture reaches the model as the pipeline gives it (ids ``(1, row, col)``); a
    wide picture keeps rows and columns apart. The tiny model reads its context weakly
    (without it the picture moves by 1 level at most, the final latents by 1e-2; with the
    context's ids at 0 instead of 1, by 2e-3), so the final latents are compared too."""
    model = shared_engine.cache.get(ModelRef(str(kontext)))
    req = _edit(kontext, width, SIDE)
    images, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    assert req.init is not None
    call = dict(prompt=req.prompt, image=Image.fromarray(req.init.image), num_inference_steps=3, guidance_scale=2.5,
                height=SIDE, width=width, max_area=SIDE * width, _auto_resize=False)  # fmt: skip
    theirs = model.pipe(**call, generator=torch.Generator("cpu").manual_seed(7), output_type="np").images[0]
    flow.assert_close_u8(images[0], theirs)
    packed = model.pipe(**call, generator=torch.Generator("cpu").manual_seed(7), output_type="latent").images
    torch.testing.assert_close(pack_latents(latents), packed, rtol=0, atol=1e-4)
    _, plain, _ = run_keeping_latents(shared_engine, req.replace(edit=False, init=None), monkeypatch)
    assert float((plain - latents).abs().max()) > 1e-3  # the context counts


def test_without_a_picture_kontext_generates_as_its_pipeline(shared_engine: Any, kontext: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(kontext)))
    req = request(kontext, width=SIDE, height=SIDE, steps=3, cfg=2.5, seed=3, prompt="a red cat")
    ours = flow.run_ok(shared_engine, req)
    theirs = model.pipe(prompt=req.prompt, num_inference_steps=3, guidance_scale=2.5, height=SIDE, width=SIDE,
                        max_area=SIDE * SIDE, generator=torch.Generator("cpu").manual_seed(3),
                        output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(ours, theirs)


def test_edit_in_a_selection_equals_kontext_inpaint_pipeline(shared_engine: Any, kontext: Path) -> None:
    """With a selection (the inpaint mask, on whole tokens) the outside keeps the picture's
    latents at every step, as ``FluxKontextInpaintPipeline`` keeps them."""
    from diffusers import FluxKontextInpaintPipeline

    model = shared_engine.cache.get(ModelRef(str(kontext)))
    mask = np.zeros((SIDE, SIDE), np.float32)
    mask[16:48, 16:48] = 1.0
    req = _edit(kontext, SIDE, SIDE, inpaint=InpaintSpec(mask))
    result = shared_engine.run(req, Recorder())
    assert result.ok, result.error
    assert result.metadata["mode"] == "edit" and result.metadata["inpaint"] == {"fill": "keep"}
    assert req.init is not None
    pipe = FluxKontextInpaintPipeline(**model.pipe.components)
    theirs = pipe(prompt=req.prompt, **flow.pipeline_images(req.init.image, mask), strength=1.0,
                  num_inference_steps=3, guidance_scale=2.5, height=SIDE, width=SIDE, max_area=SIDE * SIDE,
                  _auto_resize=False, generator=torch.Generator("cpu").manual_seed(7),
                  output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(result.images[0], theirs)


def test_an_edit_to_a_model_that_does_not_edit_is_refused_by_name(shared_engine: Any) -> None:
    flux = tiny_flow_model("flux")
    result = shared_engine.run(_edit(flux, SIDE, SIDE), Recorder())
    assert isinstance(result.error, UnsupportedModeError)
    assert "FLUX.1 models do not edit by instruction" in str(result.error)


def test_a_size_off_the_token_grid_is_refused_by_name(shared_engine: Any, kontext: Path) -> None:
    result = shared_engine.run(_edit(kontext, 72, SIDE), Recorder())
    assert result.error is not None and "72x64" in str(result.error) and "multiples of 16" in str(result.error)


def test_an_edit_needs_its_picture() -> None:
    req = request("m", width=SIDE, height=SIDE, edit=True)
    with pytest.raises(RequestError, match="an edit needs the picture to edit"):
        req.validate()
    assert _edit(Path("m"), SIDE, SIDE).summary()["mode"] == "edit"
    assert _edit(Path("m"), SIDE, SIDE).replace(edit=False).summary()["mode"] == "img2img"


def test_klein_edits_with_the_picture_as_its_first_reference(shared_engine: Any) -> None:
    """FLUX.2 Klein takes reference pictures, so it takes edits: the picture to edit is its
    first reference, as ``Flux2KleinPipeline(image=[picture, ...])`` gives it."""
    klein = tiny_flow_model("flux2-klein")
    model = shared_engine.cache.get(ModelRef(str(klein)))
    assert not model.family.edits and model.family.takes_references
    req = _edit(klein, SIDE, SIDE).replace(cfg=1.0)
    result = shared_engine.run(req, Recorder())
    assert result.ok, result.error
    assert req.init is not None
    theirs = model.pipe(prompt=req.prompt, image=[Image.fromarray(req.init.image)], num_inference_steps=3,
                        guidance_scale=1.0, height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(7),
                        output_type="np").images[0]  # fmt: skip
    flow.assert_close_u8(result.images[0], theirs)
    plain = shared_engine.run(req.replace(edit=False, init=None), Recorder())
    assert not np.array_equal(plain.images[0], result.images[0])  # the picture counts

"""Qwen-Image-Edit and Qwen-Image-Edit-Plus through the engine's own loop equal diffusers'
``QwenImageEditPipeline`` and ``QwenImageEditPlusPipeline`` for the same seed.

Tiny folders (``tinyedit``: tinyflow's Qwen-Image, whose Qwen2.5-VL has a one-block vision
tower, with a ``Qwen2VLProcessor`` and the Edit pipeline declared). The pipelines resize
the picture for the VAE (and the generation) to about a megapixel; the engine takes it at
the request's size, the planner's choice, so the reference runs patch the pipeline
module's ``calculate_dimensions`` to give the picture's own size back for that (Edit-Plus
keeps its 384×384 resize for the vision tower, which the engine does too): the only
intended difference. The tiny model reads its pictures weakly, so the final latents are
compared as well as the pixels.
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
from sfumato.inference.request import InitImage, InpaintSpec, ModelRef, ReferenceImage
from tinyedit import tiny_edit_model
from tinyflow import tiny_flow_model

SIDE = 64


@pytest.fixture(scope="module")
def edit() -> Path:
    return tiny_edit_model("qwenimage-edit")


@pytest.fixture(scope="module")
def edit_plus() -> Path:
    return tiny_edit_model("qwenimage-edit-plus")


def _picture(width: int, height: int) -> np.ndarray:
    picture = smooth_image(width, height)
    picture[height // 4 : height // 2, width // 4 : width // 2] = (250, 220, 30)
    return picture


def _edit(model: Path, width: int, height: int, *, cfg: float = 1.0, **kw: Any) -> Any:
    return request(model, width=width, height=height, steps=3, cfg=cfg, seed=11, prompt="make it red",
                   negative="blurry", init=InitImage(_picture(width, height), 1.0), edit=True, **kw)  # fmt: skip


def _own_sizes(monkeypatch: pytest.MonkeyPatch, module: Any, pictures: list[np.ndarray], *, plus: bool) -> None:
    """``module.calculate_dimensions`` gives each picture's own size for the megapixel area."""
    real = module.calculate_dimensions
    sizes = {p.shape[1] / p.shape[0]: (p.shape[1], p.shape[0]) for p in pictures}

    def own(area: int, ratio: float) -> Any:
        if plus and area == module.CONDITION_IMAGE_SIZE:
            return real(area, ratio)
        w, h = sizes[ratio]
        return (w, h) if plus else (w, h, None)

    monkeypatch.setattr(module, "calculate_dimensions", own)


def _guidance(req: Any) -> dict[str, Any]:
    return {"true_cfg_scale": req.cfg, "negative_prompt": req.negative} if req.cfg > 1 else {}


def test_edit_folders_are_their_own_edit_families(shared_engine: Any, edit: Path, edit_plus: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(edit)))
    assert (model.family.name, model.family.edits, type(model.pipe).__name__) == (
        "qwenimage-edit", True, "QwenImageEditPipeline")  # fmt: skip
    plus = shared_engine.cache.get(ModelRef(str(edit_plus)))
    assert (plus.family.name, plus.family.takes_references) == ("qwenimage-edit-plus", True)
    base = shared_engine.cache.get(ModelRef(str(tiny_flow_model("qwenimage"))))
    assert base.family.name == "qwenimage" and not base.family.edits


@pytest.mark.parametrize(("cfg", "width"), [(1.0, SIDE), (4.0, 96)])
def test_edit_equals_qwen_image_edit_pipeline(
    shared_engine: Any, edit: Path, cfg: float, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The picture is read by the vision tower with the instruction (and the negative) and
    given as context latents; true CFG with the norm rescale above 1."""
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit

    model = shared_engine.cache.get(ModelRef(str(edit)))
    req = _edit(edit, width, SIDE, cfg=cfg)
    images, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    assert req.init is not None
    _own_sizes(monkeypatch, pipeline_qwenimage_edit, [req.init.image], plus=False)
    call = dict(image=Image.fromarray(req.init.image), prompt=req.prompt, num_inference_steps=3, height=SIDE,
                width=width, **_guidance(req))  # fmt: skip
    theirs = model.pipe(**call, generator=torch.Generator("cpu").manual_seed(11), output_type="np").images[0]
    flow.assert_close_u8(images[0], theirs)
    packed = model.pipe(**call, generator=torch.Generator("cpu").manual_seed(11), output_type="latent").images
    torch.testing.assert_close(pack_latents(latents), packed, rtol=0, atol=1e-4)


def test_the_text_encoder_reads_the_picture(shared_engine: Any, edit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the picture in the text encoder (or without it as context latents) the
    result moves by more than the comparison's tolerance."""
    model = shared_engine.cache.get(ModelRef(str(edit)))
    req = _edit(edit, SIDE, SIDE)
    _, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    monkeypatch.setattr(type(model.family), "prompt_reads_pictures", False)
    model.prompt_cache.clear()
    _, blind, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    monkeypatch.undo()
    model.prompt_cache.clear()
    assert float((blind - latents).abs().max()) > 1e-3


def test_edit_plus_with_a_reference_equals_its_pipeline(
    shared_engine: Any, edit_plus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edit-Plus: the picture to edit then a reference of another size, each named
    ("Picture 1: …") and read at about 384×384 by the vision tower, each its own frame."""
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus

    model = shared_engine.cache.get(ModelRef(str(edit_plus)))
    reference = _picture(96, SIDE)
    req = _edit(edit_plus, SIDE, SIDE, references=(ReferenceImage(reference),))
    images, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    assert req.init is not None
    _own_sizes(monkeypatch, pipeline_qwenimage_edit_plus, [req.init.image, reference], plus=True)
    call = dict(image=[Image.fromarray(req.init.image), Image.fromarray(reference)], prompt=req.prompt,
                num_inference_steps=3, height=SIDE, width=SIDE)  # fmt: skip
    theirs = model.pipe(**call, generator=torch.Generator("cpu").manual_seed(11), output_type="np").images[0]
    flow.assert_close_u8(images[0], theirs)
    packed = model.pipe(**call, generator=torch.Generator("cpu").manual_seed(11), output_type="latent").images
    torch.testing.assert_close(pack_latents(latents), packed, rtol=0, atol=1e-4)


def test_edit_in_a_selection_keeps_the_outside_latents(shared_engine: Any, edit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a selection the latents outside it end as the picture's, exactly (the planner's
    paste mask then keeps those pixels' bytes: ``tests/planner/test_edit_plan.py``)."""
    mask = np.zeros((SIDE, SIDE), np.float32)
    mask[16:48, 16:48] = 1.0
    req = _edit(edit, SIDE, SIDE, inpaint=InpaintSpec(mask))
    _, latents, rec = run_keeping_latents(shared_engine, req, monkeypatch)
    model = shared_engine.cache.get(ModelRef(str(edit)))
    assert req.init is not None
    original = model.family.encode_images(model.pipe, [np.array(req.init.image)], torch.device("cpu"))
    outside = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(mask)[None, None], latents.shape[-2:]) <= 0
    assert torch.equal(torch.where(outside, latents, 0), torch.where(outside, original.to(latents.dtype), 0))
    inside = ~outside
    assert not torch.equal(torch.where(inside, latents, 0), torch.where(inside, original.to(latents.dtype), 0))


def test_edits_are_refused_by_models_that_do_not_edit(shared_engine: Any, edit: Path) -> None:
    base = tiny_flow_model("qwenimage")
    result = shared_engine.run(_edit(base, SIDE, SIDE), Recorder())
    assert isinstance(result.error, UnsupportedModeError)
    assert "Qwen-Image models do not edit by instruction" in str(result.error)
    plain = shared_engine.run(request(edit, width=SIDE, height=SIDE, steps=2), Recorder())
    assert isinstance(plain.error, UnsupportedModeError) and "Qwen-Image-Edit models cannot do txt2img" in str(plain.error)
    refs = shared_engine.run(_edit(edit, SIDE, SIDE, references=(ReferenceImage(_picture(SIDE, SIDE)),)), Recorder())
    assert isinstance(refs.error, UnsupportedModeError) and "take no reference pictures" in str(refs.error)


def test_the_picture_processor_equals_transformers_qwen2vl_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    """:class:`PictureProcessor` gives what ``Qwen2VLProcessor`` gives for text with
    pictures, of what the Edit pipelines read (built here past its class check: without torchvision transformers 5 will not
    build its video processor, which pictures never use)."""
    from sfumato.inference.families.qwenimage_edit import PictureProcessor
    from tinyedit import tiny_image_processor
    from tinyflow import qwen_tokenizer
    from transformers import Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    monkeypatch.setattr(ProcessorMixin, "check_argument_for_proper_class", lambda self, name, arg: None)
    tokenizer, image_processor = qwen_tokenizer(), tiny_image_processor()
    real = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=None)
    ours = PictureProcessor(tokenizer, image_processor)
    pictures = [Image.fromarray(_picture(SIDE, SIDE)), Image.fromarray(_picture(96, 160))]
    text = ["Picture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: <|vision_start|><|image_pad|>"
            "<|vision_end|>make it red"]  # fmt: skip
    for images, prompt in ((pictures[0], [text[0].split("Picture 2")[0]]), (pictures, text)):
        want = real(text=prompt, images=images, padding=True, return_tensors="pt")
        got = ours(text=prompt, images=images, padding=True, return_tensors="pt")
        for key in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw"):  # what the pipelines read
            assert torch.equal(got[key], want[key]), key

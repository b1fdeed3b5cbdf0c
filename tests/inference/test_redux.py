"""Reference pictures on FLUX.1 through Redux (:mod:`sfumato.inference.redux`).

The engine's loop with a Redux reference equals diffusers' ``FluxPriorReduxPipeline`` →
``FluxPipeline(prompt_embeds=..., pooled_prompt_embeds=...)`` for the same seed (dev's
embedded guidance, and schnell's true CFG where the negative reads no picture); the
reference changes the picture; strength 0 is the plain run byte for byte; the step range
reads the tokens only there; ComfyUI's two files give the diffusers folder's picture; a
missing SigLIP encoder is a typed error naming the file; a reference inside a region acts
there (its tokens a regional prompt of their own); the planner stops a FLUX plan with a
reference when no Redux is installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import flowtests as flow
import numpy as np
import pytest
import torch
from enginehelpers import request, smooth_image
from PIL import Image
from sfumato.inference.detect import WeightsKind, detect_weights_kind, read_safetensors_header
from sfumato.inference.errors import (
    MissingImageEncoderError,
    MissingReduxEncoderError,
    UnsupportedModeError,
)
from sfumato.inference.request import ModelRef, ReferenceImage
from tinyflow import tiny_flow_model
from tinyredux import ReduxFiles, build_tiny_redux

SIDE = 64


@pytest.fixture(scope="module")
def flux() -> Path:
    return tiny_flow_model("flux")


@pytest.fixture(scope="module")
def redux(tmp_path_factory: pytest.TempPathFactory) -> ReduxFiles:
    return build_tiny_redux(tmp_path_factory.mktemp("redux"))


def _picture(seed: int = 0) -> np.ndarray:
    picture = smooth_image(48, 40)
    rng = np.random.default_rng(seed)
    picture[8:24, 10:30] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return picture


def _ref(source: Path, **kw: Any) -> ReferenceImage:
    return ReferenceImage(_picture(), model=ModelRef(str(source)), **kw)


def _diffusers(model: Any, files: ReduxFiles, prompt: str, seed: int, steps: int, **kw: Any) -> np.ndarray:
    from diffusers import FluxPriorReduxPipeline

    pipe = model.pipe
    prior = FluxPriorReduxPipeline.from_pretrained(str(files.folder), text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                                   text_encoder_2=pipe.text_encoder_2, tokenizer_2=pipe.tokenizer_2)  # fmt: skip
    prior.set_progress_bar_config(disable=True)
    out = prior(image=Image.fromarray(_picture()), prompt=prompt)
    return pipe(prompt_embeds=out.prompt_embeds, pooled_prompt_embeds=out.pooled_prompt_embeds, num_inference_steps=steps,
                height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                **kw).images[0]  # fmt: skip


def test_redux_equals_flux_prior_redux_pipeline(shared_engine: Any, flux: Path, redux: ReduxFiles) -> None:
    """(a) dev with embedded guidance: equal to diffusers within one level; (b) the
    reference changes the picture; the metadata names the Redux."""
    model = shared_engine.cache.get(ModelRef(str(flux)))
    req = request(flux, width=SIDE, height=SIDE, steps=4, cfg=3.5, seed=42, prompt="a red cat on a mat",
                  references=(_ref(redux.folder),))  # fmt: skip
    result = shared_engine.run(req)
    assert result.ok, result.error
    ours = result.images[0]
    assert result.metadata["reference_adapters"] == ["FLUX.1-Redux-dev"]
    theirs = _diffusers(model, redux, req.prompt, 42, 4, guidance_scale=3.5)
    flow.assert_close_u8(ours, theirs)
    plain = flow.run_ok(shared_engine, req.replace(references=()))
    assert flow.mean_change(ours, plain) > 0.2


def test_schnell_true_cfg_negative_reads_no_picture(shared_engine: Any, redux: ReduxFiles) -> None:
    """True CFG: diffusers encodes ``negative_prompt`` as text alone; the engine's negative
    rows get hidden zero tokens instead of the picture's — the same picture."""
    schnell = tiny_flow_model("flux-schnell")
    model = shared_engine.cache.get(ModelRef(str(schnell)))
    req = request(schnell, width=SIDE, height=SIDE, steps=3, cfg=2.5, seed=7, prompt="a blue dog", negative="green sky",
                  references=(_ref(redux.folder),))  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    theirs = _diffusers(model, redux, req.prompt, 7, 3, negative_prompt=req.negative, true_cfg_scale=2.5)
    flow.assert_close_u8(ours, theirs)


def test_strength_zero_is_the_plain_run_and_strength_scales(shared_engine: Any, flux: Path, redux: ReduxFiles) -> None:
    """(c) strength 0 equals no reference byte for byte; another strength changes the picture."""
    req = request(flux, width=SIDE, height=SIDE, steps=3, cfg=3.5, seed=5, references=(_ref(redux.folder, strength=0.0),))
    plain = flow.run_ok(shared_engine, req.replace(references=()))
    assert np.array_equal(flow.run_ok(shared_engine, req), plain)
    half = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder, strength=0.5),)))
    full = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder, strength=1.0),)))
    assert flow.mean_change(half, plain) > 0.1 and flow.mean_change(half, full) > 0.1


def test_step_range_reads_the_picture_only_there(shared_engine: Any, flux: Path, redux: ReduxFiles) -> None:
    """A reference whose range ends before the first step is the plain run; a late range
    differs from both the plain and the whole-range runs."""
    req = request(flux, width=SIDE, height=SIDE, steps=4, cfg=3.5, seed=9)
    plain = flow.run_ok(shared_engine, req)
    never = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder, start=0.0, end=0.1),)))
    assert np.array_equal(never, plain)
    late = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder, start=0.5),)))
    whole = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder),)))
    assert flow.mean_change(late, plain) > 0.1 and flow.mean_change(late, whole) > 0.1


def test_comfyui_files_give_the_folders_picture(shared_engine: Any, flux: Path, redux: ReduxFiles) -> None:
    """(d) ComfyUI's style_models file with its clip_vision SigLIP (no pooling head, no
    config: sized from the shapes) gives the diffusers folder's picture; both are
    recognised by their keys."""
    assert detect_weights_kind(read_safetensors_header(redux.redux).shapes) is WeightsKind.REDUX
    assert detect_weights_kind(read_safetensors_header(redux.encoder).shapes) is WeightsKind.CLIP_VISION
    req = request(flux, width=SIDE, height=SIDE, steps=3, cfg=3.5, seed=11)
    folder = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder),)))
    comfy = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.redux),)))
    assert np.abs(folder.astype(int) - comfy.astype(int)).max() <= 1


def test_missing_encoder_is_named(shared_engine: Any, flux: Path, redux: ReduxFiles, tmp_path: Path) -> None:
    """(e) a Redux without its SigLIP encoder anywhere: a typed error naming the file and folder."""
    alone = tmp_path / "style_models" / "flux1-redux-dev.safetensors"
    alone.parent.mkdir()
    shutil.copy(redux.redux, alone)
    req = request(flux, width=SIDE, height=SIDE, steps=2, cfg=3.5, references=(_ref(alone),))
    result = shared_engine.run(req)
    assert isinstance(result.error, MissingReduxEncoderError)
    assert isinstance(result.error, MissingImageEncoderError)
    assert result.error.expected == "sigclip_vision_patch14_384.safetensors"
    assert "sigclip_vision_patch14_384.safetensors" in result.error.user_message
    assert "clip_vision" in result.error.user_message


def test_no_redux_installed_is_refused_by_name(shared_engine: Any, flux: Path) -> None:
    """The engine refuses a FLUX reference with no Redux installed, saying what to put where."""
    req = request(flux, width=SIDE, height=SIDE, steps=2, cfg=3.5, references=(ReferenceImage(_picture()),))
    result = shared_engine.run(req)
    assert isinstance(result.error, UnsupportedModeError) and "style_models" in result.error.user_message


@pytest.mark.parametrize(("kind", "cfg"), [("flux", 3.5), ("flux-schnell", 2.5)])
def test_a_masked_reference_acts_inside_its_mask(shared_engine: Any, redux: ReduxFiles, kind: str, cfg: float) -> None:
    """A reference inside a region: its tokens are a regional prompt of their own in the
    joint-attention bias (dev; schnell under true CFG). An empty mask is the plain run; a
    left-half mask changes the left half more than the right."""
    req = request(tiny_flow_model(kind), width=SIDE, height=SIDE, steps=4, cfg=cfg, seed=21, negative="green sky")
    plain = flow.run_ok(shared_engine, req).astype(int)
    empty = np.zeros((SIDE, SIDE), np.float32)
    nowhere = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder, mask=empty, strength=2.0),)))
    assert np.abs(nowhere.astype(int) - plain).max() <= 1
    left = empty.copy()
    left[:, : SIDE // 2] = 1.0
    masked = flow.run_ok(shared_engine, req.replace(references=(_ref(redux.folder, mask=left, strength=2.0),)))
    change = np.abs(masked.astype(int) - plain).mean(axis=(0, 2))
    assert change[: SIDE // 2].mean() > 1.5 * change[SIDE // 2 :].mean() and change[: SIDE // 2].mean() > 0.2


def test_catalog_finds_redux_and_planner_stops_without_it(redux: ReduxFiles) -> None:
    """(f) the catalog recognises both layouts; the planner stops a FLUX plan with a
    reference when no Redux is installed, saying what to put where."""
    from sfumato.inference.catalog import Origin, _folder_entry, _scan, find_reference_adapter
    from sfumato.planner.errors import ModelCannotError
    from sfumato.planner.references import PlannedReference, _check_adapters

    entry = _folder_entry(redux.folder, Origin.CONFIGURED)
    assert entry is not None and entry.kind is WeightsKind.REDUX and entry.family == "flux"
    files = list(_scan(redux.redux.parent.parent, Origin.COMFYUI, None))
    kinds = {e.path.name: e.kind for e in files if e.path is not None}
    assert kinds["flux1-redux-dev.safetensors"] is WeightsKind.REDUX
    assert kinds["sigclip_vision_patch14_384.safetensors"] is WeightsKind.CLIP_VISION
    assert find_reference_adapter("flux", entries=files) is not None
    assert find_reference_adapter("flux", entries=[]) is None
    planned = [PlannedReference(ReferenceImage(_picture()), "swatch")]
    with pytest.raises(ModelCannotError, match="style_models"):
        _check_adapters(planned, "flux")


def test_with_regions_and_true_cfg_the_picture_counts_as_the_global_prompt(shared_engine: Any, redux: ReduxFiles) -> None:
    """Regions (the joint-attention bias) with a Redux reference under true CFG and a batch
    of two: the picture's tokens join the global prompt's in the bias; image 0 of the batch
    is the single run's."""
    from enginehelpers import box_mask
    from sfumato.inference.request import RegionSpec

    schnell = tiny_flow_model("flux-schnell")
    region = RegionSpec(mask=box_mask(SIDE, SIDE, 0, 0, 32, SIDE), prompt="a green field")
    req = request(schnell, width=SIDE, height=SIDE, steps=2, cfg=2.0, seed=4, regions=(region,),
                  references=(_ref(redux.folder, strength=1.5),))  # fmt: skip
    one = flow.run_ok(shared_engine, req)
    assert flow.mean_change(one, flow.run_ok(shared_engine, req.replace(references=()))) > 0.1
    result = shared_engine.run(req.replace(batch=2))
    assert result.ok, result.error
    assert np.abs(result.images[0].astype(int) - one.astype(int)).max() <= 1


def test_a_flux_plan_with_a_reference_needs_redux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(f) planned from a document: no Redux in the ComfyUI folders stops the plan with
    what to put where; the files installed there let it through, a reference inside a
    region's group with that region's mask."""
    from plandocs import document, gradient, layer
    from sfumato.canvas.model.layers import ReferenceSettings, Role
    from sfumato.planner.errors import ModelCannotError
    from sfumato.planner.families import FamilyInfo
    from sfumato.planner.plan import plan
    from sfumato.planner.recipe import GenerationSettings

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "0")
    for var in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    family = FamilyInfo.for_native("flux", 64, 16)
    settings = GenerationSettings(prompt="a garden", model="tiny", model_family="flux", seed=1, steps=2)
    reference = layer("look", gradient(32, 32), role=Role.REFERENCE, reference=ReferenceSettings())
    doc = document(64, 64, reference, layer("paint", gradient(64, 64)))
    with pytest.raises(ModelCannotError) as caught:
        plan(doc, settings, family=family)
    message = str(caught.value)
    assert "Redux" in message and "ComfyUI/models/style_models" in message and "sigclip_vision" in message
    build_tiny_redux(tmp_path)  # ComfyUI/models/style_models + clip_vision under home
    planned = plan(doc, settings, family=family)
    assert len(planned.references) == 1
    from plandocs import rgba
    from sfumato.canvas.model.layers import GroupLayer

    sky_look = layer("sky look", gradient(16, 16), role=Role.REFERENCE)
    sky = layer("sky", rgba(64, 32, alpha=255), role=Role.REGION, prompt="a stormy sky")
    doc.root.append(GroupLayer("Sky", [sky_look, sky]))
    planned = plan(doc, settings, family=family)
    by_name = {r.layer_name: r for r in planned.references}
    assert by_name["sky look"].spec.mask is not None and by_name["look"].spec.mask is None

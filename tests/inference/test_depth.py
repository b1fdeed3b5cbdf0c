"""Depth from the picture: tiny transformers depth estimators built here, never downloaded."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from sfumato.inference.annotators import (
    DEPTH_ESTIMATOR_DOWNLOAD,
    DEPTH_ESTIMATOR_FOLDER,
    find_depth_estimator,
)
from sfumato.inference.cancel import CancelToken
from sfumato.inference.depth import (
    estimate_depth,
    load_depth_estimator,
    normalise_depth,
    original_key_map,
)
from sfumato.inference.errors import (
    CancelledError,
    CorruptModelError,
    InvalidRequestError,
    MissingDepthEstimatorError,
    UnsupportedModeError,
)
from sfumato.inference.request import ModelRef
from sfumato.vocabulary.config import Config
from tinydepth import tiny_depth_model


@pytest.fixture(scope="module")
def depth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("depth")


def _picture(h: int = 37, w: int = 53) -> np.ndarray:
    return (np.random.default_rng(3).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["depth_anything", "dpt"])
def test_a_map_of_the_pictures_size_deterministic_and_stretched(depth_dir: Path, kind: str) -> None:
    folder = tiny_depth_model(depth_dir, kind)
    picture = _picture()
    first = estimate_depth(folder, picture)
    assert first.dtype == np.uint8 and first.shape == picture.shape[:2]
    assert first.min() == 0 and first.max() == 255  # normalised over the whole range
    assert np.array_equal(first, estimate_depth(folder, picture))
    # The picture matters: another picture, another map.
    assert not np.array_equal(first, estimate_depth(folder, picture[::-1].copy()))
    # A file inside the folder names the folder.
    assert np.array_equal(first, estimate_depth(folder / "config.json", picture))


def test_near_is_white_and_metric_depth_is_inverted() -> None:
    ramp = np.tile(np.linspace(0.0, 10.0, 16), (4, 1))  # grows to the right
    relative = normalise_depth(ramp, metric=False)  # inverse depth: the right is near
    assert relative[0, 0] == 0 and relative[0, -1] == 255
    assert np.all(np.diff(relative.astype(int), axis=1) >= 0)
    metric = normalise_depth(ramp, metric=True)  # distances: the right is far
    assert metric[0, 0] == 255 and metric[0, -1] == 0
    assert not normalise_depth(np.full((3, 3), 2.0), metric=False).any()  # flat: all black


def test_the_prediction_is_resized_to_the_picture_with_its_orientation(depth_dir: Path) -> None:
    """A model predicting "nearer towards the bottom" gives a map whiter at the bottom, at
    the picture's size (the real models' prediction is at their own input size)."""
    estimator = load_depth_estimator(tiny_depth_model(depth_dir))
    rows = torch.linspace(0.0, 1.0, 14)[:, None].expand(14, 14)[None]
    estimator.model = lambda pixel_values: SimpleNamespace(predicted_depth=rows)
    depth = estimator(_picture(40, 24))
    assert depth.shape == (40, 24)
    assert depth[-1].mean() > 250 and depth[0].mean() < 5
    assert np.all(np.diff(depth[:, 12].astype(int)) >= 0)


def test_the_engine_keeps_the_estimator_and_honours_cancel(fresh_engine: Any, depth_dir: Path) -> None:
    engine = fresh_engine()
    folder = tiny_depth_model(depth_dir)
    picture = _picture()
    depth = engine.estimate_depth(picture, ModelRef(str(folder)))
    assert np.array_equal(depth, estimate_depth(folder, picture))
    engine.estimate_depth(picture, ModelRef(str(folder)))
    assert engine.cache.depth_load_count == 1
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        engine.estimate_depth(picture, ModelRef(str(folder)), cancel=token)
    with pytest.raises(InvalidRequestError):
        engine.estimate_depth(np.zeros((8, 8), np.uint8), ModelRef(str(folder)))
    assert np.array_equal(engine.estimate_depth(picture, ModelRef(str(folder))), depth)


def test_a_missing_estimator_says_what_to_put_where(fresh_engine: Any) -> None:
    with pytest.raises(MissingDepthEstimatorError) as caught:
        fresh_engine().estimate_depth(_picture())
    error = caught.value
    assert error.expected == DEPTH_ESTIMATOR_DOWNLOAD and error.folder == DEPTH_ESTIMATOR_FOLDER
    assert "Depth-Anything-V2-Small-hf" in error.user_message and "annotators" in error.user_message


def test_wrong_files_are_typed_errors(fresh_engine: Any, tmp_path: Path, depth_dir: Path) -> None:
    engine = fresh_engine()
    midas = tmp_path / "dpt_hybrid-midas-501f0c75.pt"
    midas.write_bytes(b"not read")
    with pytest.raises(UnsupportedModeError, match="original depth checkpoint"):
        engine.estimate_depth(_picture(), ModelRef(str(midas)))
    broken = tmp_path / "depth_anything_v2_vits.pth"
    broken.write_bytes(b"not a pickle")
    with pytest.raises(CorruptModelError):
        engine.estimate_depth(_picture(), ModelRef(str(broken)))
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(UnsupportedModeError, match="not a depth estimator"):
        engine.estimate_depth(_picture(), ModelRef(str(other)))
    bare = tmp_path / "bare"
    shutil.copytree(tiny_depth_model(depth_dir), bare)
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(CorruptModelError, match="preprocessor_config"):
        engine.estimate_depth(_picture(), ModelRef(str(bare)))


def test_the_catalog_finds_estimators_in_the_preprocessor_folders(tmp_path: Path, depth_dir: Path) -> None:
    home = tmp_path / "home"
    assert find_depth_estimator(config=Config(), home=home) is None
    aux = home / "ComfyUI" / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts" / "depth-anything"
    dpt = home / "stable-diffusion-webui" / "extensions" / "sd-webui-controlnet" / "annotator" / "downloads" / "dpt"
    shutil.copytree(tiny_depth_model(depth_dir, "dpt"), dpt / "dpt-hybrid-midas")
    assert find_depth_estimator(config=Config(), home=home) == dpt / "dpt-hybrid-midas"
    shutil.copytree(tiny_depth_model(depth_dir), aux / "Depth-Anything-V2-Small-hf")
    # Depth Anything V2 is preferred over DPT.
    assert find_depth_estimator(config=Config(), home=home) == aux / "Depth-Anything-V2-Small-hf"
    # An original checkpoint where comfyui_controlnet_aux puts it counts, after a folder.
    v2 = aux / "Depth-Anything-V2-Small" / "depth_anything_v2_vits.pth"
    v2.parent.mkdir(parents=True)
    v2.write_bytes(b"weights")
    assert find_depth_estimator(config=Config(), home=home) == aux / "Depth-Anything-V2-Small-hf"
    shutil.rmtree(aux / "Depth-Anything-V2-Small-hf")
    assert find_depth_estimator(config=Config(), home=home) == v2
    # A configured folder wins.
    mine = tmp_path / "mine" / "depth"
    shutil.copytree(tiny_depth_model(depth_dir, "dpt"), mine)
    assert find_depth_estimator(config=Config(model_paths=[str(tmp_path / "mine")]), home=home) == mine


def _as_original(folder: Path, file: Path) -> Path:
    """The tiny Depth Anything's weights in the authors' layout (the renaming undone, the
    attention's query/key/value fused into ``qkv``), saved as a ``.pth``."""
    from safetensors.torch import load_file

    ours = load_file(str(folder / "model.safetensors"))
    layers = 1 + max(int(k.split(".")[3]) for k in ours if k.startswith("backbone.encoder.layer."))
    state = {original: ours[name] for original, name in original_key_map(layers) if name in ours}
    for i in range(layers):
        parts = [f"backbone.encoder.layer.{i}.attention.attention.{p}." for p in ("query", "key", "value")]
        state[f"pretrained.blocks.{i}.attn.qkv.weight"] = torch.cat([ours[p + "weight"] for p in parts])
        state[f"pretrained.blocks.{i}.attn.qkv.bias"] = torch.cat([ours[p + "bias"] for p in parts])
    assert len(state) == len(ours) - 4 * layers  # every tensor renamed, none left over
    torch.save(state, file)
    return file


def test_an_original_depth_anything_checkpoint_reads_as_its_transformers_folder(
    fresh_engine: Any, depth_dir: Path, tmp_path: Path
) -> None:
    """comfyui_controlnet_aux's files are the authors' (``depth_anything_v2_vits.pth``):
    renamed as transformers converts them, sized from the tensors, they predict what the
    converted folder predicts (with the same input processing)."""
    folder = tiny_depth_model(depth_dir)
    original = _as_original(folder, tmp_path / "depth_anything_v2_vits.pth")
    converted = load_depth_estimator(original)
    reference = load_depth_estimator(folder)
    assert converted.model.config.backbone_config.out_indices == reference.model.config.backbone_config.out_indices
    ours, theirs = converted.model.state_dict(), reference.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    picture = _picture()
    converted.processor = reference.processor  # the real files are processed at 518 px
    assert np.array_equal(converted(picture), reference(picture))
    # Through the engine, at the converted repositories' 518 px: a map of the picture's size.
    depth = fresh_engine().estimate_depth(picture, ModelRef(str(original)))
    assert depth.shape == picture.shape[:2] and depth.dtype == np.uint8 and depth.max() == 255

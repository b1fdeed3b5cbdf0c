"""SDXL union ControlNets (xinsir's Union/ProMax, ``ControlNetUnionModel``) and MistoLine.

A tiny union net is built here on the tiny SDXL UNet's layout (its zero-initialised
outputs and the mixing projection made random so that they act). The engine's result
equals ``StableDiffusionXLControlNetUnionPipeline``'s for the same seed, control types
and scales — one layer, and two layers of different kinds on one net, which both run as
one union call per step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, count_calls, mean_abs_diff, request
from sfumato.inference.catalog import ModelEntry, Origin, WeightsKind, find_controlnet
from sfumato.inference.detect import (
    UNION_CONTROL_TYPES,
    is_union_controlnet,
    is_union_controlnet_config,
    read_safetensors_keys,
)
from sfumato.inference.errors import UnsupportedModeError
from sfumato.inference.request import ControlKind, ControlSpec, ModelRef

STEPS = 4


def build_tiny_union(path: Path, sdxl: Path, *, seed: int = 5) -> Path:
    """A tiny ``ControlNetUnionModel`` folder for the tiny SDXL at ``sdxl`` (8 control
    types, as ProMax)."""
    if (path / "config.json").is_file():
        return path
    from diffusers import ControlNetUnionModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(sdxl / "unet"), local_files_only=True)
    config = dict(ControlNetUnionModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16),
                                                 load_weights_from_unet=False).config)  # fmt: skip
    width = unet.config.block_out_channels[0]
    config.update(num_control_type=8, num_trans_channel=width, num_trans_head=2, num_proj_channel=width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ControlNetUnionModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
        with torch.no_grad():
            for module in [*net.controlnet_down_blocks, net.controlnet_mid_block, net.spatial_ch_projs,
                           net.controlnet_cond_embedding.conv_out]:  # fmt: skip
                torch.nn.init.normal_(module.weight, std=0.05)
            for module in net.controlnet_cond_embedding.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    torch.nn.init.zeros_(module.bias)
            net.controlnet_cond_embedding.conv_out.weight.mul_(30.0)
    net.save_pretrained(str(path), safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def tiny_union(tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_union(tmp_path_factory.mktemp("union") / "controlnet-union-sdxl", tiny_sdxl)


def _map(seed: int, side: int = 64) -> np.ndarray:
    """A blocky control map (large shapes, so the 64-px condition embedding sees them)."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, size=(side // 16, side // 16, 3)), np.ones((16, 16, 1))).astype(np.uint8)


def _pipeline_image(engine: Any, tiny_sdxl: Path, net: Any, images: list[np.ndarray], modes: list[int],
                    scales: list[float], req: Any) -> np.ndarray:  # fmt: skip
    from diffusers import StableDiffusionXLControlNetUnionPipeline
    from PIL import Image

    model = engine.cache.get(ModelRef(str(tiny_sdxl)))
    components = dict(model.pipe.components)
    components["scheduler"] = type(model.pipe.scheduler).from_config(model.pipe.scheduler.config)
    pipe = StableDiffusionXLControlNetUnionPipeline(**components, controlnet=net)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        prompt=req.prompt,
        negative_prompt=req.negative or None,
        control_image=[Image.fromarray(image) for image in images],
        control_mode=modes,
        controlnet_conditioning_scale=scales,
        num_inference_steps=req.steps,
        guidance_scale=req.cfg,
        height=req.height,
        width=req.width,
        generator=torch.Generator("cpu").manual_seed(req.seed),
        output_type="np",
    ).images[0]
    return np.round(out * 255.0).astype(np.int16)


def _run(engine: Any, req: Any) -> np.ndarray:
    result = engine.run(req, Recorder())
    assert result.ok, result.error
    return result.images[0]


def test_one_layer_equals_the_union_pipeline(shared_engine: Any, tiny_sdxl: Path, tiny_union: Path) -> None:
    image = _map(1)
    spec = ControlSpec(ControlKind.DEPTH, image, strength=0.8, model=ModelRef(str(tiny_union)))
    req = request(tiny_sdxl, width=64, height=64, steps=STEPS, cfg=5.0, seed=42, negative="blurry", controls=(spec,))
    ours = _run(shared_engine, req)
    net = shared_engine.cache.controlnet(spec.model, ControlKind.DEPTH, shared_engine.cache.get(req.model))
    assert type(net).__name__ == "ControlNetUnionModel"
    expected = _pipeline_image(shared_engine, tiny_sdxl, net, [image], [1], [0.8], req)
    diff = np.abs(ours.astype(np.int16) - expected)
    assert diff.max() <= 1, f"max difference {diff.max()}"
    # The control type reaches the net: the same map as another kind (type 3, thin lines)
    # is another picture (measured: 1.7 levels on average).
    other = _run(shared_engine, req.replace(controls=(replace(spec, kind=ControlKind.LINEART),)))
    assert mean_abs_diff(ours, other) > 0.5


def test_two_kinds_on_one_union_net_run_as_one_call_and_equal_the_pipeline(
    shared_engine: Any, tiny_sdxl: Path, tiny_union: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    union = ModelRef(str(tiny_union))
    pose, lines = _map(2), _map(3)
    controls = (ControlSpec(ControlKind.POSE, pose, strength=0.9, model=union),
                ControlSpec(ControlKind.CANNY, lines, strength=0.6, model=union))  # fmt: skip
    req = request(tiny_sdxl, width=64, height=64, steps=STEPS, cfg=5.0, seed=7, controls=controls)
    net = shared_engine.cache.controlnet(union, ControlKind.POSE, shared_engine.cache.get(req.model))
    calls = count_calls(net, monkeypatch)
    ours = _run(shared_engine, req)
    assert calls[0] == STEPS  # one union call a step for both layers (CFG halves in one batch)
    monkeypatch.undo()
    modes = [UNION_CONTROL_TYPES[ControlKind.POSE], UNION_CONTROL_TYPES[ControlKind.CANNY]]
    assert modes == [0, 3]
    expected = _pipeline_image(shared_engine, tiny_sdxl, net, [pose, lines], modes, [0.9, 0.6], req)
    diff = np.abs(ours.astype(np.int16) - expected)
    assert diff.max() <= 1, f"max difference {diff.max()}"
    # The second layer counts: the first alone is another picture (measured: 4.1 levels).
    assert mean_abs_diff(ours, _run(shared_engine, req.replace(controls=controls[:1]))) > 0.5


def test_a_union_layer_outside_its_steps_is_left_out_of_the_call(
    shared_engine: Any, tiny_sdxl: Path, tiny_union: Path
) -> None:
    """A second layer whose range covers no step (or at strength 0) leaves the picture the
    first layer's alone, byte for byte."""
    union = ModelRef(str(tiny_union))
    first = ControlSpec(ControlKind.DEPTH, _map(4), strength=0.7, model=union)
    req = request(tiny_sdxl, width=64, height=64, steps=STEPS, seed=3, controls=(first,))
    alone = _run(shared_engine, req)
    idle = ControlSpec(ControlKind.SCRIBBLE, _map(5), start=0.0, end=0.1, model=union)
    off = ControlSpec(ControlKind.SCRIBBLE, _map(5), strength=0.0, model=union)
    assert np.array_equal(_run(shared_engine, req.replace(controls=(first, idle))), alone)
    assert np.array_equal(_run(shared_engine, req.replace(controls=(first, off))), alone)


def test_a_single_union_file_loads_like_its_folder(
    fresh_engine: Any, tiny_sdxl: Path, tiny_union: Path, tmp_path: Path
) -> None:
    """A ComfyUI-style single ``.safetensors`` is recognised by its keys and built (its
    config beside it: a tiny net's head counts are not SDXL's, which shapes cannot tell)."""
    from diffusers import ControlNetUnionModel

    file = tmp_path / "controlnet"
    file.mkdir()
    single = file / "xinsir-union-promax.safetensors"
    single.write_bytes((tiny_union / "diffusion_pytorch_model.safetensors").read_bytes())
    assert is_union_controlnet(read_safetensors_keys(single))
    assert not is_union_controlnet(["controlnet_cond_embedding.conv_in.weight", "down_blocks.0.resnets.0.conv1.weight"])
    assert is_union_controlnet_config(json.loads((tiny_union / "config.json").read_text()))
    (file / "xinsir-union-promax.json").write_text((tiny_union / "config.json").read_text())
    engine = fresh_engine()
    model = engine.cache.get(ModelRef(str(tiny_sdxl)))
    net = engine.cache.controlnet(ModelRef(str(single)), ControlKind.DEPTH, model)
    reference = ControlNetUnionModel.from_pretrained(str(tiny_union), local_files_only=True)
    assert isinstance(net, ControlNetUnionModel)
    ours, theirs = net.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_union_config_from_full_size_shapes() -> None:
    """xinsir's ProMax file alone (no config): its config comes from its shapes over the
    shipped SDXL ControlNet config, equal to the repository's config in every field."""
    from diffusers import ControlNetUnionModel
    from sfumato.inference.controlnets import union_config_from_shapes
    from sfumato.inference.single_file import family_config_dir

    base = json.loads((family_config_dir("sdxl") / "controlnet" / "config.json").read_text())
    promax = {k: v for k, v in base.items() if not k.startswith("_")}
    promax.update(num_control_type=8, conditioning_embedding_out_channels=[16, 32, 96, 256])
    with torch.device("meta"):
        net = ControlNetUnionModel.from_config(promax)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert is_union_controlnet(shapes)
    derived = union_config_from_shapes(shapes)
    expected = dict(net.config)
    for key, value in derived.items():
        got = list(value) if isinstance(value, tuple) else value
        want = list(expected[key]) if isinstance(expected[key], tuple) else expected[key]
        assert got == want, key


def test_the_control_types_follow_the_union_pipeline_docs(shared_engine: Any, tiny_sdxl: Path, tiny_union: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(tiny_sdxl)))
    net = shared_engine.cache.controlnet(ModelRef(str(tiny_union)), ControlKind.DEPTH, model)
    types = {kind: model.family.control_mode(net, kind) for kind in ControlKind}
    assert types == {ControlKind.POSE: 0, ControlKind.DEPTH: 1, ControlKind.SCRIBBLE: 2, ControlKind.SOFTEDGE: 2,
                     ControlKind.LINEART: 3, ControlKind.CANNY: 3, ControlKind.SEGMENTATION: 5}  # fmt: skip


def test_a_union_net_is_refused_by_sd15(shared_engine: Any, tiny_sd15: Path, tiny_union: Path) -> None:
    model = shared_engine.cache.get(ModelRef(str(tiny_sd15)))
    with pytest.raises(UnsupportedModeError):
        shared_engine.cache.controlnet(ModelRef(str(tiny_union)), ControlKind.DEPTH, model)


def _entry(name: str, family: str | None = "sdxl", origin: Origin = Origin.CONFIGURED) -> ModelEntry:
    return ModelEntry(WeightsKind.CONTROLNET, f"/models/controlnet/{name}", Path(name).stem, family, origin)


def test_the_catalog_offers_union_and_mistoline_nets() -> None:
    union = _entry("controlnet-union-sdxl-promax.safetensors")
    misto = _entry("mistoLine_rank256.safetensors")
    depth = _entry("diffusers_xl_depth_full.safetensors")
    sd15_union = _entry("union_sd15.safetensors", family="sd15")
    pool = [union, misto, depth, sd15_union]
    # A kind's own net first; MistoLine for every line kind; the union net for the rest.
    assert find_controlnet(ControlKind.DEPTH, "sdxl", entries=pool) == depth
    for kind in (ControlKind.SCRIBBLE, ControlKind.LINEART, ControlKind.SOFTEDGE, ControlKind.CANNY):
        assert find_controlnet(kind, "sdxl", entries=pool) == misto
    for kind in (ControlKind.POSE, ControlKind.SEGMENTATION):
        assert find_controlnet(kind, "sdxl", entries=pool) == union
    assert find_controlnet(ControlKind.SCRIBBLE, "sdxl", entries=[union, depth]) == union
    # Neither is offered to another family.
    assert find_controlnet(ControlKind.POSE, "sd15", entries=pool) is None
    assert find_controlnet(ControlKind.CANNY, "sd15", entries=[misto]) is None


def test_the_catalog_recognises_a_union_net_by_its_keys(tiny_union: Path, tmp_path: Path) -> None:
    """A union file whose name says nothing is still offered, from its header."""
    from sfumato.inference.catalog import list_models
    from sfumato.vocabulary.config import Config

    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "promax.safetensors").write_bytes((tiny_union / "diffusion_pytorch_model.safetensors").read_bytes())
    entries = [e for e in list_models(WeightsKind.CONTROLNET, config=Config(model_paths=[str(folder), str(tiny_union)]))
               if e.origin is Origin.CONFIGURED]  # fmt: skip
    assert {e.family for e in entries} == {"sdxl"}
    assert len(entries) == 2
    for kind in (ControlKind.POSE, ControlKind.DEPTH):
        assert find_controlnet(kind, "sdxl", entries=entries) is not None

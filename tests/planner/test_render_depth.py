"""``sfumato render`` fills an empty depth control layer marked ``sfumato:source="canvas"``
with the picture's depth map (tiny depth estimator) before planning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plandocs import document, gradient, layer
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.model.document import Recipe
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import ControlSettings, ControlSource, PixelLayer, Role
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.kinds import ControlKind

from sfumato.cli import main

pytest.importorskip("diffusers")
W, H = 96, 64


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from tinydepth import tiny_depth_model
    from tinymodels import build_tiny_controlnet, build_tiny_sd15

    root = tmp_path_factory.mktemp("models")
    return (build_tiny_sd15(root / "sd15"), build_tiny_controlnet(root / "cn-depth", "sd15"),
            tiny_depth_model(root))


def _document(path: Path, source: ControlSource | None) -> None:
    depth = PixelLayer("Depth", role=Role.CONTROL,
                       control=ControlSettings(ControlKind.DEPTH, strength=0.7, source=source), x=5, y=3)
    doc = document(W, H, layer("paint", gradient(H, W)))
    doc.root.insert(0, depth)
    doc.recipe = Recipe(prompt="a hill", seed=3, steps=2, cfg=5.0)
    save_ora(doc, path)


def _render(tmp_path: Path, models: tuple[Path, Path, Path], source: Path) -> tuple[int, Path]:
    model, controlnet, depth_model = models
    layered = tmp_path / "out.ora"
    status = main([
        "render", str(source), "-o", str(tmp_path / "out.png"), "--model", str(model),
        "--controlnet", f"depth={controlnet}", "--depth-model", str(depth_model),
        "--layered", str(layered), "-q",
    ])
    return status, layered


def test_render_fills_an_empty_canvas_depth_layer(tmp_path: Path, models: tuple[Path, Path, Path]) -> None:
    from sfumato.inference.depth import estimate_depth

    source = tmp_path / "in.ora"
    _document(source, ControlSource.CANVAS)
    picture = flatten(load_ora(source), background=(255, 255, 255, 255))[..., :3]
    status, layered = _render(tmp_path, models, source)
    assert status == 0
    doc = load_ora(layered)
    depth = next(lyr for lyr in doc.pixel_layers(Role.CONTROL) if lyr.name == "Depth")
    assert depth.document_bounds() == Rect(0, 0, W, H)  # the canvas, wherever the layer sat
    got = depth.surface.read(depth.document_bounds())
    want = estimate_depth(models[2], np.ascontiguousarray(picture))
    assert np.array_equal(got[..., 0], want) and (got[..., 3] == 255).all()
    gen = next(lyr for lyr in doc.pixel_layers(Role.GENERATED)).generation
    assert gen is not None and [c["kind"] for c in gen["controls"]] == ["depth"]


def test_without_the_source_an_empty_depth_layer_is_skipped(tmp_path: Path, models: tuple[Path, Path, Path]) -> None:
    source = tmp_path / "in.ora"
    _document(source, None)
    status, layered = _render(tmp_path, models, source)
    assert status == 0
    doc = load_ora(layered)
    depth = next(lyr for lyr in doc.pixel_layers(Role.CONTROL) if lyr.name == "Depth")
    assert depth.surface.bounds().empty
    gen = next(lyr for lyr in doc.pixel_layers(Role.GENERATED)).generation
    assert gen is not None and not gen.get("controls")

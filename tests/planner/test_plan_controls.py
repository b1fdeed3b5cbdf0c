"""Control layers: flattened over white, preprocessed, cropped and scaled to the area."""

from __future__ import annotations

import numpy as np
import pytest
from plandocs import document, layer, rgba
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.planner.controls import plan_controls
from sfumato.planner.sizing import Size
from sfumato.vocabulary.kinds import ControlKind


def sketch(h: int, w: int) -> np.ndarray:
    """Black strokes on a transparent layer: a vertical bar at a quarter of the width."""
    out = rgba(h, w, (0, 0, 0), alpha=0)
    out[:, w // 4 - 2 : w // 4 + 2] = (0, 0, 0, 255)
    return out


def test_scribble_is_inverted_to_white_lines_on_black() -> None:
    ctl = layer("sketch", sketch(64, 64), role=Role.CONTROL,
                control=ControlSettings(ControlKind.SCRIBBLE, strength=0.8, start=0.1, end=0.9))
    controls, notes = plan_controls(document(64, 64, ctl), Rect(0, 0, 64, 64), Size(64, 64))
    assert not notes and len(controls) == 1
    spec = controls[0].spec
    assert (spec.kind, spec.strength, spec.start, spec.end) == (ControlKind.SCRIBBLE, 0.8, 0.1, 0.9)
    image = spec.image
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    # the transparent background became white paper, then black after inversion
    assert image[:, 40:].max() == 0
    assert image[:, 12:20].max() == 255  # the stroke is a white line


def test_control_is_cropped_to_the_area_and_scaled_to_the_generation_size() -> None:
    pixels = rgba(128, 128, (0, 0, 0), alpha=0)
    pixels[:, 90:94] = (0, 0, 0, 255)  # a bar at x = 90..94 in document space
    ctl = layer("sketch", pixels, role=Role.CONTROL, control=ControlSettings(ControlKind.LINEART))
    area = Rect(64, 0, 64, 128)
    controls, _ = plan_controls(document(128, 128, ctl), area, Size(32, 64))
    image = controls[0].spec.image
    assert image.shape == (64, 32, 3)
    cols = np.flatnonzero(image.max(axis=(0, 2)) > 64)
    # (90 - 64) / 2 = 13 .. (94 - 64) / 2 = 15 at half scale
    assert cols.size and cols.min() >= 11 and cols.max() <= 17


def test_depth_map_passes_through_unchanged() -> None:
    pixels = rgba(32, 32, (10, 200, 10))
    ctl = layer("depth", pixels, role=Role.CONTROL, control=ControlSettings(ControlKind.DEPTH))
    controls, _ = plan_controls(document(32, 32, ctl), Rect(0, 0, 32, 32), Size(32, 32))
    assert (controls[0].spec.image == (10, 200, 10)).all()


def test_empty_and_hidden_control_layers_are_skipped() -> None:
    empty = layer("empty", rgba(8, 8, alpha=0), role=Role.CONTROL)
    hidden = layer("hidden", sketch(32, 32), role=Role.CONTROL, visible=False)
    elsewhere = layer("elsewhere", sketch(8, 8), role=Role.CONTROL, x=100, y=100)
    controls, notes = plan_controls(
        document(128, 128, empty, hidden, elsewhere), Rect(0, 0, 32, 32), Size(32, 32)
    )
    assert controls == [] and len(notes) == 2


def test_control_model_per_kind_is_passed_on() -> None:
    ctl = layer("sketch", sketch(32, 32), role=Role.CONTROL)
    controls, _ = plan_controls(
        document(32, 32, ctl), Rect(0, 0, 32, 32), Size(32, 32), {ControlKind.SCRIBBLE: "/cn"}
    )
    assert controls[0].spec.model is not None and controls[0].spec.model.source == "/cn"


def test_preprocessing_runs_once_per_distinct_control_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live mode plans after every stroke: an untouched control layer is not preprocessed
    again, a changed one is, and each plan gets its own copy."""
    from sfumato.canvas import editing
    from sfumato.planner import controls

    calls: list[ControlKind] = []
    real = controls.preprocess

    def counting(kind: ControlKind, image: np.ndarray) -> np.ndarray:
        calls.append(kind)
        return real(kind, image)

    monkeypatch.setattr(controls, "preprocess", counting)
    monkeypatch.setattr(controls, "_cache", type(controls._cache)())
    doc = Document(128, 128)
    sketch = np.zeros((128, 128, 4), np.uint8)
    sketch[40:90, 60:64] = (0, 0, 0, 255)
    layer = PixelLayer("sketch", TiledSurface.from_array(sketch), role=Role.CONTROL,
                       control=ControlSettings(ControlKind.LINEART))
    doc.root.append(layer)
    size = Size(64, 64)
    first, _ = plan_controls(doc, doc.rect, size)
    second, _ = plan_controls(doc, doc.rect, size)
    assert len(calls) == 1
    assert np.array_equal(first[0].spec.image, second[0].spec.image)
    assert first[0].spec.image is not second[0].spec.image
    more = sketch.copy()
    more[10:20, 10:40] = (0, 0, 0, 255)
    editing.put_pixels(doc, layer, more, 0, 0, label="Sketch")
    third, _ = plan_controls(doc, doc.rect, size)
    assert len(calls) == 2 and not np.array_equal(third[0].spec.image, first[0].spec.image)

"""Model-free control preprocessors: polarity, edges, shapes, idempotence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sfumato.inference import preprocess as pp
from sfumato.vocabulary.kinds import ControlKind


def _sketch_on_white(h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A black diagonal-ish stroke on white; returns (image, stroke mask)."""
    image = np.full((h, w, 3), 255, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[20:24, 10:70] = True  # horizontal bar
    mask[10:50, 40:43] = True  # vertical bar
    image[mask] = 0
    return image, mask


def _square(h: int = 64, w: int = 64) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[16:48, 16:48] = 200
    return image


def test_invert_black_on_white_gives_white_on_black_same_pixels() -> None:
    image, mask = _sketch_on_white()
    out = pp.invert_sketch(image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert (out[mask] == 255).all()
    assert (out[~mask] == 0).all()


def test_invert_keeps_white_on_black_and_is_idempotent() -> None:
    image, mask = _sketch_on_white()
    once = pp.invert_sketch(image)
    twice = pp.invert_sketch(once)
    np.testing.assert_array_equal(once, twice)


def test_light_background_detection() -> None:
    image, _ = _sketch_on_white()
    assert pp.has_light_background(image)
    assert not pp.has_light_background(255 - image)


def test_threshold_binary_and_idempotent() -> None:
    image, mask = _sketch_on_white()
    image = image.copy()
    image[~mask] = 230  # off-white paper
    out = pp.threshold(image)
    assert set(np.unique(out).tolist()) <= {0, 255}
    assert (out[mask] == 255).all() and (out[~mask] == 0).all()
    np.testing.assert_array_equal(pp.threshold(out), out)


def test_canny_finds_square_edges() -> None:
    out = pp.canny(_square())
    edge = out[:, :, 0] > 0
    # Edges lie on the square's border (within a pixel) and nowhere else.
    ys, xs = np.nonzero(edge)
    assert len(ys) > 100
    near_border = (
        (np.abs(ys - 16) <= 1) | (np.abs(ys - 47) <= 1) | (np.abs(xs - 16) <= 1) | (np.abs(xs - 47) <= 1)
    )
    assert near_border.all()
    # every side is found
    for side in (edge[15:18, 20:44], edge[46:49, 20:44], edge[20:44, 15:18], edge[20:44, 46:49]):
        assert side.any(axis=0 if side.shape[0] == 3 else 1).all()
    assert not edge[24:40, 24:40].any()


def test_scribble_keeps_strokes_white_on_black() -> None:
    image, mask = _sketch_on_white()
    out = pp.xdog_scribble(image)
    assert set(np.unique(out).tolist()) <= {0, 255}
    assert (out[mask] == 255).all()
    far = np.ones_like(mask)
    far[5:55, 5:75] = False  # well away from any stroke
    assert (out[far] == 0).all()
    # A clean white-on-black scribble is (almost) a fixed point.
    again = pp.xdog_scribble(out)
    assert np.mean(again != out) < 0.02


def test_lineart_lines_bright_background_dark() -> None:
    image, mask = _sketch_on_white()
    out = pp.lineart_standard(image)
    gray = out[:, :, 0].astype(float)
    assert gray[mask].mean() > 100
    far = np.ones_like(mask)
    far[5:55, 5:75] = False
    assert gray[far].mean() < 5
    # Polarity is auto-detected: the white-on-black version gives the same map.
    np.testing.assert_array_equal(pp.lineart_standard(255 - image), out)


def test_softedge_soft_and_on_edges() -> None:
    out = pp.softedge(_square())
    gray = out[:, :, 0]
    assert gray.max() == 255
    assert gray[32, 32] < 10 and gray[2, 2] < 10
    assert gray[16, 32] > 128 and gray[32, 47] > 128
    # soft: there are intermediate levels
    assert ((gray > 20) & (gray < 235)).sum() > 50
    assert not pp.softedge(np.zeros((8, 8, 3), np.uint8)).any()


@pytest.mark.parametrize("kind", list(ControlKind))
def test_preprocess_shapes_and_dtypes(kind: ControlKind) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = pp.preprocess(kind, image)
    assert out.dtype == np.uint8
    assert out.shape == image.shape
    assert out.flags.c_contiguous


@pytest.mark.parametrize("kind", [ControlKind.DEPTH, ControlKind.POSE, ControlKind.SEGMENTATION])
def test_maps_pass_through(kind: ControlKind) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = pp.preprocess(kind, image)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_rejects_wrong_input() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        pp.preprocess(ControlKind.CANNY, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        pp.preprocess(ControlKind.CANNY, np.zeros((8, 8, 3), np.float32))


def test_module_imports_no_torch() -> None:
    code = "import sys, sfumato.inference.preprocess; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

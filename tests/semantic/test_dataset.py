"""Unit tests of the built-in model's scene generator (tools/shapes_dataset.py).

The generator is the ground truth of the semantic tests, so its captions must describe
exactly what it draws, and the same seed must give the same scenes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import shapes_dataset as sd  # noqa: E402

SIZE = 64


def _scenes(seed: int, n: int) -> list[sd.SceneSpec]:
    rng = np.random.default_rng(seed)
    return [sd.random_scene(rng) for _ in range(n)]


def _dominant_hue(pixels: np.ndarray) -> float:
    hsv = sd.rgb_to_hsv(pixels.reshape(-1, 3))
    return float(np.median(hsv[:, 0]))


def test_same_seed_same_scenes_and_pixels() -> None:
    a, b = _scenes(7, 40), _scenes(7, 40)
    assert a == b
    for s, t in zip(a, b):
        assert np.array_equal(sd.render(s, SIZE), sd.render(t, SIZE))


def test_different_seeds_differ() -> None:
    assert _scenes(1, 20) != _scenes(2, 20)


def test_jittered_scribble_is_reproducible() -> None:
    spec = next(s for s in _scenes(3, 50) if s.shapes)
    one = sd.scribble(spec, SIZE, rng=np.random.default_rng(5))
    two = sd.scribble(spec, SIZE, rng=np.random.default_rng(5))
    assert np.array_equal(one, two)


def test_colour_table_has_eight_distinct_hues() -> None:
    chromatic = [sd.COLOURS[n] for n in sd.CHROMATIC_COLOURS]
    assert len(chromatic) >= 8
    hues = [c.hue for c in chromatic]
    assert all(h is not None for h in hues)
    for i, a in enumerate(chromatic):
        for b in chromatic[i + 1 :]:
            assert sd.hue_distance(a.hue, b.hue) >= 15, (a.name, b.name)  # type: ignore[arg-type]
    assert sd.COLOURS["white"].hue is None and sd.COLOURS["black"].hue is None
    assert sd.COLOURS["red"].hue is not None and sd.hue_distance(sd.COLOURS["red"].hue, 0) < 10


def test_rgb_to_hsv_matches_colorsys() -> None:
    import colorsys

    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, size=(200, 3))
    ours = sd.rgb_to_hsv(px)
    for p, o in zip(px, ours):
        h, s, v = colorsys.rgb_to_hsv(*(p / 255.0))
        if s > 0:
            assert sd.hue_distance(h * 360, o[0]) < 0.5
        assert abs(s - o[1]) < 1e-4 and abs(v - o[2]) < 1e-4


def test_captions_round_trip_through_the_parser() -> None:
    for spec in _scenes(11, 400):
        text = sd.caption(spec)
        assert sd.parse_caption(text) == spec, text


def test_loose_captions_name_what_is_drawn_but_not_where_or_how_big() -> None:
    assert (
        sd.loose_caption(sd.parse_caption("a big red square on the right on a white background"))
        == "a red square on a white background"
    )
    layout_words = {"left", "right", "top", "bottom", "small", "big"}
    for spec in _scenes(12, 400):
        text = sd.loose_caption(spec)
        parsed = sd.parse_caption(text)
        assert parsed.background == spec.background, text
        assert [(s.shape, s.colour) for s in parsed.shapes] == [
            (s.shape, s.colour) for s in spec.shapes
        ], text
        if spec.shapes:
            assert not layout_words & set(text.split()), text


@pytest.mark.parametrize(
    "text",
    [
        "a red circle on a blue background",
        "a yellow star and a green square on a white background",
        "a red circle on the left and a blue square on the right on a white background",
        "an orange triangle at the top on a purple background",
        "a big pink star on a black to white gradient background",
        "cyan background",
        "a red background on the left and a blue background on the right",
    ],
)
def test_example_captions_parse_and_render_what_they_say(text: str) -> None:
    spec = sd.parse_caption(text)
    assert sd.caption(spec) == text
    img = sd.render(spec, SIZE)
    bg = spec.background
    if bg.kind is sd.BackgroundKind.SPLIT:
        left, right = img[:, : SIZE // 4], img[:, -SIZE // 4 :]
        assert np.all(left == sd.COLOURS[bg.colour].rgb)
        assert bg.colour2 is not None and np.all(right == sd.COLOURS[bg.colour2].rgb)
        return
    # the top-left corner is background in every layout
    corner = img[1, 1]
    assert np.abs(corner.astype(int) - sd.COLOURS[bg.colour].rgb).max() <= 12
    for shape in spec.shapes:
        mask = sd.shape_mask(shape, SIZE) > 0.99
        assert mask.sum() > 20
        inside = img[mask].astype(int)
        assert np.abs(inside - sd.COLOURS[shape.colour].rgb).max() <= 1, (text, shape)


def test_rendered_colours_follow_the_caption_for_random_scenes() -> None:
    for spec in _scenes(21, 120):
        img = sd.render(spec, SIZE)
        parsed = sd.parse_caption(sd.caption(spec))
        covered = np.zeros((SIZE, SIZE), dtype=bool)
        for shape in reversed(parsed.shapes):  # later shapes are drawn on top
            mask = (sd.shape_mask(shape, SIZE) > 0.99) & ~covered
            covered |= sd.shape_mask(shape, SIZE) > 0.01
            if mask.sum() < 10:
                continue
            colour = sd.COLOURS[shape.colour]
            pixels = img[mask]
            if colour.hue is not None:
                assert sd.hue_distance(_dominant_hue(pixels), colour.hue) < 5
            else:
                assert np.abs(pixels.astype(int) - colour.rgb).max() <= 1


def test_shape_colours_stand_out_from_the_background() -> None:
    for spec in _scenes(5, 300):
        bg = {spec.background.colour, spec.background.colour2} - {None}
        for shape in spec.shapes:
            assert shape.colour not in bg


def test_scribble_strokes_lie_on_shape_edges() -> None:
    spec = sd.parse_caption("a big red square on a blue background")
    sketch = sd.scribble(spec, SIZE)
    assert sketch.dtype == np.uint8 and sketch.shape == (SIZE, SIZE, 3)
    dark = sketch[..., 0] < 128
    assert dark.sum() > 50
    mask = sd.shape_mask(spec.shapes[0], SIZE)
    edge = (mask > 0.02) & (mask < 0.98)
    # grow the edge by two pixels: strokes must sit on it, not inside or far away
    grown = edge.copy()
    for dy in (-2, -1, 0, 1, 2):
        for dx in (-2, -1, 0, 1, 2):
            grown |= np.roll(np.roll(edge, dy, 0), dx, 1)
    assert (dark & grown).sum() / dark.sum() > 0.9
    assert sd.scribble(sd.parse_caption("green background"), SIZE).min() == 255


def test_grammar_rejects_what_it_cannot_draw() -> None:
    for bad in ["", "a red dragon on a blue background", "a red circle", "a circle on a red background"]:
        with pytest.raises(sd.CaptionError):
            sd.parse_caption(bad)


def test_caption_words_cover_every_caption() -> None:
    vocab = set(sd.caption_words())
    for spec in _scenes(9, 300):
        assert set(sd.caption(spec).split()) <= vocab
    assert {"red", "blue", "circle", "star", "left", "right", "background"} <= vocab

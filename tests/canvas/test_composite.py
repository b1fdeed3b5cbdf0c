"""Compositing the layer tree: groups, offsets, opacity, visibility, roles, and the cached
Compositor against a from-scratch flatten after random edits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sfumato.canvas.model.document import Document, DocumentReset
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, Role, document_offset
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.render.composite import flatten, flatten_layers, only
from sfumato.canvas.render.compositor import Compositor

RED = (255, 0, 0, 255)
GREY = (128, 128, 128, 255)
WHITE = (255, 255, 255, 255)


def solid(w: int, h: int, rgba: tuple[int, int, int, int]) -> TiledSurface:
    return TiledSurface.from_array(np.broadcast_to(np.array(rgba, np.uint8), (h, w, 4)).copy())


def doc_with(*layers: Layer, w: int = 64, h: int = 48) -> Document:
    doc = Document(w, h)
    for layer in reversed(layers):  # given top first
        doc._raw_insert(layer)
    return doc


def px(img: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[y, x])


def test_group_isolates_its_blend_modes() -> None:
    mult = PixelLayer("mult", solid(64, 48, GREY), blend=BlendMode.MULTIPLY)
    isolated = doc_with(GroupLayer("g", [mult]), PixelLayer("red", solid(64, 48, RED)))
    # Inside the group the multiply layer has nothing to multiply with: plain grey shows.
    assert px(flatten(isolated), 5, 5) == GREY
    mult2 = PixelLayer("mult", solid(64, 48, GREY), blend=BlendMode.MULTIPLY)
    direct = doc_with(mult2, PixelLayer("red", solid(64, 48, RED)))
    assert px(flatten(direct), 5, 5) == (128, 0, 0, 255)


def test_group_mode_and_opacity_apply_to_the_group_as_one_layer() -> None:
    a = PixelLayer("a", solid(64, 48, GREY))
    b = PixelLayer("b", solid(64, 48, GREY), opacity=0.5)
    group = GroupLayer("g", [b, a], blend=BlendMode.MULTIPLY, opacity=0.5)
    doc = doc_with(group, PixelLayer("white", solid(64, 48, WHITE)))
    # Group content is opaque grey; multiply with white gives grey; at 50% over white:
    # 255·0.5 + 128·0.5 = 191.5.
    r, g, bl, alpha = px(flatten(doc), 10, 10)
    assert alpha == 255 and abs(r - 191.5) <= 1 and r == g == bl


def test_offsets_place_surfaces_in_document_space() -> None:
    dot = np.zeros((3, 3, 4), np.uint8)
    dot[1, 1] = RED
    layer = PixelLayer("dot", TiledSurface.from_array(dot), x=300, y=-1)
    doc = doc_with(layer, w=600, h=300)
    out = flatten(doc)
    ys, xs = np.nonzero(out[..., 3])
    assert (ys.tolist(), xs.tolist()) == ([0], [301])
    # Groups carry their children.
    group = GroupLayer("g", x=-290, y=20)
    doc.root.remove(layer)
    group.append(layer)
    doc._raw_insert(group)
    assert document_offset(layer) == (10, 19)
    ys, xs = np.nonzero(flatten(doc)[..., 3])
    assert (ys.tolist(), xs.tolist()) == ([20], [11])



def test_document_bounds_include_the_offsets_of_nested_groups() -> None:
    """Regression (issue 11): ``document_bounds`` used the layer's own x/y only."""
    dot = np.zeros((4, 5, 4), np.uint8)
    dot[1:3, 2:4] = RED
    layer = PixelLayer("dot", TiledSurface.from_array(dot), x=3, y=4)
    inner = GroupLayer("inner", [layer], x=10, y=-2)
    doc = doc_with(GroupLayer("outer", [inner], x=100, y=50), w=300, h=200)
    bounds = layer.document_bounds()
    assert bounds == Rect(3 + 10 + 100 + 2, 4 - 2 + 50 + 1, 2, 2)
    ys, xs = np.nonzero(flatten(doc)[..., 3])  # where the compositor puts the pixels
    assert (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) == (
        bounds.x, bounds.y, bounds.w, bounds.h)


def test_offset_across_tile_boundaries_matches_shifted_array() -> None:
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (300, 400, 4), dtype=np.uint8)
    doc = doc_with(PixelLayer("p", TiledSurface.from_array(pixels), x=130, y=77), w=700, h=500)
    out = flatten(doc)
    expect = np.zeros_like(out)
    expect[77:377, 130:530] = pixels
    visible = expect[..., 3] > 0
    assert np.array_equal(out[..., 3], expect[..., 3])
    assert np.array_equal(out[visible], expect[visible])


def test_opacity_scales_the_source_alpha() -> None:
    layer = PixelLayer("red", solid(64, 48, RED), opacity=0.25)
    assert px(flatten(doc_with(layer)), 1, 1) == (255, 0, 0, 64)
    over_white = doc_with(
        PixelLayer("red", solid(64, 48, RED), opacity=0.25), PixelLayer("w", solid(64, 48, WHITE))
    )
    assert px(flatten(over_white), 1, 1) == (255, 191, 191, 255)


def test_invisible_layers_and_groups_are_skipped() -> None:
    hidden = PixelLayer("hidden", solid(64, 48, RED), visible=False)
    inner = PixelLayer("inner", solid(64, 48, RED))
    doc = doc_with(
        hidden, GroupLayer("g", [inner], visible=False), PixelLayer("w", solid(64, 48, WHITE))
    )
    assert px(flatten(doc), 3, 3) == WHITE


def test_non_image_roles_are_left_out_of_flatten() -> None:
    layers = [
        PixelLayer("mask", solid(64, 48, RED), role=Role.INPAINT_MASK),
        PixelLayer("region", solid(64, 48, RED), role=Role.REGION, prompt="a cat"),
        PixelLayer("control", solid(64, 48, (0, 0, 0, 255)), role=Role.CONTROL),
        PixelLayer("gen", solid(32, 48, GREY), role=Role.GENERATED),
        PixelLayer("paint", solid(64, 48, WHITE)),
    ]
    doc = doc_with(*layers)
    out = flatten(doc)
    assert px(out, 10, 10) == GREY and px(out, 40, 10) == WHITE
    # The planner's way to see one control layer alone over white.
    sketch = np.zeros((48, 64, 4), np.uint8)
    sketch[10:20, 10:20] = (0, 0, 0, 255)
    control = PixelLayer("sketch", TiledSurface.from_array(sketch), role=Role.CONTROL)
    doc._raw_insert(GroupLayer("ctl", [control]))
    alone = flatten(doc, include=only(control), background=WHITE)
    assert px(alone, 15, 15) == (0, 0, 0, 255) and px(alone, 40, 40) == WHITE


def test_flatten_rect_and_outside_document() -> None:
    doc = doc_with(PixelLayer("w", solid(200, 200, WHITE), x=-50, y=-50), w=100, h=80)
    out = flatten(doc, Rect(-10, 70, 30, 20))
    assert out.shape == (20, 30, 4)
    assert out[:, :10, 3].max() == 0  # left of the document
    assert out[10:, :, 3].max() == 0  # below the document
    assert out[:10, 10:, 3].min() == 255


def test_flatten_layers_composites_loose_layers() -> None:
    a = PixelLayer("a", solid(10, 10, GREY), blend=BlendMode.MULTIPLY)
    b = PixelLayer("b", solid(10, 10, RED))
    out = flatten_layers([a, b], Rect(0, 0, 10, 10))
    assert px(out, 0, 0) == (128, 0, 0, 255)
    assert a.parent is None and b.parent is None


def test_clearing_ops_affect_the_whole_canvas() -> None:
    clip = np.zeros((48, 64, 4), np.uint8)
    clip[:10, :10] = (0, 0, 0, 255)
    doc = doc_with(
        PixelLayer("clip", TiledSurface.from_array(clip), blend=BlendMode.DST_IN),
        PixelLayer("w", solid(600, 400, WHITE)),
        w=600,
        h=400,
    )
    out = flatten(doc)
    assert out[:10, :10, 3].min() == 255
    assert out[10:, :, 3].max() == 0 and out[300:, 300:, 3].max() == 0


# -- Compositor ---------------------------------------------------------------------------
def paint(doc: Document, layer: PixelLayer, rect: Rect, rng: np.random.Generator) -> None:
    """Write random pixels into ``rect`` (document space) of ``layer`` and announce it."""
    ox, oy = document_offset(layer)
    pixels = rng.integers(0, 256, (rect.h, rect.w, 4), dtype=np.uint8)
    pixels[..., 3] = np.where(rng.random((rect.h, rect.w)) < 0.3, 255, pixels[..., 3])
    layer.surface.write(rect.x - ox, rect.y - oy, pixels)
    doc.notify_pixels(layer, rect)


def assert_matches_flatten(comp: Compositor, doc: Document) -> np.ndarray:
    """The cached composite equals a from-scratch one (flatten, or a fresh compositor when
    overlays are shown)."""
    got = comp.render()
    want = Compositor(doc, overlays=True).render() if comp.overlays else flatten(doc)
    diff = np.abs(got.astype(int) - want.astype(int))
    # Projections regroup source-over (associative in exact arithmetic): float32 rounding
    # can move a channel by one step.
    assert diff.max() <= 1, f"compositor differs from flatten by {diff.max()}"
    return got


def test_compositor_tile_and_dirty_rect_of_a_dab() -> None:
    rng = np.random.default_rng(1)
    base = PixelLayer("base", solid(600, 500, WHITE))
    active = PixelLayer("active")
    top = PixelLayer("top", solid(600, 100, GREY), opacity=0.5)
    doc = doc_with(top, active, base, w=600, h=500)
    doc.set_active(active)
    comp = Compositor(doc)
    assert comp.take_dirty() == []
    before = comp.render()
    dab = Rect(240, 40, 30, 30)  # straddles a tile edge, under the top layer
    paint(doc, active, dab, rng)
    dirty = comp.take_dirty()
    assert dirty and all(dab.contains(r) for r in dirty)
    assert sum(r.area for r in dirty) == dab.area
    after = assert_matches_flatten(comp, doc)
    changed = np.any(after != before, axis=2)
    assert changed[dab.slices()].any() and not changed[~_mask(doc, [dab])].any()
    assert comp.tile(0, 0).shape == (256, 256, 4)
    assert comp.take_dirty() == []


def _mask(doc: Document, rects: list[Rect]) -> np.ndarray:
    m = np.zeros((doc.height, doc.width), bool)
    for r in rects:
        r = r.intersect(doc.rect)
        if not r.empty:
            m[r.slices()] = True
    return m


def test_compositor_overlays_show_non_image_layers() -> None:
    mask = PixelLayer("mask", solid(64, 48, WHITE), role=Role.INPAINT_MASK)
    doc = doc_with(mask, PixelLayer("w", solid(64, 48, WHITE)))
    plain = Compositor(doc).render()
    shown = Compositor(doc, overlays=True).render()
    assert px(plain, 5, 5) == WHITE
    r, g, b, a = px(shown, 5, 5)
    assert a == 255 and r == 255 and g < 200 and b < 200
    assert px(flatten(doc), 5, 5) == WHITE


def test_compositor_follows_document_reset() -> None:
    doc = doc_with(PixelLayer("w", solid(64, 48, WHITE)))
    comp = Compositor(doc)
    comp.render()
    doc.root.children[0].surface.clear()  # type: ignore[attr-defined]
    doc.width = 100
    doc.changed.emit(DocumentReset())
    assert comp.take_dirty() and comp.render().shape == (48, 100, 4)
    assert comp.render()[..., 3].max() == 0


# A random edit script for the property test.
MODES = [
    BlendMode.NORMAL,
    BlendMode.MULTIPLY,
    BlendMode.SCREEN,
    BlendMode.DIFFERENCE,
    BlendMode.HUE,
    BlendMode.DST_IN,
    BlendMode.DST_OUT,
    BlendMode.SRC_ATOP,
    BlendMode.PLUS,
]
ops = st.one_of(
    st.tuples(
        st.just("paint"),
        st.integers(0, 99),
        st.integers(-40, 900),
        st.integers(-40, 700),
        st.integers(1, 90),
        st.integers(1, 90),
    ),
    st.tuples(st.just("visible"), st.integers(0, 99)),
    st.tuples(st.just("opacity"), st.integers(0, 99), st.sampled_from([0.0, 0.3, 1.0])),
    st.tuples(st.just("blend"), st.integers(0, 99), st.sampled_from(MODES)),
    st.tuples(st.just("move"), st.integers(0, 99), st.integers(-300, 700), st.integers(-300, 500)),
    st.tuples(st.just("restack"), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("active"), st.integers(0, 99)),
    st.tuples(st.just("role"), st.integers(0, 99), st.sampled_from(list(Role))),
    st.tuples(st.just("remove"), st.integers(0, 99)),
    st.tuples(
        st.just("check"),
    ),
)


def _build_random_doc(rng: np.random.Generator) -> Document:
    doc = Document(900, 700)  # 4×3 tiles, partial at the right and bottom
    layers: list[Layer] = []
    for i in range(4):
        layer = PixelLayer(f"p{i}", x=int(rng.integers(-20, 20)), y=int(rng.integers(-20, 20)))
        layers.append(layer)
    inner = PixelLayer("inner", blend=BlendMode.MULTIPLY)
    region = PixelLayer("region", role=Role.REGION, prompt="sky")
    group = GroupLayer("group", [inner, region, PixelLayer("inner2")], x=7, y=-5)
    mask = PixelLayer("mask", role=Role.INPAINT_MASK)
    for layer in [*layers[:2], group, *layers[2:], mask]:
        doc._raw_insert(layer)
    for layer in doc.pixel_layers():
        paint(doc, layer, Rect(int(rng.integers(0, 780)), int(rng.integers(0, 600)), 120, 90), rng)
    doc.set_active(layers[1])
    return doc


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(ops, min_size=1, max_size=14),
    seed=st.integers(0, 2**16),
    overlays=st.booleans(),
)
def test_compositor_matches_flatten_after_random_edits(
    script: list[tuple], seed: int, overlays: bool
) -> None:
    rng = np.random.default_rng(seed)
    doc = _build_random_doc(rng)
    comp = Compositor(doc, overlays=overlays)
    shown = assert_matches_flatten(comp, doc)
    comp.take_dirty()
    for op in [*script, ("check",)]:
        all_layers = list(doc.layers())
        pixel_layers = list(doc.pixel_layers())
        kind = op[0]
        if kind == "paint" and pixel_layers:
            layer = pixel_layers[op[1] % len(pixel_layers)]
            paint(doc, layer, Rect(op[2], op[3], op[4], op[5]), rng)
        elif kind == "visible" and all_layers:
            layer = all_layers[op[1] % len(all_layers)]
            doc._raw_set(layer, "visible", not layer.visible)
        elif kind == "opacity" and all_layers:
            doc._raw_set(all_layers[op[1] % len(all_layers)], "opacity", op[2])
        elif kind == "blend" and all_layers:
            doc._raw_set(all_layers[op[1] % len(all_layers)], "blend", op[2])
        elif kind == "move" and all_layers:
            layer = all_layers[op[1] % len(all_layers)]
            doc._raw_set(layer, "x", op[2])
            doc._raw_set(layer, "y", op[3])
        elif kind == "restack" and all_layers:
            layer = all_layers[op[1] % len(all_layers)]
            doc._raw_remove(layer)
            groups = [g for g in [doc.root, *doc.layers()] if isinstance(g, GroupLayer)]
            target = groups[op[2] % len(groups)]
            doc._raw_insert(layer, target, op[2] % (len(target.children) + 1))
        elif kind == "active" and all_layers:
            doc.set_active(all_layers[op[1] % len(all_layers)])
        elif kind == "role" and pixel_layers:
            doc._raw_set(pixel_layers[op[1] % len(pixel_layers)], "role", op[2])
        elif kind == "remove" and len(all_layers) > 1:
            doc._raw_remove(all_layers[op[1] % len(all_layers)])
        if kind != "check" and rng.random() < 0.6:
            continue  # let several edits pile up before looking
        dirty = comp.take_dirty()
        now = assert_matches_flatten(comp, doc)
        changed = np.any(now != shown, axis=2)
        assert not changed[~_mask(doc, dirty)].any(), f"a change outside the dirty rects after {op}"
        shown = now


@pytest.mark.parametrize("overlays", [False, True])
def test_compositor_painting_on_the_active_layer_keeps_projections_exact(overlays: bool) -> None:
    rng = np.random.default_rng(9)
    below = PixelLayer("below", solid(520, 400, (20, 120, 220, 255)))
    mid = PixelLayer("mid", blend=BlendMode.SCREEN)
    active = PixelLayer("active", opacity=0.8)
    above1 = PixelLayer("above1", solid(300, 300, (200, 10, 10, 120)), x=100)
    above2 = PixelLayer("above2", solid(300, 300, (0, 10, 10, 200)), y=50, opacity=0.7)
    mask = PixelLayer("mask", solid(100, 100, WHITE), role=Role.INPAINT_MASK, x=200, y=200)
    doc = doc_with(mask, above2, above1, active, mid, below, w=520, h=400)
    paint(doc, mid, Rect(0, 0, 520, 400), rng)
    doc.set_active(active)
    comp = Compositor(doc, overlays=overlays)
    comp.render()
    for i in range(12):
        paint(doc, active, Rect(int(rng.integers(0, 480)), int(rng.integers(0, 360)), 40, 40), rng)
        if i == 6:  # a non-associative layer above: the fallback path
            doc._raw_set(above1, "blend", BlendMode.DIFFERENCE)
        got = comp.render()
        want = flatten(doc) if not overlays else Compositor(doc, overlays=True).render()
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert comp._below, "painting on the active layer should have cached the projection below"


def test_compositor_notices_edits_to_layers_above_the_active_one() -> None:
    """The layers above the active one are kept converted between dabs (non-normal modes
    above): editing, moving or hiding them must still show."""
    rng = np.random.default_rng(21)
    below = PixelLayer("below", solid(520, 400, (90, 160, 30, 255)))
    active = PixelLayer("active")
    above = PixelLayer("above", blend=BlendMode.OVERLAY)
    top = PixelLayer("top", blend=BlendMode.DIFFERENCE, opacity=0.7)
    doc = doc_with(top, above, active, below, w=520, h=400)
    paint(doc, above, Rect(0, 0, 520, 400), rng)
    paint(doc, top, Rect(100, 50, 300, 300), rng)
    doc.set_active(active)
    comp = Compositor(doc)
    comp.render()

    def check() -> None:
        got = comp.render()
        assert np.abs(got.astype(int) - flatten(doc).astype(int)).max() <= 1

    for step in range(8):
        paint(doc, active, Rect(int(rng.integers(0, 400)), int(rng.integers(0, 300)), 60, 60), rng)
        check()
        if step == 2:
            paint(doc, above, Rect(0, 0, 520, 400), rng)
        elif step == 4:
            doc._raw_set(top, "x", 37)
        elif step == 5:
            doc._raw_set(above, "opacity", 0.4)
        elif step == 6:
            doc._raw_set(top, "blend", BlendMode.HUE)
        check()
    assert comp._sources, "the fallback path should have kept converted sources"

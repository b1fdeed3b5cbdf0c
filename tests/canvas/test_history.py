"""Undo/redo: every command goes both ways; merging; bounded memory; clean state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sfumato.canvas import editing
from sfumato.canvas.edits.commands import InvalidEditError, LayerLockedError
from sfumato.canvas.edits.document_commands import SetSelection
from sfumato.canvas.edits.pixel_commands import PutPixels, TilePatch
from sfumato.canvas.edits.property_commands import SetProperties
from sfumato.canvas.model.document import Document, PixelsChanged, SelectionChanged
from sfumato.canvas.model.history import Command, History, HistoryAction, HistoryBusyError
from sfumato.canvas.model.layers import ControlSettings, GroupLayer, Layer, PixelLayer, Role
from sfumato.canvas.model.tiles import TILE, TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.kinds import ControlKind


def _filled(w: int, h: int, rgba: tuple[int, int, int, int]) -> np.ndarray:
    px = np.empty((h, w, 4), np.uint8)
    px[...] = rgba
    return px


def _state(doc: Document) -> Any:
    """Everything a command could change, as comparable plain data."""
    def layer_state(layer: Layer) -> Any:
        base = (layer.name, layer.opacity, layer.visible, layer.locked, layer.blend, layer.x, layer.y)
        if isinstance(layer, GroupLayer):
            return ("group", base, [layer_state(c) for c in layer.children])
        assert isinstance(layer, PixelLayer)
        keys = sorted(layer.surface.tile_keys())
        pixels = tuple((k, layer.surface.tile(k).tobytes()) for k in keys)
        return ("pixels", base, layer.role, layer.prompt, layer.negative, layer.control,
                layer.generation, pixels)

    sel = None if doc.selection is None else doc.selection.tobytes()
    return ([layer_state(c) for c in doc.root.children], sel, doc.recipe)


@pytest.fixture
def doc() -> Document:
    d = Document(300, 200)
    bottom = PixelLayer("bottom", TiledSurface.from_array(_filled(300, 200, (0, 0, 255, 255))))
    top = PixelLayer("top", TiledSurface.from_array(_filled(100, 100, (255, 0, 0, 128)), 50, 50))
    group = GroupLayer("group", [PixelLayer("inner")])
    for layer in (bottom, group, top):
        d.root.insert(0, layer)
    d.history.clear()
    return d


def _layer(doc: Document, name: str) -> Any:
    layer = doc.find(name)
    assert layer is not None
    return layer


EDITS: dict[str, Callable[[Document], object]] = {
    "add": lambda d: editing.add_layer(d, PixelLayer("new"), index=1),
    "add_into_group": lambda d: editing.add_layer(d, PixelLayer("new"), _layer(d, "group"), 1),
    "remove": lambda d: editing.remove_layer(d, _layer(d, "top")),
    "remove_group": lambda d: editing.remove_layer(d, _layer(d, "group")),
    "reorder": lambda d: editing.move_layer(d, _layer(d, "top"), None, 2),
    "reparent": lambda d: editing.move_layer(d, _layer(d, "top"), _layer(d, "group"), 0),
    "duplicate": lambda d: editing.duplicate_layer(d, _layer(d, "top")),
    "duplicate_group": lambda d: editing.duplicate_layer(d, _layer(d, "group")),
    "rename": lambda d: editing.set_property(d, _layer(d, "top"), "name", "renamed"),
    "opacity": lambda d: editing.set_property(d, _layer(d, "top"), "opacity", 0.25),
    "visible": lambda d: editing.set_property(d, _layer(d, "top"), "visible", False),
    "locked": lambda d: editing.set_property(d, _layer(d, "top"), "locked", True),
    "blend": lambda d: editing.set_property(d, _layer(d, "top"), "blend", BlendMode.MULTIPLY),
    "offset": lambda d: editing.set_offset(d, _layer(d, "top"), 7, -3),
    "role": lambda d: editing.set_property(d, _layer(d, "top"), "role", Role.CONTROL),
    "prompt": lambda d: editing.set_properties(d, _layer(d, "top"), {"role": Role.REGION, "prompt": "a cat",
                                                               "negative": "dogs"}),
    "control": lambda d: editing.set_property(d,
        _layer(d, "top"), "control", ControlSettings(ControlKind.CANNY, 1.5, 0.1, 0.8)),
    "generation": lambda d: editing.set_property(d, _layer(d, "top"), "generation", {"seed": 3, "steps": 20}),
    "recipe": lambda d: editing.set_recipe(d, prompt="a castle", seed=42),
    "merge_down": lambda d: editing.merge_down(d,
        editing.add_layer(d, PixelLayer("m", TiledSurface.from_array(_filled(30, 30, (0, 255, 0, 255)), 5, 5)),
                    index=2)),
    "clear": lambda d: editing.clear_layer(d, _layer(d, "top")),
    "put_pixels": lambda d: editing.put_pixels(d, _layer(d, "bottom"), _filled(40, 30, (9, 8, 7, 255)), 280, 10),
    "put_pixels_masked": lambda d: editing.put_pixels(d,
        _layer(d, "bottom"), _filled(40, 30, (9, 8, 7, 255)), 10, 10,
        mask=np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(30, 40)),
    "put_pixels_over": lambda d: editing.put_pixels(d, _layer(d, "top"), _filled(40, 30, (9, 8, 7, 100)), 60, 60,
                                              over=True),
    "select": lambda d: editing.set_selection(d, np.pad(np.ones((20, 30), np.float32), ((5, 175), (7, 263)))),
    "select_twice": lambda d: (editing.set_selection(d, np.ones((200, 300), np.float32)),
                               editing.set_selection(d, np.full((200, 300), 0.25, np.float32))),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_command_undoes_and_redoes(doc: Document, name: str) -> None:
    before = _state(doc)
    EDITS[name](doc)
    after = _state(doc)
    assert after != before, f"{name} changed nothing"
    while doc.history.can_undo:
        doc.undo()
    assert _state(doc) == before
    while doc.history.can_redo:
        doc.redo()
    assert _state(doc) == after
    doc.undo()
    assert doc.history.can_redo


def test_merge_down_looks_the_same(doc: Document) -> None:
    top = _layer(doc, "top")
    editing.set_property(doc, top, "blend", BlendMode.MULTIPLY)
    editing.set_property(doc, top, "opacity", 0.7)
    # "top" is above "group"; move it right above "bottom" so it merges into paint.
    editing.move_layer(doc, top, None, 1)
    picture = flatten(doc)
    below = editing.merge_down(doc, top)
    assert below.name == "bottom"
    assert top.parent is None
    np.testing.assert_allclose(flatten(doc).astype(int), picture.astype(int), atol=1)
    doc.undo()
    assert top.parent is doc.root
    np.testing.assert_array_equal(flatten(doc), picture)


def test_a_duplicate_keeps_other_programs_attributes_in_its_own_dict(doc: Document) -> None:
    group = _layer(doc, "group")
    group.extra_attributes["krita:collapsed"] = "true"
    copy = editing.duplicate_layer(doc, group)
    assert copy.extra_attributes == {"krita:collapsed": "true"}
    copy.extra_attributes["krita:collapsed"] = "false"
    assert group.extra_attributes == {"krita:collapsed": "true"}


def test_merge_down_needs_a_pixel_layer_below(doc: Document) -> None:
    with pytest.raises(InvalidEditError, match="no pixel layer below"):
        editing.merge_down(doc, _layer(doc, "top"))  # the group is below it
    assert not doc.history.can_undo


def test_add_layer_makes_it_active_and_undo_restores_active(doc: Document) -> None:
    doc.set_active(_layer(doc, "bottom"))
    new = editing.add_layer(doc, PixelLayer("new"))
    assert doc.active is new
    doc.undo()
    assert doc.active is _layer(doc, "bottom")


def test_moving_the_active_layer_keeps_it_active(doc: Document) -> None:
    top = _layer(doc, "top")
    doc.set_active(top)
    editing.move_layer(doc, top, _layer(doc, "group"), 0)
    assert doc.active is top
    doc.undo()
    assert doc.active is top and top.parent is doc.root


def test_a_group_cannot_move_into_itself(doc: Document) -> None:
    group = _layer(doc, "group")
    with pytest.raises(InvalidEditError):
        editing.move_layer(doc, group, group, 0)
    assert group.parent is doc.root


def test_property_values_are_checked(doc: Document) -> None:
    top = _layer(doc, "top")
    for name, value in [("opacity", 1.5), ("opacity", float("nan")), ("x", 1.5), ("visible", 1),
                        ("blend", "svg:multiply"), ("bogus", 1)]:
        with pytest.raises(InvalidEditError):
            editing.set_property(doc, top, name, value)
    with pytest.raises(InvalidEditError, match="group"):
        editing.set_property(doc, _layer(doc, "group"), "prompt", "x")
    assert not doc.history.can_undo


def test_locked_layer_refuses_pixels_and_moves_but_can_be_unlocked(doc: Document) -> None:
    top = _layer(doc, "top")
    editing.set_property(doc, top, "locked", True)
    before = _state(doc)
    with pytest.raises(LayerLockedError, match="unlock"):
        editing.clear_layer(doc, top)
    with pytest.raises(LayerLockedError):
        editing.set_offset(doc, top, 1, 1)
    assert _state(doc) == before
    editing.set_property(doc, top, "locked", False)
    editing.set_offset(doc, top, 1, 1)
    assert (top.x, top.y) == (1, 1)


def test_clear_respects_selection(doc: Document) -> None:
    bottom = _layer(doc, "bottom")
    sel = np.zeros((200, 300), np.float32)
    sel[:, :100] = 1.0
    sel[:, 100:150] = 0.5
    editing.set_selection(doc, sel)
    editing.clear_layer(doc, bottom)
    px = bottom.surface.read(doc.rect)
    assert (px[:, :100, 3] == 0).all()
    assert (px[:, 100:150, 3] == 128).all()
    assert (px[:, 150:, 3] == 255).all()


def test_slider_drag_merges_into_one_step(doc: Document) -> None:
    top = _layer(doc, "top")
    drag = object()
    for value in (0.9, 0.8, 0.5, 0.3):
        editing.set_property(doc, top, "opacity", value, merge_id=drag)
    assert doc.history.undo_count == 1
    assert doc.history.undo_label == "Layer Opacity"
    editing.set_property(doc, top, "opacity", 0.1, merge_id=object())  # a new drag: a new step
    assert doc.history.undo_count == 2
    doc.undo()
    assert top.opacity == 0.3
    doc.undo()
    assert top.opacity == 1.0
    doc.redo()
    assert top.opacity == 0.3


def test_without_merge_id_nothing_merges(doc: Document) -> None:
    top = _layer(doc, "top")
    editing.set_property(doc, top, "opacity", 0.5)
    editing.set_property(doc, top, "opacity", 0.4)
    assert doc.history.undo_count == 2


def test_recipe_typing_merges(doc: Document) -> None:
    typing = object()
    for text in ("a", "a c", "a cat"):
        editing.set_recipe(doc, merge_id=typing, prompt=text)
    assert doc.history.undo_count == 1 and doc.recipe.prompt == "a cat"
    doc.undo()
    assert doc.recipe.prompt == ""
    with pytest.raises(InvalidEditError, match="unknown generation setting"):
        editing.set_recipe(doc, colour="red")


class _Blob(Command):
    """A command holding ``size`` bytes, for bound tests."""

    def __init__(self, size: int, log: list[str], name: str) -> None:
        self.data = np.zeros(size, np.uint8)
        self.log = log
        self.label = name

    def redo(self) -> None:
        self.log.append("+" + self.label)

    def undo(self) -> None:
        self.log.append("-" + self.label)

    def nbytes(self) -> int:
        return self.data.nbytes


def test_memory_bound_drops_oldest() -> None:
    history = History(max_bytes=3000, max_steps=100)
    log: list[str] = []
    for i in range(5):
        history.execute(_Blob(1000, log, f"c{i}"))
    assert history.nbytes() <= 3000
    assert history.undo_labels() == ["c4", "c3", "c2"]
    while history.undo():
        pass
    assert log[-3:] == ["-c4", "-c3", "-c2"]


def test_step_bound_drops_oldest_and_newest_is_always_kept() -> None:
    history = History(max_bytes=10, max_steps=2)
    log: list[str] = []
    for i in range(4):
        history.execute(_Blob(1000, log, f"c{i}"))
    assert history.undo_labels() == ["c3"]  # over the byte bound, but the last step stays
    history.configure(max_bytes=10_000, max_steps=5)
    for i in range(4, 10):
        history.execute(_Blob(10, log, f"c{i}"))
    assert history.undo_count == 5
    with pytest.raises(ValueError):
        History(max_steps=0)


def test_clean_state() -> None:
    doc = Document(64, 64)
    assert doc.history.is_clean
    layer = editing.add_layer(doc, PixelLayer("a"))
    assert not doc.history.is_clean
    doc.history.mark_clean()
    assert doc.history.is_clean
    editing.set_property(doc, layer, "opacity", 0.5)
    assert not doc.history.is_clean
    doc.undo()
    assert doc.history.is_clean
    doc.undo()
    assert not doc.history.is_clean
    doc.redo()
    assert doc.history.is_clean
    # A merge into the saved step makes a new state: it must not merge, and is dirty.
    drag = object()
    editing.set_property(doc, layer, "opacity", 0.5, merge_id=drag)
    editing.set_property(doc, layer, "opacity", 0.4, merge_id=drag)
    assert not doc.history.is_clean
    doc.undo()
    assert doc.history.is_clean
    # Branching away from the saved state makes it unreachable.
    doc.undo()
    editing.add_layer(doc, PixelLayer("b"))
    assert not doc.history.is_clean
    doc.undo()
    assert not doc.history.is_clean


def test_clean_survives_dropping_old_steps() -> None:
    history = History(max_steps=2)
    log: list[str] = []
    history.execute(_Blob(1, log, "a"))
    history.mark_clean()
    history.execute(_Blob(1, log, "b"))
    history.execute(_Blob(1, log, "c"))  # drops "a": the clean state is now the base
    history.undo()
    history.undo()
    assert history.is_clean


def test_history_events_and_labels(doc: Document) -> None:
    seen: list[HistoryAction] = []
    doc.history.changed.connect(lambda e: seen.append(e.action))
    editing.set_property(doc, _layer(doc, "top"), "name", "x")
    doc.undo()
    doc.redo()
    doc.history.mark_clean()
    assert seen == [HistoryAction.EXECUTE, HistoryAction.UNDO, HistoryAction.REDO, HistoryAction.CLEAN]
    assert doc.history.undo_label == "Rename Layer"
    doc.undo()
    assert doc.history.redo_label == "Rename Layer" and doc.history.redo_labels() == ["Rename Layer"]


def test_failed_command_is_not_pushed(doc: Document) -> None:
    with pytest.raises(InvalidEditError):
        editing.remove_layer(doc, PixelLayer("stranger"))
    assert not doc.history.can_undo


def test_hold_blocks_editing_until_released() -> None:
    history = History()
    owner = object()
    history.hold(owner)
    with pytest.raises(HistoryBusyError):
        history.undo()
    with pytest.raises(HistoryBusyError):
        history.execute(_Blob(1, [], "x"))
    history.release(owner)
    history.execute(_Blob(1, [], "x"))


def test_pixel_commands_store_only_changed_pixels() -> None:
    doc = Document(4096, 4096)
    layer = PixelLayer("big", TiledSurface.from_array(_filled(4096, 4096, (10, 20, 30, 255))))
    doc.root.append(layer)
    editing.put_pixels(doc, layer, _filled(10, 10, (200, 0, 0, 255)), 250, 250)  # straddles 4 tiles
    assert doc.history.nbytes() == 10 * 10 * 4
    events: list[object] = []
    doc.changed.connect(events.append)
    doc.undo()
    assert (layer.surface.read(doc.rect)[..., 0] == 10).all()
    assert [e.rect for e in events if isinstance(e, PixelsChanged)] == [
        layer.surface.bounds().__class__(250, 250, 10, 10)
    ]


def test_tile_patch_capture_on_new_tiles_stores_nothing_for_transparency() -> None:
    surface = TiledSurface()
    before = surface.snapshot()
    surface.write(TILE - 2, 0, _filled(4, 4, (1, 2, 3, 255)))
    patch = TilePatch.capture(before, surface)
    assert patch.nbytes() == 0 and patch.rect.area == 16
    patch.swap(surface)
    assert surface.tile_keys() == []
    patch.swap(surface)
    assert surface.read(patch.rect)[..., 3].min() == 255


def test_selection_commands_store_compactly(doc: Document) -> None:
    sel = np.zeros((200, 300), np.float32)
    sel[10:20, 30:50] = 0.5
    events: list[object] = []
    doc.changed.connect(events.append)
    doc.execute(SetSelection(doc, sel))
    assert doc.history.nbytes() == 0  # a constant crop
    assert any(isinstance(e, SelectionChanged) for e in events)
    editing.set_selection(doc, np.ones((200, 300), np.float32))
    doc.undo()
    np.testing.assert_array_equal(doc.selection, sel)
    with pytest.raises(InvalidEditError, match="does not match"):
        editing.set_selection(doc, np.ones((5, 5), np.float32))


def test_select_none_undoes_to_the_old_selection(doc: Document) -> None:
    sel = np.zeros((200, 300), np.float32)
    sel[50:60, 70:90] = np.linspace(0.1, 1, 20, dtype=np.float32)
    editing.set_selection(doc, sel)
    editing.set_selection(doc, None, label="Deselect")
    assert doc.selection is None and doc.history.undo_label == "Deselect"
    doc.undo()
    np.testing.assert_array_equal(doc.selection, sel)
    doc.redo()
    assert doc.selection is None


def test_put_pixels_checks_its_input(doc: Document) -> None:
    with pytest.raises(InvalidEditError, match="uint8"):
        PutPixels(doc, _layer(doc, "top"), np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(InvalidEditError):
        SetProperties(doc, _layer(doc, "top"), {})


@settings(max_examples=25, deadline=None)
@given(script=st.lists(st.tuples(st.sampled_from(["stroke", "erase", "put", "clear", "fill", "offset"]),
                                  st.integers(-40, 340), st.integers(-40, 240)), min_size=1, max_size=8))
def test_random_edits_undo_and_redo_byte_for_byte(script: list[tuple[str, int, int]]) -> None:
    from sfumato.canvas.paint.brush import Brush, BrushMode, Stroke
    from sfumato.canvas.paint.fill import flood_fill

    rng = np.random.default_rng(len(script))
    doc = Document(300, 200)
    layer = PixelLayer("l", TiledSurface.from_array(rng.integers(0, 256, (200, 300, 4), dtype=np.uint8)))
    doc.root.append(layer)

    def snapshot() -> Any:
        return (layer.x, layer.y, {k: layer.surface.tile(k).tobytes() for k in layer.surface.tile_keys()})

    states = [snapshot()]
    for kind, x, y in script:
        if kind in ("stroke", "erase"):
            mode = BrushMode.PAINT if kind == "stroke" else BrushMode.ERASE
            with Stroke(doc, layer, Brush(size=23, hardness=0.5, mode=mode)) as stroke:
                stroke.add_point(x, y, 0.7)
                stroke.add_point(x + 37.3, y + 11.6, 1.0)
            if not doc.history.can_undo or doc.history.undo_count < len(states):
                continue  # a stroke entirely off the document changes nothing
        elif kind == "put":
            editing.put_pixels(doc, layer, rng.integers(0, 256, (17, 29, 4), dtype=np.uint8), x, y)
        elif kind == "clear":
            editing.clear_layer(doc, layer)
        elif kind == "fill":
            if flood_fill(doc, layer, x % 300, y % 200, (1, 2, 3), tolerance=0.3) is None:
                continue
        else:
            editing.set_offset(doc, layer, x // 10, y // 10)
        states.append(snapshot())
    assert doc.history.undo_count == len(states) - 1
    for expected in reversed(states[:-1]):
        doc.undo()
        assert snapshot() == expected
    for expected in states[1:]:
        doc.redo()
        assert snapshot() == expected


def test_group_makes_one_undo_step_and_rolls_back_on_error(doc: Document) -> None:
    top = _layer(doc, "top")
    before = _state(doc)
    with doc.history.group("Accept Result"):
        new = editing.add_layer(doc, PixelLayer("result"))
        editing.set_property(doc, new, "opacity", 0.5)
        editing.set_property(doc, top, "visible", False)
        with pytest.raises(HistoryBusyError):
            doc.undo()
    assert doc.history.undo_labels() == ["Accept Result"]
    doc.undo()
    assert _state(doc) == before
    doc.redo()
    assert new.parent is doc.root and not top.visible
    doc.undo()
    with pytest.raises(InvalidEditError), doc.history.group("Broken"):
        editing.set_property(doc, top, "name", "half done")
        editing.set_property(doc, top, "opacity", 7.0)
    assert _state(doc) == before and doc.history.undo_count == 0


def test_removed_layers_count_towards_history_memory(doc: Document) -> None:
    bottom = _layer(doc, "bottom")
    size = bottom.surface.nbytes()
    editing.remove_layer(doc, bottom)
    assert doc.history.nbytes() == size  # the history alone keeps its pixels alive
    doc.undo()
    assert doc.history.nbytes() == 0  # back in the document: the document holds them
    editing.add_layer(doc, PixelLayer("x", TiledSurface.from_array(_filled(10, 10, (1, 1, 1, 255)))))
    doc.undo()
    assert doc.history.nbytes() == TILE * TILE * 4

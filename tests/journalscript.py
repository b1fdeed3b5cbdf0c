"""A random, reproducible script of edits through the document API, for the journal tests.

``run_script(doc, seed, n)`` performs ``n`` commands (strokes, fills, layer edits, property
drags that merge, recipe and selection edits, undo and redo, saves) chosen by ``seed``;
``fingerprint(doc)`` is everything recovery must restore byte for byte. Also a program:
``python journalscript.py FOLDER SEED N MODE AT`` journals into FOLDER, prints
``committed K W`` after command K once its records are on disk (W: records written), and
SIGKILLs itself as ``MODE`` says (see :func:`_child`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.history import HistoryAction
from sfumato.canvas.model.layers import GroupLayer, PixelLayer, Role
from sfumato.canvas.paint.brush import Brush, Stroke

SIZE = (700, 520)
#: the history events the journal writes a record for
RECORDED = {HistoryAction.EXECUTE, HistoryAction.MERGE, HistoryAction.UNDO, HistoryAction.REDO, HistoryAction.CLEAN}


def new_document() -> Document:
    doc = Document(*SIZE)
    base = PixelLayer("Background")
    editing.add_layer(doc, base)
    editing.put_pixels(doc, base, np.full((SIZE[1], SIZE[0], 4), (250, 240, 230, 255), np.uint8))
    doc.history.clear()
    return doc


def _paint_layers(doc: Document) -> list[PixelLayer]:
    return [layer for layer in doc.pixel_layers() if not layer.locked]


def _stroke(doc: Document, rng: random.Random) -> None:
    layers = _paint_layers(doc)
    if not layers:
        return
    layer = rng.choice(layers)
    brush = Brush(size=rng.uniform(4, 60), color=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    stroke = Stroke(doc, layer, brush)
    x, y = rng.uniform(0, SIZE[0]), rng.uniform(0, SIZE[1])
    for _ in range(rng.randrange(2, 8)):
        x += rng.uniform(-120, 120)
        y += rng.uniform(-120, 120)
        stroke.add_point(x, y, rng.uniform(0.2, 1.0))
    stroke.end()


def _put(doc: Document, rng: random.Random) -> None:
    layers = _paint_layers(doc)
    if not layers:
        return
    w, h = rng.randrange(1, 300), rng.randrange(1, 300)
    pixels = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (h, w, 4), np.uint8)
    editing.put_pixels(doc, rng.choice(layers), pixels, rng.randrange(-50, SIZE[0]), rng.randrange(-50, SIZE[1]))


def _add(doc: Document, rng: random.Random) -> None:
    if rng.random() < 0.2:
        editing.add_layer(doc, GroupLayer(f"Group {rng.randrange(100)}"))
        return
    role = rng.choice([Role.PAINT, Role.PAINT, Role.REGION, Role.INPAINT_MASK, Role.CONTROL])
    layer = PixelLayer(f"Layer {rng.randrange(1000)}", role=role, prompt="a red fox" if role is Role.REGION else "")
    parent = rng.choice([g for g in doc.root.walk() if isinstance(g, GroupLayer)])
    editing.add_layer(doc, layer, parent if parent is not doc.root else None, rng.randrange(len(parent.children) + 1))


def _remove(doc: Document, rng: random.Random) -> None:
    layers = list(doc.layers())
    if len(layers) > 1:
        editing.remove_layer(doc, rng.choice(layers))


def _move(doc: Document, rng: random.Random) -> None:
    layers = [layer for layer in doc.layers() if not layer.is_group]
    if len(layers) > 1:
        layer = rng.choice(layers)
        editing.move_layer(doc, layer, None, rng.randrange(len(doc.root.children)))


def _opacity_drag(doc: Document, rng: random.Random) -> None:
    layers = list(doc.layers())
    layer = rng.choice(layers)
    drag = object()
    for _ in range(rng.randrange(1, 4)):
        editing.set_property(doc, layer, "opacity", round(rng.random(), 3), merge_id=drag)


def _props(doc: Document, rng: random.Random) -> None:
    layer = rng.choice(list(doc.layers()))
    name, value = rng.choice([("visible", rng.random() < 0.5), ("name", f"n{rng.randrange(99)}"),
                              ("x", rng.randrange(-40, 40)), ("locked", False)])
    editing.set_property(doc, layer, name, value)


def _duplicate(doc: Document, rng: random.Random) -> None:
    layers = [layer for layer in doc.pixel_layers()]
    if layers:
        editing.duplicate_layer(doc, rng.choice(layers))


def _merge_down(doc: Document, rng: random.Random) -> None:
    for layer in doc.pixel_layers():
        parent, index = doc.index_of(layer)
        below = parent.children[index + 1] if index + 1 < len(parent.children) else None
        if isinstance(below, PixelLayer) and not below.locked and not layer.locked and rng.random() < 0.5:
            editing.merge_down(doc, layer)
            return


def _clear(doc: Document, rng: random.Random) -> None:
    layers = _paint_layers(doc)
    if layers:
        editing.clear_layer(doc, rng.choice(layers))


def _recipe(doc: Document, rng: random.Random) -> None:
    editing.set_recipe(doc, prompt=rng.choice(["a fox", "a castle at dusk", "still life"]), seed=rng.randrange(1000))


def _select(doc: Document, rng: random.Random) -> None:
    if rng.random() < 0.3:
        editing.set_selection(doc, None)
        return
    cover = np.zeros((SIZE[1], SIZE[0]), np.float32)
    x, y = rng.randrange(SIZE[0] - 50), rng.randrange(SIZE[1] - 50)
    cover[y : y + rng.randrange(10, 200), x : x + rng.randrange(10, 200)] = rng.choice([1.0, 0.5])
    editing.set_selection(doc, cover)


def _undo(doc: Document, rng: random.Random) -> None:
    for _ in range(rng.randrange(1, 4)):
        doc.undo()


def _redo(doc: Document, rng: random.Random) -> None:
    doc.redo()


def _save(doc: Document, rng: random.Random) -> None:
    doc.history.mark_clean()


ACTIONS: list[tuple[float, Callable[[Document, random.Random], None]]] = [
    (5, _stroke), (3, _put), (2, _add), (1, _remove), (1, _move), (2, _opacity_drag), (1, _props),
    (1, _duplicate), (1, _merge_down), (0.5, _clear), (1, _recipe), (1, _select), (2, _undo),
    (1, _redo), (0.3, _save),
]


def run_script(doc: Document, seed: int, n: int, after: Callable[[int], None] | None = None) -> None:
    rng = random.Random(seed)
    weights = [w for w, _ in ACTIONS]
    for i in range(n):
        _, action = rng.choices(ACTIONS, weights)[0]
        action(doc, rng)
        if after is not None:
            after(i + 1)


def fingerprint(doc: Document) -> dict[str, object]:
    """Pixels (every tile's bytes), tree, properties, recipe, selection, history position."""

    def node(layer: object) -> object:
        if isinstance(layer, GroupLayer):
            return ("group", layer.name, layer.opacity, layer.visible, layer.locked, layer.blend, layer.x, layer.y,
                    [node(c) for c in layer.children])
        assert isinstance(layer, PixelLayer)
        s = layer.surface
        tiles = {k: hashlib.sha1(s.tile(k).tobytes()).hexdigest() for k in sorted(s.tile_keys())
                 if s.tile(k)[..., 3].any()}
        return ("pixel", layer.name, layer.opacity, layer.visible, layer.locked, layer.blend, layer.x, layer.y,
                layer.role, layer.prompt, layer.negative, layer.control, tiles)

    sel = doc.selection
    return {
        "size": (doc.width, doc.height),
        "tree": node(doc.root),
        "active": doc.active.name if doc.active is not None else None,
        "recipe": dataclasses.asdict(doc.recipe),
        "selection": None if sel is None else hashlib.sha1(np.ascontiguousarray(sel).tobytes()).hexdigest(),
        "undo": doc.history.undo_labels(),
        "redo": doc.history.redo_labels(),
        "clean": doc.history.is_clean,
    }


def _child(folder: str, seed: int, n: int, mode: str, at: float) -> None:
    """See the module docstring; ``mode`` is ``after`` (kill after command ``at``),
    ``torn`` (tear the first record of the first command after ``at``) or ``timer`` (kill
    ``at`` seconds after the start, wherever that falls)."""
    import threading

    from sfumato.canvas.recovery import journal as journal_module
    from sfumato.canvas.recovery.journal import Journal

    doc = new_document()
    journal = Journal(doc, Path(folder), name="scripted")
    journal.flush()
    command = [1]

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "timer":
        threading.Timer(at, die).start()
    if mode == "torn":
        real_encode = journal_module._encode

        def tearing_encode(header, tiles, selection):  # type: ignore[no-untyped-def]
            data = real_encode(header, tiles, selection)
            if command[0] > at and header["a"] != "snapshot":
                with open(Path(folder) / journal_module.JOURNAL_FILE, "ab") as f:
                    f.write(data[: max(1, len(data) // 2)])
                    f.flush()
                    os.fsync(f.fileno())
                die()
            return data

        journal_module._encode = tearing_encode

    def after(i: int) -> None:
        journal.flush()
        print(f"committed {i} {journal.written}", flush=True)
        command[0] = i + 1
        if mode == "after" and i >= at:
            die()

    run_script(doc, seed, n, after)
    die()


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))

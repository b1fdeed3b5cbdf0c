"""Crash recovery: find the journals of documents that were not closed, and replay them.

Journals live in one folder each under a recovery root (the program passes
:func:`sfumato.vocabulary.config.recovery_dir`); :mod:`sfumato.canvas.recovery.journal` writes them.
:func:`list_recoverable` finds the ones whose owning process is gone (their lock is
free) and that hold changes since the last save; :func:`recover` replays one onto its
snapshot and returns the document — pixels, tree, recipe, selection — exactly as it was
at the last record on disk, with its undo history rebuilt (undo steps back through the
recovered changes) and the history position the artist had.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sfumato.canvas.model.document import (
    Document,
    PixelsChanged,
    RecipeChanged,
    SelectionChanged,
    StructureChanged,
)
from sfumato.canvas.model.history import Command
from sfumato.canvas.model.layers import Layer, PixelLayer, document_offset
from sfumato.canvas.model.tiles import TILE, TileKey, tile_rect
from sfumato.canvas.recovery.journal import JOURNAL_FILE, LOCK_FILE, META_FILE
from sfumato.canvas.recovery.journal_format import (
    JournalFormatError,
    Record,
    decompress_array,
    read_journal,
)
from sfumato.canvas.recovery.journal_state import apply_structure, recipe_from

__all__ = ["JournalFormatError", "Recovered", "RecoveryEntry", "discard", "list_recoverable", "recover"]

_REPLAY_STEPS = 1_000_000  # the replayed history keeps everything; trimmed afterwards


@dataclass(frozen=True)
class RecoveryEntry:
    """A journal left behind by a process that ended without closing its document."""

    id: str
    folder: Path
    name: str
    path: str | None  # the file the document came from or was last saved as
    last_change: float  # seconds since the epoch
    changes_since_save: int
    torn: bool  # its last record was cut short (dropped on recovery)
    error: str | None = None  # why it cannot be recovered (then the other figures are 0)

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.last_change))


def list_recoverable(root: Path) -> list[RecoveryEntry]:
    """Journals under ``root`` whose process is gone and that hold unsaved changes, newest
    first. Journals with nothing unsaved are removed on the way (the file has it all)."""
    entries: list[RecoveryEntry] = []
    if not root.is_dir():
        return entries
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or _in_use(folder):
            continue
        entry = _entry(folder)
        if entry.error is None and entry.changes_since_save == 0:
            discard(folder)
            continue
        entries.append(entry)
    entries.sort(key=lambda e: e.last_change, reverse=True)
    return entries


def _entry(folder: Path) -> RecoveryEntry:
    name, path = _names(folder)
    try:
        contents = read_journal(folder / JOURNAL_FILE)
    except (OSError, JournalFormatError) as exc:
        return RecoveryEntry(folder.name, folder, name, path, _mtime(folder), 0, False, str(exc))
    changes = 0
    last = _mtime(folder)
    for record in contents.records:
        a = record.header["a"]
        last = float(record.header.get("t", last))
        if a == "snapshot":
            changes = 0 if record.header.get("clean") else 1
        elif a == "clean":
            changes = 0
        else:
            changes += 1
    return RecoveryEntry(folder.name, folder, name, path, last, changes, contents.torn)


def _mtime(folder: Path) -> float:
    try:
        return (folder / JOURNAL_FILE).stat().st_mtime
    except OSError:
        return 0.0


def _in_use(folder: Path) -> bool:
    """Whether a live process holds the journal's lock."""
    lock = folder / LOCK_FILE
    try:
        import fcntl
    except ImportError:  # Windows: trust the pid
        return _pid_alive(folder)
    try:
        handle = open(lock, "a+b")  # noqa: SIM115
    except OSError:
        return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        handle.close()  # closing releases a lock we took
    return False


def _pid_alive(folder: Path) -> bool:
    try:
        pid = int(json.loads((folder / META_FILE).read_text(encoding="utf-8"))["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return pid != os.getpid()


def discard(folder: Path) -> None:
    """Remove a journal's folder (the artist chose Discard, or it holds nothing unsaved)."""
    shutil.rmtree(folder, ignore_errors=True)


# -- replay --------------------------------------------------------------------------------
@dataclass
class Recovered:
    doc: Document
    name: str
    path: str | None
    records: int  # records replayed (the snapshot included)
    torn: bool  # a torn last record was dropped


def recover(folder: Path) -> Recovered:
    """Replay the journal in ``folder`` (see module docstring).

    Raises :class:`JournalFormatError` when it is not a journal this version reads, and
    ``OSError`` when it cannot be read.
    """
    contents = read_journal(folder / JOURNAL_FILE)
    if not contents.records or contents.records[0].header.get("a") != "snapshot":
        raise JournalFormatError(f"{folder / JOURNAL_FILE} does not begin with a snapshot; it cannot be replayed")
    replay = _Replay()
    for record in contents.records:
        replay.apply(record)
    replay.store.finish()
    assert replay.doc is not None
    replay.doc.history.configure(max_steps=200)
    name, path = _names(folder)
    return Recovered(replay.doc, name, path, len(contents.records), contents.torn)


def _names(folder: Path) -> tuple[str, str | None]:
    meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            meta = loaded
    return str(meta.get("name") or folder.name), meta.get("path")


class _Lazy:
    """A journaled tile kept compressed until someone needs its pixels (most versions of a
    tile in a long journal are only ever needed by an undo that may never come)."""

    __slots__ = ("_array", "blob")

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self._array: np.ndarray | None = None

    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = decompress_array(self.blob, (TILE, TILE, 4), np.uint8)
            self._array.setflags(write=False)
            self.blob = b""
        return self._array

    @property
    def nbytes(self) -> int:
        return len(self.blob) if self._array is None else self._array.nbytes


_Version = _Lazy | np.ndarray | None  # a tile version: compressed, pixels, or no tile


def _pixels(version: _Version) -> np.ndarray | None:
    return version.array() if isinstance(version, _Lazy) else version


class _TileStore:
    """Where a replay's tiles go: kept as versions (still compressed) while replaying, put
    into the surfaces once at the end, and straight into them afterwards (undo, redo)."""

    def __init__(self) -> None:
        self.pending: dict[tuple[int, TileKey], tuple[PixelLayer, _Version]] | None = {}

    def get(self, layer: PixelLayer, key: TileKey) -> _Version:
        if self.pending is not None and (layer.id, key) in self.pending:
            return self.pending[(layer.id, key)][1]
        return layer.surface.frozen_tile(key)

    def put(self, layer: PixelLayer, key: TileKey, version: _Version) -> None:
        if self.pending is not None:
            self.pending[(layer.id, key)] = (layer, version)
        else:
            layer.surface.put_tile(key, _pixels(version))

    def finish(self) -> None:
        """Put the final version of every tile into its surface, decompressing them on a
        few threads (zlib releases the GIL: recovery time scales with the cores)."""
        pending, self.pending = self.pending, None
        items = list((pending or {}).items())
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            arrays = list(pool.map(lambda item: _pixels(item[1][1]), items))
        for ((_, key), (layer, _)), array in zip(items, arrays):
            layer.surface.put_tile(key, array)


_Tile = tuple[PixelLayer, TileKey, _Version]


class _Replay:
    def __init__(self) -> None:
        self.doc: Document | None = None
        self.layers: dict[int, Layer] = {}
        self.structure: dict[str, Any] | None = None
        self.store = _TileStore()

    def apply(self, record: Record) -> None:
        h = record.header
        action = h["a"]
        if action == "snapshot":
            self._snapshot(record)
            return
        doc = self.doc
        assert doc is not None
        history = doc.history
        with doc.changed.block():
            if action in ("undo", "redo"):
                (history.undo if action == "undo" else history.redo)()
            step = self._step(record)
            if action == "execute":
                history.record(step)
            elif action == "merge":
                step.merges = True
                history.record(step)
            elif action == "clean":
                history.mark_clean()
            # undo/redo: the history made the change; the record's own values (applied by
            # _step) agree, and win should a trimmed history have lost a step.

    def _snapshot(self, record: Record) -> None:
        h = record.header
        width, height = h["size"]
        doc = Document(int(width), int(height))
        doc.history.configure(max_steps=_REPLAY_STEPS, max_bytes=1 << 62)
        self.doc, self.layers = doc, {}
        self.structure = h["structure"]
        apply_structure(doc, h["structure"], self.layers)
        doc.recipe = recipe_from(h["recipe"])
        doc.selection = _selection(record, h["selection"])
        self.store = _TileStore()
        for layer, key, tile in self._tiles(record):
            self.store.put(layer, key, tile)
        if not h.get("clean", True):
            doc.history.mark_unsaved()

    def _tiles(self, record: Record) -> list[_Tile]:
        out: list[_Tile] = []
        for jid, tx, ty, blob in record.header["tiles"]:
            layer = self.layers.get(int(jid))
            if not isinstance(layer, PixelLayer):
                raise JournalFormatError(f"a record changes tiles of layer {jid}, which the journal never made")
            out.append((layer, (int(tx), int(ty)), None if blob < 0 else _Lazy(record.blobs[blob])))
        return out

    def _step(self, record: Record) -> JournalStep:
        """The record as an undoable step: the replay's current values become its "old"."""
        doc = self.doc
        assert doc is not None
        h = record.header
        step = JournalStep(doc, self.layers, self.store, h.get("label") or "Recovered change")
        if "structure" in h:
            step.structure = (self.structure, h["structure"])
            self.structure = h["structure"]
            apply_structure(doc, h["structure"], self.layers)  # tiles of new layers need them
        for layer, key, tile in self._tiles(record):
            step.tiles.append((layer, key, self.store.get(layer, key), tile))
            self.store.put(layer, key, tile)
        if "recipe" in h:
            step.recipe = (doc.recipe, recipe_from(h["recipe"]))
        if "selection" in h:
            step.selection = (doc.selection, _selection(record, h["selection"]))
        step.redo()  # recipe and selection too (tiles and tree are in place already)
        return step


def _selection(record: Record, data: dict[str, Any] | None) -> np.ndarray | None:
    if data is None:
        return None
    return decompress_array(record.blobs[data["blob"]], tuple(data["shape"]), np.float32)


class JournalStep(Command):
    """A recovered change: what a record changed, both ways (tiles, tree, recipe, selection)."""

    def __init__(self, doc: Document, layers: dict[int, Layer], store: _TileStore, label: str) -> None:
        self.doc = doc
        self.layers = layers
        self.store = store
        self.label = label
        self.merges = False
        self.tiles: list[tuple[PixelLayer, TileKey, _Version, _Version]] = []
        self.structure: tuple[dict[str, Any] | None, dict[str, Any]] | None = None
        self.recipe: tuple[Any, Any] | None = None
        self.selection: tuple[np.ndarray | None, np.ndarray | None] | None = None

    def redo(self) -> None:
        self._apply(new=True)

    def undo(self) -> None:
        self._apply(new=False)

    def _apply(self, new: bool) -> None:
        doc = self.doc
        pick = 1 if new else 0
        if self.structure is not None and self.structure[pick] is not None:
            apply_structure(doc, self.structure[pick], self.layers)  # type: ignore[arg-type]
            doc.changed.emit(StructureChanged(None))
        tiles = self.tiles if new else reversed(self.tiles)
        for layer, key, old, fresh in tiles:
            self.store.put(layer, key, fresh if new else old)
            if self.store.pending is not None:
                continue  # replaying: no one is listening yet
            ox, oy = document_offset(layer)
            doc.changed.emit(PixelsChanged(layer, tile_rect(key).translate(ox, oy)))
        if self.recipe is not None:
            doc.recipe = self.recipe[pick]
            doc.changed.emit(RecipeChanged())
        if self.selection is not None:
            doc.selection = self.selection[pick]
            doc.changed.emit(SelectionChanged())

    def merge_with(self, other: Command) -> bool:
        if not isinstance(other, JournalStep) or not other.merges:
            return False
        seen = {(id(layer), key): i for i, (layer, key, _, _) in enumerate(self.tiles)}
        for layer, key, old, fresh in other.tiles:
            i = seen.get((id(layer), key))
            if i is None:
                self.tiles.append((layer, key, old, fresh))
            else:
                mine = self.tiles[i]
                self.tiles[i] = (mine[0], mine[1], mine[2], fresh)
        if other.structure is not None:
            self.structure = (self.structure[0] if self.structure else other.structure[0], other.structure[1])
        if other.recipe is not None:
            self.recipe = (self.recipe[0] if self.recipe else other.recipe[0], other.recipe[1])
        if other.selection is not None:
            self.selection = (self.selection[0] if self.selection else other.selection[0], other.selection[1])
        return True

    def nbytes(self) -> int:
        return sum(t.nbytes for _, _, o, n in self.tiles for t in (o, n) if t is not None)  # type: ignore[misc]

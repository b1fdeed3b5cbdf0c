"""The recovery journal: every committed change of a document, on disk within a second.

A :class:`Journal` follows one document. It listens to the document's events to learn
what changed (pixel tiles, the tree, the recipe, the selection) and to the history to
learn *when* a change is committed: each executed, merged, undone or redone command and
each save becomes one record (:mod:`sfumato.canvas.recovery.journal_format`). On the GUI thread a
commit only freezes the changed tiles (copy-on-write, as undo snapshots do) and copies
the small tree data; compressing, writing and ``fsync`` happen on the journal's own
thread :data:`WRITE_DELAY_S` later, so a stroke never waits for the disk nor shares
the interpreter with the encoding while it commits.

The journal starts with a snapshot record of the whole document and is compacted into a
new snapshot when it grows past ``compact_bytes`` or ``compact_records``, so recovery
replays a bounded amount. A folder per journal (see :mod:`sfumato.canvas.recovery.recovery`)
holds ``journal.sfj``, ``meta.json`` (name, path, times, changes since the last save)
and a ``lock`` the owning process holds: a journal whose lock is free belongs to a
process that ended without closing it.

If the disk refuses a write (full, removed), ``on_status`` is called (from the journal's
thread) with the reason, painting goes on, and the next commit starts a fresh snapshot;
when a write succeeds again, ``on_status(None)``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from sfumato.canvas.model.document import (
    Document,
    DocumentReset,
    PixelsChanged,
    RecipeChanged,
    SelectionChanged,
)
from sfumato.canvas.model.history import HistoryAction, HistoryChanged
from sfumato.canvas.model.layers import PixelLayer, document_offset
from sfumato.canvas.model.tiles import TILE, TileKey
from sfumato.canvas.recovery.journal_format import compress_array, encode_record, file_header
from sfumato.canvas.recovery.journal_state import capture_recipe, capture_structure, structure_ids
from sfumato.vocabulary.atomic_file import atomic_write

log = logging.getLogger(__name__)

JOURNAL_FILE = "journal.sfj"
META_FILE = "meta.json"
LOCK_FILE = "lock"
DEFAULT_COMPACT_BYTES = 200 * 1024 * 1024
DEFAULT_COMPACT_RECORDS = 2000
#: How long the writer lets a commit rest before encoding it: the stroke's commit and the
#: repaint that follows finish first (the writer's Python parts would otherwise take the
#: GIL from them), and quick edits share one fsync. Well inside the promised second.
WRITE_DELAY_S = 0.2

_ACTIONS = {
    HistoryAction.EXECUTE: "execute",
    HistoryAction.MERGE: "merge",
    HistoryAction.UNDO: "undo",
    HistoryAction.REDO: "redo",
    HistoryAction.CLEAN: "clean",
}

# (header, [(layer id, tx, ty, frozen tile or None)], selection array or None)
_Item = tuple[dict[str, Any], list[tuple[int, int, int, np.ndarray | None]], np.ndarray | None]


class Journal:
    """Journals ``doc`` into ``folder`` until :meth:`close` or :meth:`discard`."""

    def __init__(
        self,
        doc: Document,
        folder: Path,
        *,
        name: str,
        path: Path | None = None,
        on_status: Callable[[str | None], None] | None = None,
        compact_bytes: int = DEFAULT_COMPACT_BYTES,
        compact_records: int = DEFAULT_COMPACT_RECORDS,
    ) -> None:
        self.doc = doc
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = _hold_lock(self.folder / LOCK_FILE)
        self.compact_bytes = compact_bytes
        self.compact_records = compact_records
        self.on_status = on_status
        self._meta: dict[str, Any] = {
            "id": self.folder.name,
            "name": name,
            "path": str(path) if path is not None else None,
            "created": time.time(),
            "last_change": time.time(),
            "changes_since_save": 0,
            "pid": os.getpid(),
        }
        self._dirty: dict[int, tuple[PixelLayer, set[TileKey]]] = {}
        self._selection_dirty = False
        self._recipe_dirty = False
        self._reset = False
        self._known: set[int] = set()
        self._structure: dict[str, Any] | None = None
        self._recipe: dict[str, Any] | None = None
        self._records = 0
        self._seq = 0
        self._writer = _Writer(self.folder / JOURNAL_FILE, self.folder / META_FILE, self._status)
        self._writer.start()
        self._snapshot()
        doc.changed.connect(self._on_document)
        doc.history.changed.connect(self._on_history)

    # -- what the owner calls ----------------------------------------------------------
    @property
    def error(self) -> str | None:
        """Why the last write failed, until a write succeeds again."""
        return self._writer.error

    def saved(self, path: Path, name: str) -> None:
        """The document was saved as ``path``: compact (nothing since the save to replay)."""
        self.set_source(path, name)
        self._snapshot()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record so far is on disk (True) or ``timeout`` passes."""
        return self._writer.wait_for(self._seq, timeout)

    @property
    def written(self) -> int:
        """How many records (of :attr:`committed`) are on disk, fsynced."""
        return self._writer.done

    @property
    def committed(self) -> int:
        return self._seq

    def close(self) -> None:
        """Stop following the document; the files stay (a crash-like end)."""
        self.doc.changed.disconnect(self._on_document)
        self.doc.history.changed.disconnect(self._on_history)
        self._writer.stop()
        _release_lock(self._lock)

    def discard(self) -> None:
        """The document was closed cleanly: stop and remove the journal's folder."""
        self.close()
        for child in self.folder.iterdir():
            with contextlib.suppress(OSError):
                child.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    # -- listening ---------------------------------------------------------------------
    def _on_document(self, event: Any) -> None:
        if isinstance(event, PixelsChanged):
            layer = event.layer
            ox, oy = document_offset(layer)
            entry = self._dirty.get(layer.id)
            if entry is None:
                entry = self._dirty[layer.id] = (layer, set())
            entry[1].update(event.rect.translate(-ox, -oy).tiles(TILE))
        elif isinstance(event, SelectionChanged):
            self._selection_dirty = True
        elif isinstance(event, RecipeChanged):
            self._recipe_dirty = True
        elif isinstance(event, DocumentReset):
            self._reset = True
        # tree, property and active-layer changes: the tree is compared at each commit

    def _on_history(self, event: HistoryChanged) -> None:
        if event.action is HistoryAction.CLEAR:
            self._meta["changes_since_save"] = 0
            self._snapshot()
            return
        action = _ACTIONS.get(event.action)
        if action is None:
            return
        if action == "clean" and not self.doc.history.is_clean:
            self._reset = True  # marked unsaved (history.mark_unsaved): a snapshot says so
        if self._reset or self._writer.needs_snapshot:
            self._snapshot()
            if action != "clean":
                self._meta["changes_since_save"] += 1
            return
        label = event.command.label if event.command is not None else ""
        self._meta["changes_since_save"] = 0 if action == "clean" else self._meta["changes_since_save"] + 1
        self._commit({"a": action, "label": label})
        if self._writer.bytes_written > self.compact_bytes or self._records >= self.compact_records:
            self._snapshot()

    # -- records -----------------------------------------------------------------------
    def _commit(self, header: dict[str, Any]) -> None:
        header["t"] = time.time()
        tiles: list[tuple[int, int, int, np.ndarray | None]] = []
        structure = capture_structure(self.doc)
        if structure != self._structure:
            header["structure"] = structure
            self._structure = structure
            for jid, is_pixel in structure_ids(structure).items():
                if is_pixel and jid not in self._known:
                    self._known.add(jid)
                    self._dirty.pop(jid, None)
                    layer = self._layer(jid)
                    if layer is not None:
                        tiles.extend(_frozen_tiles(layer, layer.surface.tile_keys()))
        for jid, (layer, keys) in self._dirty.items():
            if jid in self._known:
                tiles.extend(_frozen_tiles(layer, sorted(keys)))
        self._dirty.clear()
        selection = None
        if self._selection_dirty:
            selection = self.doc.selection
            header["selection"] = None if selection is None else {"shape": list(selection.shape)}
            self._selection_dirty = False
        if self._recipe_dirty:
            recipe = capture_recipe(self.doc)
            if recipe != self._recipe:
                header["recipe"] = self._recipe = recipe
            self._recipe_dirty = False
        self._enqueue(header, tiles, selection)

    def _snapshot(self) -> None:
        """A record of the whole document, written to a new file that replaces the old."""
        doc = self.doc
        self._dirty.clear()
        self._reset = self._selection_dirty = self._recipe_dirty = False
        self._structure = capture_structure(doc)
        self._recipe = capture_recipe(doc)
        self._known = {jid for jid, px in structure_ids(self._structure).items() if px}
        tiles: list[tuple[int, int, int, np.ndarray | None]] = []
        for layer in doc.pixel_layers():
            tiles.extend(_frozen_tiles(layer, layer.surface.tile_keys()))
        header = {
            "a": "snapshot",
            "label": "",
            "t": time.time(),
            "size": [doc.width, doc.height],
            "structure": self._structure,
            "recipe": self._recipe,
            "clean": doc.history.is_clean,
            "selection": None if doc.selection is None else {"shape": list(doc.selection.shape)},
        }
        self._records = 0
        self._enqueue(header, tiles, doc.selection)

    def _enqueue(self, header: dict[str, Any], tiles: list[Any], selection: np.ndarray | None) -> None:
        self._seq += 1
        self._records += 1
        self._meta["last_change"] = header["t"]
        self._writer.put(self._seq, (header, tiles, selection), dict(self._meta))

    def _layer(self, jid: int) -> PixelLayer | None:
        return next((layer for layer in self.doc.pixel_layers() if layer.id == jid), None)

    def _status(self, error: str | None) -> None:
        if error is None:
            log.info("recovery journal %s is written again", self.folder)
        else:
            log.warning("recovery journal %s: %s", self.folder, error)
        if self.on_status is not None:
            self.on_status(error)

    def set_source(self, path: Path | None, name: str) -> None:
        """The document's file and name changed (opened, saved as): kept for the listing."""
        self._meta["path"] = str(path) if path is not None else None
        self._meta["name"] = name


def _frozen_tiles(layer: PixelLayer, keys: Any) -> list[tuple[int, int, int, np.ndarray | None]]:
    """The tiles' current arrays, made read-only (a later write copies them first)."""
    out: list[tuple[int, int, int, np.ndarray | None]] = []
    surface = layer.surface
    for key in keys:
        out.append((layer.id, key[0], key[1], surface.frozen_tile(key)))
    return out


# -- the writing thread --------------------------------------------------------------------
class _Writer(threading.Thread):
    """Compresses, appends and fsyncs records in commit order, off the GUI thread."""

    def __init__(self, path: Path, meta_path: Path, on_status: Callable[[str | None], None]) -> None:
        super().__init__(name="sfumato-journal", daemon=True)
        self.path = path
        self.meta_path = meta_path
        self.on_status = on_status
        self._queue: queue.Queue[tuple[int, _Item, dict[str, Any]] | None] = queue.Queue()
        self._file: BinaryIO | None = None
        self._cond = threading.Condition()
        self._hurry = threading.Event()
        self.done = 0
        self.bytes_written = 0
        self.error: str | None = None
        self.needs_snapshot = False

    def put(self, seq: int, item: _Item, meta: dict[str, Any]) -> None:
        self._queue.put((seq, item, meta))

    def stop(self) -> None:
        self._queue.put(None)
        self._hurry.set()
        self.join(timeout=30)

    def wait_for(self, seq: int, timeout: float) -> bool:
        self._hurry.set()  # someone waits: no resting
        with self._cond:
            return self._cond.wait_for(lambda: self.done >= seq or not self.is_alive(), timeout)

    def run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is not None:
                    self._hurry.wait(WRITE_DELAY_S)
                self._hurry.clear()
                batch = [first]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = None in batch
                items = [b for b in batch if b is not None]
                if items:
                    self._write(items)
                if stop:
                    return
        finally:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()

    def _write(self, items: list[tuple[int, _Item, dict[str, Any]]]) -> None:
        try:
            for _, (header, tiles, selection), _ in items:
                data = _encode(header, tiles, selection)
                if header["a"] == "snapshot":
                    self._start_file(data)
                elif self._file is None or self.needs_snapshot:
                    continue  # broken journal: wait for the next snapshot
                else:
                    self._file.write(data)
                    self.bytes_written += len(data)
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
            with atomic_write(self.meta_path) as handle:
                handle.write(json.dumps(items[-1][2], indent=1).encode("utf-8"))
        except OSError as exc:
            self.needs_snapshot = True
            self.error = f"{exc.strerror or exc} ({exc.filename or self.path})"
            self.on_status(self.error)
        else:
            if not self.needs_snapshot and self.error is not None:
                self.error = None
                self.on_status(None)
        with self._cond:
            self.done = items[-1][0]
            self._cond.notify_all()

    def _start_file(self, data: bytes) -> None:
        """Write header + snapshot to a new file, fsync it, put it in place atomically."""
        if self._file is not None:
            self._file.close()
            self._file = None
        with atomic_write(self.path) as handle:
            handle.write(file_header())
            handle.write(data)
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for appends
        self.bytes_written = len(data)
        self.needs_snapshot = False


def _encode(header: dict[str, Any], tiles: list[Any], selection: np.ndarray | None) -> bytes:
    blobs: list[bytes] = []
    refs = []
    for (jid, tx, ty, tile) in tiles:
        if tile is None:
            refs.append([jid, tx, ty, -1])
        else:
            refs.append([jid, tx, ty, len(blobs)])
            blobs.append(compress_array(tile))
    header = dict(header, tiles=refs)
    if header.get("selection") is not None:
        assert selection is not None
        header["selection"] = dict(header["selection"], blob=len(blobs))
        blobs.append(compress_array(selection.astype(np.float32, copy=False)))
    return encode_record(header, blobs)


# -- the lock ------------------------------------------------------------------------------
def _hold_lock(path: Path) -> Any:
    """Hold an exclusive lock on ``path`` while this process lives (POSIX flock)."""
    handle = open(path, "a+b")  # noqa: SIM115 - held for the journal's life
    try:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # no flock (Windows): the pid in meta.json decides instead
        pass
    except OSError as exc:
        handle.close()
        raise RuntimeError(f"the recovery journal {path.parent} is in use by another process") from exc
    return handle


def _release_lock(handle: Any) -> None:
    with contextlib.suppress(OSError):
        handle.close()

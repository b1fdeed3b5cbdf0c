"""A Qt item model that adapts the evented layer tree (napari's item-model pattern).

The model holds no state of its own beyond an id → layer map: every query reads the
document, and every edit goes through :mod:`sfumato.desktop.layer_actions` (undoable
commands). Document events update the model: structure changes reset it, property
changes emit ``dataChanged`` for the one row, pixel changes refresh that row's thumbnail
a little later (coalesced by a timer).

Columns: 0 = the layer (name, thumbnail, visibility check box); 1 = what the layer means
to the generator (a region's prompt, editable in place; a control layer's kind, strength
and range; a reference layer's kind, strength and range).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractItemModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPainter, QPixmap
from sfumato.canvas.model.document import (
    ActiveLayerChanged,
    Document,
    DocumentReset,
    LayerPropertyChanged,
    PixelsChanged,
    StructureChanged,
)
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, Role
from sfumato.canvas.model.tiles import TILE
from sfumato.desktop import layer_actions

log = logging.getLogger(__name__)

MIME_TYPE = "application/x-sfumato-layer-ids"
THUMB = 40

ROLE_BADGES = {
    Role.PAINT: "",
    Role.INPAINT_MASK: "mask",
    Role.REGION: "region",
    Role.CONTROL: "control",
    Role.GENERATED: "generated",
    Role.REFERENCE: "reference",
}

AnyIndex = QModelIndex | QPersistentModelIndex


def thumbnail_array(layer: PixelLayer, doc: Document, size: int = THUMB) -> np.ndarray:
    """A ``(h, w, 4)`` straight RGBA uint8 thumbnail of ``layer`` over the document area,
    nearest-neighbour sampled, at most ``size`` a side. Costs one strided read per
    existing tile, so a big sparse layer is cheap."""
    step = max(1, math.ceil(max(doc.width, doc.height) / size))
    tw, th = math.ceil(doc.width / step), math.ceil(doc.height / step)
    out = np.zeros((th, tw, 4), np.uint8)
    surface = layer.surface
    for tx, ty in surface.tile_keys():
        # Document pixel of this tile's origin.
        dx0, dy0 = tx * TILE + layer.x, ty * TILE + layer.y
        # First sample column/row at or after the tile origin, on the thumbnail grid.
        sx0 = max(0, -(-dx0 // step))
        sy0 = max(0, -(-dy0 // step))
        sx1 = min(tw, -(-(dx0 + TILE) // step))
        sy1 = min(th, -(-(dy0 + TILE) // step))
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        tile = surface.tile((tx, ty))
        cols = np.arange(sx0, sx1) * step - dx0
        rows = np.arange(sy0, sy1) * step - dy0
        out[sy0:sy1, sx0:sx1] = tile[rows[:, None], cols[None, :]]
    return out


_CHECKER: QBrush | None = None


def _thumb_checker() -> QBrush:
    global _CHECKER
    if _CHECKER is None:
        tile = QPixmap(10, 10)
        tile.fill(QColor(205, 205, 205))
        p = QPainter(tile)
        p.fillRect(5, 0, 5, 5, QColor(160, 160, 160))
        p.fillRect(0, 5, 5, 5, QColor(160, 160, 160))
        p.end()
        _CHECKER = QBrush(tile)
    return _CHECKER


def _thumb_icon(pixels: np.ndarray) -> QIcon:
    h, w = pixels.shape[:2]
    pix = QPixmap(THUMB, THUMB)
    pix.fill(QColor(0, 0, 0, 0))
    p = QPainter(pix)
    x0, y0 = (THUMB - w) // 2, (THUMB - h) // 2
    # Small checkerboard under the thumbnail (one textured fill).
    p.setBrushOrigin(x0, y0)
    p.fillRect(x0, y0, w, h, _thumb_checker())
    if w and h:
        data = np.ascontiguousarray(pixels)
        image = QImage(data.data, w, h, w * 4, QImage.Format.Format_RGBA8888).copy()
        p.drawImage(x0, y0, image)
    p.setPen(QColor(40, 40, 40))
    p.drawRect(x0, y0, max(w - 1, 0), max(h - 1, 0))
    p.end()
    return QIcon(pix)


def control_summary(layer: PixelLayer) -> str:
    c = layer.control
    if c is None:
        return ""
    return f"{c.kind.value} · {c.strength:.2f} · {round(c.start * 100)}–{round(c.end * 100)}%"


def reference_summary(layer: PixelLayer) -> str:
    r = layer.reference
    if r is None:
        return ""
    return f"{r.kind.value} · {r.strength:.2f} · {round(r.start * 100)}–{round(r.end * 100)}%"


class LayerTreeModel(QAbstractItemModel):
    """The document's layer tree as a Qt tree model (top layer first, like the file)."""

    active_layer_changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._doc: Document | None = None
        self._by_id: dict[int, Layer] = {}
        self._thumbs: dict[int, QIcon] = {}
        self._stale_thumbs: set[int] = set()
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(250)
        self._thumb_timer.timeout.connect(self._refresh_thumbs)

    # -- document binding ------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self._doc

    def set_document(self, doc: Document | None) -> None:
        self.beginResetModel()
        if self._doc is not None:
            self._doc.changed.disconnect(self._on_event)
        self._doc = doc
        self._thumbs.clear()
        self._reindex()
        if doc is not None:
            doc.changed.connect(self._on_event)
        self.endResetModel()

    def _reindex(self) -> None:
        self._by_id = {layer.id: layer for layer in self._doc.layers()} if self._doc else {}
        if self._doc is not None:
            self._by_id[self._doc.root.id] = self._doc.root

    def _on_event(self, event: object) -> None:
        if isinstance(event, StructureChanged | DocumentReset):
            self.beginResetModel()
            self._reindex()
            self._thumbs = {k: v for k, v in self._thumbs.items() if k in self._by_id}
            self.endResetModel()
            if isinstance(event, DocumentReset):
                self._thumbs.clear()
            self.active_layer_changed.emit(self._doc.active if self._doc else None)
        elif isinstance(event, LayerPropertyChanged):
            index = self.index_of(event.layer)
            if index.isValid():
                self.dataChanged.emit(index, index.siblingAtColumn(1))
            if event.name in ("x", "y") and isinstance(event.layer, PixelLayer):
                self._mark_stale(event.layer)
        elif isinstance(event, PixelsChanged):
            self._mark_stale(event.layer)
        elif isinstance(event, ActiveLayerChanged):
            self.active_layer_changed.emit(event.layer)

    def _mark_stale(self, layer: Layer) -> None:
        self._stale_thumbs.add(layer.id)
        if not self._thumb_timer.isActive():
            self._thumb_timer.start()

    def _refresh_thumbs(self) -> None:
        stale, self._stale_thumbs = self._stale_thumbs, set()
        for layer_id in stale:
            self._thumbs.pop(layer_id, None)
            layer = self._by_id.get(layer_id)
            if layer is not None:
                index = self.index_of(layer)
                if index.isValid():
                    self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    # -- lookups ---------------------------------------------------------------------------
    def layer(self, index: AnyIndex) -> Layer | None:
        if not index.isValid():
            return None
        return self._by_id.get(index.internalId())

    def _group(self, parent: AnyIndex) -> GroupLayer | None:
        if self._doc is None:
            return None
        if not parent.isValid():
            return self._doc.root
        layer = self.layer(parent)
        return layer if isinstance(layer, GroupLayer) else None

    def index_of(self, layer: Layer, column: int = 0) -> QModelIndex:
        if self._doc is None or layer.parent is None or layer.id not in self._by_id:
            return QModelIndex()
        row = layer.parent.children.index(layer)
        return self.createIndex(row, column, layer.id)

    # -- structure ---------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        group = self._group(parent)
        if group is None or not (0 <= row < len(group.children)) or not (0 <= column < 2):
            return QModelIndex()
        return self.createIndex(row, column, group.children[row].id)

    def parent(self, index: AnyIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        layer = self.layer(index)
        if layer is None or layer.parent is None or self._doc is None:
            return QModelIndex()
        if layer.parent is self._doc.root:
            return QModelIndex()
        return self.index_of(layer.parent)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        if parent.isValid() and parent.column() != 0:
            return 0
        group = self._group(parent)
        return len(group.children) if group is not None else 0

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 2

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: N802, B008
        return self.rowCount(parent) > 0

    # -- data --------------------------------------------------------------------------------
    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        layer = self.layer(index)
        if layer is None:
            return None
        col = index.column()
        if col == 0:
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
                return layer.name
            if role == Qt.ItemDataRole.CheckStateRole:
                return Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked
            if role == Qt.ItemDataRole.DecorationRole:
                return self._thumbnail(layer)
            if role == Qt.ItemDataRole.ToolTipRole:
                return self._tooltip(layer)
            if role == Qt.ItemDataRole.ForegroundRole and not layer.effectively_visible():
                return QColor(140, 140, 140)
        elif col == 1 and isinstance(layer, PixelLayer):
            if role == Qt.ItemDataRole.DisplayRole:
                if layer.role is Role.REGION:
                    return layer.prompt or "(click to type this region's prompt)"
                if layer.role is Role.CONTROL:
                    return control_summary(layer)
                if layer.role is Role.REFERENCE:
                    return reference_summary(layer)
                return ROLE_BADGES[layer.role] + (" · locked" if layer.locked else "")
            if role == Qt.ItemDataRole.EditRole and layer.role is Role.REGION:
                return layer.prompt
            if role == Qt.ItemDataRole.ForegroundRole and layer.role is Role.REGION and not layer.prompt:
                return QColor(140, 140, 140)
            if role == Qt.ItemDataRole.ToolTipRole and layer.role is Role.REGION:
                return "Region prompt: applies where this layer is painted. Double-click to edit."
        elif col == 1 and role == Qt.ItemDataRole.DisplayRole:
            return "group" + (" · locked" if layer.locked else "")
        return None

    def _tooltip(self, layer: Layer) -> str:
        kind = "Group" if isinstance(layer, GroupLayer) else f"{layer.role.value} layer"  # type: ignore[attr-defined]
        return f"{layer.name} — {kind}, {round(layer.opacity * 100)}% {layer.blend.label}"

    def _thumbnail(self, layer: Layer) -> QIcon | None:
        if not isinstance(layer, PixelLayer) or self._doc is None:
            return None
        icon = self._thumbs.get(layer.id)
        if icon is None:
            icon = _thumb_icon(thumbnail_array(layer, self._doc))
            self._thumbs[layer.id] = icon
        return icon

    def setData(self, index: AnyIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        layer = self.layer(index)
        if layer is None or self._doc is None:
            return False
        if index.column() == 0 and role == Qt.ItemDataRole.CheckStateRole:
            visible = Qt.CheckState(value) == Qt.CheckState.Checked
            layer_actions.set_property(self._doc, layer, "visible", visible)
            return True
        if index.column() == 0 and role == Qt.ItemDataRole.EditRole:
            name = str(value).strip()
            if name:
                layer_actions.set_property(self._doc, layer, "name", name)
                return True
            return False
        if (
            index.column() == 1
            and role == Qt.ItemDataRole.EditRole
            and isinstance(layer, PixelLayer)
            and layer.role is Role.REGION
        ):
            layer_actions.set_property(self._doc, layer, "prompt", str(value))
            return True
        return False

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsDropEnabled
        layer = self.layer(index)
        if layer is None:
            return base  # the root accepts drops
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        if index.column() == 0:
            flags |= Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable
        if index.column() == 1 and isinstance(layer, PixelLayer) and layer.role is Role.REGION:
            flags |= Qt.ItemFlag.ItemIsEditable
        if isinstance(layer, GroupLayer):
            flags |= Qt.ItemFlag.ItemIsDropEnabled
        return flags

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return ("Layer", "Prompt / settings")[section]
        return None

    # -- drag and drop ------------------------------------------------------------------------
    def supportedDropActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.MoveAction

    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return [MIME_TYPE]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:  # type: ignore[override]  # noqa: N802
        ids: list[int] = []
        for index in indexes:
            layer = self.layer(index)
            if layer is not None and layer.id not in ids:
                ids.append(layer.id)
        mime = QMimeData()
        mime.setData(MIME_TYPE, QByteArray(json.dumps(ids).encode()))
        return mime

    def drop_target(self, row: int, parent: AnyIndex) -> tuple[GroupLayer, int] | None:
        """Where a drop at (``row``, ``parent``) puts layers: (group, index in it).

        Dropping *on* a group puts the layers at its top; dropping on a pixel layer puts
        them just above it; dropping between rows puts them at that row."""
        if self._doc is None:
            return None
        target = self.layer(parent)
        if target is None:
            return self._doc.root, (row if row >= 0 else len(self._doc.root.children))
        if isinstance(target, GroupLayer):
            return target, (row if row >= 0 else 0)
        assert target.parent is not None
        return target.parent, target.parent.children.index(target)

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: AnyIndex) -> bool:  # noqa: N802
        return data.hasFormat(MIME_TYPE) and self.drop_target(row, parent) is not None

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: AnyIndex) -> bool:  # noqa: N802
        """Move the dragged layers; returns False so the view removes no rows itself (the
        document's StructureChanged event has already reset the model)."""
        if not data.hasFormat(MIME_TYPE) or self._doc is None:
            return False
        target = self.drop_target(row, parent)
        if target is None:
            return False
        try:
            ids = json.loads(bytes(data.data(MIME_TYPE).data()).decode())
        except ValueError:
            return False
        self.move_layers([self._by_id[i] for i in ids if i in self._by_id], *target)
        return False

    def move_layers(self, layers: list[Layer], group: GroupLayer, index: int) -> None:
        """Move ``layers`` (top first) to ``group`` at ``index`` (counted before the move)."""
        assert self._doc is not None
        for layer in layers:
            if layer is group or any(a is layer for a in group.ancestors()):
                continue  # a group cannot go into itself
            if layer.parent is group and group.children.index(layer) < index:
                index -= 1
            layer_actions.move_layer(self._doc, layer, group, index)
            index = group.children.index(layer) + 1

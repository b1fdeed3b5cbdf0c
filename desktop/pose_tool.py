"""The Pose tool: edit the skeleton of a pose layer on the canvas.

Active when the Pose tool is chosen (Tools ▸ Pose, ``P``) and the active layer is a pose
layer (a control layer of kind ``pose``; Layer ▸ New Pose Layer makes one). The skeleton
is drawn over the canvas as handles: every joint a small disc, the limbs thin lines, the
selected person's bounds dashed.

- drag a joint to move it: one undo step per drag (the document changes at release; the
  drag itself is drawn over the canvas);
- click a person (a joint or inside its bounds) to select it;
- **Add Person** puts a standing skeleton in the middle of the view;
- **Delete** (or Backspace) removes the selected person; **M** mirrors it left↔right
  (right and left keypoints swap, reflected about the person's centre).

Each edit goes through :func:`sfumato.desktop.layer_actions.set_pose`, which redraws the
layer's pixels (OpenPose's colour map) in the same undo step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from sfumato.canvas.model.layers import PixelLayer, document_offset
from sfumato.canvas.model.pose import LIMBS, Person, Point, Pose
from sfumato.desktop import layer_actions
from sfumato.desktop.pointer import DocumentSpace, PointerEvent
from sfumato.desktop.tool_settings import ToolKind
from sfumato.desktop.tools import Tool, ToolError, ToolHost
from sfumato.planner.pose import COLORS

log = logging.getLogger(__name__)

HANDLE_RADIUS = 5.0  # widget pixels: a joint's disc
HIT_RADIUS = 10.0  # widget pixels: how near a press must be to grab a joint
BOUNDS_MARGIN = 12.0  # widget pixels around a person's joints that still select it
NO_LAYER = "Select a pose layer to edit its skeleton (Layer ▸ New Pose Layer makes one)."


class PoseTool(Tool):
    """Moves the joints of the active pose layer's skeleton (see the module docstring)."""

    kind = ToolKind.MOVE  # not one of the brush panel's tools: the controller holds it apart

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self.selected: int | None = None  # index of the selected person
        self._drag: tuple[PixelLayer, int, int] | None = None  # layer, person, keypoint
        self._drag_to: Point | None = None
        self._grab: Point = (0.0, 0.0)  # pointer minus joint at the press (document px)
        self._zoom = 1.0  # widget pixels per document pixel, as last drawn

    # -- the layer ---------------------------------------------------------------------------
    def layer(self) -> PixelLayer | None:
        doc = self.document
        layer = doc.active if doc is not None else None
        return layer if layer_actions.is_pose_layer(layer) else None  # type: ignore[return-value]

    def _require_layer(self) -> PixelLayer:
        layer = self.layer()
        if layer is None:
            raise ToolError(NO_LAYER)
        if layer.locked or any(g.locked for g in layer.ancestors()):
            raise ToolError(f"Layer {layer.name!r} is locked; unlock it to edit the pose.")
        if not layer.effectively_visible():
            raise ToolError(f"Layer {layer.name!r} is hidden; show it to edit the pose.")
        return layer

    @staticmethod
    def pose_of(layer: PixelLayer) -> Pose:
        return (layer.control.pose if layer.control is not None else None) or Pose()

    def _commit(self, layer: PixelLayer, pose: Pose, label: str) -> None:
        doc = self.document
        assert doc is not None
        layer_actions.set_pose(doc, layer, pose, label)
        self.host.request_repaint()

    # -- hit testing (document space) ------------------------------------------------------------
    def _joint_at(self, layer: PixelLayer, x: float, y: float) -> tuple[int, int] | None:
        ox, oy = document_offset(layer)
        reach = (HIT_RADIUS / self._zoom) ** 2
        best: tuple[float, int, int] | None = None
        people = self.pose_of(layer).people
        order = list(range(len(people)))
        if self.selected is not None and self.selected < len(people):  # the selected one first
            order.remove(self.selected)
            order.insert(0, self.selected)
        for n in order:
            for k, p in people[n].present():
                d = (p[0] + ox - x) ** 2 + (p[1] + oy - y) ** 2
                if d <= reach and (best is None or d < best[0] - 1e-9):
                    best = (d, n, k)
        return None if best is None else (best[1], best[2])

    def person_at(self, x: float, y: float) -> int | None:
        """The topmost person whose joints' bounds (plus a margin) hold document ``(x, y)``."""
        layer = self.layer()
        if layer is None:
            return None
        hit = self._joint_at(layer, x, y)
        if hit is not None:
            return hit[0]
        ox, oy = document_offset(layer)
        m = BOUNDS_MARGIN / self._zoom
        people = self.pose_of(layer).people
        for n in reversed(range(len(people))):
            box = people[n].bounds()
            if box and box[0] - m <= x - ox <= box[2] + m and box[1] - m <= y - oy <= box[3] + m:
                return n
        return None

    # -- pointer -------------------------------------------------------------------------------
    def press(self, ev: PointerEvent) -> None:
        layer = self._require_layer()
        hit = self._joint_at(layer, ev.x, ev.y)
        if hit is None:
            self.selected = self.person_at(ev.x, ev.y)
            self.host.request_repaint()
            return
        n, k = hit
        self.selected = n
        point = self.pose_of(layer).people[n].keypoints[k]
        assert point is not None
        ox, oy = document_offset(layer)
        self._grab = (ev.x - (point[0] + ox), ev.y - (point[1] + oy))
        self._drag = (layer, n, k)
        self._drag_to = None
        self.host.request_repaint()

    def move(self, ev: PointerEvent) -> None:
        if self._drag is None:
            return
        ox, oy = document_offset(self._drag[0])
        self._drag_to = (ev.x - self._grab[0] - ox, ev.y - self._grab[1] - oy)
        self.host.request_repaint()

    def release(self, ev: PointerEvent) -> None:
        if self._drag is None:
            return
        self.move(ev)
        layer, n, k = self._drag
        target = self._drag_to
        self._drag, self._drag_to = None, None
        pose = self.pose_of(layer)
        if target is None or n >= len(pose.people) or pose.people[n].keypoints[k] == target:
            return
        self._commit(layer, pose.replaced(n, pose.people[n].moved(k, target)), "Move Joint")

    def cancel(self) -> bool:
        if self._drag is None:
            return False
        self._drag, self._drag_to = None, None
        self.host.request_repaint()
        return True

    def cursor_shape(self) -> Qt.CursorShape:
        return Qt.CursorShape.PointingHandCursor

    # -- person edits --------------------------------------------------------------------------
    def add_person(self, cx: float, cy: float, height: float) -> None:
        """A standing skeleton ``height`` document px tall centred on document ``(cx, cy)``
        (moved aside, by half its height at a time, while someone stands there already);
        it becomes the selected person."""
        layer = self._require_layer()
        ox, oy = document_offset(layer)
        pose = self.pose_of(layer)
        x, y = cx - ox, cy - oy
        for _ in range(len(pose.people)):  # not on top of someone: step aside
            taken = [b for p in pose.people if (b := p.bounds()) is not None
                     and abs((b[0] + b[2]) / 2 - x) < height / 4 and abs((b[1] + b[3]) / 2 - y) < height / 4]
            if not taken:
                break
            x += height / 2
        pose = pose.with_person(Person.standing(x, y, height))
        self._commit(layer, pose, "Add Person")
        self.selected = len(pose.people) - 1

    def _selected_person(self, layer: PixelLayer, what: str) -> int:
        people = self.pose_of(layer).people
        if self.selected is None or self.selected >= len(people):
            raise ToolError(f"Click a person of the pose to {what} it.")
        return self.selected

    def delete_selected(self) -> None:
        layer = self._require_layer()
        n = self._selected_person(layer, "delete")
        self._commit(layer, self.pose_of(layer).without_person(n), "Delete Person")
        self.selected = None

    def mirror_selected(self) -> None:
        layer = self._require_layer()
        n = self._selected_person(layer, "mirror")
        pose = self.pose_of(layer)
        self._commit(layer, pose.replaced(n, pose.people[n].mirrored()), "Mirror Person")

    # -- keys -----------------------------------------------------------------------------------
    def key_actions(self) -> dict[Qt.Key, Callable[[], None]]:
        """The keys this tool takes from the window's shortcuts while it is active."""
        return {
            Qt.Key.Key_Delete: self.delete_selected,
            Qt.Key.Key_Backspace: self.delete_selected,
            Qt.Key.Key_M: self.mirror_selected,
        }

    def wants_key(self, key: int, modifiers: Qt.KeyboardModifier) -> bool:
        return (
            modifiers in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
            and key in self.key_actions() and self.layer() is not None
        )

    def key_press(self, key: int, modifiers: Qt.KeyboardModifier) -> bool:
        """Handle a key; True when it was this tool's (errors are told to the user)."""
        if not self.wants_key(key, modifiers):
            return False
        try:
            self.key_actions()[Qt.Key(key)]()
        except ToolError as exc:
            self.host.show_message(str(exc))
        return True

    # -- drawing --------------------------------------------------------------------------------
    def shown_pose(self, layer: PixelLayer) -> Pose:
        """The skeleton as it is drawn now (a joint being dragged at the pointer)."""
        pose = self.pose_of(layer)
        if self._drag is not None and self._drag_to is not None and self._drag[0] is layer:
            _, n, k = self._drag
            if n < len(pose.people):
                pose = pose.replaced(n, pose.people[n].moved(k, self._drag_to))
        return pose

    def paint_overlay(self, painter: QPainter, view: DocumentSpace) -> None:
        layer = self.layer()
        transform = view.document_transform()
        self._zoom = max(transform.m11(), 1e-6)
        if layer is None or not layer.effectively_visible():
            return
        ox, oy = document_offset(layer)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for n, person in enumerate(self.shown_pose(layer).people):
            pts = [None if p is None else transform.map(QPointF(p[0] + ox, p[1] + oy)) for p in person.keypoints]
            painter.setPen(QPen(QColor(255, 255, 255, 200), 1.5))
            for a, b in LIMBS:
                pa, pb = pts[a], pts[b]
                if pa is not None and pb is not None:
                    painter.drawLine(pa, pb)
            if n == self.selected and (box := person.bounds()) is not None:
                pen = QPen(QColor(255, 255, 255, 220), 1, Qt.PenStyle.DashLine)
                painter.setPen(pen)
                painter.setBrush(Qt.BrushStyle.NoBrush)
                r = QRectF(transform.map(QPointF(box[0] + ox, box[1] + oy)),
                           transform.map(QPointF(box[2] + ox, box[3] + oy)))
                painter.drawRect(r.adjusted(-BOUNDS_MARGIN, -BOUNDS_MARGIN, BOUNDS_MARGIN, BOUNDS_MARGIN))
            painter.setPen(QPen(QColor(0, 0, 0, 220), 1.5))
            for p, color in zip(pts, COLORS, strict=True):
                if p is not None:
                    painter.setBrush(QColor(*color))
                    painter.drawEllipse(p, HANDLE_RADIUS, HANDLE_RADIUS)
        painter.restore()

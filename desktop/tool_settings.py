"""The current tool and brush settings: a small Qt-signalling model the panel binds to.

Values: ``size`` is the brush diameter in document pixels (1..1000); ``hardness``,
``opacity`` and ``flow`` are in [0, 1]; ``color`` is straight (non-premultiplied) sRGB
``(r, g, b)`` with components 0..255. The brush panel and the tools read and write this
object; nothing here draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

from PySide6.QtCore import QObject, Signal
from sfumato.desktop.settings import AppSettings

log = logging.getLogger(__name__)

MIN_SIZE = 1.0
MAX_SIZE = 1000.0


class ToolKind(Enum):
    BRUSH = "brush"
    ERASER = "eraser"
    MASK = "mask"
    REGION = "region"
    FILL = "fill"
    PICKER = "picker"
    RECT_SELECT = "rect-select"
    ELLIPSE_SELECT = "ellipse-select"
    LASSO = "lasso"
    MOVE = "move"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ToolKind.BRUSH: "Brush",
    ToolKind.ERASER: "Eraser",
    ToolKind.MASK: "Mask brush",
    ToolKind.REGION: "Region brush",
    ToolKind.FILL: "Fill",
    ToolKind.PICKER: "Colour picker",
    ToolKind.RECT_SELECT: "Rectangle selection",
    ToolKind.ELLIPSE_SELECT: "Ellipse selection",
    ToolKind.LASSO: "Lasso selection",
    ToolKind.MOVE: "Move layer",
}


@dataclass(frozen=True)
class BrushValues:
    """One snapshot of the brush controls (see the module docstring for ranges)."""

    size: float = 24.0
    hardness: float = 0.8
    opacity: float = 1.0
    flow: float = 1.0
    color: tuple[int, int, int] = (20, 20, 24)
    fill_tolerance: int = 16  # 0..255, per channel
    pressure_size: bool = True  # pen pressure scales the dab size
    pressure_opacity: bool = False  # pen pressure scales the stroke's opacity
    smoothing: float = 0.0  # 0..0.95, how strongly the pen path is smoothed

    def clamped(self) -> BrushValues:
        def unit(v: float) -> float:
            return min(1.0, max(0.0, float(v)))

        r, g, b = (min(255, max(0, int(c))) for c in self.color)
        return BrushValues(
            size=min(MAX_SIZE, max(MIN_SIZE, float(self.size))),
            hardness=unit(self.hardness),
            opacity=unit(self.opacity),
            flow=unit(self.flow),
            color=(r, g, b),
            fill_tolerance=min(255, max(0, int(self.fill_tolerance))),
            pressure_size=bool(self.pressure_size),
            pressure_opacity=bool(self.pressure_opacity),
            smoothing=min(0.95, max(0.0, float(self.smoothing))),
        )


class ToolSettings(QObject):
    """The shared tool state: which tool is active and the brush values.

    ``changed`` carries the new :class:`BrushValues`; ``tool_changed`` the new
    :class:`ToolKind`.
    """

    changed = Signal(object)
    tool_changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._values = BrushValues()
        self._tool = ToolKind.BRUSH

    @property
    def values(self) -> BrushValues:
        return self._values

    @property
    def tool(self) -> ToolKind:
        return self._tool

    def set_tool(self, tool: ToolKind) -> None:
        if tool is not self._tool:
            self._tool = tool
            self.tool_changed.emit(tool)

    def update(self, **changes: Any) -> None:
        """Change some brush values (clamped to their ranges); emits ``changed`` once."""
        new = replace(self._values, **changes).clamped()
        if new != self._values:
            self._values = new
            self.changed.emit(new)

    def scale_size(self, factor: float) -> None:
        """Grow/shrink the brush (the [ and ] keys), at least one pixel per press."""
        size = self._values.size
        target = size * factor
        if abs(target - size) < 1:
            target = size + (1 if factor > 1 else -1)
        self.update(size=round(target, 1))

    # -- persistence ---------------------------------------------------------------------
    def load(self, settings: AppSettings) -> None:
        d = BrushValues()
        r, g, b = d.color
        color_text = settings.get_str("tools/color", f"{r},{g},{b}")
        try:
            color = tuple(int(c) for c in color_text.split(","))
            if len(color) != 3:
                raise ValueError(color_text)
        except ValueError:
            color = d.color
        self.update(
            size=settings.get_float("tools/size", d.size),
            hardness=settings.get_float("tools/hardness", d.hardness),
            opacity=settings.get_float("tools/opacity", d.opacity),
            flow=settings.get_float("tools/flow", d.flow),
            color=color,
            fill_tolerance=settings.get_int("tools/fill_tolerance", d.fill_tolerance),
            pressure_size=settings.get_str("tools/pressure_size", str(d.pressure_size)) == "True",
            pressure_opacity=settings.get_str("tools/pressure_opacity", str(d.pressure_opacity)) == "True",
            smoothing=settings.get_float("tools/smoothing", d.smoothing),
        )
        try:
            self.set_tool(ToolKind(settings.get_str("tools/tool", ToolKind.BRUSH.value)))
        except ValueError:
            self.set_tool(ToolKind.BRUSH)

    def save(self, settings: AppSettings) -> None:
        v = self._values
        for f in fields(v):
            if f.name != "color":
                value = getattr(v, f.name)
                settings.set(f"tools/{f.name}", str(value) if isinstance(value, bool) else value)
        settings.set("tools/color", ",".join(str(c) for c in v.color))
        settings.set("tools/tool", self._tool.value)

"""The brush panel: colour, size, hardness, opacity and flow, bound both ways to
:class:`~sfumato.desktop.tool_settings.ToolSettings`.

Widgets write into the settings object; the settings object pushes its values back into
the widgets with their signals blocked (no feedback loops, as napari's brush-size slider).
"""

from __future__ import annotations

import logging
import math

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QFormLayout,
    QHBoxLayout,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from sfumato.desktop.color_picker import ColorSquare
from sfumato.desktop.tool_settings import MAX_SIZE, MIN_SIZE, BrushValues, ToolSettings

log = logging.getLogger(__name__)

_LOG_STEPS = 1000

SWATCHES: tuple[tuple[int, int, int], ...] = (
    (20, 20, 24),
    (250, 250, 250),
    (200, 40, 40),
    (235, 150, 40),
    (240, 215, 60),
    (60, 160, 80),
    (50, 110, 200),
    (120, 70, 170),
    (120, 85, 60),
    (128, 128, 128),
)


class ColorButton(QToolButton):
    """A button showing a colour; clicking opens the colour dialog."""

    color_chosen = Signal(object)  # (r, g, b)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._color = QColor(0, 0, 0)
        self.setFixedSize(44, 44)
        self.setToolTip("Brush colour (click to choose)")
        self.clicked.connect(self._choose)

    def set_color(self, rgb: tuple[int, int, int]) -> None:
        self._color = QColor(*rgb)
        self.update()

    def _choose(self) -> None:
        color = QColorDialog.getColor(self._color, self, "Brush colour")
        if color.isValid():
            self.color_chosen.emit((color.red(), color.green(), color.blue()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QColor(30, 30, 30))
        p.setBrush(self._color)
        p.drawRoundedRect(self.rect().adjusted(3, 3, -3, -3), 6, 6)
        p.end()


class _Swatch(QToolButton):
    def __init__(self, rgb: tuple[int, int, int], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rgb = rgb
        self.setFixedSize(18, 18)
        self.setToolTip("#{:02x}{:02x}{:02x}".format(*rgb))
        self.setStyleSheet(
            f"QToolButton {{ background: rgb{rgb}; border: 1px solid #222; border-radius: 3px; }}"
        )


class _SliderRow(QWidget):
    """A slider with a spin box; integer values, with a scale to the model's units.

    With ``logarithmic`` the slider moves through the range geometrically (brush sizes:
    as much travel from 1 to 30 px as from 30 to 1000), while the spin box stays exact.
    """

    value_changed = Signal(float)

    def __init__(self, lo: int, hi: int, scale: float, suffix: str, parent: QWidget | None = None,
                 *, logarithmic: bool = False):
        super().__init__(parent)
        self._scale = scale
        self._lo, self._hi = lo, hi
        self._log = logarithmic and lo > 0
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, _LOG_STEPS) if self._log else self.slider.setRange(lo, hi)
        self.spin = QSpinBox()
        self.spin.setRange(lo, hi)
        self.spin.setSuffix(suffix)
        self.spin.setFixedWidth(72)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_widget)

    def _slider_to_value(self, position: int) -> int:
        if not self._log:
            return position
        return round(self._lo * (self._hi / self._lo) ** (position / _LOG_STEPS))

    def _value_to_slider(self, value: int) -> int:
        if not self._log:
            return value
        return round(_LOG_STEPS * math.log(max(value, self._lo) / self._lo) / math.log(self._hi / self._lo))

    def _from_slider(self, position: int) -> None:
        self._from_widget(self._slider_to_value(position))

    def _from_widget(self, value: int) -> None:
        self.value_changed.emit(value / self._scale)

    def set_value(self, value: float) -> None:
        """Show ``value`` without emitting :attr:`value_changed`."""
        iv = round(value * self._scale)
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setValue(self._value_to_slider(iv))
            self.spin.setValue(iv)


class BrushPanel(QWidget):
    """Colour and brush controls for the current :class:`ToolSettings`."""

    def __init__(self, settings: ToolSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("brushPanel")
        self._settings = settings

        self.color_button = ColorButton()
        swatches = QWidget()
        grid = QHBoxLayout(swatches)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(3)
        for rgb in SWATCHES:
            sw = _Swatch(rgb)
            sw.clicked.connect(lambda _=False, c=rgb: self._settings.update(color=c))
            grid.addWidget(sw)
        grid.addStretch(1)
        color_row = QHBoxLayout()
        color_row.addWidget(self.color_button)
        color_row.addWidget(swatches, 1)

        self.size_row = _SliderRow(int(MIN_SIZE), int(MAX_SIZE), 1.0, " px", logarithmic=True)
        self.hardness_row = _SliderRow(0, 100, 100.0, " %")
        self.opacity_row = _SliderRow(0, 100, 100.0, " %")
        self.flow_row = _SliderRow(1, 100, 100.0, " %")
        self.smoothing_row = _SliderRow(0, 95, 100.0, " %")
        self.pressure_size = QCheckBox("Size")
        self.pressure_opacity = QCheckBox("Opacity")
        pressure = QHBoxLayout()
        pressure.addWidget(self.pressure_size)
        pressure.addWidget(self.pressure_opacity)
        pressure.addStretch(1)
        form = QFormLayout()
        form.addRow("Size", self.size_row)
        form.addRow("Hardness", self.hardness_row)
        form.addRow("Opacity", self.opacity_row)
        form.addRow("Flow", self.flow_row)
        form.addRow("Smoothing", self.smoothing_row)
        form.addRow("Pressure", pressure)

        self.color_square = ColorSquare()

        layout = QVBoxLayout(self)
        layout.addWidget(self.color_square)
        layout.addLayout(color_row)
        layout.addLayout(form)
        layout.addStretch(1)

        self.color_button.color_chosen.connect(lambda c: self._settings.update(color=c))
        self.color_square.color_changed.connect(lambda c: self._settings.update(color=c))
        self.size_row.value_changed.connect(lambda v: self._settings.update(size=v))
        self.hardness_row.value_changed.connect(lambda v: self._settings.update(hardness=v))
        self.opacity_row.value_changed.connect(lambda v: self._settings.update(opacity=v))
        self.flow_row.value_changed.connect(lambda v: self._settings.update(flow=v))
        self.smoothing_row.value_changed.connect(lambda v: self._settings.update(smoothing=v))
        self.pressure_size.toggled.connect(lambda on: self._settings.update(pressure_size=on))
        self.pressure_opacity.toggled.connect(lambda on: self._settings.update(pressure_opacity=on))
        settings.changed.connect(self._show)
        self._show(settings.values)

    def _show(self, values: BrushValues) -> None:
        self.color_button.set_color(values.color)
        with QSignalBlocker(self.color_square):
            self.color_square.set_color(values.color)
        self.size_row.set_value(values.size)
        self.hardness_row.set_value(values.hardness)
        self.opacity_row.set_value(values.opacity)
        self.flow_row.set_value(values.flow)
        self.smoothing_row.set_value(values.smoothing)
        with QSignalBlocker(self.pressure_size), QSignalBlocker(self.pressure_opacity):
            self.pressure_size.setChecked(values.pressure_size)
            self.pressure_opacity.setChecked(values.pressure_opacity)

"""The canvas view: strokes from mouse and pen input, undo, zoom and pan, repainting."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication
from qtinput import mouse_drag, pen_stroke, send_mouse, send_pinch, send_tablet, send_wheel
from sfumato.canvas.model.layers import PixelLayer
from sfumato.desktop.tool_settings import ToolKind


def _paint_layer(window) -> PixelLayer:  # noqa: ANN001
    layer = window.document.find("Paint")
    assert isinstance(layer, PixelLayer)
    return layer


def _alpha(layer: PixelLayer, doc) -> np.ndarray:  # noqa: ANN001
    return layer.surface.read(doc.rect)[..., 3]


def _widget_point(window, x: float, y: float) -> tuple[float, float]:  # noqa: ANN001
    p = window.view.map_from_document(x, y)
    return p.x(), p.y()


def test_mouse_stroke_paints_along_the_path_and_undo_restores(window) -> None:  # noqa: ANN001
    doc = window.document
    window.tool_settings.set_tool(ToolKind.BRUSH)
    window.tool_settings.update(size=12, color=(200, 30, 30), opacity=1.0, hardness=1.0)
    layer = _paint_layer(window)
    assert not _alpha(layer, doc).any()

    path = [_widget_point(window, x, 120) for x in range(60, 261, 10)]
    mouse_drag(window.view, path)

    alpha = _alpha(layer, doc)
    # Painted on the horizontal line y=120 from x=60 to 260, with the brush colour …
    assert alpha[120, 60:261].min() == 255
    assert tuple(layer.surface.read(doc.rect)[120, 160, :3]) == (200, 30, 30)
    # … about 12 px thick, and nowhere far from the line.
    assert alpha[120 - 4 : 120 + 5, 160].min() > 0
    assert not alpha[:100].any() and not alpha[140:].any()
    assert doc.history.undo_labels()[0] == "Brush Stroke"
    assert len(doc.history.undo_labels()) == 1

    window.actions["undo"].trigger()
    assert not _alpha(layer, doc).any()
    window.actions["redo"].trigger()
    assert _alpha(layer, doc)[120, 160] == 255


def test_stroke_shows_on_screen(window, qtbot) -> None:  # noqa: ANN001
    window.tool_settings.update(size=16, color=(10, 200, 10), opacity=1.0, hardness=1.0)
    x, y = _widget_point(window, 160, 120)
    before = window.view.grab().toImage().pixelColor(int(x), int(y))
    mouse_drag(window.view, [(x - 40, y), (x, y), (x + 40, y)])
    window.view.repaint()
    after = window.view.grab().toImage().pixelColor(int(x), int(y))
    assert (before.red(), before.green(), before.blue()) == (255, 255, 255)
    assert after.green() > 150 and after.red() < 60


def _thickness(alpha: np.ndarray, column: int, around: int) -> int:
    return int((alpha[max(0, around - 40) : around + 40, column] > 0).sum())


def test_pen_pressure_varies_the_stroke_width(window) -> None:  # noqa: ANN001
    doc = window.document
    window.tool_settings.update(size=30, hardness=1.0, opacity=1.0)
    layer = _paint_layer(window)

    light = pen_stroke(window.view, [_widget_point(window, x, 60) for x in range(40, 281, 8)], 0.2)
    heavy = pen_stroke(window.view, [_widget_point(window, x, 170) for x in range(40, 281, 8)], 1.0)
    assert all(e.isAccepted() for e in light + heavy)

    alpha = _alpha(layer, doc)
    thin, thick = _thickness(alpha, 160, 60), _thickness(alpha, 160, 170)
    assert thin > 0 and thick > 0
    assert thin < thick / 2, (thin, thick)
    assert 24 <= thick <= 34
    assert len(doc.history.undo_labels()) == 2
    window.actions["undo"].trigger()
    window.actions["undo"].trigger()
    assert not _alpha(layer, doc).any()


def test_tablet_events_are_accepted_and_mouse_events_during_a_pen_stroke_are_ignored(window) -> None:  # noqa: ANN001
    """Qt synthesises mouse events only for unaccepted tablet events; and should any mouse
    event arrive while the pen is down, it must not start or extend a second stroke."""
    doc = window.document
    layer = _paint_layer(window)
    window.tool_settings.update(size=10, hardness=1.0)
    a = QPointF(*_widget_point(window, 50, 50))
    b = QPointF(*_widget_point(window, 250, 50))
    press = send_tablet(window.view, QEvent.Type.TabletPress, a, 0.8)
    assert press.isAccepted()
    # A stray synthesised mouse drag somewhere else while the pen is down:
    far = QPointF(*_widget_point(window, 150, 200))
    send_mouse(window.view, QEvent.Type.MouseButtonPress, far)
    send_mouse(window.view, QEvent.Type.MouseMove, far + QPointF(30, 0), buttons=Qt.MouseButton.LeftButton)
    send_mouse(window.view, QEvent.Type.MouseButtonRelease, far + QPointF(30, 0))
    move = send_tablet(window.view, QEvent.Type.TabletMove, b, 0.8)
    release = send_tablet(window.view, QEvent.Type.TabletRelease, b, 0.0)
    assert move.isAccepted() and release.isAccepted()

    alpha = _alpha(layer, doc)
    assert alpha[50, 150] > 0
    assert not alpha[150:].any(), "the mouse events drew a second stroke"
    assert doc.history.undo_labels() == ["Brush Stroke"]


def test_eraser_removes_paint(window) -> None:  # noqa: ANN001
    doc = window.document
    layer = _paint_layer(window)
    window.tool_settings.update(size=20, hardness=1.0)
    mouse_drag(window.view, [_widget_point(window, x, 100) for x in range(40, 280, 10)])
    assert _alpha(layer, doc)[100, 160] == 255
    window.actions["tool_eraser"].trigger()
    mouse_drag(window.view, [_widget_point(window, 160, y) for y in range(70, 131, 5)])
    assert _alpha(layer, doc)[100, 160] == 0
    assert _alpha(layer, doc)[100, 60] == 255


def test_escape_aborts_a_stroke_in_progress(window) -> None:  # noqa: ANN001
    doc = window.document
    layer = _paint_layer(window)
    a, b = _widget_point(window, 40, 40), _widget_point(window, 200, 40)
    send_mouse(window.view, QEvent.Type.MouseButtonPress, QPointF(*a))
    send_mouse(window.view, QEvent.Type.MouseMove, QPointF(*b), buttons=Qt.MouseButton.LeftButton)
    assert _alpha(layer, doc).any()
    window.actions["cancel"].trigger()
    send_mouse(window.view, QEvent.Type.MouseButtonRelease, QPointF(*b))
    assert not _alpha(layer, doc).any()
    assert not doc.history.can_undo


def test_wheel_zoom_keeps_the_document_point_under_the_cursor(window) -> None:  # noqa: ANN001
    view = window.view
    cursor = QPointF(300.5, 211.25)
    before = view.map_to_document(cursor)
    zoom = view.viewport.zoom
    send_wheel(view, cursor, 120)
    assert view.viewport.zoom > zoom
    after = view.map_to_document(cursor)
    assert after == pytest.approx(before, abs=1e-6)
    send_wheel(view, QPointF(10, 20), -360)
    assert view.viewport.zoom < zoom


def test_pinch_zoom_keeps_the_document_point_under_the_fingers(window) -> None:  # noqa: ANN001
    view = window.view
    at = QPointF(150, 100)
    before = view.map_to_document(at)
    zoom = view.viewport.zoom
    send_pinch(view, at, 0.25)
    assert view.viewport.zoom == pytest.approx(zoom * 1.25)
    assert view.map_to_document(at) == pytest.approx(before, abs=1e-6)


def test_middle_button_drag_pans_without_painting(window) -> None:  # noqa: ANN001
    view = window.view
    layer = _paint_layer(window)
    start = view.viewport
    mouse_drag(view, [(100, 100), (130, 110), (160, 140)], button=Qt.MouseButton.MiddleButton)
    assert view.viewport.offset_x == pytest.approx(start.offset_x + 60)
    assert view.viewport.offset_y == pytest.approx(start.offset_y + 40)
    assert view.viewport.zoom == start.zoom
    assert not _alpha(layer, window.document).any()


def test_space_drag_pans_without_painting(window) -> None:  # noqa: ANN001
    view = window.view
    layer = _paint_layer(window)
    start = view.viewport
    view.setFocus()
    QApplication.sendEvent(view, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier))
    mouse_drag(view, [(200, 200), (180, 190), (150, 170)])
    QApplication.sendEvent(view, QKeyEvent(QEvent.Type.KeyRelease, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier))
    assert view.viewport.offset_x == pytest.approx(start.offset_x - 50)
    assert view.viewport.offset_y == pytest.approx(start.offset_y - 30)
    assert not _alpha(layer, window.document).any()
    mouse_drag(view, [(200, 200), (220, 200)])  # space released: the brush paints again
    assert _alpha(layer, window.document).any()


def test_fit_and_actual_pixels(window) -> None:  # noqa: ANN001
    view = window.view
    view.zoom_to(7.0)
    window.actions["fit"].trigger()
    doc = window.document
    rect = view.document_rect_to_widget(doc.rect)
    assert rect.width() <= view.width() and rect.height() <= view.height()
    assert max(rect.width() / view.width(), rect.height() / view.height()) > 0.8
    window.actions["actual"].trigger()
    assert view.viewport.zoom * view.devicePixelRatioF() == pytest.approx(1.0)


def test_only_dirty_tiles_are_fetched_again(window) -> None:  # noqa: ANN001
    """After a small stroke, a repaint asks the compositor only for the tiles it touched."""
    from sfumato.canvas.model.document import Document
    from sfumato.desktop.files import new_document

    doc: Document = new_document(1024, 1024)
    window.set_document(doc)
    view = window.view
    view.render_all()
    calls: list[tuple[int, int]] = []
    compositor = view.compositor
    real = compositor.tile

    def counting(tx: int, ty: int) -> np.ndarray:
        calls.append((tx, ty))
        return real(tx, ty)

    compositor.tile = counting  # type: ignore[method-assign]
    window.tool_settings.update(size=8)
    mouse_drag(view, [_widget_point(window, 40, 40), _widget_point(window, 60, 40)])
    view.repaint()
    assert calls and set(calls) == {(0, 0)}


def test_many_repaints_do_not_crash(window) -> None:  # noqa: ANN001
    """PySide6 6.12 on Python 3.11 aborted after thousands of void Qt calls (field notes);
    a few thousand painter calls must run cleanly: every repaint is painted, and the view
    still shows the document afterwards."""
    from PySide6.QtCore import QObject, QRect

    view = window.view
    window.tool_settings.update(size=16, color=(10, 200, 10), opacity=1.0, hardness=1.0)
    x, y = _widget_point(window, 160, 120)
    mouse_drag(view, [(x - 40, y), (x, y), (x + 40, y)])
    painted = [0]

    class CountPaints(QObject):
        def eventFilter(self, watched, event):  # noqa: ANN001, ANN202, N802 - Qt API
            if event.type() == QEvent.Type.Paint:
                painted[0] += 1
            return False

    counter = CountPaints()
    view.installEventFilter(counter)
    try:
        for i in range(2500):  # ~10 void Qt calls each
            view.repaint(QRect(i % 200, 50, 60, 60))
    finally:
        view.removeEventFilter(counter)
    assert painted[0] == 2500  # repaint() paints synchronously, once per call
    view.repaint()
    image = view.grab().toImage()
    stroke = image.pixelColor(int(x), int(y))
    paper = image.pixelColor(*(int(v) for v in _widget_point(window, 160, 40)))
    assert stroke.green() > 150 and stroke.red() < 60
    assert (paper.red(), paper.green(), paper.blue()) == (255, 255, 255)


def test_hidpi_100_percent_is_one_document_pixel_per_device_pixel(tmp_path) -> None:
    """Under a 2x scale factor, "100 %" maps one document pixel to one device pixel and
    the grabbed canvas has device-pixel sharpness (a 1-px line stays 1 device px wide)."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import numpy as np
        from windowdocs import small_document
        from sfumato.desktop.app import create_application
        from sfumato.desktop.main_window import MainWindow
        app = create_application([])
        w = MainWindow(); w.resize(900, 640)
        doc = small_document()
        line = np.zeros((1, 320, 4), np.uint8); line[..., 3] = 255
        doc.root.children[0].surface.write(0, 100, line)
        w.set_document(doc); w.show(); app.processEvents()
        v = w.view
        v.actual_pixels(); v.repaint()
        image = v.grab().toImage()
        dpr = image.devicePixelRatio()
        p = v.map_from_document(160, 100)
        x, y = round(p.x() * dpr), round(p.y() * dpr)
        dark = [image.pixelColor(x, y + k).red() < 128 for k in (-2, -1, 0, 1, 2)]
        print("RESULT", v.devicePixelRatioF(), v.viewport.zoom, sum(dark))
        doc.history.mark_clean(); w.close()
        """
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="2",
               SFUMATO_CONFIG_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=120)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    _, dpr, zoom, dark_rows = line.split()
    assert float(dpr) == 2.0
    assert float(zoom) == pytest.approx(0.5)
    assert int(dark_rows) == 1


def test_a_resize_during_a_stroke_does_not_move_the_canvas(window) -> None:  # noqa: ANN001
    """A dock growing mid-stroke (a new layer's editors appearing) must not shift the
    document under the pen; the fitted view refits after the stroke."""
    view = window.view
    layer = _paint_layer(window)
    a = QPointF(*_widget_point(window, 50, 60))
    b = QPointF(*_widget_point(window, 250, 60))
    send_mouse(view, QEvent.Type.MouseButtonPress, a)
    before = view.viewport
    view.resize(view.width() - 80, view.height() - 60)
    assert view.viewport == before
    send_mouse(view, QEvent.Type.MouseMove, b, buttons=Qt.MouseButton.LeftButton)
    send_mouse(view, QEvent.Type.MouseButtonRelease, b)
    alpha = _alpha(layer, window.document)
    assert alpha[60, 150] > 0 and not alpha[:45].any() and not alpha[76:].any()
    assert view.viewport != before  # refitted once the stroke ended
    # From now on a resize keeps the zoom and the centre.
    centre = view.map_to_document(QPointF(view.width() / 2, view.height() / 2))
    zoom = view.viewport.zoom
    view.resize(view.width() + 40, view.height() + 30)
    assert view.viewport.zoom == zoom
    assert view.map_to_document(QPointF(view.width() / 2, view.height() / 2)) == pytest.approx(centre)


def test_pressure_to_size_can_be_switched_off(window) -> None:  # noqa: ANN001
    doc = window.document
    layer = _paint_layer(window)
    window.tool_settings.update(size=30, hardness=1.0, pressure_size=False)
    assert not window.brush_panel.pressure_size.isChecked()
    pen_stroke(window.view, [_widget_point(window, x, 60) for x in range(40, 281, 8)], 0.2)
    pen_stroke(window.view, [_widget_point(window, x, 170) for x in range(40, 281, 8)], 1.0)
    alpha = _alpha(layer, doc)
    assert abs(_thickness(alpha, 160, 60) - _thickness(alpha, 160, 170)) <= 1
    # Pressure to opacity instead: the light stroke is fainter, not thinner.
    window.brush_panel.pressure_opacity.setChecked(True)
    assert window.tool_settings.values.pressure_opacity
    window.actions["undo"].trigger()
    window.actions["undo"].trigger()
    pen_stroke(window.view, [_widget_point(window, x, 60) for x in range(40, 281, 8)], 0.3)
    alpha = _alpha(layer, doc)
    assert 0 < alpha[60, 160] < 128


def test_the_pens_eraser_end_erases_with_the_brush_tool(window) -> None:  # noqa: ANN001
    from qtinput import eraser_device

    doc = window.document
    layer = _paint_layer(window)
    window.tool_settings.update(size=20, hardness=1.0)
    pen_stroke(window.view, [_widget_point(window, x, 100) for x in range(40, 281, 8)], 1.0)
    assert _alpha(layer, doc)[100, 160] == 255
    assert window.tool_settings.tool is ToolKind.BRUSH
    pen_stroke(window.view, [_widget_point(window, 160, y) for y in range(70, 131, 6)], 1.0,
               device=eraser_device())
    assert _alpha(layer, doc)[100, 160] == 0
    assert _alpha(layer, doc)[100, 60] == 255


def test_a_big_document_appears_progressively_without_blocking(window, qtbot, monkeypatch) -> None:  # noqa: ANN001
    """Past the frame budget, uncomposited tiles wait for later frames (the event loop
    runs in between); they all arrive, and the result equals a full render."""
    from sfumato.desktop import canvas_tiles
    from sfumato.desktop.files import new_document, qimage_to_rgba

    def grab_widget(widget) -> np.ndarray:  # noqa: ANN001
        return qimage_to_rgba(widget.grab().toImage())

    doc = new_document(1536, 1024)
    # Every tile different (a gradient), so a tile missing or misplaced changes pixels.
    yy, xx = np.mgrid[0:1024, 0:1536]
    pixels = np.empty((1024, 1536, 4), np.uint8)
    pixels[..., 0] = xx * 255 // 1535
    pixels[..., 1] = yy * 255 // 1023
    pixels[..., 2] = (xx + yy) % 256
    pixels[..., 3] = 255
    _paint = doc.find("Paint")
    assert isinstance(_paint, PixelLayer)
    _paint.surface.write(0, 0, pixels)
    window.set_document(doc)
    view = window.view
    all_tiles = len(list(doc.rect.tiles(256)))

    # The reference: every tile composited in one go.
    view.render_all()
    full = grab_widget(view)
    assert len(view._tiles) == all_tiles

    view._tiles.clear()  # as after loading: nothing composited yet
    monkeypatch.setattr(canvas_tiles, "FRAME_BUDGET_S", 0.0)
    view.repaint()
    first = len(view._tiles)
    assert first == canvas_tiles.MIN_TILES_PER_FRAME
    assert view._tiles.deferred  # the rest is scheduled
    # The event loop finishes the job (a few frames; generous for a loaded CI machine).
    qtbot.waitUntil(lambda: len(view._tiles) == all_tiles and not view._tiles.deferred, timeout=30_000)
    progressive = grab_widget(view)
    assert progressive.shape == full.shape
    assert np.array_equal(progressive, full)

"""The painter who crashes: ``python windowcrash.py`` starts Sfumato's window as the
program does, paints three strokes with the mouse (red, green, blue on rows 100, 200, 300
of the new document), waits until the recovery journal has them on disk, prints
``ready`` and then waits to be killed (tests/desktop/test_recovery_window.py)."""

from __future__ import annotations

import sys
import time

from PySide6.QtTest import QTest
from qtinput import mouse_drag
from sfumato.desktop.app import create_application, start_window
from sfumato.desktop.tool_settings import ToolKind

STROKES = [((220, 30, 30), 100), ((30, 200, 30), 200), ((30, 30, 220), 300)]


def main() -> None:
    app = create_application([])
    window = start_window()
    window.resize(900, 700)
    QTest.qWaitForWindowExposed(window)
    window.view.fit()
    app.processEvents()
    window.tool_settings.set_tool(ToolKind.BRUSH)
    for color, row in STROKES:
        window.tool_settings.update(size=14, color=color, opacity=1.0, hardness=1.0)
        points = []
        for x in range(100, 501, 20):
            p = window.view.map_from_document(x, row)
            points.append((p.x(), p.y()))
        mouse_drag(window.view, points)
        app.processEvents()
    assert window.journals.journal is not None and window.journals.journal.flush()
    print("ready", " / ".join(window.document.history.undo_labels()), flush=True)
    while True:
        app.processEvents()
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())

"""Guards the PySide6 constraint: thousands of QPainter calls must not abort the interpreter.

PySide6 6.12.0 on CPython 3.11 corrupts the refcount of ``None`` on every Qt call that
returns nothing (``setPen``, ``drawEllipse``, ``fillRect``...); after a few thousand
calls the interpreter dies with ``Fatal Python error: none_dealloc``. A painting program
makes that many calls a minute, so ``pyproject.toml`` keeps PySide6 below 6.12 on 3.11.
The painting runs in a child interpreter so that an abort shows up as a clear failure
here instead of killing the test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import PySide6

DABS = 20_000

_PAINT = textwrap.dedent(
    f"""
    import sys
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QBrush, QColor, QGuiApplication, QImage, QPainter, QPen

    app = QGuiApplication(sys.argv[:1])
    image = QImage(512, 512, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    for i in range({DABS}):
        painter.setPen(QPen(QColor(i % 256, 40, 90, 255), 1.0))
        painter.setBrush(QBrush(QColor(20, i % 200, 120, 160)))
        x, y = (i * 37) % 480, (i * 91) % 480
        painter.drawEllipse(QRectF(x, y, 16, 16))
        painter.fillRect(QRectF(x + 4, y + 4, 2, 2), QColor(0, 0, 0))
    painter.end()
    white = sum(
        1 for y in range(0, 512, 8) for x in range(0, 512, 8) if image.pixel(x, y) == 0xFFFFFFFF
    )
    print("painted", {DABS}, "white-samples", white)
    """
)


def test_twenty_thousand_qpainter_dabs_do_not_crash() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, "-c", _PAINT], capture_output=True, text=True, timeout=240, env=env
    )
    assert result.returncode == 0, (
        f"painting {DABS} dabs with QPainter killed the interpreter (exit {result.returncode}) "
        f"on PySide6 {PySide6.__version__}, Python {sys.version.split()[0]}:\n{result.stderr[-2000:]}"
    )
    words = result.stdout.split()
    assert words[:2] == ["painted", str(DABS)]
    # The dabs really landed: a good share of the 64×64 samples is no longer white.
    assert int(words[3]) < 64 * 64 * 3 // 4


def test_installed_pyside6_is_not_the_broken_release() -> None:
    major, minor = (int(part) for part in PySide6.__version__.split(".")[:2])
    if sys.version_info < (3, 12):
        assert (major, minor) < (6, 12), (
            f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} aborts the "
            "interpreter after a few thousand Qt calls; install PySide6-Essentials<6.12"
        )

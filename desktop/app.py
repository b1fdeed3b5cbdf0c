"""The desktop entry point: ``main(argv) -> int`` (``sfumato`` with no subcommand).

Creates the ``QApplication`` (HiDPI: fractional scale factors passed through so 150 %
screens are sharp), points settings at the config folder, opens the window and the file
named on the command line, and runs the event loop. Nothing heavy is imported here: the
engine (torch, diffusers) loads lazily when a generation first needs it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sfumato", description="Sfumato painting window")
    parser.add_argument("file", nargs="?", type=Path, help="an .ora document or an image to open")
    parser.add_argument("--debug", action="store_true", help="verbose logging")
    args, _qt_args = parser.parse_known_args(list(argv))
    return args


def create_application(argv: Sequence[str] | None = None):  # noqa: ANN201 - QApplication
    """The process's ``QApplication`` (made once, HiDPI-aware, settings configured)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication
    from sfumato.desktop import settings

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(["sfumato", *(argv or [])])
    settings.configure()
    app.setApplicationDisplayName("Sfumato")
    return app


def create_window(path: Path | None = None):  # noqa: ANN201 - MainWindow
    """A main window, with ``path`` opened when given."""
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.main_window import MainWindow
    from sfumato.desktop.upscale_dialog import install_upscale

    window = MainWindow()
    controller = install_generation(window)  # docks, overlays, worker thread (torch loads on first run)
    install_upscale(window, controller)  # Image > Upscale..., through the same worker
    if path is not None:
        window.files.open_path(path)
    return window


def main(argv: Sequence[str] | None = None) -> int:
    """Run the window; returns the process exit code (0 on a normal quit, 2 on bad args)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.DEBUG if args.debug else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    if args.file is not None and not args.file.exists():
        print(f"sfumato: {args.file}: no such file", file=sys.stderr)
        return 2
    app = create_application(argv)
    start_window(args.file)
    return int(app.exec())


def start_window(path: Path | None = None):  # noqa: ANN201 - MainWindow
    """What starting the program does: the window, shown, then (once the event loop runs)
    the offer of any work a crash left unsaved."""
    from PySide6.QtCore import QTimer
    from sfumato.desktop.recovery_dialog import offer_recovery

    window = create_window(path)
    window.show()
    QTimer.singleShot(0, window, lambda: offer_recovery(window, window.adopt_recovered))
    return window


if __name__ == "__main__":
    raise SystemExit(main())

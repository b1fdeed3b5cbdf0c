"""The GUI event loop while the worker generates: how late does a 10 ms timer fire?

A window (offscreen) with the generation UI installed generates with a tiny SD 1.x model
(64 px native; built in a subprocess so this process imports torch only on the worker
thread). A ``QTimer`` set to 10 ms (``PreciseTimer``) records how late each tick is; the
worst lateness is the longest stall a painter would feel. Phases:

- ``idle``: no generation (the floor on this machine);
- ``import``: the worker thread imports torch/diffusers and makes the engine
  (``GenerationWorker.preload``, which the window runs when the prompt box first gets
  the focus). Extension modules load with the GIL held, so this phase stalls the GUI
  in bursts of a few hundred ms on a slow CPU; it happens once per session;
- ``first run``: the model load (from disk) and the first generation;
- ``warm``: further generations with the model loaded (inpaint, previews every step).

The probe runs from the moment ``generate()`` has returned; what ``generate()`` itself
costs on the GUI thread (settings and a copy-on-write document snapshot — planning runs on
the worker) is reported separately.
Target: worst lateness <= 50 ms while generating (first run and warm). Prints a table; ``--json PATH``
writes the figures (milliseconds).

    python benchmarks/bench_desktop_worker.py [--json out.json] [--runs 5] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SFUMATO_NO_SYSTEM_MODEL_DIRS", "1")
os.environ.setdefault("SFUMATO_CONFIG_DIR", tempfile.mkdtemp(prefix="sfumato-bench-config-"))

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0
INTERVAL_MS = 10


def build_model(folder: Path) -> Path:
    """Build the tiny model in a child process (keeps torch out of this one)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from tinymodels import build_tiny_sd15;"
        "build_tiny_sd15(Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT / "tests"), str(folder)], check=True)
    return folder


class LatenessProbe:
    """A 10 ms precise timer recording how late each tick arrives (ms)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.samples: list[float] = []
        self._last = 0.0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.samples = []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.samples

    def _tick(self) -> None:
        now = time.perf_counter()
        self.samples.append(max(0.0, (now - self._last) * 1000.0 - INTERVAL_MS))
        self._last = now


def _stats(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"max": 0.0, "p99": 0.0, "median": 0.0, "ticks": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {
        "max": round(ordered[-1], 2),
        "p99": round(p99, 2),
        "median": round(statistics.median(ordered), 2),
        "ticks": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--runs", type=int, default=5, help="warm generations")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--model", type=Path, help="a diffusers folder (default: a tiny one)")
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="sys.setswitchinterval for the run (default: the interpreter's, 5 ms)")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)

    model = args.model or build_model(Path(tempfile.mkdtemp(prefix="sfumato-bench-model-")) / "sd15")

    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer
    from sfumato.canvas.document import Document
    from sfumato.canvas.layers import PixelLayer, Role
    from sfumato.canvas.tiles import TiledSurface
    from sfumato.desktop.app import create_application
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.main_window import MainWindow

    app = create_application([])

    def engine_factory() -> Any:
        from sfumato.inference.engine import Engine

        return Engine(device="cpu")

    window = MainWindow()
    window.resize(1200, 800)
    controller = install_generation(window, engine_factory)
    doc = Document(768, 768)
    doc.root.append(PixelLayer("Background", TiledSurface.from_array(np.full((768, 768, 4), 230, np.uint8))))
    window.set_document(doc)
    window.show()
    app.processEvents()
    doc.set_recipe(prompt="a red ball", model=str(model), seed=1, steps=args.steps, cfg=5.0)
    torch_before = "torch" in sys.modules

    probe = LatenessProbe()

    def spin(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    plan_ms: list[float] = []

    def generate_once() -> tuple[list[float], float, int]:
        loop = QEventLoop()
        previews = {"n": 0}

        def on_preview(_rect: object) -> None:
            previews["n"] += 1

        controller.preview_shown.connect(on_preview)
        for signal in (controller.staged, controller.failed, controller.cancelled):
            signal.connect(loop.quit)
        started = time.perf_counter()
        if not controller.generate():
            raise SystemExit(f"cannot generate: {controller.dock.error_text}")
        plan_ms.append((time.perf_counter() - started) * 1000.0)
        probe.start()
        loop.exec()
        samples = probe.stop()
        seconds = time.perf_counter() - started
        for signal in (controller.staged, controller.failed, controller.cancelled):
            signal.disconnect(loop.quit)
        controller.preview_shown.disconnect(on_preview)
        if controller.dock.error_text:
            raise SystemExit(f"generation failed: {controller.dock.error_text}")
        controller.staging.discard()
        return samples, seconds, previews["n"]

    probe.start()
    spin(1000)
    idle = _stats(probe.stop())

    ready = QEventLoop()
    controller.worker.engine_ready.connect(lambda _ok: ready.quit())
    started = time.perf_counter()
    probe.start()
    controller.worker.preload()
    ready.exec()
    imported = _stats(probe.stop())
    import_s = time.perf_counter() - started

    cold_samples, cold_s, cold_previews = generate_once()
    cold = _stats(cold_samples)
    torch_on_gui = torch_before  # torch was loaded by the worker thread, not here

    # Warm runs: inpaint (mask in the middle) so previews go through the paste mask too.
    mask = PixelLayer("Mask", role=Role.INPAINT_MASK)
    doc.add_layer(mask)
    pixels = np.zeros((200, 200, 4), np.uint8)
    pixels[..., 3] = 255
    doc.put_pixels(mask, pixels, 284, 284)
    warm_samples: list[float] = []
    warm_times: list[float] = []
    previews = 0
    for _ in range(args.runs):
        samples, seconds, n = generate_once()
        warm_samples += samples
        warm_times.append(seconds)
        previews += n
    warm = _stats(warm_samples)

    controller.shutdown()
    window.hide()
    window.deleteLater()

    rows = [
        ("idle (1 s)", idle, "-", "-"),
        ("import torch+diffusers (once)", imported, f"{import_s:.2f}", "-"),
        (f"first run: load+{args.steps} steps", cold, f"{cold_s:.2f}", str(cold_previews)),
        (f"warm: {args.runs} × {args.steps}-step inpaint", warm, f"{statistics.median(warm_times):.2f}", str(previews)),
    ]
    print(f"GUI 10 ms timer lateness while generating (target: max <= {TARGET_MS:.0f} ms)")
    print(f"{'phase':40s} {'max ms':>8s} {'p99 ms':>8s} {'median':>8s} {'ticks':>6s} {'run s':>7s} {'previews':>8s}")
    for name, s, secs, n in rows:
        print(f"{name:40s} {s['max']:8.1f} {s['p99']:8.1f} {s['median']:8.2f} {s['ticks']:6d} {secs:>7s} {n:>8s}")
    worst = max(cold["max"], warm["max"])
    print(f"worst stall while generating: {worst:.1f} ms ({'meets' if worst <= TARGET_MS else 'misses'} the target)")
    print(f"generate() on the GUI thread (settings + document snapshot): median "
          f"{statistics.median(plan_ms):.1f} ms, max {max(plan_ms):.1f} ms (768² document)")
    print(f"sys.getswitchinterval() = {sys.getswitchinterval() * 1000:.1f} ms")
    print(f"torch imported on the GUI thread before the first run: {torch_on_gui}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "interval_ms": INTERVAL_MS,
                    "target_ms": TARGET_MS,
                    "steps": args.steps,
                    "idle": idle,
                    "import": {**imported, "seconds": round(import_s, 3)},
                    "generate_call_ms": {"median": round(statistics.median(plan_ms), 2), "max": round(max(plan_ms), 2)},
                    "switch_interval_ms": sys.getswitchinterval() * 1000,
                    "first_run": {**cold, "seconds": round(cold_s, 3), "previews": cold_previews},
                    "warm": {**warm, "median_run_s": round(statistics.median(warm_times), 3), "previews": previews},
                    "worst_generating_ms": worst,
                },
                handle,
                indent=2,
            )


if __name__ == "__main__":
    main()

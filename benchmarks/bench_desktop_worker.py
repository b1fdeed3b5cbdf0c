"""Stroke-to-screen latency while the worker generates: what a painter feels.

A window (offscreen) with the generation UI installed paints continuously with a
synthetic pen: tablet events through the real :class:`~sfumato.desktop.canvas_view.CanvasView`
and brush tool, one due every 8 ms (a 125 Hz tablet), each stroke 48 events long on fresh
canvas (a new row for every stroke). Each event is handed to the view as soon as the GUI
thread is free after its due time; a sample is the time **from the event's due time until
the synchronous repaint of the region the view scheduled has returned** (the dab painted,
the dirty tiles recomposited and drawn). A GUI thread held up by the worker (the GIL, a
full garbage collection) shows as events waiting in the queue, i.e. as latency.

Meanwhile the worker generates with a model whose steps take as long as a real one's:
by default a **full-size SD 1.5 single-file checkpoint with random weights** (written to
a temporary folder, ≈ 2 GB, deleted afterwards; ``--family sdxl`` for SDXL, ≈ 7 GB), or
any model with ``--model PATH``; ``--tiny`` uses the tests' 64 px model instead (fast, but
it shows neither a real load nor a real step). Phases, each timed from the worker thread:

- ``idle``: no generation (the floor on this machine);
- ``torch import``: the worker imports torch/diffusers and makes the engine
  (``GenerationWorker.preload``, which the window runs when the prompt box first gets
  the focus); once per session;
- ``model load``: the first generation's model load (file read, key conversion, dtype
  casts, building the pipeline);
- ``first steps``: from the end of the load to the end of the second denoising step
  (prompt encoding, the first steps);
- ``later steps``: the rest of the first run (steps, previews, VAE decode, staging);
- ``warm``: further generations with the model loaded (an inpaint, previews every step).

Target: the worst stroke-to-screen latency while loading and generating <= 50 ms (the
torch import is reported, not targeted). Prints a table; ``--json PATH`` writes the
figures (milliseconds).

    python benchmarks/bench_desktop_worker.py [--family sd15|sdxl | --model PATH | --tiny]
        [--steps 3] [--runs 1] [--dir /tmp] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SFUMATO_NO_SYSTEM_MODEL_DIRS", "1")
os.environ.setdefault("SFUMATO_CONFIG_DIR", tempfile.mkdtemp(prefix="sfumato-bench-config-"))

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0
PEN_HZ = 125
STROKE_EVENTS = 48
STEP_PX = 6.0  # document pixels between pen events (~750 px/s)
DOC_SIDE = 1024
BRUSH = 32
IDLE_MS = 5000  # the floor: painting with no generation


def build_tiny_model(folder: Path) -> Path:
    """The tests' tiny SD 1.x folder, built in a child process (keeps torch out of this one)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from tinymodels import build_tiny_sd15;"
        "build_tiny_sd15(Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT / "tests"), str(folder)], check=True)
    return folder


def write_full_size_checkpoint(family: str, path: Path) -> Path:
    """A random full-size checkpoint in the released layout, written by a child process."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from fullsize_checkpoint import random_ldm_checkpoint;"
        "random_ldm_checkpoint(sys.argv[2], Path(sys.argv[3]))"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT / "tests"), family, str(path)], check=True)
    return path


class Pen:
    """A synthetic 125 Hz pen drawing rows of strokes over fresh canvas.

    Events are due every ``1/PEN_HZ`` s from :meth:`start`; a precise 2 ms timer hands
    every due event to the view, then repaints what the view scheduled. Each sample is
    ``(due time, latency ms, run-queue ms)``: the last is how long the GUI thread waited
    for a CPU (Linux ``schedstat``) since the previous tick, i.e. the part of a stall the
    machine's load caused rather than the worker holding the GIL.
    """

    def __init__(self, view: Any) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.view = view
        self.samples: list[tuple[float, float, float]] = []
        self._run_delay = _run_delay_ms()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(2)
        self._timer.timeout.connect(self._tick)
        self._t0 = 0.0
        self._sent = 0
        self._row = 0
        self._in_stroke = 0
        self.strokes = 0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._sent = 0
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        if self._in_stroke:
            self._send("release", self._position(self._in_stroke))
            self._in_stroke = 0
            self.view.repaint_pending()

    def _position(self, i: int) -> tuple[float, float]:
        zoom = self.view.viewport.zoom
        rows_per_column = max(1, int((self.view.height() - 80) / 14))
        column, row = divmod(self._row, rows_per_column)
        x0 = 40 + (column % 3) * (STROKE_EVENTS * STEP_PX * zoom + 20)
        y0 = 40 + row * 14
        return x0 + i * STEP_PX * zoom, y0 + 3.0 * ((i % 8) - 4) / 4

    def _send(self, kind: str, pos: tuple[float, float]) -> None:
        from PySide6.QtCore import QEvent, QPointF, Qt
        from PySide6.QtGui import QTabletEvent
        from PySide6.QtWidgets import QApplication
        from qtinput import pen_device

        types = {"press": QEvent.Type.TabletPress, "move": QEvent.Type.TabletMove,
                 "release": QEvent.Type.TabletRelease}
        button = Qt.MouseButton.LeftButton if kind != "move" else Qt.MouseButton.NoButton
        buttons = Qt.MouseButton.NoButton if kind == "release" else Qt.MouseButton.LeftButton
        point = QPointF(*pos)
        event = QTabletEvent(
            types[kind], pen_device(), point, self.view.mapToGlobal(point), 0.0 if kind == "release" else 0.7,
            0.0, 0.0, 0.0, 0.0, 0.0, Qt.KeyboardModifier.NoModifier, button, buttons,
        )
        event.setAccepted(False)
        QApplication.sendEvent(self.view, event)

    def _tick(self) -> None:
        now = time.perf_counter()
        due = int((now - self._t0) * PEN_HZ)
        if due <= self._sent:
            self._run_delay = _run_delay_ms()
            return
        stamps = [self._t0 + k / PEN_HZ for k in range(self._sent + 1, due + 1)]
        for _ in stamps:
            if self._in_stroke == 0:
                self._send("press", self._position(0))
                self._in_stroke = 1
            elif self._in_stroke >= STROKE_EVENTS:
                self._send("release", self._position(self._in_stroke))
                self._in_stroke = 0
                self._row += 1
                self.strokes += 1
            else:
                self._send("move", self._position(self._in_stroke))
                self._in_stroke += 1
        self.view.repaint_pending()
        done = time.perf_counter()
        run_delay = _run_delay_ms()
        waited, self._run_delay = run_delay - self._run_delay, run_delay
        self.samples += [(s, (done - s) * 1000.0, waited) for s in stamps]
        self._sent = due


def _run_delay_ms() -> float:
    """This thread's total wait for a CPU so far (ms; 0 where the kernel does not say)."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as handle:
            return int(handle.read().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def _stats(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"events": 0, "median": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "over_target": 0}
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 2)

    return {
        "events": len(ordered),
        "median": round(statistics.median(ordered), 2),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(ordered[-1], 2),
        "over_target": sum(1 for v in ordered if v > TARGET_MS),
    }


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--runs", type=int, default=1, help="warm generations after the first")
    parser.add_argument("--steps", type=int, default=3)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="a checkpoint file or diffusers folder")
    source.add_argument("--family", choices=["sd15", "sdxl"], default="sd15",
                        help="write a random full-size checkpoint of this family (default sd15)")
    source.add_argument("--tiny", action="store_true", help="the tests' 64 px model (no real load or step)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the temporary checkpoint")
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="sys.setswitchinterval for the run (default: the interpreter's, 5 ms)")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    sys.path.insert(0, str(ROOT / "tests"))  # qtinput's pen device

    scratch = Path(tempfile.mkdtemp(prefix="sfumato-bench-model-", dir=args.dir))
    try:
        if args.model is not None:
            model, label = args.model, f"{args.model.name}"
        elif args.tiny:
            model, label = build_tiny_model(scratch / "sd15"), "tiny SD 1.x (64 px, tests/tinymodels.py)"
        else:
            model = write_full_size_checkpoint(args.family, scratch / f"{args.family}.safetensors")
            label = f"full-size {args.family} single file, random fp16 weights ({model.stat().st_size / 1e9:.1f} GB)"
        results = measure(model, label, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(results, args)


def measure(model: Path, label: str, args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915
    import numpy as np
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from sfumato.canvas.document import Document
    from sfumato.canvas.layers import PixelLayer, Role
    from sfumato.canvas.tiles import TiledSurface
    from sfumato.desktop.app import create_application
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.main_window import MainWindow

    app = create_application([])
    marks: dict[str, list[float]] = {"load": [], "steps": [], "finished": []}
    lock = threading.Lock()

    def engine_factory() -> Any:
        from sfumato.inference.engine import Engine

        engine = Engine(device="cpu")
        get = engine.cache.get

        def timed_get(ref: Any) -> Any:  # the worker loads the model through this first
            before = engine.cache.load_count
            t0 = time.perf_counter()
            try:
                return get(ref)
            finally:
                if engine.cache.load_count != before:
                    with lock:
                        marks["load"] += [t0, time.perf_counter()]

        engine.cache.get = timed_get  # type: ignore[method-assign]
        return engine

    window = MainWindow()
    window.resize(1200, 800)
    controller = install_generation(window, engine_factory)

    def on_progress(_job: int, step: int, _total: int) -> None:  # worker thread (direct)
        with lock:
            marks["steps"].append(time.perf_counter() if step else -1.0)

    controller.worker.progress.connect(on_progress, Qt.ConnectionType.DirectConnection)
    controller.worker.finished.connect(
        lambda *_: marks["finished"].append(time.perf_counter()), Qt.ConnectionType.DirectConnection)

    doc = Document(DOC_SIDE, DOC_SIDE)
    doc.root.append(PixelLayer("Background", TiledSurface.from_array(np.full((DOC_SIDE, DOC_SIDE, 4), 230, np.uint8))))
    paint = PixelLayer("Paint")
    doc.root.append(paint)
    window.set_document(doc)
    doc.active = paint
    window.show()
    app.processEvents()
    view = window.view
    view.actual_pixels()
    window.tool_settings.update(size=BRUSH, hardness=0.8, opacity=1.0, flow=1.0)
    view.render_all()
    app.processEvents()
    doc.set_recipe(prompt="a red ball", model=str(model), seed=1, steps=args.steps, cfg=5.0)
    torch_before = "torch" in sys.modules

    pen = Pen(view)

    def spin(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    plan_ms: list[float] = []

    def generate_once() -> tuple[float, float]:
        loop = QEventLoop()
        for signal in (controller.staged, controller.failed, controller.cancelled):
            signal.connect(loop.quit)
        started = time.perf_counter()
        if not controller.generate():
            raise SystemExit(f"cannot generate: {controller.dock.error_text}")
        plan_ms.append((time.perf_counter() - started) * 1000.0)
        loop.exec()
        ended = time.perf_counter()
        for signal in (controller.staged, controller.failed, controller.cancelled):
            signal.disconnect(loop.quit)
        if controller.dock.error_text:
            raise SystemExit(f"generation failed: {controller.dock.error_text}")
        controller.staging.discard()
        return started, ended

    pen.start()
    spin(IDLE_MS)
    idle_end = time.perf_counter()

    ready = QEventLoop()
    controller.worker.engine_ready.connect(lambda _ok: ready.quit())
    import_start = time.perf_counter()
    controller.worker.preload()
    ready.exec()
    import_end = time.perf_counter()
    spin(300)

    cold_start, cold_end = generate_once()
    with lock:
        load = list(marks["load"])
        steps = [t for t in marks["steps"] if t > 0]
    if len(load) < 2:
        raise SystemExit("the first run did not load the model (was it loaded already?)")
    first_steps_end = steps[min(1, len(steps) - 1)]
    spin(300)

    # Warm runs: inpaint (a mask in the middle) so previews go through the paste mask too.
    pen.stop()  # a stroke in progress holds the history
    mask = PixelLayer("Mask", role=Role.INPAINT_MASK)
    doc.add_layer(mask)
    doc.active = paint
    pixels = np.zeros((400, 400, 4), np.uint8)
    pixels[..., 3] = 255
    doc.put_pixels(mask, pixels, 312, 312)
    pen.start()
    warm_spans = [generate_once() for _ in range(args.runs)]
    pen.stop()
    step_times = [b - a for a, b in zip(steps, steps[1:])]

    controller.shutdown()
    window.hide()
    window.deleteLater()

    def within(a: float, b: float) -> list[float]:
        return [lat for due, lat, _ in pen.samples if a <= due < b]

    def cpu_wait(a: float, b: float) -> float:
        """Of the events over the target: the share of their latency spent waiting for a CPU."""
        over = [(lat, min(lat, rq)) for due, lat, rq in pen.samples if a <= due < b and lat > TARGET_MS]
        return round(sum(rq for _, rq in over) / sum(lat for lat, _ in over), 2) if over else 0.0

    phases = {
        "idle": within(0.0, idle_end),
        "torch import": within(import_start, import_end),
        "model load": within(load[0], load[1]),
        "first steps": within(load[1], first_steps_end),
        "later steps": within(first_steps_end, cold_end),
        "warm": [lat for a, b in warm_spans for lat in within(a, b)],
    }
    spans = {
        "idle": IDLE_MS / 1000,
        "torch import": import_end - import_start,
        "model load": load[1] - load[0],
        "first steps": first_steps_end - load[1],
        "later steps": cold_end - first_steps_end,
        "warm": statistics.median(b - a for a, b in warm_spans) if warm_spans else 0.0,
    }
    generating = [lat for name in ("model load", "first steps", "later steps", "warm") for lat in phases[name]]
    bounds = [("idle", 0.0, idle_end), ("torch import", import_start, import_end), ("model load", load[0], load[1]),
              ("first steps", load[1], first_steps_end), ("later steps", first_steps_end, cold_end)]
    bounds += [(f"warm {k + 1}", a, b) for k, (a, b) in enumerate(warm_spans)]
    worst = []
    for due, lat, rq in sorted(pen.samples, key=lambda sample: -sample[1])[:8]:
        name, start = next(((n, a) for n, a, b in bounds if a <= due < b), ("between phases", 0.0))
        worst.append({"ms": round(lat, 1), "cpu_wait_ms": round(rq, 1), "phase": name,
                      "s_into_phase": round(due - start, 2)})
    shares = {name: cpu_wait(a, b) for name, a, b in bounds[:5]}
    shares["warm"] = cpu_wait(warm_spans[0][0], warm_spans[-1][1]) if warm_spans else 0.0
    return {
        "model": label,
        "steps": args.steps,
        "warm_runs": args.runs,
        "document": f"{DOC_SIDE}x{DOC_SIDE}, 2 layers, {BRUSH} px brush, 100 % zoom",
        "pen_hz": PEN_HZ,
        "target_ms": TARGET_MS,
        "phases": {name: {**_stats(v), "seconds": round(spans[name], 2), "cpu_wait_share_over_target": shares[name]}
                   for name, v in phases.items()},
        "while_generating": _stats(generating),
        "worst_events": worst,
        "seconds_per_step": round(statistics.median(step_times), 2) if step_times else None,
        "generate_call_ms": {"median": round(statistics.median(plan_ms), 2), "max": round(max(plan_ms), 2)},
        "strokes": pen.strokes,
        "switch_interval_ms": sys.getswitchinterval() * 1000,
        "torch_on_gui_before_run": torch_before,
        "load_average": os.getloadavg(),
    }


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"Stroke-to-screen while generating — model: {results['model']}, {results['steps']} steps, "
          f"{results['warm_runs']} warm run(s); pen {PEN_HZ} Hz; document {results['document']}")
    print(f"{'phase':14s} {'s':>7s} {'events':>7s} {'median':>7s} {'p95':>7s} {'p99':>7s} {'max ms':>7s} "
          f"{'>50ms':>6s} {'cpu wait':>8s}")
    for name, s in results["phases"].items():
        print(f"{name:14s} {s['seconds']:7.1f} {s['events']:7d} {s['median']:7.1f} {s['p95']:7.1f} "
              f"{s['p99']:7.1f} {s['max']:7.1f} {s['over_target']:6d} {s['cpu_wait_share_over_target']:8.0%}")
    print("(cpu wait: of the latency of events over 50 ms, the share the GUI thread spent waiting for a CPU)")
    worst = results["while_generating"]["max"]
    print(f"worst stroke-to-screen while loading and generating: {worst:.1f} ms "
          f"({'meets' if worst <= TARGET_MS else 'misses'} the {TARGET_MS:.0f} ms target)")
    print("worst events: " + "; ".join(f"{w['ms']:.0f} ms ({w['cpu_wait_ms']:.0f} waiting for a CPU; "
                                       f"{w['phase']}, +{w['s_into_phase']:.1f} s)"
                                       for w in results["worst_events"]))
    print(f"seconds per denoising step (median, first run): {results['seconds_per_step']}")
    print(f"generate() on the GUI thread: median {results['generate_call_ms']['median']:.1f} ms, "
          f"max {results['generate_call_ms']['max']:.1f} ms")
    print(f"switch interval {results['switch_interval_ms']:.1f} ms; torch on the GUI thread before the run: "
          f"{results['torch_on_gui_before_run']}; load average {', '.join(f'{v:.1f}' for v in results['load_average'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()

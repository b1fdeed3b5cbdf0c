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
figures (milliseconds). ``--stacks`` attributes every stall over 40 ms to the worker's
Python stack and says how much of it each thread spent on a CPU and waiting for one
(:class:`StallProbe`); ``--worker-nice`` and ``--switch-interval-ms`` try other settings.

    python benchmarks/bench_desktop_worker.py [--family sd15|sdxl | --model PATH | --tiny]
        [--steps 3] [--runs 1] [--dir /tmp] [--json out.json] [--stacks | --stacks-c]
        [--worker-nice N] [--switch-interval-ms MS]
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

    def __init__(self, view: Any, probe: StallProbe | None = None) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.view = view
        self.probe = probe
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
        if self.probe is not None:
            self.probe.beat()
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


class StallProbe:
    """Who runs while the GUI thread is late: a stack sampler armed by the pen's ticks.

    The GUI thread calls :meth:`beat` on every pen tick (every 2 ms when it is free). Two
    watchdogs notice when it has not for more than ``threshold_ms``:

    - a Python thread (every ``period_ms``) samples ``sys._current_frames()`` for the
      worker and the GUI thread. It needs the GIL itself, so while the worker holds the
      GIL in a long C call it only samples once that call has returned (the worker is
      then at the frame that made it, or just after); its own lateness says so;
    - ``faulthandler``'s C watchdog thread, which needs no GIL: re-armed from :meth:`beat`
      every ~10 ms, it dumps every thread's Python stack every ``threshold_ms`` while the
      GUI thread is late, i.e. *during* a GIL-holding C call. A marker line written on the
      next beat closes each stall's dumps. It reads frames that other threads may be
      changing, so now and then it crashes the process (``--stacks-c`` only; rerun).

    A full garbage collection (``gc.callbacks``) longer than 5 ms is recorded with its thread.
    """

    def __init__(self, path: Path, dumps: bool, threshold_ms: float = 40.0, period_ms: float = 5.0) -> None:
        import faulthandler

        self.threshold = threshold_ms / 1000.0
        self.period = period_ms / 1000.0
        self.gui_ident = threading.get_ident()
        self.worker_ident: int | None = None
        self.worker_tid: int | None = None
        self.last_beat = time.perf_counter()
        #: (last beat before, first beat after, {thread: (on-CPU ms, waiting-for-a-CPU ms)} in between)
        self.stalls: list[tuple[float, float, dict[str, tuple[float, float]]]] = []
        self._sched: dict[str, tuple[float, float]] = {}
        self.samples: list[tuple[float, float, float, tuple[Any, ...], tuple[Any, ...]]] = []
        self.collections: list[tuple[float, float, int, int]] = []  # (start, end, generation, thread)
        self._gc_start: dict[int, float] = {}
        self._faulthandler = faulthandler if dumps else None
        self._file = open(path, "w+", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self._size = 0
        self._armed = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-probe", daemon=True)

    def start(self) -> None:
        import gc

        self.last_beat = time.perf_counter()
        gc.callbacks.append(self._on_gc)
        self._thread.start()

    def stop(self) -> None:
        import gc

        self._stop.set()
        self._thread.join()
        if self._faulthandler is not None:
            self._faulthandler.cancel_dump_traceback_later()
        gc.callbacks.remove(self._on_gc)
        self._file.flush()

    def beat(self) -> None:
        """On the GUI thread, every pen tick."""
        now = time.perf_counter()
        sched = {"gui": _schedstat("thread-self"),
                 "worker": _schedstat(f"self/task/{self.worker_tid}") if self.worker_tid else (0.0, 0.0)}
        if now - self.last_beat > self.threshold and self._sched:
            self.stalls.append((self.last_beat, now, {k: (v[0] - self._sched[k][0], v[1] - self._sched[k][1])
                                                      for k, v in sched.items()}))
        self._sched = sched
        self.last_beat = now
        if self._faulthandler is not None and now - self._armed >= 0.01:
            self._faulthandler.cancel_dump_traceback_later()  # joins the C watchdog
            size = os.fstat(self._file.fileno()).st_size
            if size != self._size:  # it dumped: close this stall's dumps
                os.write(self._file.fileno(), f"=== stall end {now:.6f}\n".encode())
                self._size = os.fstat(self._file.fileno()).st_size
            self._faulthandler.dump_traceback_later(self.threshold, repeat=True, file=self._file)
            self._armed = now

    def _watch(self) -> None:
        previous = time.perf_counter()
        while not self._stop.wait(self.period):
            now = time.perf_counter()
            beat = self.last_beat
            if now - beat > self.threshold:
                frames = sys._current_frames()  # noqa: SLF001 - the point of the probe
                worker = _stack(frames.get(self.worker_ident)) if self.worker_ident else ()
                self.samples.append((now, beat, (now - previous) * 1000.0, worker,
                                     _stack(frames.get(self.gui_ident))))
            previous = now

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self._gc_start[ident] = time.perf_counter()
        elif ident in self._gc_start:
            start = self._gc_start.pop(ident)
            if time.perf_counter() - start > 0.005:
                self.collections.append((start, time.perf_counter(), info["generation"], ident))

    def dumps(self) -> list[tuple[float, list[dict[int, tuple[Any, ...]]]]]:
        """faulthandler's dumps as ``(stall end, [{thread id: stack} per dump])``."""
        self._file.seek(0)
        groups: list[tuple[float, list[dict[int, tuple[Any, ...]]]]] = []
        current: list[dict[int, tuple[Any, ...]]] = []
        for block in self._file.read().split("Timeout ("):
            stacks: dict[int, list[tuple[str, int, str]]] = {}
            stack: list[tuple[str, int, str]] | None = None
            ended = None
            for line in block.splitlines():
                if line.startswith(("Thread 0x", "Current thread 0x")):
                    stack = stacks.setdefault(int(line.split("0x", 1)[1].split()[0], 16), [])
                elif stack is not None and line.startswith('  File "'):
                    name, _, rest = line[8:].partition('", line ')
                    number, _, func = rest.partition(" in ")
                    stack.append((name, int(number) if number.isdigit() else 0, func))
                elif line.startswith("=== stall end "):
                    ended = float(line.split()[3])
                    stack = None
                else:
                    stack = None
            if block.startswith("0:"):
                current.append({k: tuple(v) for k, v in stacks.items()})
            if ended is not None:
                groups.append((ended, current))
                current = []
        if current:
            groups.append((float("inf"), current))
        return groups


def _schedstat(path: str) -> tuple[float, float]:
    """A thread's (on-CPU ms, waited-for-a-CPU ms) so far (Linux ``schedstat``)."""
    try:
        with open(f"/proc/{path}/schedstat", encoding="ascii") as handle:
            fields = handle.read().split()
        return int(fields[0]) / 1e6, int(fields[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def _stack(frame: Any, limit: int = 40) -> tuple[tuple[str, int, str], ...]:
    """``(file, line, function)`` innermost first (no source lines read)."""
    out = []
    while frame is not None and len(out) < limit:
        out.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    return tuple(out)


def _site(entry: tuple[str, int, str]) -> str:
    name, line, func = entry
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3.11/"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    return f"{name}:{line}:{func}"


def _own_frame(stack: tuple[tuple[str, int, str], ...]) -> str:
    """The innermost frame in Sfumato's own code (what called into the library)."""
    for entry in stack:
        if entry[0].startswith(str(ROOT)) and "site-packages" not in entry[0] and "benchmarks" not in entry[0]:
            return _site(entry)
    return "-"


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
    parser.add_argument("--worker-nice", type=int, default=None,
                        help="the worker thread's niceness (default: desktop.worker.WORKER_NICENESS)")
    parser.add_argument("--stacks", action="store_true",
                        help="attribute each stall over 40 ms to the worker's Python stack (StallProbe)")
    parser.add_argument("--stacks-c", action="store_true",
                        help="--stacks plus faulthandler dumps during stalls (no GIL needed; may crash)")
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
    from sfumato.canvas import editing
    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.layers import PixelLayer, Role
    from sfumato.canvas.model.tiles import TiledSurface
    from sfumato.desktop.app import create_application
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.main_window import MainWindow

    if args.worker_nice is not None:
        import sfumato.desktop.worker as worker_module

        worker_module.WORKER_NICENESS = args.worker_nice
    app = create_application([])
    marks: dict[str, list[float]] = {"load": [], "steps": [], "finished": []}
    lock = threading.Lock()

    probe = None
    if args.stacks or args.stacks_c:
        probe = StallProbe(Path(tempfile.mkdtemp(prefix="sfumato-bench-stacks-")) / "dumps.txt", args.stacks_c)

    def engine_factory() -> Any:
        if probe is not None:
            probe.worker_ident, probe.worker_tid = threading.get_ident(), threading.get_native_id()
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
    editing.set_recipe(doc, prompt="a red ball", model=str(model), seed=1, steps=args.steps, cfg=5.0)
    torch_before = "torch" in sys.modules

    pen = Pen(view, probe)

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

    if probe is not None:
        probe.start()
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
    editing.add_layer(doc, mask)
    doc.active = paint
    pixels = np.zeros((400, 400, 4), np.uint8)
    pixels[..., 3] = 255
    editing.put_pixels(doc, mask, pixels, 312, 312)
    pen.start()
    warm_spans = [generate_once() for _ in range(args.runs)]
    pen.stop()
    if probe is not None:
        probe.stop()
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
    attribution = attribute_stalls(probe, bounds) if probe is not None else None
    return {
        "stall_attribution": attribution,
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
        "worker_niceness": __import__("sfumato.desktop.worker", fromlist=["x"]).WORKER_NICENESS,
        "torch_on_gui_before_run": torch_before,
        "load_average": os.getloadavg(),
    }

def attribute_stalls(probe: StallProbe, bounds: list[tuple[str, float, float]]) -> dict[str, Any]:
    """Each GUI stall over the probe's threshold with the worker's (and GUI's) stack during it.

    A stall's site is the worker's innermost frame seen most often in faulthandler's
    dumps during the stall (the watchdog thread's samples when there was none: stalls
    under ~50 ms); ``own`` is the innermost frame of Sfumato's code on that stack.
    """
    from collections import Counter

    groups = probe.dumps()
    stalls = []
    for start, end, sched in probe.stalls:
        dumps = next((d for e, d in groups if abs(e - end) < 0.002), [])
        worker = [d.get(probe.worker_ident or -1, ()) for d in dumps]
        gui = [d.get(probe.gui_ident, ()) for d in dumps]
        samples = [s for s in probe.samples if s[1] == start]
        source = "faulthandler"
        if not worker:
            worker, gui, source = [s[3] for s in samples], [s[4] for s in samples], "watchdog"
        sites = Counter(_site(st[0]) if st else "(worker not in Python)" for st in worker)
        site = sites.most_common(1)[0][0] if sites else "(no sample)"
        stack = next((st for st in worker if st and _site(st[0]) == site), ())
        gui_sites = Counter(_site(st[0]) for st in gui if st)
        phase = next((n for n, a, b in bounds if a <= start < b), "between phases")
        collections = [f"gc{g} {'gui' if t == probe.gui_ident else 'worker' if t == probe.worker_ident else 'other'}"
                       f" {1000 * (e - s):.0f} ms" for s, e, g, t in probe.collections if s < end and e > start]
        stalls.append({
            "ms": round(1000 * (end - start), 1), "phase": phase, "site": site, "own": _own_frame(stack),
            "stack": [_site(entry) for entry in stack[:12]],
            "sites": dict(sites), "source": source, "samples": len(worker),
            "gui": gui_sites.most_common(1)[0][0] if gui_sites else "-",
            "watchdog_late_ms": round(max((s[2] for s in samples), default=0.0) - 1000 * probe.period, 1),
            "gc": collections,
            "cpu_ms": {k: {"on_cpu": round(v[0], 1), "cpu_wait": round(v[1], 1)} for k, v in sched.items()},
        })
    table: dict[str, dict[str, Any]] = {}
    for stall in stalls:
        row = table.setdefault(stall["site"], {"site": stall["site"], "own": Counter(), "stalls": 0, "samples": 0,
                                               "total_ms": 0.0, "max_ms": 0.0, "phases": Counter(),
                                               "stack": stall["stack"]})
        row["stalls"] += 1
        row["samples"] += stall["samples"]
        row["total_ms"] = round(row["total_ms"] + stall["ms"], 1)
        row["max_ms"] = max(row["max_ms"], stall["ms"])
        row["own"][stall["own"]] += 1
        row["phases"][stall["phase"]] += 1
    for stall in stalls:
        row = table[stall["site"]]
        for who in ("gui", "worker"):
            for what in ("on_cpu", "cpu_wait"):
                key = f"{who}_{what}_ms"
                row[key] = round(row.get(key, 0.0) + stall["cpu_ms"][who][what], 1)
    rows = sorted(table.values(), key=lambda r: -r["total_ms"])
    for row in rows:
        row["own"] = row["own"].most_common(1)[0][0]
        row["phases"] = dict(row["phases"])
    long_gcs = [{"ms": round(1000 * (e - s), 1), "generation": g,
                 "thread": "gui" if t == probe.gui_ident else "worker" if t == probe.worker_ident else "other"}
                for s, e, g, t in probe.collections]
    return {"threshold_ms": probe.threshold * 1000, "sites": rows,
            "stalls": sorted(stalls, key=lambda st: -st["ms"]), "collections_over_5ms": long_gcs}


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
    print(f"switch interval {results['switch_interval_ms']:.1f} ms; worker niceness {results['worker_niceness']}; torch on the GUI thread before the run: "
          f"{results['torch_on_gui_before_run']}; load average {', '.join(f'{v:.1f}' for v in results['load_average'])}")
    attribution = results.get("stall_attribution")
    if attribution:
        print(f"\nGUI stalls over {attribution['threshold_ms']:.0f} ms by the worker's innermost Python frame "
              "(faulthandler dumps during the stall; the own column: Sfumato's innermost frame on that stack):")
        print("(gui/worker run, wait: ms on a CPU and waiting for one during those stalls, Linux schedstat)")
        print(f"{'stalls':>6s} {'samples':>7s} {'total ms':>8s} {'max ms':>7s} {'gui run':>7s} {'wait':>5s} "
              f"{'wkr run':>7s} {'wait':>5s}  site  <-  own  [phases]")
        for row in attribution["sites"]:
            print(f"{row['stalls']:6d} {row['samples']:7d} {row['total_ms']:8.0f} {row['max_ms']:7.0f} "
                  f"{row['gui_on_cpu_ms']:7.0f} {row['gui_cpu_wait_ms']:5.0f} "
                  f"{row['worker_on_cpu_ms']:7.0f} {row['worker_cpu_wait_ms']:5.0f}  "
                  f"{row['site']}  <-  {row['own']}  {row['phases']}")
        print("longest stalls:")
        for stall in attribution["stalls"][:12]:
            cpu = stall["cpu_ms"]
            print(f"  {stall['ms']:6.0f} ms {stall['phase']:12s} gui run/wait {cpu['gui']['on_cpu']:.0f}/"
                  f"{cpu['gui']['cpu_wait']:.0f}, worker {cpu['worker']['on_cpu']:.0f}/{cpu['worker']['cpu_wait']:.0f}; "
                  f"worker {stall['site']} <- {stall['own']}; "
                  f"gui {stall['gui']}; watchdog late {stall['watchdog_late_ms']:.0f} ms; "
                  f"{stall['source']} x{stall['samples']}{'; ' + ', '.join(stall['gc']) if stall['gc'] else ''}")
        gcs = attribution["collections_over_5ms"]
        print(f"collections over 5 ms: {len(gcs)}" + (f", longest {max(g['ms'] for g in gcs):.0f} ms" if gcs else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()

"""Live mode with the built-in model on this CPU: how fast the picture follows the brush.

A window (offscreen) with the generation UI on a 512² blue canvas, the prompt "a red
circle on a blue background", live mode on with its settings for the built-in model. A
synthetic 125 Hz pen (the one of ``bench_desktop_worker.py``: real tablet events through
the canvas view and the brush) paints **bursts of short strokes, one ending every
~56 ms** (6 events of 8 ms and a release), then rests until the live frame is in. Per
burst, from the end of its last stroke:

- ``first_preview_ms``: until the first step preview of a frame started after that stroke
  is drawn on the canvas (the overlay updated on the GUI thread);
- ``finished_ms``: until the frame that renders that last stroke is finished and shown;
- ``wasted_per_stroke``: frames started and cancelled, per stroke painted.

All along, the GUI thread's longest stall (a 2 ms precise timer's largest gap,
``gui_stall_max_ms``) and the pen's own latency (an event's due time until the repaint of
what it painted returned) with live mode on, against a phase with live mode off in the
same run (``pen_median_ms_live_off`` / ``_on``).

Then, headless, the work the live window saves on a **4096² canvas**: the time per frame
(plan + engine, same settings) for the live window around a stroke against the whole
canvas (``frame_window_ms`` / ``frame_whole_canvas_ms``).

Targets (issue 12): first preview median ≤ 150 ms, finished median ≤ 1 s, GUI stall
≤ 50 ms, pen median ≤ 16 ms with live on. Prints a table; ``--json PATH`` writes the
figures (times in milliseconds).

    python benchmarks/bench_live.py [--bursts 8] [--strokes 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SFUMATO_NO_SYSTEM_MODEL_DIRS", "1")
os.environ.setdefault("SFUMATO_CONFIG_DIR", tempfile.mkdtemp(prefix="sfumato-bench-config-"))
os.environ.setdefault("SFUMATO_RECOVERY_DIR", tempfile.mkdtemp(prefix="sfumato-bench-recovery-"))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # qtinput's pen device
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_desktop_worker as pen_bench  # noqa: E402 - after the environment is set

SIZE = 512
PROMPT = "a red circle on a blue background"
TARGETS = {"first_preview_ms": 150.0, "finished_ms": 1000.0, "gui_stall_max_ms": 50.0, "pen_median_ms_live_on": 16.0}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else float("nan")


class StallMeter:
    """The GUI thread's longest gap between ticks of a 2 ms precise timer."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.worst = 0.0
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(2)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self.worst = 0.0
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, (now - self._last) * 1000.0)
        self._last = now


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class LivePen(pen_bench.Pen):
    """The 125 Hz pen of ``bench_desktop_worker``, its rows moved onto the canvas (which
    the view centres) and wrapped inside it."""

    def _position(self, i: int) -> tuple[float, float]:
        origin = self.view.document_rect_to_widget(self.view.document.rect).topLeft()
        zoom = self.view.viewport.zoom
        rows = max(1, int((SIZE - 60) / 14))
        column, row = divmod(self._row, rows)
        x = origin.x() + 30 + (column % 4) * 110 + i * pen_bench.STEP_PX * zoom
        y = origin.y() + 30 + row * 14 + 3.0 * ((i % 8) - 4) / 4
        return x, y


def _wait(app: Any, condition: Any, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            return False
        app.processEvents()
        time.sleep(0.001)
    return True


def window_phase(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from sfumato.canvas import editing
    from sfumato.desktop.app import create_application
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.main_window import MainWindow
    from windowdocs import small_document

    app = create_application([])
    window = MainWindow()
    window.resize(1100, 800)
    controller = install_generation(window)
    doc = small_document(SIZE, SIZE)
    window.set_document(doc)
    window.show()
    app.processEvents()
    window.view.actual_pixels()  # 100 %: the pen's rows land on the canvas
    window.tool_settings.update(size=24, hardness=0.8, opacity=1.0, flow=1.0)
    window.view.render_all()
    background = next(layer for layer in doc.pixel_layers() if layer.name == "Background")
    blue = np.zeros((SIZE, SIZE, 4), np.uint8)
    blue[...] = (40, 70, 200, 255)
    editing.put_pixels(doc, background, blue, 0, 0, label="Blue")
    editing.set_recipe(doc, prompt=PROMPT, model="builtin", cfg=5.0)
    live = controller.live
    assert live is not None

    marks: dict[str, list[tuple[float, Any]]] = {"preview": [], "finished": []}
    live.preview_drawn.connect(lambda rect: marks["preview"].append((time.perf_counter(), live.scheduler.running_job)))
    live.frame_finished.connect(lambda frame: marks["finished"].append((time.perf_counter(), frame)))
    starts: list[tuple[float, int, int]] = []  # (time, job, revision)
    original_start = live._start  # noqa: SLF001 - observe each start's time and revision

    def observed_start(start: Any) -> None:
        starts.append((time.perf_counter(), start.job, start.revision))
        original_start(start)

    live._start = observed_start  # type: ignore[method-assign]

    _say("live on: loading the model, first frame")
    t0 = time.perf_counter()
    live.set_enabled(True)
    if not _wait(app, lambda: bool(marks["finished"]) and not live.busy, 300):
        raise SystemExit("no first live frame within 300 s")
    first_frame_s = time.perf_counter() - t0
    settings = live.panel.settings()  # the model's live preset, applied when live mode came on
    preset = live.preset.name if live.preset is not None else "none"

    stall = StallMeter()
    pen_bench.STROKE_EVENTS = 6

    # Pen latency with live off, then bursts with live on (same run, same pen).
    live.set_enabled(False)
    _say("pen with live off")
    pen = LivePen(window.view)
    pen.start()
    _wait(app, lambda: pen.strokes >= args.strokes * args.bursts, 60)
    pen.stop()
    pen_off = [latency for _, latency, _ in pen.samples]
    live.set_enabled(True)
    _wait(app, lambda: not live.busy and not live.scheduler.pending, 60)

    first_preview: list[float] = []
    finished: list[float] = []
    pen_on: list[float] = []
    strokes = 0
    cancelled_before = live.scheduler.cancelled
    stall.start()
    rows = 0
    for burst in range(args.bursts):
        _say(f"burst {burst + 1} of {args.bursts}")
        pen = LivePen(window.view)
        pen._row = rows  # noqa: SLF001 - fresh canvas for every stroke
        pen.start()
        _wait(app, lambda p=pen: p.strokes >= args.strokes, 30)
        pen.stop()
        rows = pen._row + 1  # noqa: SLF001
        end = time.perf_counter()
        revision = live.scheduler.revision
        strokes += pen.strokes
        pen_on += [latency for _, latency, _ in pen.samples]
        ok = _wait(app, lambda end=end: any(t > end for t, _ in marks["finished"])
                   and not live.busy and not live.scheduler.pending, args.burst_timeout)
        if not ok:
            _say(f"a burst got no frame within 60 s: revision {revision} -> {live.scheduler.revision}, "
                 f"busy {live.busy}, pending {live.scheduler.pending}, started {live.scheduler.started}, "
                 f"finished marks {len(marks['finished'])}, error {controller.dock.error_text!r}")
            continue
        later_jobs = {job for t, job, rev in starts if t > end or rev >= revision}
        previews = [t for t, job in marks["preview"] if t > end and job in later_jobs]
        if previews:
            first_preview.append((previews[0] - end) * 1000.0)
        done = [t for t, _ in marks["finished"] if t > end]
        finished.append((done[-1] - end) * 1000.0)
        marks["preview"].clear()
        marks["finished"].clear()
    stall.stop()
    wasted = live.scheduler.cancelled - cancelled_before
    live.set_enabled(False)
    controller.shutdown()
    doc.history.mark_clean()  # no "save changes?" question on close
    window.close()
    return {
        "live_preset": preset,
        "live_settings": {"strength": settings.strength, "steps": settings.steps, "cfg": settings.cfg,
                          "sampler": settings.sampler.value},
        "first_frame_with_model_load_ms": round(first_frame_s * 1000.0, 1),
        "frame_ms_measured": round(live.scheduler.frame_s * 1000.0, 1),
        "first_preview_ms": _median(first_preview),
        "first_preview_ms_all": [round(v, 1) for v in first_preview],
        "finished_ms": _median(finished),
        "finished_ms_all": [round(v, 1) for v in finished],
        "gui_stall_max_ms": round(stall.worst, 1),
        "pen_median_ms_live_off": _median(pen_off),
        "pen_median_ms_live_on": _median(pen_on),
        "pen_max_ms_live_on": round(max(pen_on), 1) if pen_on else float("nan"),
        "strokes": strokes,
        "wasted_per_stroke": round(wasted / max(1, strokes), 2),
    }


def window_saving(settings: dict[str, Any], frames: int) -> dict[str, Any]:
    """What the live window saves on a 4096² canvas with a stroke in it.

    With the built-in model: the time per frame (plan + engine) of the window around the
    stroke; the whole canvas is not an option (the planner refuses to squeeze 4096² into a
    64 px model: 64× its size). With SD 1.5's sizing (planning only, no weights): the
    planner's time for the window against the whole canvas — the engine's work is the
    same 512² either way, but the whole canvas arrives 8× downscaled.
    """
    import numpy as np
    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.geometry import Rect
    from sfumato.canvas.model.layers import PixelLayer
    from sfumato.canvas.model.tiles import TiledSurface
    from sfumato.inference.engine import Engine
    from sfumato.planner.errors import PlanError
    from sfumato.planner.families import FamilyInfo
    from sfumato.planner.live_area import live_area, plan_live
    from sfumato.planner.plan import plan
    from sfumato.planner.recipe import GenerationSettings
    from sfumato.vocabulary.kinds import Sampler

    side = 4096
    pixels = np.zeros((side, side, 4), np.uint8)
    pixels[...] = (40, 70, 200, 255)
    pixels[1800:2000, 2000:2200] = (210, 40, 40, 255)
    doc = Document(side, side)
    doc.root.append(PixelLayer("paint", TiledSurface.from_array(pixels)))
    gen = GenerationSettings(
        prompt=PROMPT, model="builtin", seed=3, steps=settings["steps"], cfg=settings["cfg"],
        strength=settings["strength"], sampler=Sampler(settings["sampler"]),
    )
    stroke = Rect(2050, 1850, 40, 40)
    engine = Engine(device="cpu")
    engine.generate(plan_live(doc, gen, latest=stroke).request)  # load the model, warm up
    frame_ms = []
    for _ in range(frames):
        t = time.perf_counter()
        engine.generate(plan_live(doc, gen, latest=stroke).request)
        frame_ms.append((time.perf_counter() - t) * 1000.0)
    try:
        plan(doc, gen)
        whole = "planned"
    except PlanError as error:
        whole = f"refused: {str(error).split(';')[0]}"

    sd15 = FamilyInfo.for_native("sd15", 512)
    sd_gen = gen.replace(model="sd15-sized.safetensors", model_family="sd15")

    def plan_ms(area: Rect | None) -> tuple[float, Any]:
        times, planned = [], None
        for _ in range(frames):
            t = time.perf_counter()
            planned = plan(doc, sd_gen, family=sd15, area=area)
            times.append((time.perf_counter() - t) * 1000.0)
        return _median(times), planned

    window_plan_ms, windowed = plan_ms(live_area(doc.rect, sd15, stroke))
    whole_plan_ms, whole_plan = plan_ms(None)
    return {
        "canvas": f"{side}x{side}",
        "frame_window_ms": _median(frame_ms),
        "frame_whole_canvas": whole,
        "sd15_plan_window_ms": window_plan_ms,
        "sd15_window": f"{windowed.area.w}x{windowed.area.h} at {windowed.size.width}x{windowed.size.height}",
        "sd15_plan_whole_canvas_ms": whole_plan_ms,
        "sd15_whole": f"{whole_plan.area.w}x{whole_plan.area.h} at {whole_plan.size.width}x{whole_plan.size.height}",
        "sd15_plan_saving_ratio": round(whole_plan_ms / window_plan_ms, 1) if window_plan_ms else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bursts", type=int, default=8)
    parser.add_argument("--strokes", type=int, default=4, help="strokes per burst")
    parser.add_argument("--frames", type=int, default=5, help="frames timed per case on 4096²")
    parser.add_argument("--burst-timeout", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = window_phase(args)
    results.update(window_saving(results["live_settings"], args.frames))
    rows = [
        ("first frame (with model load)", results["first_frame_with_model_load_ms"], None),
        ("stroke end → first preview, median", results["first_preview_ms"], TARGETS["first_preview_ms"]),
        ("stroke end → finished frame, median", results["finished_ms"], TARGETS["finished_ms"]),
        ("longest GUI stall, live on", results["gui_stall_max_ms"], TARGETS["gui_stall_max_ms"]),
        ("pen latency median, live off", results["pen_median_ms_live_off"], None),
        ("pen latency median, live on", results["pen_median_ms_live_on"], TARGETS["pen_median_ms_live_on"]),
        ("pen latency max, live on", results["pen_max_ms_live_on"], None),
        ("frames wasted per stroke", results["wasted_per_stroke"], None),
        ("frame on 4096², built-in model, live window", results["frame_window_ms"], None),
        ("plan on 4096², SD 1.5 sizing, live window " + results["sd15_window"], results["sd15_plan_window_ms"], None),
        ("plan on 4096², SD 1.5 sizing, whole canvas " + results["sd15_whole"], results["sd15_plan_whole_canvas_ms"], None),
    ]
    print(f"live mode, built-in model, {SIZE}² canvas, {results['live_preset']}: {results['live_settings']}")
    print(f"{'measure':72} {'value':>10} {'target':>8}")
    for name, value, target in rows:
        verdict = "" if target is None else ("ok" if value <= target else "MISSED")
        print(f"{name:72} {value:>10} {'' if target is None else target:>8} {verdict}")
    print(f"whole 4096² canvas with the built-in model: {results['frame_whole_canvas']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

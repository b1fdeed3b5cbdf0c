"""Recovery journal figures (issue 18), on the canvas benchmark's 4096² × 20-layer document.

(a) The cost a stroke's commit adds on the GUI thread: 256 px strokes (a fresh path
    each, through ``Stroke.add_point``/``end`` on a middle layer), alternately with the
    journal on and off, median of ``end()`` — the call that pushes the stroke to the
    history, where the journal freezes the changed tiles and copies the tree. Target:
    on − off ≤ 1 ms. The journal's own listener is also timed from inside (the difference
    of two medians is at the noise level of a shared machine), and the whole stroke (dabs
    included) is reported, also back to back, where the journal's thread, compressing the
    previous stroke's tiles, competes for the cores.
(b) Journal bytes per 64 px stroke: the growth of ``journal.sfj`` per stroke (compressed
    tiles + header), median over strokes.
(c) Recovery of 1,000 strokes of 64 px on that document: the journal written by the
    painting, then :func:`sfumato.canvas.recovery.recovery.recover` timed (read, decompress,
    replay, rebuild the undo history). Target ≤ 3 s.

    python benchmarks/bench_journal.py [--json out.json] [--quick]

The journal is written to a temporary folder on the disk ``TMPDIR`` names; its fsyncs run
on the journal's thread, which competes for the same cores as the GUI thread here as it
would in the program.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from documents import LAYERS, SIDE, build_document
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.paint.brush import Brush, Stroke
from sfumato.canvas.recovery.journal import JOURNAL_FILE, Journal
from sfumato.canvas.recovery.recovery import recover

TARGET_COMMIT_MS = 1.0
TARGET_RECOVER_S = 3.0


def _stroke(doc: Document, layer: PixelLayer, rng: np.random.Generator, size: float) -> tuple[float, float]:
    """One stroke of ~8 segments at a random place; (whole stroke s, end() s)."""
    brush = Brush(size=size, color=tuple(int(c) for c in rng.integers(0, 256, 3)))  # type: ignore[arg-type]
    x, y = (float(v) for v in rng.uniform(300, doc.width - 300, 2))
    t0 = time.perf_counter()
    stroke = Stroke(doc, layer, brush)
    for _ in range(8):
        x += float(rng.uniform(-60, 60))
        y += float(rng.uniform(-60, 60))
        stroke.add_point(x, y, 1.0)
    t1 = time.perf_counter()
    stroke.end()
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1


def measure_commit(doc: Document, folder: Path, strokes: int) -> dict[str, float]:
    """Strokes alternate between journal on and off (its listeners connected or not), so
    the machine's load hits both sides alike; after each stroke the journal's thread
    finishes its work (strokes are seconds apart when painting), then the next begins.
    Back-to-back strokes, the writer still compressing the last one, are timed apart."""
    layer = list(doc.pixel_layers())[LAYERS // 2]
    rng = np.random.default_rng(7)
    journal = Journal(doc, folder / "commit", name="bench")
    journal.flush(timeout=600)
    inside: list[float] = []
    listeners = (journal._on_document, journal._on_history)

    def timed(event):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        listeners[1](event)
        inside.append(time.perf_counter() - t)

    doc.history.changed.disconnect(listeners[1])
    doc.changed.disconnect(listeners[0])

    def connect(on: bool) -> None:
        (doc.changed.connect if on else doc.changed.disconnect)(listeners[0])
        (doc.history.changed.connect if on else doc.history.changed.disconnect)(timed)

    ends: dict[bool, list[float]] = {True: [], False: []}
    wholes: dict[bool, list[float]] = {True: [], False: []}
    for i in range(2 * strokes):
        on = i % 2 == 0
        connect(on)
        whole, end = _stroke(doc, layer, rng, 256)
        if on:
            connect(False)
        journal.flush(timeout=600)
        wholes[on].append(whole)
        ends[on].append(end)
    connect(True)
    back_to_back = [_stroke(doc, layer, rng, 256)[0] for _ in range(strokes)]
    journal.flush(timeout=600)
    connect(False)
    journal.discard()
    ms = 1000.0
    return {
        "commit_on_ms": statistics.median(ends[True]) * ms,
        "commit_off_ms": statistics.median(ends[False]) * ms,
        "commit_added_ms": (statistics.median(ends[True]) - statistics.median(ends[False])) * ms,
        "journal_inside_commit_ms": statistics.median(inside) * ms,
        "stroke_on_ms": statistics.median(wholes[True]) * ms,
        "stroke_off_ms": statistics.median(wholes[False]) * ms,
        "stroke_back_to_back_ms": statistics.median(back_to_back) * ms,
    }


def measure_size_and_recovery(doc: Document, folder: Path, strokes: int) -> dict[str, float]:
    layer = list(doc.pixel_layers())[LAYERS // 2]
    rng = np.random.default_rng(8)
    journal = Journal(doc, folder / "recover", name="bench", compact_records=strokes + 10,
                      compact_bytes=1 << 40)
    journal.flush(timeout=600)
    path = folder / "recover" / JOURNAL_FILE
    growth: list[int] = []
    for _ in range(strokes):
        before = path.stat().st_size
        _stroke(doc, layer, rng, 64)
        journal.flush(timeout=600)
        growth.append(path.stat().st_size - before)
    journal.close()
    t0 = time.perf_counter()
    got = recover(folder / "recover")
    seconds = time.perf_counter() - t0
    assert got.records == strokes + 1, got.records
    return {
        "bytes_per_64px_stroke": float(statistics.median(growth)),
        "journal_mb": path.stat().st_size / 1e6,
        "recover_strokes": float(strokes),
        "recover_s": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="1024², fewer strokes (a smoke run)")
    args = parser.parse_args(argv)
    side = 1024 if args.quick else SIDE
    commit_strokes, recover_strokes = (20, 100) if args.quick else (60, 1000)
    doc = build_document(side=side)
    with tempfile.TemporaryDirectory(prefix="sfumato-bench-journal-") as tmp:
        figures: dict[str, float] = {"side": float(side), "layers": float(LAYERS)}
        figures.update(measure_commit(doc, Path(tmp), commit_strokes))
        figures.update(measure_size_and_recovery(build_document(side=side), Path(tmp), recover_strokes))
    rows = [
        ("stroke commit (end) on GUI thread, journal on", f"{figures['commit_on_ms']:.2f} ms", ""),
        ("stroke commit (end) on GUI thread, journal off", f"{figures['commit_off_ms']:.2f} ms", ""),
        ("added by the journal", f"{figures['commit_added_ms']:+.2f} ms",
         f"target <= {TARGET_COMMIT_MS} ms: " + ("met" if figures["commit_added_ms"] <= TARGET_COMMIT_MS else "MISSED")),
        ("the journal's own work in that commit (timed inside)", f"{figures['journal_inside_commit_ms']:.3f} ms", ""),
        ("whole 256 px stroke, on / off", f"{figures['stroke_on_ms']:.1f} / {figures['stroke_off_ms']:.1f} ms", ""),
        ("whole 256 px stroke, back to back, journal on", f"{figures['stroke_back_to_back_ms']:.1f} ms",
         "the writer still busy with the last"),
        ("journal bytes per 64 px stroke (median)", f"{figures['bytes_per_64px_stroke'] / 1024:.1f} KiB", ""),
        (f"recover {recover_strokes} strokes ({figures['journal_mb']:.0f} MB journal)", f"{figures['recover_s']:.2f} s",
         f"target <= {TARGET_RECOVER_S} s: " + ("met" if figures["recover_s"] <= TARGET_RECOVER_S else "MISSED")),
    ]
    print(f"Recovery journal on {side}² × {LAYERS} layers")
    for name, value, note in rows:
        print(f"  {name:52} {value:>16}  {note}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

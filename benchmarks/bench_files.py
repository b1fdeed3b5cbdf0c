"""File figures: OpenRaster save and load, flattened PNG export, parameters reading.

The document is the canvas benchmark's (``benchmarks/documents.py``, the same builder):
a square canvas (4096² by default) with N layers (20 by default), each holding three
large soft blobs over roughly a quarter of the canvas, in mixed blend modes. Timings are medians over ``--repeat`` runs
(the machine is shared and noisy). Prints a table; ``--json PATH`` writes the figures.

    python benchmarks/bench_files.py [--side 4096] [--layers 20] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from documents import build_document
from sfumato.canvas.files.image_parameters import read_png_parameters
from sfumato.canvas.files.imageio import export_png
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.files.recipe_parameters import document_parameters
from sfumato.canvas.model.document import Recipe


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    doc = build_document(1, args.side, args.layers, Recipe(prompt="a benchmark", seed=1, steps=20))
    with tempfile.TemporaryDirectory() as folder:
        ora_path, png_path = Path(folder) / "bench.ora", Path(folder) / "bench.png"
        figures = {
            "side": args.side,
            "layers": args.layers,
            "save_ora_s": median_time(lambda: save_ora(doc, ora_path), args.repeat),
            "load_ora_s": median_time(lambda: load_ora(ora_path), args.repeat),
            "export_png_s": median_time(lambda: export_png(doc, png_path, document_parameters(doc)), args.repeat),
            "read_png_parameters_ms": 1000 * median_time(lambda: read_png_parameters(png_path), max(args.repeat, 10)),
            "ora_mb": ora_path.stat().st_size / 1e6,
            "png_mb": png_path.stat().st_size / 1e6,
        }
    print(f"{args.side}x{args.side}, {args.layers} layers (a quarter of the canvas each)")
    print(f"{'figure':<26}{'value':>10}")
    for key, value in figures.items():
        if key not in ("side", "layers"):
            print(f"{key:<26}{value:>10.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Upscale & refine figures: the tile loop's overhead and its memory.

- ``tiled refine / single generations``: a ``SIDE``² picture (default 1024², enlarged 2×
  from 512² with Lanczos) refined by the built-in model in its native 64 px tiles (16 px
  overlap: 21 × 21 = 441 tiles) through :func:`sfumato.planner.upscale.refine_tiles`,
  against the same number of 64² img2img generations run back to back on the same engine
  (the same strength, steps and seeds, requests made beforehand): what the loop adds —
  cropping, planning each request, blending — over the model's own work. Target <= 1.10.
  Medians over interleaved repeats (the machine is shared), one torch thread.
- ``memory``: a 4096² refine (1024² enlarged 4×, 7225 tiles of 64 px) through the same
  loop with a stand-in for the engine that returns its init picture, under
  ``tracemalloc`` (numpy's allocations are traced): the peak over what was traced before
  it, against the buffers the job must hold (the source, the enlarged picture, the
  output) and the blend's float sums of the open overlaps. One tile's generation is measured on the real
  engine as the growth of the process's peak RSS over its first 64² generation (torch's
  allocations are not traced). Target: peak <= buffers + 2 × one tile's generation.

    python benchmarks/bench_upscale.py [--side 1024] [--steps 8] [--repeats 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.10
TILE, OVERLAP, STRENGTH = 64, 16, 0.3
PROMPT = "a red circle on the left and a blue square on the right on a white background"


def _source(side: int) -> np.ndarray:
    from tools import shapes_dataset as sd

    return sd.render(sd.parse_caption(PROMPT), side)


def _settings(steps: int, seed: int = 1) -> Any:
    from sfumato.planner.recipe import GenerationSettings

    return GenerationSettings(prompt=PROMPT, model="builtin", seed=seed, steps=steps, cfg=5.0)


def measure_overhead(side: int, steps: int, repeats: int) -> dict[str, Any]:
    import torch
    from sfumato.inference.engine import Engine
    from sfumato.planner.upscale import enlarge, plan_upscale, refine_tiles, tile_request

    torch.set_num_threads(1)
    engine = Engine(device="cpu")
    plan = plan_upscale(side // 2, side // 2, 2, _settings(steps), overlap=OVERLAP, tile=TILE, loras=lambda: ())
    assert plan.grid is not None
    large = enlarge(_source(side // 2), plan.size)
    requests = [tile_request(plan, tile, large) for tile in plan.grid]
    engine.run(requests[0])  # load the model, warm up
    inside: list[float] = []

    def run_tile(request: Any, on_step: Any) -> np.ndarray:
        t0 = time.perf_counter()
        result = engine.run(request)
        inside[-1] += time.perf_counter() - t0
        assert result.ok, result.error
        return result.images[0]

    def tiled() -> None:
        inside.append(0.0)
        refine_tiles(large, plan, run_tile)

    def singles() -> None:
        for request in requests:
            engine.run(request)

    times: dict[str, list[float]] = {"tiled": [], "singles": []}
    for i in range(repeats):
        order = (("tiled", tiled), ("singles", singles)) if i % 2 == 0 else (("singles", singles), ("tiled", tiled))
        for name, fn in order:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    a, b = statistics.median(times["tiled"]), statistics.median(times["singles"])
    loop_share = statistics.median(t / e for t, e in zip(times["tiled"], inside, strict=True))
    return {
        "side": side, "tiles": len(plan.grid), "tile": TILE, "overlap": OVERLAP, "steps": steps,
        "strength": STRENGTH, "repeats": repeats, "tiled_s": a, "singles_s": b, "ratio": a / b,
        "per_tile_overhead_ms": 1000 * (a - b) / len(plan.grid), "target": TARGET_RATIO,
        "loop_over_engine_inside": loop_share,
        "loop_ms_per_tile": 1000 * statistics.median(t - e for t, e in zip(times["tiled"], inside, strict=True)) / len(plan.grid),
        "ok": a / b <= TARGET_RATIO,
    }  # fmt: skip


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def tile_generation_bytes(steps: int) -> int:
    """How far the resident memory rises, sampled every millisecond (Linux), above its
    level with the model loaded, during the first 64² generation (later ones reuse what
    the allocator kept, so the rise shows only on the first)."""
    import threading

    import torch
    from sfumato.inference.engine import Engine
    from sfumato.inference.request import GenerationRequest, InitImage, ModelRef

    torch.set_num_threads(1)
    engine = Engine(device="cpu")
    engine.load(ModelRef("builtin"))
    picture = np.full((TILE, TILE, 3), 128, np.uint8)
    request = GenerationRequest(PROMPT, ModelRef("builtin"), TILE, TILE, steps=steps, cfg=5.0,
                                init=InitImage(picture, STRENGTH))  # fmt: skip
    before = _rss()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        engine.run(request)
    finally:
        done.set()
        sampler.join()
    return max(0, peak[0] - before)


def measure_memory(output_side: int = 4096) -> dict[str, Any]:
    from sfumato.planner.families import FamilyInfo
    from sfumato.planner.tiles import TileBlender
    from sfumato.planner.upscale import plan_upscale, upscale_picture

    source = np.ascontiguousarray(np.tile(_source(256), (output_side // 1024, output_side // 1024, 1)))
    family = FamilyInfo.for_native("sd15", TILE)  # the built-in model's facts, no model needed
    plan = plan_upscale(source.shape[1], source.shape[0], 4, _settings(8), overlap=OVERLAP, family=family, loras=lambda: ())
    assert plan.grid is not None
    widest_band = 0
    original_add = TileBlender.add

    def add(self: TileBlender, tile: Any, image: np.ndarray) -> None:
        nonlocal widest_band
        original_add(self, tile, image)
        widest_band = max(widest_band, self.band_bytes)

    TileBlender.add = add  # type: ignore[method-assign]
    tile_bytes = 0

    def run_tile(request: Any, on_step: Any) -> np.ndarray:
        nonlocal tile_bytes
        out = np.array(request.init.image)
        tile_bytes = max(tile_bytes, out.nbytes + request.init.image.nbytes)
        return out

    try:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        result = upscale_picture(source, plan, run_tile=run_tile)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        TileBlender.add = original_add  # type: ignore[method-assign]
    enlarged = result.nbytes  # the enlarged picture and the output have the same size
    buffers = enlarged + result.nbytes
    return {
        "output": f"{result.shape[1]}x{result.shape[0]}", "tiles": len(plan.grid),
        "loop_seconds_without_model": seconds, "peak_bytes": peak, "buffers_bytes": buffers,
        "source_bytes": source.nbytes, "band_bytes": widest_band, "tile_arrays_bytes": tile_bytes,
        "beyond_buffers_bytes": peak - buffers,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=1024, help="side of the refined picture (px)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    memory = measure_memory()
    memory["tile_generation_bytes"] = tile_generation_bytes(args.steps)
    memory["target_bytes"] = memory["buffers_bytes"] + 2 * memory["tile_generation_bytes"]
    memory["ok"] = memory["peak_bytes"] <= memory["target_bytes"]
    overhead = measure_overhead(args.side, args.steps, args.repeats)
    result = {"overhead": overhead, "memory": memory}
    o, m = overhead, memory
    mib = 1 << 20
    print(f"{'measure':44} {'A':>10} {'B':>10} {'ratio':>7} {'target':>7}  ok")
    print(f"{'tiled refine / single generations':44} {o['tiled_s']:9.2f}s {o['singles_s']:9.2f}s "
          f"{o['ratio']:7.3f} {o['target']:7.2f}  {'yes' if o['ok'] else 'NO'}")  # fmt: skip
    print(f"  {o['side']}² in {o['tiles']} tiles of {o['tile']} px (overlap {o['overlap']}), {o['steps']} steps "
          f"at strength {o['strength']}: {o['per_tile_overhead_ms']:+.1f} ms per tile")  # fmt: skip
    print(f"  within the tiled run: loop / its engine runs {o['loop_over_engine_inside']:.3f} "
          f"({o['loop_ms_per_tile']:.2f} ms of the loop's own per tile)")  # fmt: skip
    print(f"{'memory of a ' + m['output'] + ' refine (MiB)':44} {m['peak_bytes'] / mib:9.1f}  "
          f"{m['target_bytes'] / mib:9.1f} {'':7} {'':7}  {'yes' if m['ok'] else 'NO'}")  # fmt: skip
    print(f"  buffers (enlarged + output) {m['buffers_bytes'] / mib:.1f} MiB, beyond them "
          f"{m['beyond_buffers_bytes'] / mib:.2f} MiB (the blend's open overlaps {m['band_bytes'] / mib:.2f} MiB, "
          f"one tile's arrays {m['tile_arrays_bytes'] / 1024:.0f} KiB); one tile's generation "
          f"{m['tile_generation_bytes'] / mib:.1f} MiB; {m['tiles']} tiles, loop alone {m['loop_seconds_without_model']:.1f} s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

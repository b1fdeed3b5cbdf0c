"""Inference engine figures: overhead against plain diffusers, preview cost, regions, inpaint area.

Ratios are measured in the same run, as medians over interleaved repeats (the machine
is shared and noisy), with the same model, steps and size on both sides:

- ``engine / diffusers``, equal work: both encode the prompts on every call (the
  engine's prompt cache emptied before each run) — target <= 1.05; and both with the
  prompts encoded once (diffusers given ``prompt_embeds``, the engine its cache) —
  target <= 1.05. The unequal pair (engine cached, diffusers re-encoding) is printed too;
- ``preview / no preview``: the engine with an x0 preview after every step vs previews
  off — target <= 1.03;
- ``4 regions / 1 prompt``: regional prompting with four quadrant regions vs the same
  request with only the global prompt — target <= 1.25 (one UNet pass, not four);
- ``inpaint: canvas 4096² / 512²``: the same 200 px mask inpainted on documents of 512²,
  1024², 2048² and 4096², timed as the program does it — plan (the area around the mask,
  its generation size, the masks), engine, result layer — the cost must not grow with
  the canvas (only the planned area goes through the model): target <= 1.2 for the
  largest over the smallest;
- ``inpaint: mask 1600 px / 100 px``: growing square masks on a 2048² document, the same
  path. The area is generated near the model's native size whatever its size, so what
  grows is the pixel work around the model (compositing the area, masks, resampling the
  result onto the area); reported with the area and generation size of each, no target.

By default (CPU) the model is a small random SD 1.x built by ``tests/tinymodels.py``
(``size="bench"``: 16 M UNet parameters, 128/256 channels, 32-wide attention heads like SD's 40–64, native 128 px, one torch thread) so that the UNet, not Python,
dominates a step. ``--device cuda --full-size`` builds the real SD 1.5 and SDXL
architectures from ``resources/configs`` with random weights in fp16 and adds it/s at
512² / 1024² for the engine against plain diffusers.

    python benchmarks/bench_engine.py [--repeats 5] [--steps 8] [--json out.json]
    python benchmarks/bench_engine.py --device cuda --full-size [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TARGETS: dict[str, float | None] = {
    "engine / diffusers, both encode prompts": 1.05,
    "engine / diffusers, both prompts cached": 1.05,
    "engine cached / diffusers encoding": None,
    "preview / no preview": 1.03,
    "4 regions / 1 prompt": 1.25,
    "inpaint: canvas 4096² / 512²": 1.2,
    "inpaint: mask 1600 px / 100 px": None,
}
CANVAS_SIDES = (512, 1024, 2048, 4096)
MASK_SIDES = (100, 200, 400, 800, 1600)


def _median_set(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Median seconds of each of ``fns``, in rotating order per repeat after one warm-up each."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            t0 = time.perf_counter()
            fns[j]()
            times[j].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _median_pair(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, interleaved (a b b a a b ...) after one warm-up each."""
    a()
    b()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(repeats):
        order = (a, b) if i % 2 == 0 else (b, a)
        for fn in order:
            t0 = time.perf_counter()
            fn()
            (ta if fn is a else tb).append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def _build_model(args: argparse.Namespace, workdir: Path) -> tuple[str, Any]:
    """(source, engine) with the benchmark model loaded."""
    from sfumato.inference.devices import EngineOptions
    from sfumato.inference.engine import Engine

    options = EngineOptions(channels_last=args.device.startswith("cuda"), compile=args.compile)
    engine = Engine(device=args.device, dtype=args.dtype, options=options)
    if args.full_size:
        source = _full_size_pipeline(engine, args.family)
    else:
        from tinymodels import build_tiny_sd15

        source = str(build_tiny_sd15(workdir / "bench-sd15", size="bench", sample_size=args.native // 8))
        engine.cache.get(_ref(source))
    return source, engine


def _ref(source: str) -> Any:
    from sfumato.inference.request import ModelRef

    return ModelRef(source)


def _full_size_pipeline(engine: Any, family: str) -> str:
    """Register a randomly initialised full-size SD 1.5 or SDXL pipeline with the engine."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    configs = ROOT / "resources" / "configs" / family
    tok_dir = ROOT / "resources" / "configs" / "clip-tokenizer"
    with torch.device("cpu"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(configs / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(configs / "vae")))
        scheduler = EulerDiscreteScheduler.from_config(EulerDiscreteScheduler.load_config(str(configs / "scheduler")))
        tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(str(configs / "text_encoder")))
        if family == "sdxl":
            te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(str(configs / "text_encoder_2")))
            tokenizer_2 = CLIPTokenizer.from_pretrained(str(tok_dir), pad_token="!")
            pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tokenizer,
                                             tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)  # fmt: skip
        else:
            pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                           safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip
    source = f"random-{family}"
    engine.cache.adopt(source, pipe, family)
    return source


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sfumato.inference.devices import EngineOptions, PreviewMode
    from sfumato.inference.engine import Engine
    from sfumato.inference.request import GenerationRequest, RegionSpec

    if args.threads or args.device == "cpu":
        # One thread: on a shared 2-core machine, two OpenMP threads fight other jobs.
        torch.set_num_threads(args.threads or 1)
    workdir = Path(tempfile.mkdtemp(prefix="sfumato-bench-"))
    source, engine = _build_model(args, workdir)
    model = engine.cache.get(_ref(source))
    native = model.native_side
    no_preview = Engine(device=args.device, dtype=args.dtype, options=EngineOptions(preview=PreviewMode.OFF))
    no_preview.cache = engine.cache  # same loaded weights
    steps, repeats = args.steps, args.repeats
    base = GenerationRequest(prompt="a lighthouse on a cliff at dusk", negative="blurry", model=_ref(source),
                             width=native, height=native, steps=steps, cfg=7.0, seed=1)  # fmt: skip
    rows: dict[str, dict[str, float]] = {}

    def engine_run(e: Any, req: GenerationRequest) -> Callable[[], None]:
        def go() -> None:
            result = e.run(req)
            assert result.ok, result.error

        return go

    # 1. Engine vs bare diffusers (same components, scheduler, size, steps, CFG), equal work.
    bare = model.pipe  # the very same pipeline object and weights, called the stock way
    bare.set_progress_bar_config(disable=True)

    def bare_call(**prompts: Any) -> Callable[[], None]:
        def go() -> None:
            bare(num_inference_steps=steps, height=native, width=native, guidance_scale=base.cfg,
                 generator=torch.Generator("cpu").manual_seed(1), output_type="np", **prompts)  # fmt: skip

        return go

    def engine_encoding() -> None:
        model.prompt_cache.clear()  # what diffusers does: encode on every call
        engine_run(engine, base)()

    with torch.inference_mode():
        if model.family.name == "sdxl":
            encoded = bare.encode_prompt(base.prompt, None, engine.device, 1, True, base.negative)
        else:
            encoded = bare.encode_prompt(base.prompt, engine.device, 1, True, base.negative)
    names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    embeds = dict(zip(names, encoded))
    bare_encoding = bare_call(prompt=base.prompt, negative_prompt=base.negative)
    t_eng_enc, t_bare_enc, t_eng_cached, t_bare_cached = _median_set(
        [engine_encoding, bare_encoding, engine_run(engine, base), bare_call(**embeds)], repeats
    )
    rows["engine / diffusers, both encode prompts"] = {"a_s": t_eng_enc, "b_s": t_bare_enc}
    rows["engine / diffusers, both prompts cached"] = {"a_s": t_eng_cached, "b_s": t_bare_cached}
    rows["engine cached / diffusers encoding"] = {"a_s": t_eng_cached, "b_s": t_bare_enc}
    t_engine, t_bare = t_eng_enc, t_bare_enc

    # 2. Preview every step vs none.
    t_prev, t_noprev = _median_pair(engine_run(engine, base), engine_run(no_preview, base), repeats)
    rows["preview / no preview"] = {"a_s": t_prev, "b_s": t_noprev}

    # 3. Four regions vs one prompt.
    half = native // 2
    quads = []
    for i, (x, y) in enumerate([(0, 0), (half, 0), (0, half), (half, half)]):
        m = np.zeros((native, native), np.float32)
        m[y : y + half, x : x + half] = 1.0
        quads.append(RegionSpec(m, f"region {i}: a {['red', 'green', 'blue', 'gold'][i]} object", "ugly"))
    regional = base.replace(regions=tuple(quads))
    t_reg, t_one = _median_pair(engine_run(engine, regional), engine_run(engine, base), repeats)
    rows["4 regions / 1 prompt"] = {"a_s": t_reg, "b_s": t_one}

    # 4. Inpaint: the same 200 px mask on growing canvases, then growing masks on one canvas.
    rng = np.random.default_rng(0)
    inpaint_sizes: dict[str, Any] = {}

    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.layers import PixelLayer, Role
    from sfumato.canvas.model.tiles import TiledSurface
    from sfumato.planner.families import family_for_model
    from sfumato.planner.placement import result_layer
    from sfumato.planner.plan import plan
    from sfumato.planner.recipe import GenerationSettings

    info = family_for_model(source)
    settings = GenerationSettings(prompt=base.prompt, negative=base.negative, model=source, steps=steps,
                                  cfg=base.cfg, seed=base.seed, strength=0.75)  # fmt: skip

    def inpaint_document(side: int, mask_side: int) -> Document:
        doc = Document(side, side)
        picture = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
        picture[..., 3] = 255
        mask = np.zeros((mask_side, mask_side, 4), np.uint8)
        mask[...] = 255
        at = (side - mask_side) // 2
        doc.root.append(PixelLayer("mask", TiledSurface.from_array(mask, at, at), role=Role.INPAINT_MASK))
        doc.root.append(PixelLayer("paint", TiledSurface.from_array(picture)))
        return doc

    def inpaint_job(doc: Document) -> Callable[[], None]:
        def go() -> None:
            planned = plan(doc, settings, family=info)
            result = engine.run(planned.request)
            assert result.ok, result.error
            result_layer(planned, result.images[0])

        return go

    def sizes(doc: Document) -> str:
        planned = plan(doc, settings, family=info)
        return f"{planned.size} from a {planned.area.w}x{planned.area.h} area"

    canvas_docs = [inpaint_document(side, 200) for side in CANVAS_SIDES]
    canvas_times = _median_set([inpaint_job(d) for d in canvas_docs], repeats)
    inpaint_sizes["canvas"] = {f"{side}²": {"s": t, "generated": sizes(d)}
                               for side, t, d in zip(CANVAS_SIDES, canvas_times, canvas_docs)}  # fmt: skip
    del canvas_docs
    rows["inpaint: canvas 4096² / 512²"] = {"a_s": canvas_times[-1], "b_s": canvas_times[0]}
    mask_docs = [inpaint_document(2048, m) for m in MASK_SIDES]
    mask_times = _median_set([inpaint_job(d) for d in mask_docs], repeats)
    inpaint_sizes["mask"] = {f"{m} px": {"s": t, "generated": sizes(d)}
                             for m, t, d in zip(MASK_SIDES, mask_times, mask_docs)}  # fmt: skip
    del mask_docs
    rows["inpaint: mask 1600 px / 100 px"] = {"a_s": mask_times[-1], "b_s": mask_times[0]}

    # The preview's own cost per step, measured directly (x0 arithmetic + linear map + copy
    # to numpy), as a fraction of one step without previews: far below the timing noise.
    from sfumato.inference.preview import LatentPreviewer

    lat = native // model.vae_scale
    previewer = LatentPreviewer(model.preview, engine.device, torch.float32)
    sample = torch.randn((1, 4, lat, lat), device=engine.device, dtype=engine.dtype)
    eps = torch.randn_like(sample)
    costs = []
    for _ in range(200):
        t0 = time.perf_counter()
        previewer((sample - 3.0 * eps)[0])
        costs.append(time.perf_counter() - t0)
    preview_s = statistics.median(costs)
    step_s = t_noprev / steps

    unet_params = sum(p.numel() for p in model.unet.parameters())
    result: dict[str, Any] = {
        "device": str(engine.choice),
        "torch_threads": torch.get_num_threads(),
        "model": "random full-size " + model.family.name if args.full_size else "tiny random SD 1.x (bench size)",
        "unet_params": unet_params,
        "native": native,
        "steps": steps,
        "repeats": repeats,
        "ratios": {},
        "inpaint": inpaint_sizes,
        "preview_ms_per_step": preview_s * 1000,
        "step_ms": step_s * 1000,
        "preview_fraction_of_step": preview_s / step_s,
    }
    for name, row in rows.items():
        ratio = row["a_s"] / row["b_s"]
        target = TARGETS[name]
        result["ratios"][name] = {**row, "ratio": ratio, "target": target, "ok": target is None or ratio <= target}
    if args.full_size:
        # End to end (text encoding, all steps, VAE decode), same request on both sides.
        result["it_per_s_engine"] = steps / t_engine
        result["it_per_s_diffusers"] = steps / t_bare
        timed = engine.run(base)
        result["engine_unet_step_ms"] = 1000 * float(timed.metadata.get("seconds_per_step", 0.0))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float16/bfloat16/float32 (default: automatic)")
    parser.add_argument("--full-size", action="store_true", help="real SD architectures, random weights")
    parser.add_argument("--family", default="sd15", choices=["sd15", "sdxl"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (CUDA)")
    parser.add_argument("--native", type=int, default=128, help="native side of the tiny model (px)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on CPU)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.full_size and args.dtype is None and args.device.startswith("cuda"):
        args.dtype = "float16"
    result = run(args)
    print(f"device: {result['device']}  model: {result['model']}  UNet params: {result['unet_params'] / 1e6:.2f} M  "
          f"native: {result['native']} px  steps: {result['steps']}  repeats: {result['repeats']}")  # fmt: skip
    print(f"{'measure':42} {'A (s)':>9} {'B (s)':>9} {'ratio':>7} {'target':>7}  ok")
    for name, row in result["ratios"].items():
        target = "-" if row["target"] is None else f"{row['target']:.2f}"
        ok = "-" if row["target"] is None else ("yes" if row["ok"] else "NO")
        print(f"{name:42} {row['a_s']:9.3f} {row['b_s']:9.3f} {row['ratio']:7.3f} {target:>7}  {ok}")
    for series, label in (("canvas", "inpaint, 200 px mask, canvas"), ("mask", "inpaint, 2048² canvas, mask")):
        for key, row in result["inpaint"][series].items():
            print(f"  {label} {key:>6}: {row['s']:.3f} s  (model ran at {row['generated']})")
    print(f"preview cost: {result['preview_ms_per_step']:.3f} ms per step = "
          f"{100 * result['preview_fraction_of_step']:.2f}% of a {result['step_ms']:.1f} ms step")  # fmt: skip
    if "it_per_s_engine" in result:
        print(f"end-to-end it/s at {result['native']}²: engine {result['it_per_s_engine']:.2f}  "
              f"diffusers {result['it_per_s_diffusers']:.2f}  (engine step alone: {result['engine_unet_step_ms']:.1f} ms)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

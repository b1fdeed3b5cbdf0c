"""The engine against each transformer family's own diffusers pipeline, on bench-sized models.

For FLUX.1 (dev), Chroma, SD 3.5, Z-Image, Qwen-Image, FLUX.2 Klein and Qwen-Image 2.1, three ratios,
each the ratio of medians over interleaved repeats (``bench_engine``'s method: one warm-up
each, then A B B A ..., one torch thread), at 128×128 px with the same model, steps, size,
seed and guidance on both sides. Each run is timed in this process's CPU time and in
wall-clock time; the targets judge CPU time, which with one torch thread is the work a side
did (the 2-core development machine is shared, and its load moves wall-clock medians by
10 % and more between runs of the very same work); the wall-clock ratio is printed beside it.

- ``engine / diffusers``: the engine with its prompt cache emptied before every run
  against the family's txt2img pipeline called the stock way; both encode the prompts,
  denoise and decode — target <= 1.05;
- ``4 regions / 1 prompt``: four quadrant regions against the global prompt alone (one
  transformer pass a step either way; what grows is the text sequence and the attention
  bias) — target <= 1.25, judged at 512² (``--side 512``: the shortest side the planner
  generates at for these families) and 1024²; Chroma and Qwen-Image 2.1 refuse regions,
  so "n/a";
- ``preview / no preview``: an x0 preview after every step against previews off —
  target <= 1.03.

Guidance is the same work on both sides: FLUX.1 dev takes the scale as an embedding
(one pass, cfg 3.5); Chroma, SD 3.5, Z-Image and Qwen-Image run true CFG at 4 with the
same negative prompt (the CFG batch, two passes' worth a step); the distilled Klein runs
unguided.

Models. ``tests/tinyflow.py``'s test-sized folders are a few hundred KB: a step there is
Python, not arithmetic. Here each family's folder keeps tinyflow's tokenizers, text
encoders, VAE and scheduler and gets a wider, deeper transformer (inner width 192 in
32-wide heads; 4 to 12 blocks, more where a family's text sequence is short: Chroma,
Z-Image and Qwen-Image send a prompt's real tokens, FLUX.1 and Klein 512, SD3 77 + 256, as
the real pipelines do) so that a step on one CPU thread takes 50–100 ms on a quiet machine
and the transformer dominates it, as it does at full size. At 128 px a picture is only 64
image tokens, so the text's share of a step is far larger than at 1024² (4096 image
tokens): the regions' ratio here is an upper bound of what it is at full size. Their
absolute speed means nothing; the ratios are what is measured.
The text and image tokens of one transformer call are printed per family (the regions'
extra text tokens are where their cost comes from).

    python benchmarks/bench_families.py [--families flux,sd3] [--repeats 7] [--steps 4] [--json out.json]
    python benchmarks/bench_families.py --families sd3,zimage --side 512 --steps 2 --repeats 5 --measures regions

On a GPU the full-size it/s against diffusers belongs to a device run (not in this
script: the full-size families' weights are 4–40 GB even at random).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TARGETS: dict[str, float] = {
    "engine / diffusers": 1.05,
    "4 regions / 1 prompt": 1.25,
    "preview / no preview": 1.03,
}
SIDE = 128  # px; --side changes it
PROMPT = "a red cat in the green forest, painting"
NEGATIVE = "blurry"
# Inner width 192 = 6 heads of 32; RoPE axes that sum to 32 (FLUX's 16+56+56 and
# FLUX.2's 32×4 scaled).
HEADS, HEAD_DIM = 6, 32
ROPE_3 = (8, 12, 12)
ROPE_4 = (8, 8, 8, 8)


@dataclass(frozen=True)
class FamilyBench:
    """How one family is built and called on both sides.

    ``cfg``/``negative``: the engine's request; ``bare_guidance``: the pipeline's keyword
    arguments for the same guidance (each pipeline names and scales it its own way);
    ``regions``: whether the engine does regional prompts for the family.
    """

    name: str
    label: str
    pipeline: str  # the diffusers txt2img pipeline class
    cfg: float
    negative: str
    bare_guidance: dict[str, Any] = field(default_factory=dict)
    regions: bool = True


FAMILIES: dict[str, FamilyBench] = {
    "flux": FamilyBench("flux", "FLUX.1 dev", "FluxPipeline", 3.5, "", {"guidance_scale": 3.5}),
    "chroma": FamilyBench("chroma", "Chroma", "ChromaPipeline", 4.0, NEGATIVE,
                          {"guidance_scale": 4.0, "negative_prompt": NEGATIVE}, regions=False),  # fmt: skip
    "sd3": FamilyBench("sd3", "SD 3.5", "StableDiffusion3Pipeline", 4.0, NEGATIVE,
                       {"guidance_scale": 4.0, "negative_prompt": NEGATIVE}),  # fmt: skip
    # Z-Image's pipeline scale is the engine's minus 1 (Turbo's 0 is the engine's 1).
    "zimage": FamilyBench("zimage", "Z-Image", "ZImagePipeline", 4.0, NEGATIVE,
                          {"guidance_scale": 3.0, "negative_prompt": NEGATIVE}),  # fmt: skip
    "qwenimage": FamilyBench("qwenimage", "Qwen-Image", "QwenImagePipeline", 4.0, NEGATIVE,
                             {"true_cfg_scale": 4.0, "negative_prompt": NEGATIVE}),  # fmt: skip
    "flux2": FamilyBench("flux2", "FLUX.2 Klein (distilled)", "Flux2KleinPipeline", 1.0, "",
                         {"guidance_scale": 1.0}),  # fmt: skip
    "qwenimage21": FamilyBench("qwenimage21", "Qwen-Image 2.1", "QwenImage21Pipeline", 4.0, NEGATIVE,
                               {"true_cfg_scale": 4.0, "negative_prompt": NEGATIVE}, regions=False),  # fmt: skip
}


# --- bench-sized models --------------------------------------------------------------------


def _transformer(name: str, side: int = SIDE) -> Any:
    """The bench-sized transformer of family ``name``, shaped to tinyflow's text encoders
    (their hidden sizes are the ``joint_attention_dim``/``cap_feat_dim`` here) and VAEs;
    ``side``: the largest picture it must take (SD 3.5's position table is cut to it)."""
    import torch
    from diffusers import (
        ChromaTransformer2DModel,
        Flux2Transformer2DModel,
        FluxTransformer2DModel,
        QwenImage21Transformer2DModel,
        QwenImageTransformer2DModel,
        SD3Transformer2DModel,
        ZImageTransformer2DModel,
    )

    heads = {"num_attention_heads": HEADS, "attention_head_dim": HEAD_DIM}
    if name == "flux":
        return FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=2, num_single_layers=4,
                                      joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                                      axes_dims_rope=ROPE_3, **heads)  # fmt: skip
    if name == "chroma":
        return ChromaTransformer2DModel(patch_size=1, in_channels=64, num_layers=4, num_single_layers=8,
                                        joint_attention_dim=32, approximator_num_channels=16,
                                        approximator_hidden_dim=64, approximator_layers=1,
                                        axes_dims_rope=ROPE_3, **heads)  # fmt: skip
    if name == "sd3":
        return SD3Transformer2DModel(patch_size=2, in_channels=16, out_channels=16, num_layers=4,
                                     dual_attention_layers=(0,), joint_attention_dim=64,
                                     caption_projection_dim=HEADS * HEAD_DIM, pooled_projection_dim=48,
                                     qk_norm="rms_norm", pos_embed_max_size=max(32, side // 16),
                                     sample_size=SIDE // 8,
                                     **heads)  # fmt: skip
    if name == "zimage":
        net = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16,
                                       dim=HEADS * HEAD_DIM, n_layers=10, n_refiner_layers=1, n_heads=HEADS,
                                       n_kv_heads=HEADS, norm_eps=1e-5, qk_norm=True, cap_feat_dim=16,
                                       rope_theta=256.0, t_scale=1000.0, axes_dims=list(ROPE_3),
                                       axes_lens=[1024, 512, 512])  # fmt: skip
        with torch.no_grad():  # torch.empty in diffusers
            net.x_pad_token.normal_(std=0.5)
            net.cap_pad_token.normal_(std=0.5)
        return net
    if name == "qwenimage":
        return QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=12,
                                           joint_attention_dim=16, guidance_embeds=False,
                                           axes_dims_rope=ROPE_3, **heads)  # fmt: skip
    if name == "qwenimage21":
        return QwenImage21Transformer2DModel(in_channels=16, out_channels=16, num_layers=12, context_in_dim=16,
                                             axes_dims_rope=ROPE_3, **heads)  # fmt: skip
    if name == "flux2":
        return Flux2Transformer2DModel(patch_size=1, in_channels=128, num_layers=2, num_single_layers=4,
                                       joint_attention_dim=3 * 16, timestep_guidance_channels=256,
                                       axes_dims_rope=ROPE_4, guidance_embeds=False, **heads)  # fmt: skip
    raise ValueError(f"unknown family {name!r}")


def build_bench_model(name: str, workdir: Path, side: int = SIDE) -> Path:
    """A diffusers folder for family ``name``: tinyflow's test model with its transformer
    replaced by :func:`_transformer`'s (seeded, so two builds are identical)."""
    import diffusers
    import tinyflow
    from tinymodels import _Seeded

    builders: dict[str, Callable[[Path], Path]] = {
        "flux": tinyflow.build_tiny_flux,
        "chroma": tinyflow.build_tiny_chroma,
        "sd3": tinyflow.build_tiny_sd3,
        "zimage": tinyflow.build_tiny_zimage,
        "qwenimage": tinyflow.build_tiny_qwenimage,
        "flux2": tinyflow.build_tiny_flux2_klein,
        "qwenimage21": tinyflow.build_tiny_qwenimage21,
    }
    tiny = builders[name](workdir / f"tiny-{name}")
    with _Seeded(100):
        transformer = _transformer(name, side).eval()
    folder = workdir / f"bench-{name}"
    if name == "qwenimage21":  # its pipeline cannot save its text-only processor: swap the transformer folder
        shutil.copytree(tiny, folder)
        shutil.rmtree(folder / "transformer")
        transformer.save_pretrained(str(folder / "transformer"), safe_serialization=True)
        return folder
    pipeline_class = getattr(diffusers, FAMILIES[name].pipeline)
    pipe = pipeline_class.from_pretrained(str(tiny), transformer=transformer, local_files_only=True)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


# --- measuring -----------------------------------------------------------------------------


def _median_pair(
    a: Callable[[], Any], b: Callable[[], Any], repeats: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((wall, cpu) of a, (wall, cpu) of b)``: median seconds over ``repeats`` runs each,
    interleaved (a b b a a b ...) after one warm-up each. CPU time is this process's: with
    one torch thread it is the work done, whatever else the shared machine runs."""
    a()
    b()
    times: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
    for i in range(repeats):
        for k in (0, 1) if i % 2 == 0 else (1, 0):
            w0, c0 = time.perf_counter(), time.process_time()
            (a, b)[k]()
            times[k].append((time.perf_counter() - w0, time.process_time() - c0))

    def medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    return medians(times[0]), medians(times[1])


def _quadrants(side: int) -> tuple[Any, ...]:
    from sfumato.inference.request import RegionSpec

    half = side // 2
    regions = []
    for i, (x, y) in enumerate([(0, 0), (half, 0), (0, half), (half, half)]):
        mask = np.zeros((side, side), np.float32)
        mask[y : y + half, x : x + half] = 1.0
        colour = ["red", "green", "blue", "gold"][i]
        regions.append(RegionSpec(mask, f"a {colour} house in the light", "ugly"))
    return tuple(regions)


@contextmanager
def _calls(transformer: Any) -> Iterator[list[dict[str, Any]]]:
    """Record each call of ``transformer``: its batch, text tokens and image tokens. Latents
    that arrive unpatchified (SD3's ``(B, C, H, W)``; Z-Image's list of ``(C, F, H, W)``,
    one per batch row, with one caption each) are counted in the transformer's patches."""
    seen: list[dict[str, Any]] = []
    config = transformer.config
    patch = int(config.get("patch_size") or config.get("all_patch_size", (1,))[0])

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        text = kwargs.get("encoder_hidden_states", kwargs.get("cap_feats"))
        image = kwargs.get("hidden_states", kwargs.get("x"))
        if text is None and len(args) >= 3:  # ZImageTransformer2DModel(x, t, cap_feats)
            text = args[2]
        if image is None and args:
            image = args[0]
        if isinstance(text, list):
            latent = image[0]
            seen.append({"batch": len(text), "text": [int(c.shape[0]) for c in text],
                         "image": int(latent[0].numel()) // patch**2})  # fmt: skip
            return
        tokens = int(image.shape[1]) if image.ndim == 3 else int(image.shape[-2] * image.shape[-1]) // patch**2
        seen.append({"batch": int(text.shape[0]), "text": int(text.shape[1]), "image": tokens})

    handle = transformer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def _preview_cost(model: Any, device: Any, side: int) -> float:
    """Median seconds of one preview measured directly, as the loop makes it (x0 arithmetic,
    the family's linear latent→RGB map, the copy to numpy): the preview ratio's whole cost,
    far below the noise of a whole-run ratio."""
    import torch
    from sfumato.inference.preview import LatentPreviewer

    side = side // model.vae_scale
    previewer = LatentPreviewer(model.preview, device, torch.float32)
    sample = torch.randn((1, model.family.latent_channels(model.pipe), side, side))
    eps = torch.randn_like(sample)
    costs = []
    for _ in range(200):
        t0 = time.perf_counter()
        previewer((sample - 0.5 * eps)[0])
        costs.append(time.perf_counter() - t0)
    return statistics.median(costs)


#: the measures ``--measures`` names, by their short names
MEASURES = {"engine": "engine / diffusers", "regions": "4 regions / 1 prompt", "preview": "preview / no preview"}


def measure_family(
    name: str, workdir: Path, steps: int, repeats: int, side: int = SIDE, measures: tuple[str, ...] = tuple(MEASURES)
) -> dict[str, Any]:
    import torch
    from sfumato.inference.devices import EngineOptions, PreviewMode
    from sfumato.inference.engine import Engine
    from sfumato.inference.request import GenerationRequest, ModelRef

    spec = FAMILIES[name]
    t0 = time.perf_counter()
    folder = build_bench_model(name, workdir, side)
    build_s = time.perf_counter() - t0
    engine = Engine(device="cpu")
    model = engine.cache.get(ModelRef(str(folder)))
    assert model.family.name == name, f"{folder} loaded as {model.family.name}, not {name}"
    no_preview = Engine(device="cpu", options=EngineOptions(preview=PreviewMode.OFF))
    no_preview.cache = engine.cache  # the same loaded weights
    base = GenerationRequest(prompt=PROMPT, negative=spec.negative, model=ModelRef(str(folder)), width=side,
                             height=side, steps=steps, cfg=spec.cfg, seed=1)  # fmt: skip
    regional = base.replace(regions=_quadrants(side))
    bare = model.pipe  # the very pipeline object and weights the engine loaded, called the stock way
    bare.set_progress_bar_config(disable=True)

    def engine_run(e: Any, req: GenerationRequest, *, encode: bool = False) -> Callable[[], None]:
        def go() -> None:
            if encode:
                model.prompt_cache.clear()  # what the pipeline does: encode on every call
            result = e.run(req)
            assert result.ok, result.error

        return go

    def bare_run(n_steps: int = steps) -> None:
        bare(prompt=PROMPT, num_inference_steps=n_steps, height=side, width=side, output_type="np",
             generator=torch.Generator("cpu").manual_seed(1), **spec.bare_guidance)  # fmt: skip

    # What one transformer call sees on each side (a two-step run each, untimed).
    calls: dict[str, Any] = {}
    with _calls(model.denoiser) as seen:
        engine_run(engine, base.replace(steps=2))()
        calls["engine, 1 prompt"] = {**seen[-1], "calls_per_step": len(seen) // 2}
    with _calls(model.denoiser) as seen:
        bare_run(2)
        calls["diffusers"] = {**seen[-1], "calls_per_step": len(seen) // 2}
    regions_error = ""
    if spec.regions:
        with _calls(model.denoiser) as seen:
            engine_run(engine, regional.replace(steps=2))()
            calls["engine, 4 regions"] = {**seen[-1], "calls_per_step": len(seen) // 2}
    else:
        result = engine.run(regional)
        assert not result.ok, f"{spec.label} was expected to refuse regions"
        regions_error = str(result.error)

    timed: dict[str, Callable[[], Any]] = {
        "engine": lambda: _median_pair(engine_run(engine, base, encode=True), bare_run, repeats),
        "regions": lambda: (
            _median_pair(engine_run(engine, regional), engine_run(engine, base), repeats) if spec.regions else None
        ),
        "preview": lambda: _median_pair(engine_run(engine, base), engine_run(no_preview, base), repeats),
    }
    pairs: dict[str, Any] = {MEASURES[m]: timed[m]() for m in measures}

    step = engine.run(base).metadata.get("seconds_per_step", 0.0)
    preview_s = _preview_cost(model, engine.device, side)
    result: dict[str, Any] = {
        "label": spec.label,
        "pipeline": spec.pipeline,
        "transformer_params": sum(p.numel() for p in model.denoiser.parameters()),
        "engine_step_ms": 1000 * float(step),
        "preview_ms": 1000 * preview_s,
        "preview_fraction_of_step": preview_s / float(step) if step else None,
        "calls": calls,
        "build_s": build_s,
        "ratios": {},
    }
    for measure, pair in pairs.items():
        target = TARGETS[measure]
        if pair is None:
            result["ratios"][measure] = {"ratio": None, "target": target, "ok": None, "note": regions_error}
            continue
        (a_wall, a_cpu), (b_wall, b_cpu) = pair
        result["ratios"][measure] = {
            "a_s": a_wall, "b_s": b_wall, "ratio": a_wall / b_wall,
            "a_cpu_s": a_cpu, "b_cpu_s": b_cpu, "cpu_ratio": a_cpu / b_cpu,
            "target": target, "ok": a_cpu / b_cpu <= target,
        }  # fmt: skip
    engine.cache.clear()  # the next family loads into free memory
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    import diffusers
    import torch
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    # One thread: on a shared 2-core machine, two OpenMP threads fight other jobs.
    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="sfumato-bench-families-"))
    started = time.perf_counter()
    out: dict[str, Any] = {
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "side": args.side,
        "steps": args.steps,
        "repeats": args.repeats,
        "measures": list(args.measures),
        "families": {},
    }
    for name in args.families:
        out["families"][name] = measure_family(name, workdir, args.steps, args.repeats, args.side, args.measures)
        _print_family(name, out["families"][name])
    out["total_s"] = time.perf_counter() - started
    return out


def _print_family(name: str, fam: dict[str, Any]) -> None:
    print(f"\n{fam['label']} ({fam['pipeline']}): transformer {fam['transformer_params'] / 1e6:.1f} M params, "
          f"engine step {fam['engine_step_ms']:.0f} ms, a preview {fam['preview_ms']:.3f} ms")  # fmt: skip
    for side, call in fam["calls"].items():
        print(f"  one call, {side}: batch {call['batch']}, text tokens {call['text']}, image tokens {call['image']}"
              + f", {call['calls_per_step']} call(s) a step")  # fmt: skip


def _print_table(result: dict[str, Any]) -> None:
    """The table; "ok" judges the CPU-time ratio (one torch thread: the work each side did),
    the wall-clock ratio is printed beside it (it carries the shared machine's load)."""
    print(f"\nCPU, {result['torch_threads']} torch thread, {result['side']}² px, {result['steps']} steps, "
          f"medians of {result['repeats']} interleaved repeats, {result['total_s']:.0f} s in all")  # fmt: skip
    print(f"{'family':26} {'ratio':22} {'A cpu s':>8} {'B cpu s':>8} {'measured':>9} {'wall':>7} {'target':>7}  ok")
    for fam in result["families"].values():
        for measure, row in fam["ratios"].items():
            if row["ratio"] is None:
                print(f"{fam['label']:26} {measure:22} {'-':>8} {'-':>8} {'n/a':>9} {'n/a':>7} {row['target']:7.2f}  n/a")
                continue
            ok = "yes" if row["ok"] else "NO"
            print(f"{fam['label']:26} {measure:22} {row['a_cpu_s']:8.3f} {row['b_cpu_s']:8.3f} {row['cpu_ratio']:9.3f} "
                  f"{row['ratio']:7.3f} {row['target']:7.2f}  {ok}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help=f"comma-separated, of: {', '.join(FAMILIES)}")  # fmt: skip
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--side", type=int, default=SIDE, help="picture side in px (a multiple of 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--measures", default=",".join(MEASURES),
                        help=f"comma-separated, of: {', '.join(MEASURES)} (the others are not timed)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    args.measures = tuple(m.strip() for m in args.measures.split(",") if m.strip())
    if [m for m in args.measures if m not in MEASURES]:
        parser.error(f"unknown measures in {args.measures}; known: {', '.join(MEASURES)}")
    result = run(args)
    _print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Quick evaluation of the built-in model with plain diffusers pipelines.

Runs each capability over a fixed set of seeds and prints a table of success rates:

- txt2img: background and shape hue follow the prompt;
- regions: left/right prompts through masked cross-attention (``sfumato.inference.regions``),
  and the swapped prompts swap the colours;
- inpaint: a masked square turns to the prompted colour (4-channel model, latent blending;
  outside the mask the init image is pasted back);
- scribble ControlNet: stroke pixels that lie on a generated edge, with vs. without control;
- img2img: PSNR to the init image at low strength, prompt colour at high strength.

A contact sheet (one row per test, one column per seed) is saved as a PNG.

Colour judgement: a set of pixels "is" a chromatic colour when the circular mean of the
hues of its saturated pixels (S > 0.3) lies within 30 degrees of the colour's hue and at
least half of the pixels are saturated; white needs mean V > 0.75 and mean S < 0.2,
black mean V < 0.3.

Usage::

    python tools/eval_builtin_model.py [--model resources/models/builtin] [--seeds 8]
        [--steps 20] [--cfg 5] [--sheet /tmp/builtin_eval.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import shapes_dataset as sd  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_MODEL = REPO_ROOT / "resources" / "models" / "builtin"
DEFAULT_CONTROLNET = REPO_ROOT / "resources" / "models" / "builtin-controlnet-scribble"

HUE_TOLERANCE = 30.0


# --------------------------------------------------------------------------- colour judging


def colour_matches(pixels: np.ndarray, name: str) -> bool:
    """Whether the RGB ``pixels`` ((N, 3) uint8) read as the named colour (see module doc)."""
    if len(pixels) == 0:
        return False
    hsv = sd.rgb_to_hsv(pixels.reshape(-1, 3))
    colour = sd.COLOURS[name]
    if colour.hue is None:
        if name == "white":
            return bool(hsv[:, 2].mean() > 0.75 and hsv[:, 1].mean() < 0.2)
        return bool(hsv[:, 2].mean() < 0.3)
    sat = (hsv[:, 1] > 0.3) & (hsv[:, 2] > 0.25)
    if sat.mean() < 0.5:
        return False
    h = np.deg2rad(hsv[sat, 0])
    mean_hue = math.degrees(math.atan2(np.sin(h).mean(), np.cos(h).mean())) % 360
    return bool(sd.hue_distance(mean_hue, colour.hue) <= HUE_TOLERANCE)


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out &= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def edge_map(img: np.ndarray) -> np.ndarray:
    """Boolean edges: colour-gradient magnitude above a fixed threshold (0..255 units)."""
    f = img.astype(np.float32)
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:, 1:-1] = f[:, 2:] - f[:, :-2]
    gy[1:-1] = f[2:] - f[:-2]
    mag = np.sqrt((gx**2 + gy**2).sum(axis=-1))
    return mag > 60.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


# --------------------------------------------------------------------------- harness


@dataclass
class TestResult:
    name: str
    successes: dict[str, int] = field(default_factory=dict)
    total: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    images: list[np.ndarray] = field(default_factory=list)


@dataclass
class Models:
    pipe: Any
    controlnet: Any | None
    steps: int
    cfg: float
    size: int


def load(model: Path, controlnet: Path | None, steps: int, cfg: float) -> Models:
    import torch
    from diffusers import ControlNetModel, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(model), local_files_only=True, torch_dtype=torch.float32
    )
    pipe.set_progress_bar_config(disable=True)
    cn = None
    if controlnet is not None and controlnet.exists():
        cn = ControlNetModel.from_pretrained(
            str(controlnet), local_files_only=True, torch_dtype=torch.float32
        )
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return Models(pipe, cn, steps, cfg, size)


def generators(seeds: list[int]) -> list[Any]:
    import torch

    return [torch.Generator().manual_seed(s) for s in seeds]


def to_uint8(images: np.ndarray) -> list[np.ndarray]:
    return [np.clip(np.rint(im * 255), 0, 255).astype(np.uint8) for im in images]


def txt2img(m: Models, prompt: str, seeds: list[int], **kw: Any) -> list[np.ndarray]:
    out = m.pipe(
        prompt if "prompt_embeds" not in kw else None,
        num_images_per_prompt=len(seeds) if "prompt_embeds" not in kw else 1,
        generator=generators(seeds),
        num_inference_steps=m.steps,
        guidance_scale=m.cfg,
        height=m.size,
        width=m.size,
        output_type="np",
        **kw,
    ).images
    return to_uint8(out)


# --------------------------------------------------------------------------- tests

TXT2IMG_CASES = [
    ("red", "circle", "blue"),
    ("yellow", "star", "purple"),
    ("blue", "square", "white"),
    ("green", "triangle", "pink"),
    ("orange", "circle", "cyan"),
    ("white", "square", "red"),
    ("pink", "star", "green"),
    ("cyan", "triangle", "black"),
]


def test_txt2img(m: Models, seeds: list[int]) -> TestResult:
    """Each seed gets its own colour combination (so 8 seeds cover 8 prompts)."""
    res = TestResult("txt2img")
    res.successes = {"background": 0, "shape": 0}
    for k, seed in enumerate(seeds):
        colour, shape, bg = TXT2IMG_CASES[k % len(TXT2IMG_CASES)]
        spec = sd.SceneSpec(
            sd.Background(sd.BackgroundKind.FLAT, bg), (sd.ShapeSpec(sd.Shape(shape), colour),)
        )
        img = txt2img(m, sd.caption(spec), [seed])[0]
        cover = sd.shape_mask(spec.shapes[0], m.size)
        inside = erode(cover > 0.5, 2)
        outside = ~dilate(cover > 0.05, 4)
        res.successes["background"] += colour_matches(img[outside], bg)
        res.successes["shape"] += colour_matches(img[inside], colour)
        res.total += 1
        res.images.append(img)
    return res


def regional_embeds(m: Models, prompts: list[str]) -> tuple[Any, Any, list[tuple[int, int]]]:
    from sfumato.inference.regions import concat_region_embeddings

    pos, neg = m.pipe.encode_prompt(prompts, "cpu", 1, True, [""] * len(prompts))
    embeds, spans = concat_region_embeddings([pos[i : i + 1] for i in range(len(prompts))])
    negs, _ = concat_region_embeddings([neg[i : i + 1] for i in range(len(prompts))])
    return embeds, negs, spans


def test_regions(m: Models, seeds: list[int]) -> TestResult:
    """Left half prompt A, right half prompt B (masked cross-attention), then swapped."""
    from sfumato.inference.regions import RegionalAttention, latent_masks

    res = TestResult("regions")
    res.successes = {"left": 0, "right": 0, "swapped": 0}
    s = m.size
    left = np.zeros((s, s), np.float32)
    left[:, : s // 2] = 1
    right = 1 - left
    lat = (s // m.pipe.vae_scale_factor,) * 2
    masks = latent_masks([left, right], lat)
    pairs = [("red", "blue"), ("yellow", "purple"), ("green", "pink"), ("orange", "cyan")]
    core_l = np.zeros((s, s), bool)
    core_l[:, 2 : s // 2 - 6] = True
    core_r = core_l[:, ::-1]
    with RegionalAttention(m.pipe.unet) as regional:
        for k, seed in enumerate(seeds):
            a, b = pairs[k % len(pairs)]
            ok = True
            for flip in (False, True):
                ca, cb = (b, a) if flip else (a, b)
                prompts = ["", f"{ca} background", f"{cb} background"]
                embeds, negs, spans = regional_embeds(m, prompts)
                regional.set_regions(masks, spans[1:])
                img = txt2img(
                    m, "", [seed], prompt_embeds=embeds, negative_prompt_embeds=negs
                )[0]
                lo, ro = colour_matches(img[core_l], ca), colour_matches(img[core_r], cb)
                if not flip:
                    res.successes["left"] += lo
                    res.successes["right"] += ro
                ok = ok and lo and ro
                res.images.append(img)
            res.successes["swapped"] += ok
            res.total += 1
        regional.clear()
    res.images = res.images[::2]  # one per seed on the sheet (unswapped)
    return res


def latent_blend_inpaint(
    m: Models, init: np.ndarray, mask: np.ndarray, prompt: str, seed: int
) -> np.ndarray:
    """Inpaint with the ordinary 4-channel model: after every step, the latents outside
    the (latent-resolution) mask are replaced by the init latents noised to that step."""
    import torch
    import torch.nn.functional as F

    pipe = m.pipe
    sched = pipe.scheduler
    sched.set_timesteps(m.steps)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(init).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        z0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        pos, neg = pipe.encode_prompt(prompt, "cpu", 1, True, "")
        cond = torch.cat([neg, pos])
        keep = F.adaptive_avg_pool2d(torch.from_numpy(1 - mask)[None, None].float(), z0.shape[-2:])
        keep = (keep > 0.5).float()
        noise = torch.randn(z0.shape, generator=gen)
        z = noise * sched.init_noise_sigma
        ts = sched.timesteps
        for i, t in enumerate(ts):
            zin = sched.scale_model_input(torch.cat([z, z]), t)
            eps_u, eps_c = pipe.unet(zin, t, encoder_hidden_states=cond).sample.chunk(2)
            eps = eps_u + m.cfg * (eps_c - eps_u)
            z = sched.step(eps, t, z).prev_sample
            known = sched.add_noise(z0, noise, ts[i + 1 : i + 2]) if i + 1 < len(ts) else z0
            z = keep * known + (1 - keep) * z
        img = pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample
    out = to_uint8((img.permute(0, 2, 3, 1).numpy() + 1) / 2)[0]
    m3 = mask[..., None]
    return np.where(m3 > 0.5, out, init).astype(np.uint8)


def test_inpaint(m: Models, seeds: list[int]) -> TestResult:
    res = TestResult("inpaint")
    res.successes = {"inside": 0}
    s = m.size
    mask = np.zeros((s, s), np.float32)
    q = s // 4
    mask[q : s - q, q : s - q] = 1
    cases = [("red", "blue"), ("yellow", "green"), ("blue", "white"), ("pink", "cyan")]
    core = erode(mask > 0.5, 3)
    for k, seed in enumerate(seeds):
        colour, bg = cases[k % len(cases)]
        init = sd.render(sd.SceneSpec(sd.Background(sd.BackgroundKind.FLAT, bg)), s)
        prompt = f"a big {colour} square on a {bg} background"
        img = latent_blend_inpaint(m, init, mask, prompt, seed)
        res.successes["inside"] += colour_matches(img[core], colour)
        res.total += 1
        res.images.append(img)
    return res


def test_controlnet(m: Models, seeds: list[int]) -> TestResult:
    """Scribble of a big square on the right; the prompt names a square without position
    (the default layout would put it in the center). Measure: the share of stroke pixels
    with a generated edge within 2 px, with the control vs. without it."""
    from diffusers import StableDiffusionControlNetPipeline

    res = TestResult("scribble controlnet")
    if m.controlnet is None:
        return res
    cpipe = StableDiffusionControlNetPipeline(**m.pipe.components, controlnet=m.controlnet)
    cpipe.set_progress_bar_config(disable=True)
    s = m.size
    spec = sd.SceneSpec(
        sd.Background(sd.BackgroundKind.FLAT, "white"),
        (sd.ShapeSpec(sd.Shape.SQUARE, "red", sd.Position.RIGHT, sd.Size.BIG),),
    )
    sketch = sd.scribble(spec, s)
    strokes = sketch[..., 0] < 128
    prompts = ["a red square on a white background", "a blue square on a yellow background"]
    with_c: list[float] = []
    without: list[float] = []
    res.successes = {"with > without + 0.2 (dark on white)": 0, "white on black": 0}
    for k, seed in enumerate(seeds):
        prompt = prompts[k % 2]
        base = txt2img(m, prompt, [seed])[0]
        out = []
        for control in (sketch, 255 - sketch):
            img = cpipe(
                prompt,
                image=Image.fromarray(control),
                generator=generators([seed]),
                num_inference_steps=m.steps,
                guidance_scale=m.cfg,
                height=s,
                width=s,
                output_type="np",
            ).images
            out.append(to_uint8(img)[0])

        def recall(img: np.ndarray) -> float:
            return float((dilate(edge_map(img), 2) & strokes).sum() / strokes.sum())

        r_base, r_dark, r_light = recall(base), recall(out[0]), recall(out[1])
        without.append(r_base)
        with_c.append(r_dark)
        res.successes["with > without + 0.2 (dark on white)"] += r_dark > r_base + 0.2
        res.successes["white on black"] += r_light > r_base + 0.2
        res.total += 1
        res.images.append(out[0])
    res.figures = {
        "stroke recall with control": float(np.mean(with_c)),
        "stroke recall without": float(np.mean(without)),
    }
    return res


def test_img2img(m: Models, seeds: list[int]) -> TestResult:
    from diffusers import StableDiffusionImg2ImgPipeline

    res = TestResult("img2img")
    ipipe = StableDiffusionImg2ImgPipeline(**m.pipe.components)
    ipipe.set_progress_bar_config(disable=True)
    spec = sd.parse_caption("a yellow star on a blue background")
    init = sd.render(spec, m.size)
    psnrs = []
    res.successes = {"low strength PSNR > 20 dB": 0, "high strength follows prompt": 0}
    for seed in seeds:
        low = ipipe(
            sd.caption(spec), image=Image.fromarray(init), strength=0.3,
            generator=generators([seed]), num_inference_steps=m.steps, guidance_scale=m.cfg,
            output_type="np",
        ).images
        low_img = to_uint8(low)[0]
        high = ipipe(
            "a yellow star on a red background", image=Image.fromarray(init), strength=0.85,
            generator=generators([seed]), num_inference_steps=m.steps, guidance_scale=m.cfg,
            output_type="np",
        ).images
        high_img = to_uint8(high)[0]
        p = psnr(low_img, init)
        psnrs.append(p)
        res.successes["low strength PSNR > 20 dB"] += p > 20
        outside = ~dilate(sd.shape_mask(spec.shapes[0], m.size) > 0.05, 4)
        res.successes["high strength follows prompt"] += colour_matches(high_img[outside], "red")
        res.total += 1
        res.images.append(np.concatenate([low_img[:, : m.size // 2], high_img[:, m.size // 2 :]], 1))
    res.figures = {"mean PSNR at strength 0.3 (dB)": float(np.mean(psnrs))}
    return res


TESTS: dict[str, Callable[[Models, list[int]], TestResult]] = {
    "txt2img": test_txt2img,
    "regions": test_regions,
    "inpaint": test_inpaint,
    "controlnet": test_controlnet,
    "img2img": test_img2img,
}


def contact_sheet(results: list[TestResult], path: Path, scale: int = 2) -> None:
    rows = []
    for r in results:
        if not r.images:
            continue
        row = np.concatenate(r.images, axis=1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=128) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    Image.fromarray(sheet).resize(
        (sheet.shape[1] * scale, sheet.shape[0] * scale), Image.Resampling.NEAREST
    ).save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--controlnet", type=Path, default=DEFAULT_CONTROLNET)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--tests", default=",".join(TESTS), help="comma-separated subset")
    p.add_argument("--sheet", type=Path, default=Path("/tmp/builtin_eval.png"))
    p.add_argument("--json", type=Path)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    torch.set_num_threads(args.threads)
    m = load(args.model, args.controlnet, args.steps, args.cfg)
    seeds = list(range(args.seeds))
    results = []
    for name in args.tests.split(","):
        t0 = time.perf_counter()
        r = TESTS[name](m, seeds)
        r.figures["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(r)
        parts = [f"{k} {v}/{r.total}" for k, v in r.successes.items()]
        parts += [f"{k} {v:.3f}" for k, v in r.figures.items()]
        print(f"{r.name:22s} " + "; ".join(parts), flush=True)
    contact_sheet(results, args.sheet)
    print(f"contact sheet: {args.sheet}")
    if args.json:
        args.json.write_text(json.dumps(
            {
                "model": str(args.model),
                "steps": args.steps,
                "cfg": args.cfg,
                "seeds": seeds,
                "results": {
                    r.name: {"successes": r.successes, "total": r.total, "figures": r.figures}
                    for r in results
                },
            },
            indent=1,
        ) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

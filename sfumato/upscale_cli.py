"""``sfumato upscale``: a picture made 2–4× larger, optionally redrawn tile by tile.

``sfumato upscale IN -o OUT.png --scale 4`` enlarges IN (an .ora, flattened as the canvas
shows it; or a PNG/JPEG/WebP) with a super-resolution model (``--upscaler PATH``: an
ESRGAN-family file) or Lanczos, and with ``--model`` refines the result tile by tile as
img2img at ``--strength`` (default 0.3) with the document's (or ``--prompt``'s) prompt;
an .ora's region and control layers are planned over each tile. ``--scale 1`` keeps the
size: a tiled refine alone.
The decisions are the planner's (:mod:`sfumato.planner.upscale`); this module reads,
runs the models with a progress bar on a terminal, and writes the PNG with a
``parameters`` chunk.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

__all__ = ["add_upscale_parser", "upscale_main"]


class UpscaleError(Exception):
    """An upscale that cannot go on; the one line the user sees (exit status 1)."""

    exit_code = 1


def add_upscale_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``upscale`` on an ``argparse`` sub-parser collection (imports nothing
    heavy: the planner checks the values and holds the defaults)."""
    p = subparsers.add_parser(
        "upscale",
        help="enlarge a picture 2-4x (super-resolution or Lanczos), optionally refined tile by tile",
        description=(
            "Enlarge IN (an .ora, flattened as the canvas shows it, or a PNG/JPEG/WebP) by "
            "--scale with a super-resolution model (--upscaler) or Lanczos, and write a PNG. "
            "With --model the enlarged picture is refined tile by tile (img2img at --strength, "
            "the prompt of --prompt or the document's), at the model's native tile size."
        ),
        epilog="Without --model nothing is generated: the picture is only enlarged.",
    )
    p.add_argument("input", metavar="IN", type=Path, help="an .ora document or a PNG/JPEG/WebP picture")
    p.add_argument("-o", "--output", metavar="OUT.png", type=Path, required=True, help="the PNG to write")
    p.add_argument("--scale", type=int, default=2, help="factor per side: 2, 3 or 4 (default 2); 1 keeps the "
                   "size and only refines in tiles (needs --model)")
    p.add_argument("--upscaler", metavar="PATH", help="super-resolution model file (ESRGAN family, .pth or "
                   ".safetensors; ComfyUI models/upscale_models, A1111 models/ESRGAN); default Lanczos")
    p.add_argument("--model", metavar="PATH|ID", help="refine with this model (checkpoint, diffusers folder, "
                   "catalog id, 'builtin'); without it there is no refine")
    p.add_argument("--strength", type=float, help="refine strength, above 0 and at most 1 (default 0.3)")
    p.add_argument("--tile", type=int, help="refine tile side in pixels (default: the model's native size)")
    p.add_argument("--overlap", type=int, help="tile overlap in pixels (default 64, at most a quarter of the tile)")
    p.add_argument("--prompt", help="the refine prompt (default: the document's)")
    p.add_argument("--negative", help="the refine negative prompt (default: the document's)")
    p.add_argument("--steps", type=int, help="denoising steps of each tile's schedule")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale")
    p.add_argument("--sampler", help="sampler name, e.g. euler_a or 'DPM++ 2M Karras'")
    p.add_argument("--seed", type=int, help="seed of the first tile; tile i uses seed + i (default: random)")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.set_defaults(handler=upscale_main)
    return p


def _note(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"sfumato: {text}", file=sys.stderr)


class _Bar:
    """A tqdm bar on stderr when it is a terminal (as ``render``'s), silent otherwise."""

    def __init__(self, stream: TextIO, enabled: bool, desc: str, unit: str) -> None:
        self.stream, self.desc, self.unit = stream, desc, unit
        self.enabled = enabled and stream.isatty()
        self.bar: Any = None

    def update(self, done: float, total: int, postfix: str = "") -> None:
        if not self.enabled or total <= 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            width = shutil.get_terminal_size((80, 24)).columns or 80
            self.bar = tqdm(total=total, file=self.stream, unit=self.unit, desc=self.desc, ncols=width,
                            bar_format="{l_bar}{bar}| {n:.1f}/{total} {unit}s [{elapsed}<{remaining}{postfix}]")  # fmt: skip
        self.bar.n = done
        if postfix:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def read_picture(path: Path) -> tuple[Any, Any]:
    """The visible picture of ``path`` as uint8 RGB (transparent parts over white, as the
    planner's init pictures) and the document (for its recipe)."""
    from sfumato.canvas.render.composite import flatten
    from sfumato.cli import read_document
    from sfumato.planner.layerpixels import over_white

    doc = read_document(path)
    return over_white(flatten(doc)), doc


def upscale_main(args: argparse.Namespace) -> int:
    """Run ``sfumato upscale``; returns 0 or raises :class:`UpscaleError`."""
    from sfumato.canvas.files.imageio import save_png
    from sfumato.canvas.files.parameters import format_parameters
    from sfumato.inference.errors import EngineError
    from sfumato.planner.errors import PlanError
    from sfumato.planner.upscale import DEFAULT_STRENGTH, plan_upscale

    output: Path = args.output
    if output.suffix.lower() != ".png":
        raise UpscaleError(f"{output}: upscale writes PNG files; give an output ending in .png")
    if not output.parent.exists():
        raise UpscaleError(f"cannot write {output}: the folder {output.parent} does not exist")
    if args.upscaler and not Path(args.upscaler).expanduser().is_file():
        raise UpscaleError(f"--upscaler {args.upscaler}: no such file")
    if args.model is None:
        for flag in ("prompt", "negative", "steps", "cfg", "sampler", "tile", "overlap", "strength"):
            if getattr(args, flag) is not None:
                raise UpscaleError(f"--{flag} is for the refine, which needs --model (a model to refine with)")
    picture, doc = read_picture(args.input)
    height, width = picture.shape[:2]
    settings = _settings(args, doc) if args.model is not None else None
    try:
        strength = DEFAULT_STRENGTH if args.strength is None else args.strength
        document = doc if settings is not None and args.input.suffix.lower() == ".ora" else None
        plan = plan_upscale(width, height, args.scale, settings, strength=strength,
                            tile=args.tile, overlap=args.overlap, document=document)  # fmt: skip
    except PlanError as error:
        raise UpscaleError(str(error)) from None
    for note in plan.notes:
        _note(args, note)
    what = f"{width}x{height} -> {plan.size}"
    if plan.refine:
        assert plan.grid is not None and plan.template is not None
        _note(args, f"{what}, refined in {len(plan.grid)} tiles of {plan.grid.tile} px (overlap "
                    f"{plan.grid.overlap}) at strength {plan.strength}, seed {plan.template.seed}")  # fmt: skip
    else:
        _note(args, f"{what} ({'super-resolution' if args.upscaler else 'Lanczos'}, no refine)")
    try:
        result, upscaler_name = _run(args, plan, picture)
    except EngineError as error:
        raise UpscaleError(error.user_message) from None
    summary = _record(args, plan, upscaler_name)
    rgba = _with_alpha(result)
    save_png(rgba, output, format_parameters(summary))
    _note(args, f"wrote {output}")
    return 0


def _settings(args: argparse.Namespace, doc: Any) -> Any:
    from sfumato.planner.errors import PlanError
    from sfumato.planner.recipe import settings_from_recipe
    from sfumato.render_cli import RenderError, resolve_model

    try:
        model = resolve_model(args.model, None)
        return settings_from_recipe(
            doc.recipe, prompt=args.prompt, negative=args.negative, model=model.source,
            model_family=model.family, seed=args.seed, steps=args.steps, cfg=args.cfg,
            sampler=args.sampler,
        )
    except (PlanError, RenderError) as error:
        raise UpscaleError(str(error)) from None


def _run(args: argparse.Namespace, plan: Any, picture: Any) -> tuple[Any, str | None]:
    """Enlarge and refine; returns the picture and the upscaler's name (``None``: Lanczos)."""
    from sfumato.planner.upscale import UpscaleProgress, upscale_picture

    debug = bool(getattr(args, "debug", False))
    needs_torch = plan.refine or args.upscaler
    if needs_torch:
        from sfumato.render_cli import _quiet_libraries

        if not debug:
            _quiet_libraries()
        _note(args, "starting the engine (importing PyTorch)…")
        try:
            from sfumato.inference.cancel import CancelToken
        except ImportError as error:
            raise UpscaleError(f"the inference engine cannot start: {error}") from None
        cancel: Any = CancelToken()
    else:
        cancel = None
    engine = None
    super_resolve = None
    upscaler_name = None
    sr_bar = _Bar(sys.stderr, not args.quiet, "super-resolution", "tile")
    bar = _Bar(sys.stderr, not args.quiet, "refining", "tile")
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
            if plan.refine:
                from sfumato.inference.engine import Engine

                engine = Engine(device=args.device)
            if args.upscaler:
                from sfumato.inference.upscalers import load_upscaler

                device = engine.device if engine is not None else args.device
                dtype = engine.dtype if engine is not None else None
                upscaler = load_upscaler(args.upscaler, device=device, dtype=dtype)
                upscaler_name = upscaler.name
                _note(args, f"upscaler {upscaler.name}: {upscaler.architecture}, x{upscaler.scale}")

                def super_resolve(image: Any) -> Any:
                    return upscaler.upscale(image, cancel=cancel, on_tile=lambda d, n: sr_bar.update(d, n))

            def on_progress(p: UpscaleProgress) -> None:
                if p.stage == "refine":
                    step = f"tile {min(p.tile + 1, p.tiles)}/{p.tiles}" + (f", step {p.step}/{p.steps}" if p.steps else "")
                    bar.update(p.fraction * p.tiles, p.tiles, step)

            run_tile = _tile_runner(engine, cancel) if engine is not None else None
            if engine is not None:
                _note(args, f"loading {plan.template.model.source} on {engine.device}…")
            result = upscale_picture(picture, plan, super_resolve=super_resolve, run_tile=run_tile,
                                     on_progress=on_progress, cancel=cancel)  # fmt: skip
    except KeyboardInterrupt:
        if cancel is not None:
            cancel.cancel()
        raise
    finally:
        sr_bar.close()
        bar.close()
    return result, upscaler_name


def _tile_runner(engine: Any, cancel: Any) -> Any:
    """``run_tile`` for the planner's loop: one engine run per tile, steps reported."""
    from sfumato.inference.errors import CancelledError
    from sfumato.inference.events import Progress

    def run_tile(request: Any, on_step: Any) -> Any:
        def on_event(event: Any) -> None:
            if isinstance(event, Progress):
                on_step(event.step, event.total)

        result = engine.run(request, on_event, cancel)
        if result.error is not None:
            raise result.error
        if result.cancelled:
            raise CancelledError()
        return result.images[0]

    return run_tile


def _record(args: argparse.Namespace, plan: Any, upscaler: str | None) -> dict[str, Any]:
    """The ``parameters`` text's fields (:func:`~sfumato.planner.upscale.upscale_record`)."""
    from sfumato.planner.upscale import upscale_record

    return upscale_record(plan, upscaler)


def _with_alpha(rgb: Any) -> Any:
    import numpy as np

    out = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out

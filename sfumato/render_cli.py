"""``sfumato render`` and ``sfumato models``: the headless main job.

``sfumato render IN.ora -o OUT.png`` reads the document and its recipe (the ``sfumato:``
attributes; flags override), plans the generation (:mod:`sfumato.planner`), runs the
engine with a progress bar on a terminal, and writes the flattened result as a PNG with
an A1111-style ``parameters`` chunk. ``--batch N`` (N > 1) writes ``OUT-1.png`` …
``OUT-N.png``; ``--layered OUT.ora`` also writes the document with the result(s) added as
``generated`` layers (with ``--batch``, the first image visible, the others hidden).

``sfumato models`` lists the models the catalog finds.

Torch is imported only when a render actually runs (the engine import is lazy). Every
failure the user can fix is one line on stderr and a non-zero exit status (1; 130 when
interrupted).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sfumato.canvas import editing
from sfumato.vocabulary.families import BUILTIN
from sfumato.vocabulary.kinds import FillMode

log = logging.getLogger(__name__)

__all__ = [
    "RenderError",
    "add_models_parser",
    "add_render_parser",
    "add_styles_parser",
    "batch_output_paths",
    "models_main",
    "render_main",
    "styles_main",
]

NO_MODEL_HINT = (
    "no model found: pass --model PATH (a Stable Diffusion .safetensors checkpoint or a "
    "diffusers folder), or put one in a models folder (`sfumato models` lists what is found)"
)


class RenderError(Exception):
    """A render that cannot go on; the message is the one line the user sees.

    ``exit_code`` makes :mod:`sfumato.cli` print it as ``sfumato: error: ...`` and exit 1.
    """

    exit_code = 1


# ----------------------------------------------------------------------------- parsers
def add_render_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``render`` on an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "render",
        help="generate from a document's recipe, headless",
        description=(
            "Plan and run a generation for an OpenRaster document (its sfumato: recipe and "
            "its mask, region and control layers) and write the flattened result as PNG."
        ),
        epilog=(
            "With --batch N (N > 1) the images are written as OUT-1.png ... OUT-N.png. "
            "Without --model the document's model is used, then the configured default, "
            "then the built-in demo model."
        ),
    )
    p.add_argument("input", metavar="IN.ora", help="the document to render")
    p.add_argument("-o", "--output", metavar="OUT.png", required=True, help="the flattened result")
    p.add_argument("--layered", metavar="OUT.ora", help="also write the document with the result as a layer")
    p.add_argument("--model", metavar="PATH|ID", help="checkpoint file, diffusers folder, catalog id or hub id")
    p.add_argument("--controlnet", metavar="[KIND=]PATH", action="append", default=[],
                   help="ControlNet weights for a control kind (default kind: scribble); repeatable")
    p.add_argument("--prompt", help="override the document's prompt")
    p.add_argument("--negative", help="override the document's negative prompt")
    p.add_argument("--seed", type=int, help="random seed (default: the document's, else random)")
    p.add_argument("--steps", type=int, help="denoising steps")
    p.add_argument("--strength", type=float, help="0..1; below 1 on a painted canvas refines it (img2img)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale")
    p.add_argument("--sampler", help="sampler name, e.g. euler_a or 'DPM++ 2M Karras'")
    p.add_argument("--batch", type=int, help="how many images (seeds seed, seed+1, ...)")
    p.add_argument("--fill", choices=[f.value for f in FillMode],
                   help="what an inpaint's masked area (an Expand's bare canvas) starts from; "
                        "default: keep for an inpaint, telea for an Expand")
    p.add_argument("--depth-model", metavar="PATH",
                   help="depth estimator folder for depth control layers filled from the picture "
                        "(sfumato:source=\"canvas\"); default: the one the catalog finds")
    p.add_argument("--style", metavar="NAME", help="apply a style (`sfumato styles` lists them); "
                   "default: the document's")
    p.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.set_defaults(handler=render_main)
    return p


def add_styles_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``styles`` on an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "styles",
        help="list the styles (built-in and yours)",
        description="List the built-in styles and the user's (the styles folder in the "
        "settings folder; a user style replaces a built-in of the same name).",
    )
    p.add_argument("--json", action="store_true", help="print the styles as a JSON list")
    p.set_defaults(handler=styles_main)
    return p


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``models`` on an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "models",
        help="list the models Sfumato can find",
        description="List models from the configured folders, the usual ComfyUI/A1111 "
        "model folders, the Hugging Face cache and the built-in demo model.",
    )
    p.set_defaults(handler=models_main)
    return p


# ----------------------------------------------------------------------------- helpers
def batch_output_paths(output: Path, batch: int) -> list[Path]:
    """``OUT.png`` for one image; ``OUT-1.png`` … ``OUT-N.png`` for a batch."""
    if batch <= 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(1, batch + 1)]


@dataclass(frozen=True)
class ResolvedModel:
    source: str
    family: str | None
    origin: str  # "--model", "the document", "the configuration", "built-in"


_LABELS = {"the document": "the document's model"}


def _is_local(source: str) -> bool:
    return Path(source).expanduser().exists()


def _local_model(source: str, label: str) -> Path:
    """A local model source as a path, refused at once unless it is a regular file or a
    folder: a named pipe would otherwise be found only after planning and importing torch.
    ``label`` says where the source came from (``--model``)."""
    from sfumato.inference.detect import check_model_path
    from sfumato.inference.errors import EngineError

    path = Path(source).expanduser()
    try:
        check_model_path(path)
    except EngineError as error:
        raise RenderError(f"{label}: {error.user_message}") from None
    return path


def _file_family(path: Path) -> str | None:
    """The family of a single-file checkpoint from its header (torch-free)."""
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return None
    try:
        from sfumato.inference.detect import guess_family, read_safetensors_header

        header = read_safetensors_header(path)
        return guess_family(header.shapes, header.metadata)
    except Exception as error:  # the engine will report a bad file properly
        log.debug("cannot read the header of %s: %s", path, error)
        return None


def _lookup_catalog_id(text: str) -> Any | None:
    """A checkpoint in the catalog whose label, file name or stem is ``text`` (any case)."""
    from sfumato.inference.catalog import list_models
    from sfumato.inference.detect import WeightsKind

    key = text.strip().lower()
    for entry in list_models(WeightsKind.CHECKPOINT):
        names = {entry.label.lower(), entry.source.lower()}
        if entry.path is not None:
            names |= {entry.path.name.lower(), entry.path.stem.lower()}
        if key in names:
            return entry
    return None


def _builtin_installed() -> bool:
    from sfumato.inference.catalog import BUILTIN_MODEL_DIR

    folder = Path(BUILTIN_MODEL_DIR)
    return (folder / "model_index.json").is_file() or any(folder.glob("*.safetensors"))


def _default_model() -> ResolvedModel | None:
    """The configured default model, else the built-in one; ``None`` when neither exists."""
    from sfumato.inference.catalog import BUILTIN_SOURCE, find_default_model

    entry = find_default_model()
    if entry.source == BUILTIN_SOURCE:
        if not _builtin_installed():
            return None
        return ResolvedModel(BUILTIN_SOURCE, entry.family, "built-in")
    return ResolvedModel(entry.source, entry.family, "the configuration")


def resolve_model(flag: str | None, recipe_model: str | None) -> ResolvedModel:
    """The model to render with: ``--model``, the document's, the configured, the built-in.

    A source may be a file or folder, ``builtin``, a catalog label or file name (see
    ``sfumato models``), or a hub id (``org/name``, loaded from the local cache).
    """
    for source, origin in ((flag, "--model"), (recipe_model, "the document")):
        if not source or not source.strip():
            continue
        source = source.strip()
        if source == BUILTIN:
            if not _builtin_installed():
                raise RenderError(NO_MODEL_HINT)
            return ResolvedModel(source, None, origin)
        if _is_local(source):
            return ResolvedModel(source, _file_family(_local_model(source, _LABELS.get(origin, origin))), origin)
        entry = _lookup_catalog_id(source)
        if entry is not None:
            return ResolvedModel(entry.source, entry.family, origin)
        parts = source.split("/")
        if len(parts) == 2 and all(parts) and not source.startswith((".", "~")) \
                and not source.lower().endswith((".safetensors", ".ckpt")):
            return ResolvedModel(source, None, origin)  # a hub id: the engine loads it offline-first
        raise RenderError(
            f"model not found: {source} (from {origin}); pass --model PATH, or see `sfumato models`"
        )
    default = _default_model()
    if default is None:
        raise RenderError(NO_MODEL_HINT)
    return default


def parse_controlnets(values: Sequence[str]) -> dict[Any, str]:
    """``[KIND=]PATH`` flags → ``{ControlKind: path}`` (kind defaults to scribble)."""
    from sfumato.inference.request import RequestError
    from sfumato.vocabulary.kinds import ControlKind

    out: dict[Any, str] = {}
    for value in values:
        kind_text, sep, path = value.partition("=")
        if not sep:
            kind_text, path = "scribble", value
        try:
            kind = ControlKind.parse(kind_text)
        except RequestError as error:
            raise RenderError(f"--controlnet {value}: {error}") from None
        if not Path(path).expanduser().exists():
            raise RenderError(f"--controlnet {value}: no such file or folder: {path}")
        out[kind] = str(_local_model(path, f"--controlnet {value}"))
    return out


class _Progress:
    """A tqdm bar on stderr when it is a terminal; silent otherwise. The bar stays on the
    screen when the run ends (a short run would only flash it) and is 80 columns wide on
    a terminal that does not report its width (tqdm would draw nothing)."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        from sfumato.inference.events import Progress

        if not self.enabled or not isinstance(event, Progress) or event.total <= 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            width = shutil.get_terminal_size((80, 24)).columns or 80
            self.bar = tqdm(total=event.total, file=self.stream, unit="step", desc="rendering", ncols=width)
        self.bar.n = event.step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------- commands
def render_main(args: argparse.Namespace) -> int:
    """Run ``sfumato render``; returns 0 or raises :class:`RenderError` (the CLI prints it)."""
    return _render(args)


def _note(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"sfumato: {text}", file=sys.stderr)


def _render(args: argparse.Namespace) -> int:
    from sfumato.canvas.files.ora import load_ora, save_ora
    from sfumato.canvas.files.parameters import format_parameters
    from sfumato.planner.errors import PlanError
    from sfumato.planner.placement import insertion_index, result_layer
    from sfumato.planner.plan import plan
    from sfumato.planner.recipe import settings_from_recipe

    source = Path(args.input)
    from sfumato.cli import require_ora

    require_ora(source)  # a PNG or PSD: say how to make an .ora; a pipe: refused
    if not source.is_file():
        raise RenderError(f"no such file: {source}")
    output = Path(args.output)
    for target in (output, Path(args.layered) if args.layered else None):
        if target is not None and not target.parent.exists():
            raise RenderError(f"cannot write {target}: the folder {target.parent} does not exist")
    doc = load_ora(source)  # file errors are one line each (sfumato.cli reports them)

    engine_holder: list[Any] = []
    _fill_depth_layers(args, doc, engine_holder)

    style = _style(args, doc.recipe)
    model = resolve_model(args.model, (style.model if style else None) or doc.recipe.model)
    if model.origin == "built-in":
        _note(args, "using the built-in demo model (shapes and colours); add a Stable "
                    "Diffusion checkpoint for real work")
    try:
        settings = settings_from_recipe(
            doc.recipe,
            prompt=args.prompt, negative=args.negative, model=model.source,
            model_family=model.family, seed=args.seed, steps=args.steps,
            strength=args.strength, cfg=args.cfg, sampler=args.sampler, batch=args.batch,
            fill=None if args.fill is None else FillMode(args.fill),
            control_models=parse_controlnets(args.controlnet),
        )
        if style is not None:
            from sfumato.planner.styles import apply_style

            flags = {"model": args.model, "sampler": args.sampler, "steps": args.steps, "cfg": args.cfg}
            settings = apply_style(style, settings, keep={k for k, v in flags.items() if v is not None})
            settings = settings.replace(model=model.source, model_family=model.family)
            _note(args, f"style {style.name!r}")
        planned = plan(doc, settings)
    except PlanError as error:
        raise RenderError(str(error)) from None
    for note in planned.notes:
        _note(args, note)
    _note(args, f"{planned.mode.label.lower()}: {planned.area.w}x{planned.area.h} area at "
                f"{planned.area.x},{planned.area.y}, generated at {planned.size}, seed {settings.seed}")

    images, metadata = _run_engine(args, planned.request, engine_holder)

    paths = batch_output_paths(output, len(images))
    layers = []
    for i, (image, path) in enumerate(zip(images, paths, strict=True)):
        layer = result_layer(planned, image, metadata=metadata, batch_index=i)
        editing.add_layer(doc, layer, index=insertion_index(doc), activate=False)
        try:
            _export(doc, path, format_parameters(layer.generation or {}))
        finally:
            editing.remove_layer(doc, layer)
        layers.append(layer)
        _note(args, f"wrote {path}")
    if args.layered:
        index = insertion_index(doc)
        for i, layer in reversed(list(enumerate(layers))):
            layer.visible = i == 0
            editing.add_layer(doc, layer, index=index)
        save_ora(doc, args.layered)
        _note(args, f"wrote {args.layered}")
    return 0


def _style(args: argparse.Namespace, recipe: Any) -> Any:
    """The style to render with: ``--style NAME`` (then recorded in the recipe, so
    ``--layered`` keeps it), else the document's own (:func:`~sfumato.planner.styles.recipe_style`)."""
    from sfumato.planner.styles import StyleError, load_styles, recipe_style, record_style

    try:
        if getattr(args, "style", None):
            style = load_styles().find(args.style)
            record_style(recipe, style)
            return style
        return recipe_style(recipe)
    except StyleError as error:
        raise RenderError(str(error)) from None


def _export(doc: Any, path: Path, parameters: str) -> None:
    from sfumato.canvas.files.imageio import export_png

    export_png(doc, path, parameters=parameters)


def _quiet_libraries() -> None:
    """Keep the model libraries' own chatter (advice, deprecations, loading bars) off the
    terminal; ``--debug`` shows it. Must run before they are imported."""
    for name, value in (("TRANSFORMERS_VERBOSITY", "error"), ("DIFFUSERS_VERBOSITY", "error"),
                        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(name, value)
    for module in ("diffusers.utils.logging", "transformers.utils.logging"):
        with contextlib.suppress(ImportError, AttributeError):
            library_logging = importlib.import_module(module)
            library_logging.set_verbosity_error()
            library_logging.disable_progress_bar()


def _depth_layers_to_fill(doc: Any) -> list[Any]:
    """Visible depth control layers with no pixels whose file says ``sfumato:source="canvas"``."""
    from sfumato.canvas.model.layers import ControlSource, Role
    from sfumato.vocabulary.kinds import ControlKind

    return [
        layer for layer in doc.pixel_layers(Role.CONTROL)
        if layer.control is not None and layer.control.kind is ControlKind.DEPTH
        and layer.control.source is ControlSource.CANVAS
        and layer.effectively_visible() and layer.surface.bounds().empty
    ]


def _fill_depth_layers(args: argparse.Namespace, doc: Any, engine_holder: list[Any]) -> None:
    """Fill each empty ``source="canvas"`` depth layer with the depth map of the visible
    picture (over white, as the window's Depth from Image reads it), before planning."""
    layers = _depth_layers_to_fill(doc)
    if not layers:
        return
    import numpy as np

    from sfumato.canvas.model.layers import document_offset
    from sfumato.canvas.render.composite import flatten
    from sfumato.inference.errors import EngineError
    from sfumato.inference.request import ModelRef

    picture = np.ascontiguousarray(flatten(doc, background=(255, 255, 255, 255))[..., :3])
    source = getattr(args, "depth_model", None)
    try:
        engine = _engine(args, engine_holder)
        _note(args, "estimating depth from the picture for " + ", ".join(repr(lyr.name) for lyr in layers) + "…")
        with warnings.catch_warnings():
            if not getattr(args, "debug", False):
                warnings.simplefilter("ignore")
            depth = engine.estimate_depth(picture, None if source is None else ModelRef(source))
    except EngineError as error:
        raise RenderError(error.user_message) from None
    grey = np.asarray(depth, np.uint8)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    for layer in layers:
        ox, oy = document_offset(layer)
        layer.surface.write(-ox, -oy, rgba)  # the document's pixels, wherever the layer sits


def _engine(args: argparse.Namespace, holder: list[Any]) -> Any:
    """The one engine of this render (made on first use, kept in ``holder``)."""
    if holder:
        return holder[0]
    if not getattr(args, "debug", False):
        _quiet_libraries()
    _note(args, "starting the engine (importing PyTorch and diffusers)…")
    try:
        from sfumato.inference.engine import Engine
    except ImportError as error:
        raise RenderError(f"the inference engine cannot start: {error}") from None
    with warnings.catch_warnings():
        if not getattr(args, "debug", False):
            warnings.simplefilter("ignore")
        holder.append(Engine(device=getattr(args, "device", None)))
    return holder[0]


def _run_engine(
    args: argparse.Namespace, request: Any, engine_holder: list[Any] | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The engine's images (uint8 RGB at the generation size) and its ``Finished.metadata``."""
    from sfumato.inference.errors import EngineError

    debug = bool(getattr(args, "debug", False))
    holder = [] if engine_holder is None else engine_holder
    try:
        from sfumato.inference.cancel import CancelToken
    except ImportError as error:
        raise RenderError(f"the inference engine cannot start: {error}") from None
    progress = _Progress(sys.stderr, not args.quiet)
    cancel = CancelToken()
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
            engine = _engine(args, holder)
            _note(args, f"loading {request.model.source} on {engine.device}…")
            result = engine.run(request, progress, cancel)
    except EngineError as error:
        raise RenderError(error.user_message) from None
    except KeyboardInterrupt:
        cancel.cancel()
        raise
    finally:
        progress.close()
    if result.error is not None:
        raise RenderError(result.error.user_message)
    if result.cancelled:
        raise RenderError("cancelled")
    return tuple(result.images), dict(result.metadata)


def models_main(args: argparse.Namespace) -> int:
    """Run ``sfumato models``: one line per model (label, kind, family, source)."""
    del args
    from sfumato.inference.catalog import BUILTIN_SOURCE, list_models

    entries = [
        e for e in list_models()
        if e.source != BUILTIN_SOURCE or _builtin_installed()
    ]
    if not entries:
        print("no models found; pass --model PATH to `sfumato render` (a Stable Diffusion "
              ".safetensors checkpoint or a diffusers folder), or add a models folder to "
              "model_paths in the settings", file=sys.stderr)
        return 0
    rows = [
        (e.label, e.kind.value, "unusable" if e.problem else e.family or "unknown",
         e.source)
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("MODEL", "KIND", "FAMILY")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(header)) + "  SOURCE")
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for e in entries:  # each bad file named with its reason (the good ones are listed above)
        if e.problem:
            print(f"sfumato: warning: {e.source}: {e.problem}", file=sys.stderr)
    return 0


def styles_main(args: argparse.Namespace) -> int:
    """Run ``sfumato styles``: one line per style (name, source, model, steps/CFG/sampler),
    or with ``--json`` a JSON list of the styles (each with its ``source``)."""
    import json

    from sfumato.planner.styles import load_styles

    book = load_styles()
    for problem in book.problems:
        print(f"sfumato: warning: {problem}", file=sys.stderr)
    styles = list(book.styles.values())
    if args.json:
        print(json.dumps([{**s.to_json(), "source": s.source} for s in styles], indent=2, ensure_ascii=False))
        return 0
    if not styles:
        print("no styles found", file=sys.stderr)
        return 0

    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    rows = [
        (s.name, s.source, s.model or (f"({s.family})" if s.family else "-"), cell(s.steps), cell(s.cfg),
         s.sampler.value if s.sampler else "-")
        for s in styles
    ]
    header = ("STYLE", "SOURCE", "MODEL", "STEPS", "CFG", "SAMPLER")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0

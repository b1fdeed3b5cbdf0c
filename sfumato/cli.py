"""The ``sfumato`` command: the window with no arguments, headless sub-commands otherwise.

Sub-commands come from the :data:`SUBCOMMANDS` registration list: ``"module:function"``
strings, imported when the parser is built. Each function receives argparse's
sub-parsers object, adds its parser(s), and sets ``handler`` on each with
``parser.set_defaults(handler=fn)``, where ``fn(args: argparse.Namespace) -> int`` returns
the exit status. Handlers report failures by raising: :class:`CliError` (or any
exception with an ``exit_code`` attribute), :class:`~sfumato.canvas.files.file_errors.FileFormatError`,
``OSError`` or ``ValueError`` become one line ``sfumato: error: ...`` on stderr and exit
status 1; ``--debug`` (accepted before or after the sub-command) shows the traceback
instead. Keep sub-command modules light at import time (no torch, no Qt): import heavy
things inside the handler. This module itself never imports Qt or torch.

Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted; 141 (as a Unix tool
killed by SIGPIPE) when the output was closed early (``sfumato info X | head``), quietly.
Log records print as ``sfumato: warning: ...`` (``sfumato: info:``/``debug:`` with
``--debug``): an ``error:`` line always comes with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

log = logging.getLogger(__name__)

# Registration list of sub-command providers (see the module docstring). To add commands,
# append "package.module:function" entries here.
SUBCOMMANDS: list[str] = [
    "sfumato.cli:add_file_parsers",
    "sfumato.render_cli:add_render_parser",
    "sfumato.render_cli:add_models_parser",
    "sfumato.render_cli:add_styles_parser",
    "sfumato.recover_cli:add_recover_parser",
    "sfumato.upscale_cli:add_upscale_parser",
]

ORA_SUFFIXES = (".ora",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".webp")
PSD_SUFFIXES = (".psd", ".psb")
WRITE_SUFFIXES = (".ora", ".png", ".psd")


class CliError(Exception):
    """A failure the user can act on; printed as one line, exit status ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``sfumato: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see '{self.prog} --help')"
        sys.stderr.write(f"sfumato: error: {_one_line(message)}{hint}\n")
        raise SystemExit(2)


# -- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The full parser: global options plus every registered sub-command."""
    parser = _Parser(
        prog="sfumato",
        description="Sfumato: a painting program in which a diffusion model is one more brush. "
        "Run without arguments to open the window.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--version", action="version", version=f"sfumato {_version()}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for entry in SUBCOMMANDS:
        module_name, _, function_name = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
            add = getattr(module, function_name)
        except (ImportError, AttributeError) as exc:
            log.warning("sub-commands from %s are unavailable: %s", entry, exc)
            continue
        add(subparsers)
    for sub in subparsers.choices.values():
        # --debug after the sub-command too; SUPPRESS keeps a global --debug from being reset.
        if not any("--debug" in action.option_strings for action in sub._actions):
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def add_file_parsers(subparsers: Any) -> None:
    """``flatten``, ``convert`` and ``info``: file sub-commands that need no model."""
    flatten = subparsers.add_parser(
        "flatten",
        help="composite a document into a PNG",
        description="Composite IN (an .ora, or an image) exactly as the canvas shows it — "
        "mask, region and control layers left out — and write a PNG. The document's "
        "recipe is kept in the PNG's 'parameters' text, as other SD tools read it.",
    )
    flatten.add_argument("input", metavar="IN", type=Path, help="an .ora file (or a .psd, PNG, JPEG, WebP)")
    flatten.add_argument("-o", "--output", metavar="OUT.png", type=Path, required=True, help="the PNG to write")
    flatten.add_argument("--no-parameters", action="store_true", help="write no 'parameters' text chunk")
    flatten.set_defaults(handler=run_flatten)

    convert = subparsers.add_parser(
        "convert",
        help="read a document or image and write it in another format",
        description="Read IN through the document model and write OUT; formats come from "
        "the suffixes. Reads .ora, .psd, .png, .jpg, .jpeg, .webp; writes .ora, .png "
        "(flattened) and .psd (layers; the AI recipe is not kept there).",
    )
    convert.add_argument("input", metavar="IN", type=Path)
    convert.add_argument("-o", "--output", metavar="OUT", type=Path, required=True)
    convert.set_defaults(handler=run_convert)

    info = subparsers.add_parser(
        "info",
        help="show a document's layers, roles and recipe",
        description="Print what Sfumato reads from IN (an .ora, a .psd or an image): size, the "
        "recipe, and every layer with its role, prompts, control settings, visibility, "
        "opacity, blend mode and content bounds. Useful to check a hand-written document.",
    )
    info.add_argument("input", metavar="IN", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(handler=run_info)


# -- handlers --------------------------------------------------------------------------------
def read_document(path: Path) -> Any:
    """Read an .ora (or any zip), a .psd/.psb, or a PNG/JPEG/WebP into a Document."""
    from sfumato.canvas.files.imageio import load_image_document
    from sfumato.canvas.files.ora import load_ora

    magic = _input_magic(path)
    if _is_ora(path, magic):
        return load_ora(path)
    if path.suffix.lower() in PSD_SUFFIXES or magic.startswith(b"8BPS"):
        from sfumato.canvas.files.psd import load_psd

        return load_psd(path)
    return load_image_document(path)


def write_document(doc: Any, path: Path) -> None:
    from sfumato.canvas.files.imageio import export_png
    from sfumato.canvas.files.ora import save_ora
    from sfumato.canvas.files.recipe_parameters import document_parameters

    suffix = path.suffix.lower()
    if suffix in ORA_SUFFIXES:
        save_ora(doc, path)
    elif suffix == ".png":
        export_png(doc, path, document_parameters(doc))
    elif suffix == ".psd":
        from sfumato.canvas.files.psd import save_psd

        save_psd(doc, path)
    else:
        raise CliError(
            f"{path}: cannot write {suffix or 'files without a suffix'}; "
            f"choose an output ending in {', '.join(WRITE_SUFFIXES[:-1])} or {WRITE_SUFFIXES[-1]}"
        )


def run_flatten(args: argparse.Namespace) -> int:
    from sfumato.canvas.files.imageio import export_png
    from sfumato.canvas.files.recipe_parameters import document_parameters

    output: Path = args.output
    if output.suffix.lower() != ".png":
        raise CliError(f"{output}: flatten writes PNG files; give an output ending in .png")
    doc = read_document(args.input)
    export_png(doc, output, None if args.no_parameters else document_parameters(doc))
    log.info("wrote %s (%dx%d)", output, doc.width, doc.height)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.suffix.lower() not in WRITE_SUFFIXES:
        write_document(None, output)  # raises the "cannot write" error before any reading
    doc = read_document(args.input)
    write_document(doc, output)
    log.info("wrote %s", output)
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    doc = read_document(args.input)
    data = describe_document(doc)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.input}: {data['width']}x{data['height']}, {len(data['layers'])} top-level layer(s)")
    recipe = {k: v for k, v in data["recipe"].items() if v not in (None, "")}
    print("recipe: " + (", ".join(f"{k}={v!r}" for k, v in recipe.items()) if recipe else "(none)"))
    _print_layers(data["layers"], depth=0)
    return 0


def describe_document(doc: Any) -> dict[str, Any]:
    """A JSON-ready description of a document (what ``sfumato info`` shows)."""
    import dataclasses

    from sfumato.canvas.model.layers import GroupLayer

    def layer_info(layer: Any) -> dict[str, Any]:
        item: dict[str, Any] = {
            "name": layer.name,
            "kind": "group" if isinstance(layer, GroupLayer) else "layer",
            "visible": layer.visible,
            "opacity": layer.opacity,
            "blend": layer.blend.value,
            "locked": layer.locked,
            "active": layer is doc.active,
        }
        if isinstance(layer, GroupLayer):
            item["children"] = [layer_info(child) for child in layer.children]
            return item
        bounds = layer.document_bounds()
        item["role"] = layer.role.value
        item["bounds"] = None if bounds.empty else [bounds.x, bounds.y, bounds.w, bounds.h]
        if layer.prompt or layer.negative:
            item["prompt"], item["negative"] = layer.prompt, layer.negative
        if layer.control is not None:
            control = layer.control
            item["control"] = {"kind": control.kind.value, "strength": control.strength, "start": control.start, "end": control.end}
        if layer.reference is not None:
            ref = layer.reference
            item["reference"] = {"kind": ref.kind.value, "strength": ref.strength, "start": ref.start, "end": ref.end}
        if layer.generation is not None:
            item["generation"] = layer.generation
        return item

    return {
        "width": doc.width,
        "height": doc.height,
        "recipe": dataclasses.asdict(doc.recipe),
        "layers": [layer_info(child) for child in doc.root.children],
    }


def _print_layers(layers: list[dict[str, Any]], depth: int) -> None:
    for item in layers:
        flags = [item.get("role", "group")]
        if not item["visible"]:
            flags.append("hidden")
        if item["opacity"] != 1:
            flags.append(f"opacity {item['opacity']:.3g}")
        if item["blend"] != "svg:src-over":
            flags.append(item["blend"].removeprefix("svg:"))
        if item["locked"]:
            flags.append("locked")
        if item["active"]:
            flags.append("active")
        if "bounds" in item:
            flags.append("empty" if item["bounds"] is None else "at {} {} size {}x{}".format(*item["bounds"]))
        print(f"{'  ' * depth}- {item['name']!r}: {', '.join(flags)}")
        if item.get("prompt") or item.get("negative"):
            print(f"{'  ' * depth}    prompt {item.get('prompt', '')!r}, negative {item.get('negative', '')!r}")
        if "control" in item:
            c = item["control"]
            print(f"{'  ' * depth}    control {c['kind']}, strength {c['strength']:g}, schedule {c['start']:g}..{c['end']:g}")
        if "reference" in item:
            r = item["reference"]
            print(f"{'  ' * depth}    reference {r['kind']}, strength {r['strength']:g}, schedule {r['start']:g}..{r['end']:g}")
        if "generation" in item:
            g = item["generation"]
            print(f"{'  ' * depth}    generated: seed {g.get('seed')}, {g.get('steps')} steps, {g.get('mode', '?')}")
        _print_layers(item.get("children", []), depth + 1)


def require_ora(path: Path) -> None:
    """Refuse, before reading it, an input that ``render`` cannot use: anything but an
    OpenRaster file (a PNG, a PSD: say how to make an .ora of it), a pipe, a folder."""
    magic = _input_magic(path)
    if _is_ora(path, magic):
        return
    kind = (
        "a Photoshop file" if magic.startswith(b"8BPS")
        else "a PNG image" if magic.startswith(b"\x89PNG")
        else "a JPEG image" if magic.startswith(b"\xff\xd8")
        else "a WebP image" if magic.startswith(b"RIFF")
        else "not an OpenRaster document"
    )
    target = path.with_suffix(".ora")
    raise CliError(
        f"{path}: is {kind}; render needs an OpenRaster document (.ora) with the recipe. "
        f"Make one with: sfumato convert {path} -o {target}"
    )


def _input_magic(path: Path) -> bytes:
    """The first bytes of the input file ``path``, after refusing a missing file, a folder,
    a named pipe or a device (refused, never waited on)."""
    from sfumato.canvas.files.limits import require_regular_file

    if not path.exists():
        raise CliError(f"{path}: file not found")
    if path.is_dir():
        raise CliError(f"{path}: is a folder, not a file")
    require_regular_file(path)
    return _magic(path)


def _is_ora(path: Path, magic: bytes) -> bool:
    """An OpenRaster document (or any zip) by its name or its first bytes."""
    return path.suffix.lower() in ORA_SUFFIXES or magic.startswith(b"PK\x03\x04")


def _magic(path: Path) -> bytes:
    from sfumato.canvas.files.file_errors import FileFormatError
    from sfumato.canvas.files.limits import open_regular

    try:
        with open_regular(path) as handle:
            return handle.read(4)
    except (OSError, FileFormatError):
        return b""


# -- entry point -----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    _configure_logging(debug)
    if not args_list or _is_gui_invocation(args_list):
        return _run_gui([a for a in args_list if a != "--debug"], debug)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler = getattr(args, "handler", None)
    if handler is None:
        return _run_gui([], debug)
    return _run_handler(handler, args, debug=bool(getattr(args, "debug", False)) or debug)


def _run_handler(handler: Any, args: argparse.Namespace, *, debug: bool) -> int:
    try:
        code = int(handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        return _output_closed()
    except KeyboardInterrupt:
        sys.stderr.write("sfumato: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into a line
        return report(exc, debug=debug)


SIGPIPE_STATUS = 141  # 128 + SIGPIPE, as a shell reports a tool the pipe closed on


def _output_closed() -> int:
    """The reader of our output went away (``| head``): stop quietly, as Unix tools do.

    stdout is pointed at the null device so the interpreter's final flush cannot fail
    again (the Python documentation's recipe for SIGPIPE).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return SIGPIPE_STATUS


def report(exc: BaseException, *, debug: bool) -> int:
    """Print ``exc`` as one line (or a traceback with ``debug``); return the exit status."""
    if debug:
        traceback.print_exception(exc)
    else:
        sys.stderr.write(f"sfumato: error: {describe(exc)}\n")
    code = getattr(exc, "exit_code", 1)
    return code if isinstance(code, int) and code != 0 else 1


def describe(exc: BaseException) -> str:
    """One line for a user: the message of a known error, the type of an unexpected one."""
    from sfumato.canvas.files.file_errors import FileFormatError

    if isinstance(exc, CliError | FileFormatError) or hasattr(exc, "exit_code"):
        text = str(exc)
    elif isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        text = where + (exc.strerror or str(exc))
    elif isinstance(exc, ValueError):
        text = str(exc)
    elif isinstance(exc, MemoryError):
        text = "out of memory; try a smaller document or close other programs"
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"
    return _one_line(text or type(exc).__name__)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _configure_logging(debug: bool) -> None:
    root = logging.getLogger()
    if root.handlers:  # embedded (tests, another program): leave its logging alone
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


class _Formatter(logging.Formatter):
    """``sfumato: warning: ...``: a log record never reads as the command's error (that
    line comes from :func:`report`, with a non-zero exit status). Other libraries'
    records are labelled with the library's name."""

    def format(self, record: logging.LogRecord) -> str:
        level = "warning" if record.levelno >= logging.WARNING else record.levelname.lower()
        name = record.name.split(".")[0]
        source = "" if name in ("sfumato", "root") else f"{name}: "
        text = f"sfumato: {level}: {source}{record.getMessage()}"
        if record.exc_info and logging.getLogger().level <= logging.DEBUG:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _is_gui_invocation(args: list[str]) -> bool:
    """``sfumato picture.ora`` opens the window on a file (no sub-command named).

    Sub-command names never end in a document suffix, so the two cannot be confused.
    """
    first = next((a for a in args if a != "--debug"), None)
    if first is None:
        return True
    return not first.startswith("-") and Path(first).suffix.lower() in ORA_SUFFIXES + IMAGE_SUFFIXES


def _run_gui(argv: list[str], debug: bool) -> int:
    try:
        from sfumato.desktop.app import main as gui_main
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("PySide6"):
            message = (
                "the window needs PySide6, which is not installed: "
                "pip install 'PySide6-Essentials>=6.7,<6.12' (the sub-commands work without it; see sfumato --help)"
            )
        elif exc.name and exc.name.startswith("sfumato.desktop"):
            message = "the desktop window is not available in this build; the sub-commands work: see sfumato --help"
        else:
            return report(exc, debug=debug)
        return report(CliError(message), debug=debug)
    except Exception as exc:  # noqa: BLE001
        return report(exc, debug=debug)
    try:
        return int(gui_main(argv) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001
        return report(exc, debug=debug)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sfumato")
    except PackageNotFoundError:
        return "unknown"

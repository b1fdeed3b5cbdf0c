"""The ``sfumato`` command line: flatten, convert, errors as one line, no Qt/torch, plug-ins."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.canvas.files.image_parameters import read_png_parameters
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.files.parameters import format_parameters
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.layers import ControlSettings, GroupLayer, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.render.composite import flatten

from sfumato import cli

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sfumato", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def blob(w: int, h: int, rgba: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros((h, w, 4), np.uint8)
    out[...] = rgba
    return out


@pytest.fixture
def document_file(tmp_path: Path) -> Path:
    doc = Document(40, 30, recipe=Recipe(prompt="a lake, dawn", negative="people", seed=12, steps=8, cfg=5.5, sampler="euler_a"))
    doc.root.append(PixelLayer("mask", TiledSurface.from_array(blob(10, 10, (255, 255, 255, 255))), role=Role.INPAINT_MASK))
    doc.root.append(PixelLayer("ctl", TiledSurface.from_array(blob(40, 30, (0, 0, 0, 255))), role=Role.CONTROL, control=ControlSettings()))
    doc.root.append(GroupLayer("g", [PixelLayer("spot", TiledSurface.from_array(blob(12, 6, (200, 20, 20, 160)), 5, 5))], opacity=0.7))
    doc.root.append(PixelLayer("bg", TiledSurface.from_array(blob(40, 30, (30, 90, 160, 255)))))
    save_ora(doc, tmp_path / "doc.ora")
    return tmp_path / "doc.ora"


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sfumato: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


# -- flatten -----------------------------------------------------------------------------------
def test_flatten_writes_the_canvas_composite_with_parameters(document_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat.png"
    result = run("flatten", str(document_file), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with Image.open(out) as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGBA")), flatten(load_ora(document_file)))
    params = read_png_parameters(out)
    assert params is not None
    assert (params["prompt"], params["negative"], params["seed"], params["steps"]) == ("a lake, dawn", "people", 12, 8)
    assert (params["width"], params["height"], params["sampler"]) == (40, 30, "euler_a")


def test_flatten_no_parameters(document_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat.png"
    assert run("flatten", str(document_file), "-o", str(out), "--no-parameters").returncode == 0
    assert read_png_parameters(out) is None


# -- convert -----------------------------------------------------------------------------------
def test_convert_png_to_ora_and_back(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (9, 13, 4), dtype=np.uint8)
    text = format_parameters({"prompt": "a kite", "seed": 5, "steps": 7, "cfg": 3.0})
    from sfumato.canvas.files.imageio import save_png

    save_png(pixels, tmp_path / "in.png", text)
    assert run("convert", str(tmp_path / "in.png"), "-o", str(tmp_path / "doc.ora")).returncode == 0
    doc = load_ora(tmp_path / "doc.ora")
    assert (doc.width, doc.height) == (13, 9)
    assert doc.recipe == Recipe(prompt="a kite", seed=5, steps=7, cfg=3.0)
    layers = list(doc.pixel_layers())
    assert [layer.name for layer in layers] == ["in"]
    assert run("convert", str(tmp_path / "doc.ora"), "-o", str(tmp_path / "back.png")).returncode == 0
    with Image.open(tmp_path / "back.png") as image:
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_convert_ora_to_ora_keeps_the_document(document_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.ora"
    assert run("convert", str(document_file), "-o", str(out)).returncode == 0
    a, b = load_ora(document_file), load_ora(out)
    assert [(x.name, x.is_group) for x in a.layers()] == [(x.name, x.is_group) for x in b.layers()]
    assert a.recipe == b.recipe
    np.testing.assert_array_equal(flatten(a), flatten(b))


def test_convert_ora_to_psd(document_file: Path, tmp_path: Path) -> None:
    from psd_tools import PSDImage

    out = tmp_path / "doc.psd"
    assert run("convert", str(document_file), "-o", str(out)).returncode == 0
    names = [layer.name for layer in PSDImage.open(out).descendants()]
    assert sorted(names) == sorted(layer.name for layer in load_ora(document_file).layers())


def test_convert_psd_to_ora(document_file: Path, tmp_path: Path) -> None:
    assert run("convert", str(document_file), "-o", str(tmp_path / "doc.psd")).returncode == 0
    result = run("convert", str(tmp_path / "doc.psd"), "-o", str(tmp_path / "back.ora"))
    assert result.returncode == 0, result.stderr
    original, back = load_ora(document_file), load_ora(tmp_path / "back.ora")
    assert [x.name for x in back.layers()] == [x.name for x in original.layers()]
    assert np.abs(flatten(back).astype(int) - flatten(original).astype(int)).max() <= 2


def test_convert_jpeg_and_webp_in(tmp_path: Path) -> None:
    Image.new("RGB", (6, 4), (10, 200, 30)).save(tmp_path / "p.jpg")
    Image.new("RGBA", (6, 4), (10, 200, 30, 128)).save(tmp_path / "p.webp", lossless=True)
    for name in ("p.jpg", "p.webp"):
        out = tmp_path / f"{name}.ora"
        assert run("convert", str(tmp_path / name), "-o", str(out)).returncode == 0
        assert (load_ora(out).width, load_ora(out).height) == (6, 4)


# -- info ------------------------------------------------------------------------------------
def test_info_text_and_json(document_file: Path) -> None:
    result = run("info", str(document_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "40x30" in out and "'a lake, dawn'" in out and "seed=12" in out
    assert "'mask': inpaint-mask" in out and "'ctl': control" in out and "control scribble" in out
    assert "'g': group, opacity 0.7" in out and "  - 'spot': paint" in out
    data = json.loads(run("info", str(document_file), "--json").stdout)
    assert data["width"] == 40 and data["recipe"]["steps"] == 8
    assert [layer["name"] for layer in data["layers"]] == ["mask", "ctl", "g", "bg"]
    assert data["layers"][2]["children"][0]["bounds"] == [5, 5, 12, 6]
    assert data["layers"][1]["control"] == {"kind": "scribble", "strength": 1.0, "start": 0.0, "end": 1.0}


def test_info_bounds_include_group_offsets(tmp_path: Path) -> None:
    """Regression (issue 11): a layer inside an offset group was reported at its own x/y."""
    doc = Document(200, 100)
    spot = PixelLayer("spot", TiledSurface.from_array(blob(12, 6, (200, 20, 20, 255)), 5, 5))
    doc.root.append(GroupLayer("outer", [GroupLayer("inner", [spot], x=7, y=3)], x=40, y=20))
    save_ora(doc, tmp_path / "offset.ora")
    assert load_ora(tmp_path / "offset.ora").root.children[0].x == 40  # the offset survives the file
    data = json.loads(run("info", str(tmp_path / "offset.ora"), "--json").stdout)
    assert data["layers"][0]["children"][0]["children"][0]["bounds"] == [5 + 7 + 40, 5 + 3 + 20, 12, 6]


# -- errors ------------------------------------------------------------------------------------
def test_missing_input_is_one_line(tmp_path: Path) -> None:
    result = run("flatten", str(tmp_path / "gone.ora"), "-o", str(tmp_path / "x.png"))
    assert_one_line_error(result, 1, "gone.ora", "not found")


def test_broken_ora_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.ora").write_bytes(b"PK\x03\x04 garbage garbage")
    result = run("convert", str(tmp_path / "bad.ora"), "-o", str(tmp_path / "out.ora"))
    assert_one_line_error(result, 1, "bad.ora")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ora"]


def test_unsupported_output_is_one_line(document_file: Path, tmp_path: Path) -> None:
    assert_one_line_error(run("convert", str(document_file), "-o", str(tmp_path / "x.tiff")), 1, ".tiff", ".ora, .png or .psd")
    assert_one_line_error(run("flatten", str(document_file), "-o", str(tmp_path / "x.jpg")), 1, ".png")


def test_usage_errors_exit_2_with_one_line(document_file: Path) -> None:
    assert_one_line_error(run("flatten", str(document_file)), 2, "-o/--output")
    assert_one_line_error(run("paint-me"), 2, "invalid choice")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    for args in (["--debug", "flatten"], ["flatten", "--debug"]):
        result = run(*args, str(tmp_path / "gone.ora"), "-o", str(tmp_path / "x.png"))
        assert result.returncode == 1
        assert "Traceback" in result.stderr


def test_help_and_version() -> None:
    result = run("--help")
    assert result.returncode == 0 and "flatten" in result.stdout and "convert" in result.stdout
    assert run("--version").stdout.startswith("sfumato ")


def test_no_qt_and_no_torch_are_imported(document_file: Path, tmp_path: Path) -> None:
    code = f"""
import json, sys
from sfumato.cli import main
rc = [main(["flatten", {str(document_file)!r}, "-o", {str(tmp_path / "x.png")!r}]),
      main(["convert", {str(document_file)!r}, "-o", {str(tmp_path / "y.ora")!r}]),
      main(["--help"])]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "torch", "diffusers", "transformers"))
print(json.dumps({{"rc": rc, "heavy": heavy}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"rc": [0, 0, 0], "heavy": []}


# -- the window and plug-in sub-commands (in process) -------------------------------------------
def test_no_arguments_launch_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    fake = types.ModuleType("sfumato.desktop.app")
    fake.main = lambda argv: calls.append(list(argv)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sfumato.desktop.app", fake)
    assert cli.main([]) == 0
    assert cli.main(["picture.ora"]) == 0
    assert calls == [[], ["picture.ora"]]


def test_missing_window_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "sfumato.desktop.app", None)  # import raises ModuleNotFoundError
    assert cli.main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "window" in err[0] and "sfumato --help" in err[0]


class ToolFailure(Exception):
    exit_code = 3


def add_test_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ok = subparsers.add_parser("hello")
    ok.add_argument("--name", default="world")
    ok.set_defaults(handler=lambda args: print(f"hello {args.name}") or 0)
    failing = subparsers.add_parser("fail")
    failing.add_argument("kind", choices=["cli", "custom", "bug"])

    def fail(args: argparse.Namespace) -> int:
        if args.kind == "cli":
            raise cli.CliError("no model found; pass --model PATH")
        if args.kind == "custom":
            raise ToolFailure("the engine ran out of memory\nat step 3")
        raise KeyError("oops")

    failing.set_defaults(handler=fail)


def test_registered_sub_commands_plug_in(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, f"{__name__}:add_test_commands", "sfumato.nowhere:add"])
    assert cli.main(["hello", "--name", "ora"]) == 0
    assert capsys.readouterr().out == "hello ora\n"
    assert cli.main(["fail", "cli"]) == 1
    assert capsys.readouterr().err == "sfumato: error: no model found; pass --model PATH\n"
    assert cli.main(["fail", "custom"]) == 3
    assert capsys.readouterr().err == "sfumato: error: the engine ran out of memory at step 3\n"
    assert cli.main(["fail", "bug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sfumato: error: unexpected KeyError") and "--debug" in err and err.count("\n") == 1
    assert cli.main(["fail", "bug", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    # The built-in commands still work next to a provider that failed to import.
    assert cli.main(["flatten", "--help"]) == 0

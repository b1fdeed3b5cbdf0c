"""``sfumato render`` / ``models`` pieces that need no model: parsing, paths, lazy torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sfumato.render_cli import RenderError, batch_output_paths, parse_controlnets, resolve_model


def test_batch_paths_are_numbered() -> None:
    assert batch_output_paths(Path("/x/out.png"), 1) == [Path("/x/out.png")]
    assert batch_output_paths(Path("/x/out.png"), 3) == [
        Path("/x/out-1.png"), Path("/x/out-2.png"), Path("/x/out-3.png")
    ]


def test_controlnet_flags(tmp_path: Path) -> None:
    from sfumato.inference.request import ControlKind

    (tmp_path / "cn").mkdir()
    assert parse_controlnets([str(tmp_path / "cn")]) == {ControlKind.SCRIBBLE: str(tmp_path / "cn")}
    assert parse_controlnets([f"canny={tmp_path / 'cn'}"]) == {ControlKind.CANNY: str(tmp_path / "cn")}
    with pytest.raises(RenderError, match="unknown control kind"):
        parse_controlnets([f"teleport={tmp_path / 'cn'}"])
    with pytest.raises(RenderError, match="no such file"):
        parse_controlnets([str(tmp_path / "nothing")])


def test_model_resolution_order(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    assert resolve_model(str(folder), "other").origin == "--model"
    assert resolve_model(None, str(folder)).origin == "the document"
    with pytest.raises(RenderError, match="model not found"):
        resolve_model(str(tmp_path / "missing.safetensors"), None)
    hub = resolve_model("owner/name", None)
    assert hub.source == "owner/name"


def test_planning_and_the_cli_import_no_torch() -> None:
    code = (
        "import sys, sfumato.cli, sfumato.render_cli, sfumato.planner.plan, sfumato.planner.placement;"
        "sfumato.cli.build_parser();"
        "bad = [m for m in ('torch', 'diffusers', 'transformers', 'PySide6') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_render_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from sfumato.cli import main

    assert main(["render", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--seed", "--steps", "--strength", "--cfg", "--sampler", "--batch", "--layered"):
        assert flag in out

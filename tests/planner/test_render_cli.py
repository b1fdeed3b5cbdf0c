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
    from sfumato.vocabulary.kinds import ControlKind

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


def _run_in_terminal(args: list[str], columns: int) -> str:
    """Run ``sfumato ARGS`` on a pseudo-terminal ``columns`` wide (0: one that does not
    report its size); returns everything it printed."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("COLUMNS", None)
    child = subprocess.Popen([sys.executable, "-m", "sfumato", *args], stdin=child_fd, stdout=child_fd,
                             stderr=child_fd, close_fds=True, env=env)
    os.close(child_fd)
    out = b""
    while True:
        try:
            data = os.read(main_fd, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        out += data
    os.close(main_fd)
    assert child.wait(timeout=300) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


@pytest.mark.parametrize("columns", [0])  # a terminal that does not report its width: the hard case
def test_render_on_a_terminal_shows_what_it_loads_and_a_progress_bar(tmp_path: Path, columns: int) -> None:
    from sfumato.canvas.files.ora import save_ora
    from sfumato.canvas.model.document import Document, Recipe

    doc = tmp_path / "doc.ora"
    save_ora(Document(64, 64, recipe=Recipe(prompt="a red circle", seed=1, steps=4)), doc)
    out = _run_in_terminal(["render", str(doc), "-o", str(tmp_path / "out.png"), "--model", "builtin"], columns)
    assert "starting the engine" in out and "loading builtin" in out, out
    assert "rendering" in out and "4/4" in out, out
    # What the screen shows last before "wrote": the text after the last carriage return
    # of the last line (a bar that erases itself leaves blanks there).
    lines = [line for line in out.split("sfumato: wrote")[0].split("\n") if line.strip()]
    shown = lines[-1].rstrip("\r").split("\r")[-1]
    assert "100%" in shown and "4/4" in shown, f"no finished bar left on the screen: {shown!r}"

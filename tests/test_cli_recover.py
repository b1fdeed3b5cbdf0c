"""``sfumato recover``: the journals a crash left, listed and written out without the window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from journalscript import new_document, run_script
from sfumato.canvas.files.ora import load_ora
from sfumato.canvas.recovery.journal import Journal
from sfumato.canvas.render.composite import flatten

from sfumato.cli import main


@pytest.fixture
def crashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A journal left behind (closed without discarding, as after a kill) and its document."""
    root = tmp_path / "recovery"
    monkeypatch.setenv("SFUMATO_RECOVERY_DIR", str(root))
    doc = new_document()
    journal = Journal(doc, root / "a1b2c3d4e5f6", name="fox.ora", path=tmp_path / "fox.ora")
    run_script(doc, 3, 25)
    journal.flush()
    journal.close()
    return doc, root


def test_list_shows_id_first_then_time_name_path_and_changes(crashed, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    assert main(["recover", "--list"]) == 0
    out = capsys.readouterr().out.strip().split("\n")
    assert len(out) == 1
    fields = out[0].split("\t")
    assert fields[0] == "a1b2c3d4e5f6"
    assert fields[2:4] == ["fox.ora", str(tmp_path / "fox.ora")]
    assert fields[4].endswith("change(s) since saved") and int(fields[4].split()[0]) > 0


def test_recover_writes_the_document_as_it_was(crashed, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    doc, _root = crashed
    out = tmp_path / "recovered.ora"
    assert main(["recover", "a1b2", "-o", str(out)]) == 0  # an unambiguous prefix is enough
    assert "recovered fox.ora" in capsys.readouterr().out
    again = load_ora(out)
    assert np.array_equal(flatten(again), flatten(doc))
    assert [layer.name for layer in again.layers()] == [layer.name for layer in doc.layers()]


def test_mistakes_are_one_line_errors(crashed, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    assert main(["recover", "nope", "-o", str(tmp_path / "x.ora")]) == 1
    assert "no recoverable document with ID 'nope'" in capsys.readouterr().err
    assert main(["recover", "a1b2c3d4e5f6"]) == 1
    assert "say where to write it" in capsys.readouterr().err
    assert main(["recover", "a1b2c3d4e5f6", "-o", str(tmp_path / "x.png")]) == 1
    assert "a .ora name" in capsys.readouterr().err
    assert main(["recover", "a1b2c3d4e5f6", "-o", str(tmp_path / "fox.ora")]) == 1
    assert "the original stays as it was" in capsys.readouterr().err


def test_discard_and_nothing_left(crashed, capsys) -> None:  # noqa: ANN001
    assert main(["recover", "a1b2c3d4e5f6", "--discard"]) == 0
    capsys.readouterr()
    assert main(["recover", "--list"]) == 0
    assert capsys.readouterr().out.strip() == "nothing to recover"

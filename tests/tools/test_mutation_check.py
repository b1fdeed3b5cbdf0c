"""The mutation check's list stays in step with the code (the full check: tools/mutation_check.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.mutation_check import (
    MUTATIONS,
    ROOT,
    Mutation,
    MutationStale,
    check_copy_imports,
    make_copy,
)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_still_finds_the_code_it_breaks(mutation: Mutation) -> None:
    source = (ROOT / mutation.path).read_text(encoding="utf-8")
    mutated = mutation.apply(source)  # raises MutationStale when the code moved
    assert mutated != source
    compile(mutated, mutation.path, "exec")  # a break of behaviour, not a syntax error
    for test in mutation.tests:
        assert (ROOT / test.split("::")[0]).exists(), f"{mutation.name}: {test} does not exist"


def test_names_are_unique() -> None:
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))


def test_a_stale_mutation_is_refused() -> None:
    stale = Mutation("x", "y", "canvas/files/ora.py", "this text is not in the file", "z", ())
    with pytest.raises(MutationStale, match="not found"):
        stale.apply((ROOT / "canvas/files/ora.py").read_text(encoding="utf-8"))


def test_the_copy_imports_its_own_modules(tmp_path: Path) -> None:
    """Mutating the copy would test nothing if the editable install won the import."""
    dest = tmp_path / "tree"
    make_copy(ROOT, dest)
    check_copy_imports(dest)  # raises SystemExit otherwise
    marker = dest / "canvas" / "files" / "ora.py"
    marker.write_text(marker.read_text(encoding="utf-8") + "\nMUTATION_PROBE = 1\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", "import sfumato.canvas.files.ora as o; print(o.MUTATION_PROBE)"],
        cwd=dest, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(dest)},
    )
    assert out.stdout.strip() == "1", out.stderr

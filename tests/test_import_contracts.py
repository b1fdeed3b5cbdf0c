"""The room rules themselves, and the checker that enforces them in CI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "tools" / "check_imports.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_imports"] = module
    spec.loader.exec_module(module)
    return module


def test_rules_forbid_and_allow() -> None:
    ci = _checker()
    canvas = ci.RULES["sfumato.canvas"]
    assert ci.violates("torch", canvas)
    assert ci.violates("torch.nn", canvas)
    assert ci.violates("PySide6.QtGui", canvas)
    assert ci.violates("sfumato.inference.engine", canvas)
    # the painting library stands on nothing of the engine room, not even the request
    assert ci.violates("sfumato.inference.request", canvas)
    assert ci.violates("sfumato.inference", canvas)
    assert ci.violates("sfumato.planner.plan", canvas)
    assert not ci.violates("sfumato.vocabulary.kinds", canvas)
    assert not ci.violates("numpy", canvas)
    assert not ci.violates("torchvision_like_name", ci.Rule(forbidden=("torch",)))
    assert ci.violates("sfumato.canvas", ci.RULES["sfumato.inference"])


def test_the_vocabulary_imports_no_room() -> None:
    ci = _checker()
    vocabulary = ci.RULES["sfumato.vocabulary"]
    for name in ("sfumato.canvas.model.tiles", "sfumato.inference.request", "sfumato.planner",
                 "sfumato.desktop.settings", "sfumato.cli", "torch", "PySide6.QtCore"):
        assert ci.violates(name, vocabulary), name
    assert not ci.violates("sfumato.vocabulary.errors", vocabulary)
    assert not ci.violates("sfumato.resources", vocabulary)  # data only: the built-in models
    assert not ci.violates("platformdirs", vocabulary)


def test_planner_may_import_only_the_torch_free_part_of_the_engine_room() -> None:
    ci = _checker()
    planner = ci.RULES["sfumato.planner"]
    assert ci.violates("sfumato.inference.engine", planner)
    assert ci.violates("sfumato.inference.model_cache", planner)
    assert not ci.violates("sfumato.inference", planner)  # the lazy package
    assert not ci.violates("sfumato.inference.catalog", planner)
    assert not ci.violates("sfumato.inference.families.sdxl", planner)
    # and what the planner may import may not reach further
    catalog = ci.MODULE_RULES["sfumato.inference.catalog"]
    assert ci.violates("sfumato.inference.engine", catalog)
    assert ci.violates("torch", catalog)
    families = ci.MODULE_RULES["sfumato.inference.families"]
    assert ci.violates("sfumato.inference.engine", families)
    assert not ci.violates("torch", families)  # lazily, inside the functions that run models


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    ci = _checker()
    source = tmp_path / "mod.py"
    source.write_text("from . import engine\nfrom ..canvas import tiles\nimport torch.nn as nn\n")
    found = {name for _, name in ci.imports_of(source, "sfumato.inference.mod")}
    assert "sfumato.inference.engine" in found
    assert "sfumato.canvas.tiles" in found
    assert "torch.nn" in found


def test_the_project_keeps_its_contracts() -> None:
    ci = _checker()
    assert ci.static_check() == []
    assert ci.runtime_check() == []


def test_import_cycles_are_found() -> None:
    ci = _checker()
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert ci.find_cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert ci.find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_canvas_has_no_import_cycle() -> None:
    """Lazy imports count: the model (document) must not reach up to commands or brushes."""
    ci = _checker()
    assert "sfumato.canvas" in ci.ACYCLIC
    assert ci.cycle_check() == []
    graph = ci.import_graph("sfumato.canvas")
    assert not graph["sfumato.canvas.model.document"] & {
        "sfumato.canvas.edits.commands", "sfumato.canvas.paint.brush", "sfumato.canvas.render.composite", "sfumato.canvas.editing",
    }

"""Styles in the window: the Generation dock's picker writes the style into the recipe (one
undo step), a generation and a live frame use its prompt template, live mode its live
block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genfixtures import gen_window, tiny_engine_factory, tiny_model
from sfumato.planner.styles import load_styles

__all__ = ["gen_window", "tiny_engine_factory", "tiny_model"]  # fixtures used by name

TIMEOUT = 60_000


def _pick(window: Any, config_dir: Path) -> Any:
    folder = config_dir / "styles"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ink.json").write_text(json.dumps({
        "name": "Ink", "prompt": "ink drawing of {prompt}, high contrast", "negative": "colour",
        "steps": 4, "cfg": 3.5, "live": {"steps": 2, "strength": 0.45},
    }))
    dock = window.generation.dock
    dock.set_styles(load_styles())
    index = dock.style.findData("Ink")
    assert index > 0
    dock.style.setCurrentIndex(index)
    dock.style.activated.emit(index)
    return dock


def test_picking_a_style_is_one_undo_step_and_generation_uses_it(gen_window: Any, qtbot: Any, config_dir: Path) -> None:
    doc = gen_window.document
    controller = gen_window.generation
    before = (doc.recipe.steps, doc.recipe.cfg, doc.recipe.style)
    dock = _pick(gen_window, config_dir)
    assert doc.recipe.style == "Ink" and doc.recipe.style_resolved is not None
    assert (doc.recipe.steps, doc.recipe.cfg) == (4, 3.5) and dock.steps.value() == 4
    with qtbot.waitSignal(controller.job_started, timeout=TIMEOUT) as started:
        assert controller.generate()
    request = started.args[0].request
    assert request.prompt == "ink drawing of a red ball, high contrast"
    assert request.negative.endswith("colour") and request.steps == 4
    qtbot.waitUntil(lambda: not controller.busy, timeout=TIMEOUT)
    controller.staging.discard()
    doc.undo()
    assert (doc.recipe.steps, doc.recipe.cfg, doc.recipe.style) == before
    assert dock.style.currentData() is None  # the picker follows the undo


def test_live_mode_takes_the_style_template_and_its_live_block(gen_window: Any, qtbot: Any, config_dir: Path) -> None:
    live = gen_window.generation.live
    _pick(gen_window, config_dir)
    assert (live.panel.steps.value(), live.panel.strength.value()) == (2, 0.45)
    with qtbot.waitSignal(live.frame_finished, timeout=TIMEOUT) as frame:
        live.set_enabled(True)
    request = frame.args[0].plan.request
    assert request.prompt == "ink drawing of a red ball, high contrast" and request.steps == 2
    live.set_enabled(False)

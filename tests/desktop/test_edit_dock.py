"""With an instruction-edit model the Generation dock's button says Edit over a painted
canvas and the prompt box asks for the change to make; another model brings the usual
words back."""

from __future__ import annotations

from typing import Any

import pytest
from genfixtures import FakeEngine


def test_an_edit_model_makes_the_button_say_edit(window: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sfumato.desktop import models_dock
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.generation_dock import DESCRIBE_HINT, INSTRUCTION_HINT
    from sfumato.inference.catalog import ModelEntry, Origin, WeightsKind

    entries = [
        ModelEntry(WeightsKind.CHECKPOINT, "/models/kontext", "kontext", "flux-kontext", Origin.CONFIGURED),
        ModelEntry(WeightsKind.CHECKPOINT, "/models/flux.safetensors", "flux", "flux", Origin.CONFIGURED),
    ]
    monkeypatch.setattr(models_dock, "list_models", lambda: entries)
    controller = install_generation(window, FakeEngine)  # type: ignore[arg-type]
    dock = controller.dock
    try:
        dock.choose_model("/models/kontext")
        assert dock.model_edits()
        assert controller.refresh_mode() == "Edit" and dock.generate_button.text() == "Edit"
        assert dock.prompt.placeholderText() == INSTRUCTION_HINT and "make it night" in INSTRUCTION_HINT
        assert dock.problems_text == ""
        dock.choose_model("/models/flux.safetensors")
        assert not dock.model_edits()
        assert controller.refresh_mode() != "Edit"
        assert dock.prompt.placeholderText() == DESCRIBE_HINT
    finally:
        controller.shutdown()

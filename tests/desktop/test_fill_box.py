"""The Generation dock's Fill box: enabled only when the button inpaints or expands, and
the choice is the document's (its recipe: saved in the .ora, undoable, read by the plan)."""

from __future__ import annotations

from typing import Any

import numpy as np
from genfixtures import FakeEngine


def test_the_fill_box_follows_the_mode_and_writes_the_recipe(window: Any) -> None:
    from sfumato.canvas.edits.canvas_size import Anchor, resize_canvas_to
    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.layers import PixelLayer
    from sfumato.canvas.model.tiles import TiledSurface
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.planner.recipe import settings_from_recipe
    from sfumato.vocabulary.kinds import FillMode

    controller = install_generation(window, FakeEngine)  # type: ignore[arg-type]
    dock = controller.dock
    try:
        picture = np.full((64, 64, 4), 200, np.uint8)
        picture[..., 3] = 255
        doc = Document(64, 64)
        doc.root.append(PixelLayer("picture", TiledSurface.from_array(picture)))
        window.set_document(doc)
        assert controller.refresh_mode() == "Generate"  # strength 1 on a covered canvas
        assert not dock.fill.isEnabled() and dock.fill.isVisibleTo(dock)
        resize_canvas_to(doc, 96, 64, Anchor.LEFT)
        assert controller.refresh_mode() == "Expand"
        assert dock.fill.isEnabled()
        dock.fill.setCurrentIndex(dock.fill.findData(FillMode.EDGE))
        assert doc.recipe.fill == "edge"
        assert settings_from_recipe(doc.recipe, **dock.overrides()).fill is FillMode.EDGE
        doc.undo()
        assert doc.recipe.fill is None and dock.fill_choice() is FillMode.KEEP  # the dock shows the undone recipe
    finally:
        controller.shutdown()

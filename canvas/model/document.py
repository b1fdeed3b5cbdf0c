"""The document: size, the layer tree, the active layer, the selection, the recipe.

The document is evented: every change is announced on ``document.changed`` as one of the
event dataclasses below, so views (the Qt window, thumbnails, the live mode) follow it
without the model knowing about them. User-visible changes are commands run through
``doc.execute`` so they can be undone (:mod:`sfumato.canvas.editing` names them as
verbs); the ``_raw_*`` mutators here are what commands call. The model imports no
command, no brush and no compositing: those modules stand above it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sfumato.canvas.model.events import Emitter
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.history import Command, History
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, Role

MAX_SIDE = 32768  # refuse larger documents: 32768² RGBA is already 4 GiB


@dataclass
class Recipe:
    """Document-wide generation settings (saved as ``sfumato:`` attributes on ``<image>``).

    ``None`` means "not set": the CLI and the window fall back to their own defaults.
    """

    prompt: str = ""
    negative: str = ""
    model: str | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    strength: float | None = None
    sampler: str | None = None
    #: What an inpaint's masked area (an Expand's bare canvas) starts from: a
    #: :class:`~sfumato.vocabulary.kinds.FillMode` value; ``None`` = the default (keep).
    fill: str | None = None
    #: Whether each region's prompt is followed by the document's prompt ("triangle, a
    #: blue background"); ``None`` = the default, yes (Krita AI Diffusion does the same).
    regions_include_prompt: bool | None = None
    #: The style the settings were made with (its name), and the values it resolved to (a
    #: JSON object, see ``planner/styles.py``) so the document renders the same where that
    #: style is missing.
    style: str | None = None
    style_resolved: dict[str, Any] | None = None


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PixelsChanged:
    layer: PixelLayer
    rect: Rect  # document space


@dataclass(frozen=True)
class LayerPropertyChanged:
    layer: Layer
    name: str


@dataclass(frozen=True)
class StructureChanged:
    """Layers were added, removed or moved (the tree changed)."""

    layer: Layer | None = None


@dataclass(frozen=True)
class ActiveLayerChanged:
    layer: Layer | None


@dataclass(frozen=True)
class SelectionChanged:
    pass


@dataclass(frozen=True)
class RecipeChanged:
    """The document-wide generation settings (:class:`Recipe`) changed."""


@dataclass(frozen=True)
class DocumentReset:
    """Everything may have changed (loaded, resized)."""


DocumentEvent = (
    PixelsChanged
    | LayerPropertyChanged
    | StructureChanged
    | ActiveLayerChanged
    | SelectionChanged
    | RecipeChanged
    | DocumentReset
)


@dataclass(eq=False)
class Document:
    width: int
    height: int
    root: GroupLayer = field(default_factory=lambda: GroupLayer("root"))
    recipe: Recipe = field(default_factory=Recipe)
    # Selection: float32 (height, width) coverage in [0, 1], or None for "no selection".
    selection: np.ndarray | None = None
    active: Layer | None = None
    # Extra <image> attributes from other programs, kept so a round trip loses nothing.
    extra_attributes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE):
            raise ValueError(
                f"document size {self.width}x{self.height} is out of range (1..{MAX_SIDE} a side)"
            )
        self.changed: Emitter[Any] = Emitter()
        # Undo/redo of every user-visible change (the commands: see sfumato.canvas.edits.commands).
        self.history: History = History()

    @property
    def rect(self) -> Rect:
        return Rect(0, 0, self.width, self.height)

    # -- queries -----------------------------------------------------------------------
    def layers(self) -> Iterator[Layer]:
        """Every layer (groups included), depth-first, top first; the root excluded."""
        it = self.root.walk()
        next(it)
        yield from it

    def pixel_layers(self, role: Role | None = None) -> Iterator[PixelLayer]:
        for layer in self.root.pixel_layers():
            if role is None or layer.role is role:
                yield layer

    def find(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers() if layer.name == name), None)

    def index_of(self, layer: Layer) -> tuple[GroupLayer, int]:
        if layer.parent is None:
            raise ValueError(f"{layer!r} is not in this document")
        return layer.parent, layer.parent.children.index(layer)

    # -- raw mutators (commands call these; they only emit events) ---------------------
    def _raw_insert(self, layer: Layer, parent: GroupLayer | None = None, index: int = 0) -> None:
        (parent or self.root).insert(index, layer)
        self.changed.emit(StructureChanged(layer))

    def _raw_remove(self, layer: Layer) -> tuple[GroupLayer, int]:
        parent, _ = self.index_of(layer)
        index = parent.remove(layer)
        if self.active is not None and (self.active is layer or layer in set(self.active.ancestors())):
            self.active = None
            self.changed.emit(ActiveLayerChanged(None))
        self.changed.emit(StructureChanged(layer))
        return parent, index

    def _raw_set(self, layer: Layer, name: str, value: Any) -> None:
        setattr(layer, name, value)
        self.changed.emit(LayerPropertyChanged(layer, name))

    def set_active(self, layer: Layer | None) -> None:
        """Choose the layer tools act on (not an undoable change)."""
        if layer is not self.active:
            self.active = layer
            self.changed.emit(ActiveLayerChanged(layer))

    def notify_pixels(self, layer: PixelLayer, rect: Rect) -> None:
        """Announce that ``layer``'s pixels changed over ``rect`` (document space)."""
        if not rect.empty:
            self.changed.emit(PixelsChanged(layer, rect))

    def _raw_set_selection(self, coverage: np.ndarray | None) -> None:
        self.selection = coverage
        self.changed.emit(SelectionChanged())

    def _raw_set_recipe(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.changed.emit(RecipeChanged())

    # -- history -------------------------------------------------------------------------
    def execute(self, command: Command) -> Command:
        """Run ``command`` through the history (it becomes undoable); see
        :mod:`sfumato.canvas.editing` for the verbs that build the commands."""
        return self.history.execute(command)

    def undo(self) -> Command | None:
        return self.history.undo()

    def redo(self) -> Command | None:
        return self.history.redo()

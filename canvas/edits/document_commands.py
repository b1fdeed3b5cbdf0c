"""Undoable changes to the document's own state: its recipe (:class:`SetRecipe`) and its
selection (:class:`SetSelection`).

The selection is float32 ``(height, width)`` coverage in [0, 1] over the document, or
``None``; undo keeps it as a :class:`StoredCoverage` (the crop holding its non-zero values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sfumato.canvas.edits.commands import InvalidEditError
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.geometry import Rect, nonzero_bounds
from sfumato.canvas.model.history import Command

# -- recipe --------------------------------------------------------------------------------
_RECIPE_LABEL = "Generation Settings"


class SetRecipe(Command):
    """Change document-wide generation settings (prompt, seed, steps, ...)."""

    def __init__(self, doc: Document, values: Mapping[str, Any], merge_id: object | None = None) -> None:
        known = set(Recipe.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise InvalidEditError(
                f"unknown generation setting(s) {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        self.doc = doc
        self.new = dict(values)
        self.old: Recipe | None = None
        self.merge_id = merge_id
        self.label = "Prompt" if set(values) <= {"prompt", "negative"} else _RECIPE_LABEL

    def redo(self) -> None:
        self.old = self.doc.recipe
        self.doc._raw_set_recipe(replace(self.doc.recipe, **self.new))

    def undo(self) -> None:
        assert self.old is not None
        self.doc._raw_set_recipe(self.old)

    def merge_with(self, other: Command) -> bool:
        if (
            isinstance(other, SetRecipe)
            and self.merge_id is not None
            and other.merge_id == self.merge_id
            and other.new.keys() == self.new.keys()
        ):
            self.new = dict(other.new)
            return True
        return False


# -- selection -----------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredCoverage:
    """A compact copy of a document selection: the crop holding every non-zero value.

    ``data`` is a float32 array for ``rect``, or a float for a constant crop (select all).
    """

    shape: tuple[int, int]
    rect: Rect
    data: np.ndarray | float

    @classmethod
    def store(cls, coverage: np.ndarray) -> StoredCoverage:
        h, w = coverage.shape
        rect = nonzero_bounds(coverage)
        if rect.empty:
            return cls((h, w), Rect(0, 0, 0, 0), 0.0)
        crop = coverage[rect.slices()]
        first = float(crop.flat[0])
        if (crop == first).all():
            return cls((h, w), rect, first)
        return cls((h, w), rect, crop.astype(np.float32, copy=True))

    def load(self) -> np.ndarray:
        out = np.zeros(self.shape, np.float32)
        if not self.rect.empty:
            out[self.rect.slices()] = self.data
        return out

    @property
    def nbytes(self) -> int:
        return self.data.nbytes if isinstance(self.data, np.ndarray) else 0


class SetSelection(Command):
    """Replace the document's selection (float32 ``(height, width)`` coverage, or None)."""

    def __init__(self, doc: Document, coverage: np.ndarray | None, label: str = "Select") -> None:
        if coverage is not None:
            if coverage.shape != (doc.height, doc.width):
                raise InvalidEditError(
                    f"selection shape {coverage.shape} does not match the document "
                    f"({doc.height}, {doc.width})"
                )
            coverage = np.clip(coverage.astype(np.float32, copy=False), 0.0, 1.0)
        self.doc = doc
        self.label = label
        self._first: np.ndarray | None = coverage
        self._new: StoredCoverage | None = None
        self._old: StoredCoverage | None = None
        self._new_is_none = coverage is None
        self._old_is_none = True

    def redo(self) -> None:
        if self._new is None and not self._new_is_none:
            assert self._first is not None
            self._new = StoredCoverage.store(self._first)
        self._old_is_none = self.doc.selection is None
        if self.doc.selection is not None and self._old is None:
            self._old = StoredCoverage.store(self.doc.selection)
        if self._first is not None:
            value: np.ndarray | None = self._first
            self._first = None  # the document now owns it
        else:
            value = None if self._new is None else self._new.load()
        self.doc._raw_set_selection(value)

    def undo(self) -> None:
        self.doc._raw_set_selection(
            None if self._old_is_none or self._old is None else self._old.load()
        )

    def nbytes(self) -> int:
        return (self._new.nbytes if self._new else 0) + (self._old.nbytes if self._old else 0)

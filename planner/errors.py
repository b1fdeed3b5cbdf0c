"""Planner errors: a document that cannot be turned into a generation, said plainly.

Every message says what is wrong and what to do next; the CLI prints it as one line and
the window shows it in the status area.
"""

from __future__ import annotations

__all__ = ["AreaTooLargeError", "EmptyMaskError", "ModelCannotError", "PlanError"]


class PlanError(ValueError):
    """The document (or the settings) cannot be planned into a generation."""


class EmptyMaskError(PlanError):
    """A visible inpaint-mask layer has no painted pixels."""


class AreaTooLargeError(PlanError):
    """The area to generate exceeds the documented maximum."""


class ModelCannotError(PlanError):
    """The chosen model's family cannot do what the document asks (a mode or a sampler)."""

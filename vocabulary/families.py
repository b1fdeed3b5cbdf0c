"""Model family identity: the names of the families and of the built-in models.

A family name (``"sd15"``, ``"sdxl"``) travels from the checkpoint's header (the catalog)
through the planner's sizing and the window's pickers to the engine's plugin table
(:mod:`sfumato.inference.families`, where each plugin's ``name`` is one of these). The
model source ``"builtin"`` names the demo model shipped in ``resources/models/builtin``;
every room that resolves it asks :func:`builtin_model_folder`.

Imports nothing of ours but the data package :mod:`sfumato.resources` (no code).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BUILTIN",
    "BUILTIN_CONTROLNET",
    "SD15",
    "SDXL",
    "SUPPORTED_FAMILIES",
    "builtin_controlnet_folder",
    "builtin_model_folder",
    "models_folder",
]

#: Stable Diffusion 1.x (and fine-tunes of it), trained at 512².
SD15 = "sd15"
#: Stable Diffusion XL, trained at 1024².
SDXL = "sdxl"
#: The families the engine can load, in the order pickers list them.
SUPPORTED_FAMILIES = (SD15, SDXL)

#: The model source that names the built-in demo model (also its folder's name).
BUILTIN = "builtin"
#: The folder name of the built-in scribble ControlNet (beside the built-in model).
BUILTIN_CONTROLNET = "builtin-controlnet-scribble"


def models_folder() -> Path:
    """``resources/models`` inside the installed package: where the built-in models live."""
    import sfumato.resources

    return Path(sfumato.resources.__file__).resolve().parent / "models"


def builtin_model_folder() -> Path:
    """Where the built-in demo model lives (``resources/models/builtin``)."""
    return models_folder() / BUILTIN


def builtin_controlnet_folder() -> Path:
    """Where the built-in scribble ControlNet lives (``resources/models/builtin-controlnet-scribble``)."""
    return models_folder() / BUILTIN_CONTROLNET

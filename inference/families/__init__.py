"""Model families behind one interface (see :mod:`.base`); a registry keyed by name.

Importing this package imports no torch. Add a family by subclassing
:class:`~sfumato.inference.families.base.Family` and calling :func:`register`.
"""

from __future__ import annotations

from typing import Any

from sfumato.inference.errors import UnsupportedModeError
from sfumato.inference.families.base import Family, PreviewFactors
from sfumato.inference.families.chroma import ChromaFamily
from sfumato.inference.families.flux import FluxFamily
from sfumato.inference.families.flux2 import Flux2Family
from sfumato.inference.families.kontext import FluxKontextFamily
from sfumato.inference.families.qwenimage import QwenImageFamily
from sfumato.inference.families.qwenimage21 import QwenImage21Family
from sfumato.inference.families.qwenimage_edit import QwenImageEditFamily, QwenImageEditPlusFamily
from sfumato.inference.families.sd2 import SD2Family
from sfumato.inference.families.sd3 import SD3Family
from sfumato.inference.families.sd15 import SD15Family
from sfumato.inference.families.sdxl import SDXLFamily
from sfumato.inference.families.zimage import ZImageFamily

__all__ = [
    "Family",
    "PreviewFactors",
    "all_families",
    "family_for_diffusers",
    "get_family",
    "register",
]

_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to the registry (replacing one of the same name)."""
    _REGISTRY[family.name] = family
    return family


register(SD15Family())
register(SDXLFamily())
register(FluxFamily())
register(FluxKontextFamily())
register(ChromaFamily())
register(SD2Family())
register(SD3Family())
register(Flux2Family())
register(QwenImageFamily())
register(QwenImageEditFamily())
register(QwenImageEditPlusFamily())
register(QwenImage21Family())
register(ZImageFamily())


def all_families() -> tuple[Family, ...]:
    return tuple(_REGISTRY.values())


def get_family(name: str) -> Family:
    """The family called ``name`` (``"sd15"``, ``"sdxl"``, ``"sd2"``); unknown names are refused."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedModeError(
            f"Model family {name!r} is not supported (supported: {', '.join(_REGISTRY)})."
        ) from None


def family_for_diffusers(model_index: dict[str, Any], unet_config: dict[str, Any]) -> Family:
    """The family of a diffusers folder, from its ``model_index.json`` and UNet config."""
    for family in _REGISTRY.values():
        if family.matches_diffusers(model_index, unet_config):
            return family
    cls = model_index.get("_class_name", "unknown pipeline")
    raise UnsupportedModeError(
        f"This model ({cls}, cross-attention width {unet_config.get('cross_attention_dim')}) "
        "is not a supported family (Stable Diffusion 1.x, 2.x or SDXL)."
    )

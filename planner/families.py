"""Planning facts per model family: native size, the legal side range, the pixel budget.

The engine room owns the family plugins (:mod:`sfumato.inference.families`: how to load,
which modes, preview factors, native size and size range); importing them loads no torch.
The planner turns their sizing facts into :class:`FamilyInfo` values, recognises a model
folder's family with the plugins' own test, and reads the folder's native size from its
``unet``/``vae`` ``config.json`` files, all **without importing torch**.

All sizes are in pixels. Generation sizes are always multiples of :data:`MULTIPLE` (8:
the VAE downsamples by 8, and the UNet needs latent sides divisible by its own factors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sfumato.inference.errors import UnsupportedModeError
from sfumato.inference.families import Family, all_families, family_for_diffusers
from sfumato.inference.families.sd2 import single_file_kind
from sfumato.vocabulary.config import read_json
from sfumato.vocabulary.families import BUILTIN, SD2, SD15, SDXL, builtin_model_folder

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN",
    "FAMILIES",
    "MULTIPLE",
    "SD15",
    "SDXL",
    "FamilyInfo",
    "family_for_model",
    "native_size_from_folder",
]

MULTIPLE = 8



@dataclass(frozen=True)
class FamilyInfo:
    """What the planner needs to know to size a generation for one model family.

    ``native`` is the side of the square the family was trained at; ``min_side`` and
    ``max_side`` bound each side of a generation (multiples of 8); ``min_pixels`` and
    ``max_pixels`` bound its pixel count (areas smaller are generated larger, areas
    larger are generated smaller, then scaled back).
    """

    name: str
    native: int
    min_side: int
    max_side: int
    min_pixels: int
    max_pixels: int
    #: generation sides are multiples of this: 8 (the VAE's factor), 16 for the
    #: transformer families that pack 2×2 latent pixels into a token
    multiple: int = MULTIPLE

    def __post_init__(self) -> None:
        if self.multiple <= 0 or self.multiple % MULTIPLE:
            raise ValueError(f"family {self.name}: the size multiple must be a multiple of 8")
        for side in (self.native, self.min_side, self.max_side):
            if side <= 0 or side % self.multiple:
                raise ValueError(f"family {self.name}: sides must be positive multiples of {self.multiple}")
        if not self.min_side <= self.native <= self.max_side:
            raise ValueError(f"family {self.name}: need min_side <= native <= max_side")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"family {self.name}: need 0 < min_pixels <= max_pixels")

    @staticmethod
    def for_native(name: str, native: int, multiple: int = MULTIPLE) -> FamilyInfo:
        """Facts for a model of a known native side (a tiny or built-in model).

        The range follows SDXL's proportions: sides from 5/8 to 5/4 of native, pixel
        count from native² × 3/4 to native² × 1.25 (all rounded to ``multiple``).
        """
        native = max(multiple, _round_to(native, multiple))
        return FamilyInfo(
            name=name,
            native=native,
            min_side=max(multiple, _round_to(native * 5 / 8, multiple)),
            max_side=max(native, _round_to(native * 5 / 4, multiple)),
            min_pixels=int(native * native * 3 / 4),
            max_pixels=int(native * native * 5 / 4),
            multiple=multiple,
        )


def _round_to(value: float, multiple: int) -> int:
    return int(round(value / multiple)) * multiple


def _table_entry(family: Family) -> FamilyInfo:
    native = family.native_side
    multiple = family.size_multiple
    min_side, max_side = family.side_limits(native)
    fewest, most = family.pixel_fractions
    return FamilyInfo(
        family.name,
        native=native,
        min_side=_round_to(min_side, multiple),
        max_side=_round_to(max_side, multiple),
        min_pixels=int(native * native * fewest),
        max_pixels=int(native * native * most),
        multiple=multiple,
    )


#: The table, from the engine's families. SD 1.x: trained at 512², fine up to 768 a side
#: (512×768 pixel budget). SDXL: trained at 1024² and its aspect buckets (640–1280 a side,
#: ~1 megapixel).
FAMILIES: dict[str, FamilyInfo] = {f.name: _table_entry(f) for f in all_families()}


def _denoiser_config(folder: Path) -> dict | None:  # type: ignore[type-arg]
    """The folder's ``unet/config.json``, else its ``transformer/config.json``."""
    return read_json(folder / "unet" / "config.json") or read_json(folder / "transformer" / "config.json")


def native_size_from_folder(folder: Path) -> int | None:
    """The native side of a diffusers-format model folder, read from its config JSONs.

    ``unet/config.json`` (or ``transformer/config.json``) ``sample_size`` is the latent
    side; the VAE downsamples by its ``scale_factor_spatial`` where it says one, else by
    ``2 ** (len(block_out_channels) - 1)`` (``vae/config.json``). Returns ``None`` when the
    folder's denoiser config gives no size (FLUX's transformer has none: the family's
    native size holds). Never imports torch.
    """
    unet = _denoiser_config(folder)
    if unet is None:
        return None
    sample = unet.get("sample_size")
    if isinstance(sample, list | tuple):
        sample = max(sample) if sample else None
    if not isinstance(sample, int) or sample <= 0:
        return None
    vae = read_json(folder / "vae" / "config.json") or {}
    blocks = vae.get("block_out_channels")
    spatial = vae.get("scale_factor_spatial")  # the video VAEs that say it (Qwen-Image 2.1: 16)
    if isinstance(spatial, int) and spatial > 0:
        factor = spatial
    else:
        factor = 2 ** (len(blocks) - 1) if isinstance(blocks, list) and blocks else 8
    return int(sample * factor)


def _family_from_folder(folder: Path) -> str | None:
    """The engine family that would load ``folder``, or ``None`` when none would."""
    unet = _denoiser_config(folder)
    if unet is None:
        return None
    try:
        return family_for_diffusers(read_json(folder / "model_index.json") or {}, unet).name
    except UnsupportedModeError:
        return None


def family_for_model(source: str, family: str | None = None) -> FamilyInfo:
    """The planning facts for a model reference (a folder, a file, a hub id, ``builtin``).

    ``builtin`` is the demo model folder :func:`builtin_model_folder`.

    - A diffusers folder: its own native size from its configs. When that matches the
      family's table entry the table entry is used; otherwise (tiny test models, the
      built-in demo model) :meth:`FamilyInfo.for_native` derives the range from it.
    - A single-file checkpoint or a hub id: ``family`` if given (the catalog reads it
      from the checkpoint's header, :mod:`sfumato.inference.catalog`), else SD 1.x.
    """
    path = builtin_model_folder() if source.strip() == BUILTIN else Path(source).expanduser()
    if path.is_dir():
        detected = family or _family_from_folder(path) or SD15
        native = native_size_from_folder(path)
        table = FAMILIES.get(detected, FAMILIES[SD15])
        if native is None or native == table.native:
            return table
        return FamilyInfo.for_native(detected, native, table.multiple)
    if family == SD2 and path.is_file():
        # An SD 2.x file is 768-v or 512-base; its name or sidecar .yaml says which.
        kind = single_file_kind(path)
        if kind.sample_size is not None and kind.sample_size * MULTIPLE != FAMILIES[SD2].native:
            return FamilyInfo.for_native(SD2, kind.sample_size * MULTIPLE)
    if family is not None and family in FAMILIES:
        return FAMILIES[family]
    return FAMILIES[SD15]

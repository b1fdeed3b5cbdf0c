"""Each family's denoiser call, chosen by the family's name (:mod:`sfumato.inference.denoise`)."""

from __future__ import annotations

from collections.abc import Callable

from sfumato.inference.denoise import DenoiseJob, Denoiser
from sfumato.inference.denoisers.flux import FluxDenoiser
from sfumato.inference.denoisers.unet import UNetDenoiser
from sfumato.inference.model_cache import LoadedModel
from sfumato.vocabulary.families import FLUX

__all__ = ["make_denoiser"]

#: family name → its denoiser; families not named here are UNet families
_DENOISERS: dict[str, Callable[[LoadedModel, DenoiseJob], Denoiser]] = {
    FLUX: FluxDenoiser,
}


def make_denoiser(model: LoadedModel, job: DenoiseJob) -> Denoiser:
    """The denoiser of ``model``'s family for one run of ``job``."""
    factory = _DENOISERS.get(model.family.name)
    if factory is None:
        return UNetDenoiser(model.denoiser, job)
    return factory(model, job)

"""Engine options and preview modes: plain data, no torch (settings dialogs build them).

:mod:`sfumato.inference.devices` re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["EngineOptions", "PreviewMode"]


class PreviewMode(Enum):
    OFF = "off"
    LINEAR = "linear"  # the family's latent→RGB linear map (free)
    TAESD = "taesd"  # the tiny autoencoder when its weights are in resources (else linear)


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs; none of this changes *what* it generates (except dtype noise).

    ``device``: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"`` or ``None`` (automatic).
    ``dtype``: ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``None`` (automatic).
    ``offload``: where a model's weights live on a GPU: ``"auto"`` (measured against
    the free memory at load time, :mod:`sfumato.inference.memory`), ``"none"`` (all on
    the GPU), ``"model"`` (in RAM, each part moved to the GPU while it runs) or
    ``"sequential"`` (layers streamed one at a time); offloading needs the ``accelerate``
    package. ``cpu_offload`` is the older switch for ``"model"``. ``vae_tiling``:
    decode/encode in tiles always (``auto`` turns it on for areas too large for the free
    memory). ``channels_last`` and ``compile`` speed up CUDA runs.
    ``max_models``: pipelines kept loaded (the least recently used is dropped first).
    """

    device: str | None = None
    dtype: str | None = None
    cpu_offload: bool = False
    offload: str = "auto"
    vae_tiling: bool = False
    channels_last: bool = False
    compile: bool = False
    preview: PreviewMode = PreviewMode.LINEAR
    max_models: int = 1
    max_controlnets: int = 4

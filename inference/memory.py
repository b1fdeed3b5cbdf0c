"""Where a model's weights live on a GPU too small for it, chosen automatically.

The transformer families are large (FLUX.1 is 12B parameters: 24 GB in bf16, plus 9 GB
of T5), so "load everything onto the GPU" is no longer a given. When a model is loaded
onto a CUDA device the engine measures the free memory and picks, in order:

1. **on the device**: every component fits with room for one generation's activations;
2. **model offload**: components stay in RAM and each moves to the GPU while it runs
   (accelerate's ``enable_model_cpu_offload``): the largest one must fit, with room;
3. **sequential offload**: layers stream to the GPU one at a time
   (``enable_sequential_cpu_offload``): slow, but fits nearly anything.

Large areas also decode through a tiled VAE when the decoder's activations would not
fit (:func:`wants_vae_tiling`). The choice is shown: in the model's
:class:`~sfumato.inference.events.ModelInfo`, the run's metadata (``memory``) and the log.
An out-of-memory error names the next setting that would fit (:func:`next_setting`).
:class:`~sfumato.inference.options.EngineOptions` ``offload`` forces a placement.

The decisions are plain functions of byte counts, so they are tested without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "GIB",
    "MemoryPlan",
    "Placement",
    "activation_bytes",
    "component_bytes",
    "next_setting",
    "plan_placement",
    "wants_vae_tiling",
]

GIB = 1024**3
#: VAE decoder activation bytes per output pixel per byte of dtype (measured for the SD/FLUX
#: decoder: about 3 GiB to decode 1024² in float16)
_VAE_BYTES_PER_PIXEL = 1500


class Placement(Enum):
    ON_DEVICE = "on the device"
    MODEL_OFFLOAD = "model offload"
    SEQUENTIAL_OFFLOAD = "sequential offload"

    @classmethod
    def parse(cls, text: str) -> Placement | None:
        """``"auto"`` → ``None``; ``"none"``/``"model"``/``"sequential"`` → a placement."""
        names = {"auto": None, "none": cls.ON_DEVICE, "model": cls.MODEL_OFFLOAD, "sequential": cls.SEQUENTIAL_OFFLOAD}
        key = text.strip().lower()
        if key not in names:
            raise ValueError(f"unknown offload setting {text!r}; use auto, none, model or sequential")
        return names[key]


@dataclass(frozen=True)
class MemoryPlan:
    """A placement and why (the sentence shown to the artist)."""

    placement: Placement
    reason: str


def component_bytes(pipe: Any) -> dict[str, int]:
    """Bytes of each torch module of a diffusers pipeline (its weights and buffers)."""
    sizes: dict[str, int] = {}
    for name, module in getattr(pipe, "components", {}).items():
        params = getattr(module, "parameters", None)
        if params is None:
            continue
        total = sum(p.numel() * p.element_size() for p in module.parameters())
        total += sum(b.numel() * b.element_size() for b in module.buffers())
        sizes[name] = int(total)
    return sizes


def activation_bytes(native_side: int, dtype_bytes: int) -> int:
    """Room to leave for one generation's activations at the model's native size: 1.5 GiB
    per megapixel in half precision (a FLUX step at 1024² peaks near that), at least 1 GiB."""
    megapixels = native_side * native_side / 1e6
    return max(GIB, int(1.5 * GIB * megapixels * dtype_bytes / 2))


def plan_placement(components: dict[str, int], free: int, working: int) -> MemoryPlan:
    """The placement for a model of ``components`` bytes on a device with ``free`` bytes,
    leaving ``working`` bytes for activations (module docstring)."""
    total = sum(components.values())
    largest = max(components.values(), default=0)
    need, free_gib = (total + working) / GIB, free / GIB
    if total + working <= free:
        return MemoryPlan(Placement.ON_DEVICE, f"the model ({total / GIB:.1f} GiB) fits in {free_gib:.1f} GiB free")
    if largest + working <= free:
        return MemoryPlan(
            Placement.MODEL_OFFLOAD,
            f"the model needs {need:.1f} GiB, {free_gib:.1f} GiB are free: each part moves to the GPU while it runs",
        )
    return MemoryPlan(
        Placement.SEQUENTIAL_OFFLOAD,
        f"its largest part ({largest / GIB:.1f} GiB) does not fit in {free_gib:.1f} GiB free: layers stream "
        "to the GPU one at a time (slow)",
    )


def next_setting(placement: Placement | None) -> str:
    """What to try after running out of memory with ``placement`` (``None``: on a CPU)."""
    if placement is Placement.ON_DEVICE:
        return "Set Memory → offload to 'model' (parts move to the GPU only while they run), or generate a smaller area."
    if placement is Placement.MODEL_OFFLOAD:
        return "Set Memory → offload to 'sequential' (slow, but fits nearly any model), or generate a smaller area."
    if placement is Placement.SEQUENTIAL_OFFLOAD:
        return "Generate a smaller area, or a quantized (GGUF or fp8) copy of the model."
    return "Close other programs, or generate a smaller area."


def wants_vae_tiling(width: int, height: int, free: int, dtype_bytes: int) -> bool:
    """Whether decoding ``width × height`` pixels should go through the tiled VAE: when the
    decoder's activations would take more than half the free memory."""
    return width * height * _VAE_BYTES_PER_PIXEL * dtype_bytes > free // 2

"""Device and dtype choice, plus the memory-saving options for small GPUs.

Automatic choice: CUDA → float16 (bfloat16 when asked for; the SDXL VAE is upcast to
float32 for decoding either way when its config says so), Apple MPS → float16, CPU →
float32 (half precision on CPU is slower and less accurate). Everything is overridable
through :class:`EngineOptions`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from sfumato.inference.options import EngineOptions, PreviewMode

__all__ = ["DeviceChoice", "EngineOptions", "PreviewMode", "choose_device", "is_oom_error"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    dtype: torch.dtype

    def __str__(self) -> str:
        return f"{self.device} {str(self.dtype).removeprefix('torch.')}"


_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float32": torch.float32, "fp32": torch.float32, "float": torch.float32}  # fmt: skip


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(device: str | None = None, dtype: str | None = None) -> DeviceChoice:
    """Pick the device and dtype (see module docstring); explicit arguments win."""
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif _mps_available():
            device = "mps"
        else:
            device = "cpu"
    dev = torch.device(device)
    if dtype is None:
        chosen = torch.float32 if dev.type == "cpu" else torch.float16
    else:
        try:
            chosen = _DTYPES[dtype.lower()]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; use float16, bfloat16 or float32") from None
    log.info("engine device: %s %s", dev, chosen)
    return DeviceChoice(dev, chosen)


def is_oom_error(error: BaseException) -> bool:
    """Whether ``error`` is the device running out of memory (CUDA, MPS or CPU allocator)."""
    oom_type: Any = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom_type):
        return True
    if isinstance(error, RuntimeError | MemoryError):
        text = str(error).lower()
        return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    return False


def release_memory(device: torch.device) -> None:
    """Give cached allocator memory back after an error or when models are dropped."""
    import gc

    gc.collect()
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and _mps_available():
        torch.mps.empty_cache()

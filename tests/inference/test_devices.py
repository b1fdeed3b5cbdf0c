"""Device/dtype choice, OOM recognition and the memory-saving options."""

from __future__ import annotations

import pytest
import torch
from sfumato.inference.devices import choose_device, is_oom_error


def test_cpu_is_float32_and_overrides_win() -> None:
    choice = choose_device("cpu")
    assert choice.device.type == "cpu" and choice.dtype == torch.float32
    assert choose_device("cpu", "bfloat16").dtype == torch.bfloat16
    assert choose_device("cpu", "fp16").dtype == torch.float16
    with pytest.raises(ValueError):
        choose_device("cpu", "int8")


def test_automatic_choice_without_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("sfumato.inference.devices._mps_available", lambda: False)
    assert choose_device().device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    choice = choose_device()
    assert choice.device.type == "cuda" and choice.dtype == torch.float16


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (torch.OutOfMemoryError("CUDA out of memory"), True),
        (RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"), True),
        (RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"), True),
        (MemoryError(), True),
        (RuntimeError("size mismatch for conv_in.weight"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_oom_recognition(error: BaseException, expected: bool) -> None:
    assert is_oom_error(error) is expected



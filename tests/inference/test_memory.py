"""Where weights live on a GPU too small for the model: the choice, its reasons, and what
an out-of-memory error advises (plain byte arithmetic; the CUDA calls are faked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from sfumato.inference.memory import (
    GIB,
    Placement,
    activation_bytes,
    component_bytes,
    next_setting,
    plan_placement,
    wants_vae_tiling,
)
from sfumato.inference.request import ModelRef

#: FLUX.1 dev in bfloat16: transformer 23.8 GB, T5 9.5 GB, CLIP 0.25 GB, VAE 0.17 GB
FLUX_BF16 = {"transformer": int(22.2 * GIB), "text_encoder_2": int(8.9 * GIB), "text_encoder": int(0.23 * GIB),
             "vae": int(0.16 * GIB)}  # fmt: skip


@pytest.mark.parametrize(
    ("free_gib", "expected"),
    [(80, Placement.ON_DEVICE), (40, Placement.ON_DEVICE), (24, Placement.MODEL_OFFLOAD), (16, Placement.SEQUENTIAL_OFFLOAD),
     (8, Placement.SEQUENTIAL_OFFLOAD)],  # fmt: skip
)
def test_flux_on_gpus_of_every_size(free_gib: int, expected: Placement) -> None:
    working = activation_bytes(1024, 2)
    plan = plan_placement(FLUX_BF16, free_gib * GIB, working)
    assert plan.placement is expected, plan.reason
    assert f"{free_gib:.1f} GiB" in plan.reason


def test_the_boundaries_are_inclusive_and_exact() -> None:
    parts = {"a": 10 * GIB, "b": 4 * GIB}
    assert plan_placement(parts, 15 * GIB, GIB).placement is Placement.ON_DEVICE
    assert plan_placement(parts, 15 * GIB - 1, GIB).placement is Placement.MODEL_OFFLOAD
    assert plan_placement(parts, 11 * GIB, GIB).placement is Placement.MODEL_OFFLOAD
    assert plan_placement(parts, 11 * GIB - 1, GIB).placement is Placement.SEQUENTIAL_OFFLOAD


def test_out_of_memory_advice_names_the_next_setting() -> None:
    assert "'model'" in next_setting(Placement.ON_DEVICE)
    assert "'sequential'" in next_setting(Placement.MODEL_OFFLOAD)
    assert "GGUF" in next_setting(Placement.SEQUENTIAL_OFFLOAD)
    assert "smaller area" in next_setting(None)


def test_vae_tiling_when_the_decoder_would_not_fit() -> None:
    assert not wants_vae_tiling(1024, 1024, 24 * GIB, 2)
    assert wants_vae_tiling(4096, 4096, 24 * GIB, 2)
    assert wants_vae_tiling(1024, 1024, 4 * GIB, 2)


def test_offload_setting_parses() -> None:
    assert Placement.parse("auto") is None
    assert Placement.parse(" Model ") is Placement.MODEL_OFFLOAD
    with pytest.raises(ValueError, match="auto, none, model or sequential"):
        Placement.parse("some")


def test_the_cache_measures_a_loaded_pipeline_against_free_cuda_memory(
    shared_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the CUDA calls faked: a model whose parts add up to more than the free memory
    is offloaded, and the reason is the one shown."""
    model = shared_engine.cache.get(ModelRef(str(tiny_sd15)))
    sizes = component_bytes(model.pipe)
    assert set(sizes) >= {"unet", "vae", "text_encoder"} and all(v > 0 for v in sizes.values())
    assert sizes["unet"] == sum(p.numel() * 4 for p in model.pipe.unet.parameters()) + sum(
        b.numel() * b.element_size() for b in model.pipe.unet.buffers())  # fmt: skip
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    working = activation_bytes(model.family.native_side, 2)
    largest = max(sizes.values())
    for free, expected in [(sum(sizes.values()) + working, Placement.ON_DEVICE),
                           (largest + working, Placement.MODEL_OFFLOAD),
                           (largest + working - 1, Placement.SEQUENTIAL_OFFLOAD)]:  # fmt: skip
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None, free=free: (free, 80 * GIB))
        plan = shared_engine.cache._memory_plan(model.pipe, model.family, torch.device("cuda"), torch.float16)
        assert plan is not None and plan.placement is expected
    assert shared_engine.cache._memory_plan(model.pipe, model.family, torch.device("cpu"), torch.float32) is None

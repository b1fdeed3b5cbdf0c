"""A ``<lora:NAME:w>`` tag end to end with the built-in model: the planner finds the file,
the engine merges it; weight 1 changes the picture, weight 0 leaves it byte-identical to
the prompt without the tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sfumato.canvas.model.document import Document
from sfumato.inference.catalog import ModelEntry, Origin
from sfumato.inference.detect import WeightsKind
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings

# (component, diffusers module, kohya name): cross-attention keys and a text-encoder layer
TARGETS = [
    ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
     "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"),
    ("unet", "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v",
     "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v"),
    ("text_encoder", "encoder.layers.0.self_attn.q_proj", "lora_te_text_model_encoder_layers_0_self_attn_q_proj"),
]


@pytest.fixture(scope="module")
def engine() -> object:
    from sfumato.inference.engine import Engine

    return Engine(device="cpu")


def _style_lora(engine: object, path: Path) -> ModelEntry:
    """A rank-4 kohya LoRA on the built-in model's own layers (strong enough to show)."""
    from sfumato.inference.request import ModelRef

    pipe = engine.cache.get(ModelRef("builtin")).pipe  # type: ignore[attr-defined]
    generator = torch.Generator().manual_seed(7)
    tensors: dict[str, torch.Tensor] = {}
    for component, module, kohya in TARGETS:
        weight = getattr(pipe, component).get_submodule(module).weight
        out_features, in_features = weight.shape[:2]
        tensors[f"{kohya}.lora_down.weight"] = torch.randn(4, in_features, generator=generator)
        tensors[f"{kohya}.lora_up.weight"] = torch.randn(out_features, 4, generator=generator) * 0.5
        tensors[f"{kohya}.alpha"] = torch.tensor(4.0)
    save_file(tensors, str(path))
    return ModelEntry(WeightsKind.LORA, str(path), path.stem, "sd15", Origin.CONFIGURED)


def _render(engine: object, prompt: str, lora: ModelEntry) -> np.ndarray:
    settings = GenerationSettings(prompt=prompt, model="builtin", seed=4, steps=4, cfg=5.0)
    planned = plan(Document(64, 64), settings, loras=lambda: [lora])
    return engine.generate(planned.request)[0]  # type: ignore[attr-defined]


def test_a_lora_tag_changes_the_picture_and_weight_zero_does_not(engine: object, tmp_path: Path) -> None:
    lora = _style_lora(engine, tmp_path / "filmgrain.safetensors")
    plain = _render(engine, "a red circle on a blue background", lora)
    tagged = _render(engine, "a red circle on a blue background <lora:filmgrain:1>", lora)
    zero = _render(engine, "a red circle on a blue background <lora:filmgrain:0>", lora)
    again = _render(engine, "a red circle on a blue background", lora)
    difference = np.abs(tagged.astype(int) - plain.astype(int)).mean()
    print(f"mean difference {difference:.1f}")
    assert difference > 2.0, difference
    assert np.array_equal(zero, plain)
    assert np.array_equal(again, plain)  # the LoRA was taken out again, exactly

"""Family/kind detection from checkpoint keys and cheap safetensors header reading."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sfumato.inference.detect import (
    SD15,
    SDXL,
    WeightsKind,
    detect_family,
    detect_weights_kind,
    guess_family,
    is_inpaint_unet,
    read_safetensors_header,
    read_safetensors_keys,
)
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError

LDM_UNET = [
    "model.diffusion_model.input_blocks.0.0.weight",
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
    "model.diffusion_model.out.2.weight",
    "first_stage_model.encoder.conv_in.weight",
]
SD15_LDM = LDM_UNET + ["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"]
SD2_LDM = LDM_UNET + ["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"]
SDXL_LDM = LDM_UNET + [
    "model.diffusion_model.label_emb.0.0.weight",
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
    "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
]
REFINER_LDM = LDM_UNET + [
    "model.diffusion_model.label_emb.0.0.weight",
    "conditioner.embedders.0.model.transformer.resblocks.0.attn.in_proj_weight",
]
DIFFUSERS_UNET = [
    "conv_in.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
    "up_blocks.1.resnets.0.conv1.weight",
]


@pytest.mark.parametrize(
    ("keys", "family"),
    [
        (SD15_LDM, SD15),
        (SDXL_LDM, SDXL),
        (DIFFUSERS_UNET, SD15),
        (DIFFUSERS_UNET + ["add_embedding.linear_1.weight"], SDXL),
        (["unet." + k for k in DIFFUSERS_UNET] + ["text_encoder_2.text_model.final_layer_norm.weight"], SDXL),
        (["control_model.input_blocks.0.0.weight", "control_model.input_hint_block.0.weight"], SD15),
        (["control_model.input_blocks.0.0.weight", "control_model.label_emb.0.0.weight"], SDXL),
        (["controlnet_cond_embedding.conv_in.weight", "controlnet_down_blocks.0.weight", "conv_in.weight"], SD15),
    ],
)
def test_detect_family(keys: list[str], family: str) -> None:
    assert detect_family(keys) == family
    assert detect_family(iter(keys)) == family  # any iterable, consumed once


def test_sd2_is_told_apart_in_both_layouts() -> None:
    assert detect_family(SD2_LDM) == "sd2"
    shapes = {k: (320, 1024) if k.endswith("attn2.to_k.weight") else (320, 4, 3, 3) for k in DIFFUSERS_UNET}
    assert detect_family(shapes) == "sd2"
    assert detect_family(DIFFUSERS_UNET + ["text_encoder.text_model.encoder.layers.22.mlp.fc1.weight"]) == "sd2"
    shapes_sd1 = {k: (320, 768) if k.endswith("attn2.to_k.weight") else (320, 4, 3, 3) for k in DIFFUSERS_UNET}
    assert detect_family(shapes_sd1) == SD15


def test_other_families_refused() -> None:
    with pytest.raises(UnsupportedModeError, match="refiner"):
        detect_family(REFINER_LDM)
    # the transformer families are told apart (tests/inference/test_model_parts.py has the layouts)
    assert detect_family(["double_blocks.0.img_attn.qkv.weight"]) == "flux"
    assert detect_family(["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"]) == "sd3"
    with pytest.raises(CorruptModelError, match="not a Stable Diffusion model"):
        detect_family(["encoder.layer.0.weight", "classifier.bias"])


def test_is_inpaint_unet() -> None:
    assert is_inpaint_unet({"model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)})
    assert not is_inpaint_unet({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)})
    assert is_inpaint_unet({"conv_in.weight": np.zeros((8, 9, 3, 3))})
    assert not is_inpaint_unet({"conv_in.weight": np.zeros((8, 4, 3, 3))})
    assert not is_inpaint_unet({})


def test_weights_kind() -> None:
    assert detect_weights_kind(SD15_LDM) is WeightsKind.CHECKPOINT
    assert detect_weights_kind(["control_model.input_hint_block.0.weight"]) is WeightsKind.CONTROLNET
    assert detect_weights_kind(["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]) is WeightsKind.LORA
    assert detect_weights_kind(["unet.down_blocks.0.attentions.0.proj_in.lora_A.weight"]) is WeightsKind.LORA


def test_guess_family_never_raises() -> None:
    assert guess_family(SD15_LDM) == SD15
    assert guess_family(SD2_LDM) == "sd2"
    assert guess_family(REFINER_LDM) == "sdxl-refiner"
    assert guess_family(["foo"]) is None
    assert guess_family(["foo"], {"modelspec.architecture": "stable-diffusion-xl-v1-base"}) == SDXL
    assert guess_family(["lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"]) == SDXL
    assert guess_family(["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]) == SD15


def _write(path: Path) -> dict[str, np.ndarray]:
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": np.ones((8, 9, 3, 3), np.float16),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": np.arange(77, dtype=np.int64)[None],
    }
    save_file(tensors, str(path), metadata={"format": "pt"})
    return tensors


def test_read_header(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    tensors = _write(path)
    header = read_safetensors_header(path)
    assert set(header.tensors) == set(tensors)
    assert header.metadata == {"format": "pt"}
    info = header.tensors["model.diffusion_model.input_blocks.0.0.weight"]
    assert info.dtype == "F16" and info.shape == (8, 9, 3, 3)
    assert sorted(read_safetensors_keys(path)) == sorted(tensors)
    assert is_inpaint_unet(header.shapes)
    assert detect_family(header.shapes) == SD15


def test_truncated_and_garbage_files(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    _write(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-10])
    with pytest.raises(CorruptModelError, match="truncated"):
        read_safetensors_header(cut)
    head_cut = tmp_path / "head.safetensors"
    head_cut.write_bytes(data[:20])
    with pytest.raises(CorruptModelError):
        read_safetensors_header(head_cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 5) + b"nope!" + b"\0" * 10)
    with pytest.raises(CorruptModelError, match="JSON"):
        read_safetensors_header(junk)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(CorruptModelError):
        read_safetensors_header(huge)
    bad_offsets = tmp_path / "bad.safetensors"
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    bad_offsets.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CorruptModelError, match="inconsistent"):
        read_safetensors_header(bad_offsets)
    with pytest.raises(ModelNotFoundError):
        read_safetensors_header(tmp_path / "missing.safetensors")


def test_module_imports_no_torch() -> None:
    code = "import sys, sfumato.inference.detect; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

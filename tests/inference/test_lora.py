"""LoRA merging: kohya and diffusers/PEFT key formats, exact removal, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.inference.lora import applied_loras, apply_loras, load_lora_layers, remove_loras
from sfumato.inference.request import LoraSpec
from tinymodels import build_tiny_sd15, build_tiny_sdxl

RANK = 4


@pytest.fixture(scope="module")
def sd15(tmp_path_factory: pytest.TempPathFactory) -> object:
    from diffusers import DiffusionPipeline

    folder = build_tiny_sd15(tmp_path_factory.mktemp("lora") / "sd15")
    return DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory: pytest.TempPathFactory) -> object:
    from diffusers import DiffusionPipeline

    folder = build_tiny_sdxl(tmp_path_factory.mktemp("lora") / "sdxl")
    return DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)


def _snapshot(pipe: object) -> dict[str, torch.Tensor]:
    out = {}
    for component in ("unet", "text_encoder", "text_encoder_2"):
        model = getattr(pipe, component, None)
        if model is not None:
            out.update({f"{component}.{k}": v.clone() for k, v in model.state_dict().items()})
    return out


def _pair(weight: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out_ch, in_ch = weight.shape[0], weight.shape[1]
    if weight.ndim == 4:  # conv: down carries the kernel, up is 1x1 (kohya's layout)
        down = torch.randn(RANK, in_ch, *weight.shape[2:], generator=gen)
        up = torch.randn(out_ch, RANK, 1, 1, generator=gen)
    else:
        down = torch.randn(RANK, in_ch, generator=gen)
        up = torch.randn(out_ch, RANK, generator=gen)
    return down, up


def _expected_delta(down: torch.Tensor, up: torch.Tensor, shape: torch.Size, alpha: float | None) -> torch.Tensor:
    scale = 1.0 if alpha is None else alpha / RANK
    return (up.reshape(up.shape[0], -1) @ down.reshape(RANK, -1)).reshape(shape) * scale


# (component, diffusers module, kohya name) on the tiny SD 1.x pipeline
SD15_TARGETS = [
    ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"),
    ("unet", "up_blocks.1.attentions.0.proj_in", "lora_unet_up_blocks_1_attentions_0_proj_in"),
    ("unet", "down_blocks.1.resnets.0.conv1", "lora_unet_down_blocks_1_resnets_0_conv1"),
    ("text_encoder", "encoder.layers.0.self_attn.q_proj", "lora_te_text_model_encoder_layers_0_self_attn_q_proj"),
]


def _kohya_file(pipe: object, path: Path, targets: list[tuple[str, str, str]], alpha: float | None = 2.0) -> dict[tuple[str, str], torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    deltas = {}
    for i, (component, module, kohya) in enumerate(targets):
        weight = getattr(pipe, component).get_submodule(module).weight
        down, up = _pair(weight, i)
        tensors[f"{kohya}.lora_down.weight"] = down
        tensors[f"{kohya}.lora_up.weight"] = up
        if alpha is not None:
            tensors[f"{kohya}.alpha"] = torch.tensor(alpha)
        deltas[(component, module)] = _expected_delta(down, up, weight.shape, alpha)
    save_file(tensors, str(path))
    return deltas


def _check_merged(pipe: object, before: dict[str, torch.Tensor], deltas: dict[tuple[str, str], torch.Tensor], weight: float) -> None:
    after = _snapshot(pipe)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"{c}.{m}.weight" for c, m in deltas}
    for (component, module), delta in deltas.items():
        key = f"{component}.{module}.weight"
        torch.testing.assert_close(after[key], before[key] + weight * delta, rtol=1e-5, atol=1e-5)


def _assert_restored(pipe: object, before: dict[str, torch.Tensor]) -> None:
    after = _snapshot(pipe)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_kohya_sd15_merge_and_exact_removal(sd15: object, tmp_path: Path) -> None:
    before = _snapshot(sd15)
    deltas = _kohya_file(sd15, tmp_path / "style.safetensors", SD15_TARGETS)
    apply_loras(sd15, [LoraSpec(str(tmp_path / "style.safetensors"), 0.7)])
    _check_merged(sd15, before, deltas, 0.7)
    assert applied_loras(sd15) == (LoraSpec(str(tmp_path / "style.safetensors"), 0.7),)
    remove_loras(sd15)
    _assert_restored(sd15, before)
    assert applied_loras(sd15) == ()


def test_diffusers_peft_format(sd15: object, tmp_path: Path) -> None:
    before = _snapshot(sd15)
    tensors = {}
    deltas = {}
    for i, (component, module, _) in enumerate(SD15_TARGETS[:2] + SD15_TARGETS[3:]):
        weight = getattr(sd15, component).get_submodule(module).weight
        down, up = _pair(weight, 10 + i)
        name = f"{component}.text_model.{module}" if component == "text_encoder" else f"{component}.{module}"
        tensors[f"{name}.lora_A.weight"] = down
        tensors[f"{name}.lora_B.weight"] = up
        deltas[(component, module)] = _expected_delta(down, up, weight.shape, None)
    save_file(tensors, str(tmp_path / "peft.safetensors"))
    apply_loras(sd15, [LoraSpec(str(tmp_path / "peft.safetensors"), 1.0)])
    _check_merged(sd15, before, deltas, 1.0)
    remove_loras(sd15)
    _assert_restored(sd15, before)


def test_two_loras_stack_and_switching_never_drifts(sd15: object, tmp_path: Path) -> None:
    before = _snapshot(sd15)
    a = _kohya_file(sd15, tmp_path / "a.safetensors", SD15_TARGETS[:2])
    b = _kohya_file(sd15, tmp_path / "b.safetensors", SD15_TARGETS[1:3], alpha=None)
    specs = [LoraSpec(str(tmp_path / "a.safetensors"), 0.5), LoraSpec(str(tmp_path / "b.safetensors"), -1.0)]
    for _ in range(3):  # switching back and forth stays exact
        apply_loras(sd15, specs)
        after = _snapshot(sd15)
        key = "unet.up_blocks.1.attentions.0.proj_in.weight"
        shared = ("unet", "up_blocks.1.attentions.0.proj_in")
        torch.testing.assert_close(after[key], before[key] + 0.5 * a[shared] - 1.0 * b[shared], rtol=1e-5, atol=1e-5)
        apply_loras(sd15, specs[:1])
        _check_merged(sd15, before, a, 0.5)
    apply_loras(sd15, [])
    _assert_restored(sd15, before)


def test_sdxl_kohya_ldm_names_and_both_text_encoders(sdxl: object, tmp_path: Path) -> None:
    # tiny SDXL: layers_per_block=1, so down_blocks.1.attentions.0 is input_blocks.3.1 and
    # up_blocks.0.attentions.1 is output_blocks.1.1 in the original layout.
    targets = [
        ("unet", "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q", "lora_unet_input_blocks_3_1_transformer_blocks_1_attn1_to_q"),
        ("unet", "up_blocks.0.attentions.1.proj_out", "lora_unet_output_blocks_1_1_proj_out"),
        ("unet", "mid_block.attentions.0.transformer_blocks.0.ff.net.2", "lora_unet_middle_block_1_transformer_blocks_0_ff_net_2"),
        ("unet", "down_blocks.0.resnets.0.conv2", "lora_unet_input_blocks_1_0_out_layers_3"),
        ("text_encoder", "encoder.layers.1.mlp.fc1", "lora_te1_text_model_encoder_layers_1_mlp_fc1"),
        ("text_encoder_2", "text_model.encoder.layers.0.self_attn.out_proj", "lora_te2_text_model_encoder_layers_0_self_attn_out_proj"),
    ]
    before = _snapshot(sdxl)
    deltas = _kohya_file(sdxl, tmp_path / "xl.safetensors", targets, alpha=8.0)
    apply_loras(sdxl, [LoraSpec(str(tmp_path / "xl.safetensors"), 0.25)])
    _check_merged(sdxl, before, deltas, 0.25)
    remove_loras(sdxl)
    _assert_restored(sdxl, before)


def test_lora_for_another_family_is_refused_atomically(sd15: object, sdxl: object, tmp_path: Path) -> None:
    before = _snapshot(sd15)
    good = _kohya_file(sd15, tmp_path / "good.safetensors", SD15_TARGETS)
    assert good
    # SDXL-only module names: nothing matches the SD 1.x UNet.
    _kohya_file(sdxl, tmp_path / "xl.safetensors", [
        ("text_encoder_2", "text_model.encoder.layers.0.self_attn.out_proj", "lora_te2_text_model_encoder_layers_0_self_attn_out_proj"),
        ("unet", "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q", "lora_unet_down_blocks_1_attentions_0_transformer_blocks_1_attn1_to_q"),
    ])  # fmt: skip
    with pytest.raises(UnsupportedModeError, match="another model family"):
        apply_loras(sd15, [LoraSpec(str(tmp_path / "good.safetensors")), LoraSpec(str(tmp_path / "xl.safetensors"))])
    _assert_restored(sd15, before)  # the first LoRA was rolled back
    # Right names, wrong sizes.
    weight = sd15.unet.get_submodule(SD15_TARGETS[0][1]).weight  # type: ignore[attr-defined]
    save_file({f"{SD15_TARGETS[0][2]}.lora_down.weight": torch.zeros(RANK, weight.shape[1] + 3),
               f"{SD15_TARGETS[0][2]}.lora_up.weight": torch.zeros(weight.shape[0], RANK)}, str(tmp_path / "size.safetensors"))  # fmt: skip
    with pytest.raises(UnsupportedModeError, match="does not fit"):
        apply_loras(sd15, [LoraSpec(str(tmp_path / "size.safetensors"))])
    _assert_restored(sd15, before)


def test_not_a_lora_and_missing(sd15: object, tmp_path: Path) -> None:
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}, str(tmp_path / "ckpt.safetensors"))
    with pytest.raises(CorruptModelError, match="no LoRA"):
        apply_loras(sd15, [LoraSpec(str(tmp_path / "ckpt.safetensors"))])
    with pytest.raises(ModelNotFoundError):
        apply_loras(sd15, [LoraSpec(str(tmp_path / "nope.safetensors"))])
    save_file({"lora_unet_x.hada_w1_a": torch.zeros(2)}, str(tmp_path / "loha.safetensors"))
    with pytest.raises(UnsupportedModeError, match="LyCORIS"):
        load_lora_layers(tmp_path / "loha.safetensors", sd15)
    assert applied_loras(sd15) == ()


def test_lora_changes_the_image_and_removal_restores_it(sd15: object, tmp_path: Path) -> None:
    kwargs = {"prompt": "the cat", "num_inference_steps": 1, "height": 64, "width": 64, "output_type": "np"}
    base = sd15(generator=torch.Generator().manual_seed(0), **kwargs).images  # type: ignore[operator]
    _kohya_file(sd15, tmp_path / "s.safetensors", SD15_TARGETS)
    apply_loras(sd15, [LoraSpec(str(tmp_path / "s.safetensors"), 1.0)])
    styled = sd15(generator=torch.Generator().manual_seed(0), **kwargs).images  # type: ignore[operator]
    remove_loras(sd15)
    again = sd15(generator=torch.Generator().manual_seed(0), **kwargs).images  # type: ignore[operator]
    assert not (styled == base).all()
    assert (again == base).all()


def test_separate_text_encoder_weight(sd15: object, tmp_path: Path) -> None:
    """<lora:NAME:te:unet>: the text encoder takes its own weight (here 0: untouched), the
    UNet the other."""
    before = _snapshot(sd15)
    deltas = _kohya_file(sd15, tmp_path / "s.safetensors", SD15_TARGETS)
    apply_loras(sd15, [LoraSpec(str(tmp_path / "s.safetensors"), 1.0, 0.0)])
    unet_only = {key: delta for key, delta in deltas.items() if key[0] == "unet"}
    _check_merged(sd15, before, unet_only, 1.0)
    # (_check_merged: exactly the UNet's targets changed; the text encoder's stayed as they were)
    remove_loras(sd15)
    _assert_restored(sd15, before)

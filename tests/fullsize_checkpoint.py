"""Test helper: a random-weight checkpoint in the released layout, loaded through the shipped configs.

Writes a full-size checkpoint (SD 1.5 ≈ 2 GB, SDXL ≈ 7 GB in fp16) with random weights
and loads it with no config override, i.e. exactly the path an artist's download takes:
shipped configs, shipped tokenizer, no network. Used by
``tests/inference/test_single_file_fullsize.py`` (SD 1.5, always run) and by
``tools/check_fullsize_loading.py`` (any family, SDXL included; too big for the suite).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["check_full_size_loading", "random_ldm_checkpoint"]


def random_ldm_checkpoint(family: str, path: Path) -> dict[str, torch.Tensor]:
    """Write a random fp16 checkpoint of ``family`` (``"sd15"``/``"sdxl"``) to ``path``; return its tensors."""
    import diffusers
    import transformers
    from ldm_checkpoint import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm
    from safetensors.torch import save_file
    from sfumato.inference.single_file import family_config_dir

    folder = family_config_dir(family)
    unet_cfg = json.loads((folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    with torch.device("meta"):
        parts = {
            "unet": diffusers.UNet2DConditionModel.from_config(unet_cfg).state_dict(),
            "vae": diffusers.AutoencoderKL.from_config(vae_cfg).state_dict(),
            "te1": transformers.CLIPTextModel(transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder")).state_dict(),
        }
        if family == "sdxl":
            config2 = transformers.CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            parts["te2"] = transformers.CLIPTextModelWithProjection(config2).state_dict()
    gen = torch.Generator().manual_seed(0)

    def fill(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            k: (torch.randn(v.shape, generator=gen) * 0.02).half() if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
            for k, v in state.items()
        }

    ldm = unet_to_ldm(fill(parts["unet"]), unet_cfg) | vae_to_ldm(fill(parts["vae"]), vae_cfg)
    if family == "sdxl":
        ldm |= clip_to_ldm(fill(parts["te1"]), "conditioner.embedders.0.transformer.")
        ldm |= open_clip_to_ldm(fill(parts["te2"]), "conditioner.embedders.1.model.")
    else:
        ldm |= clip_to_ldm(fill(parts["te1"]), "cond_stage_model.transformer.")
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(path))
    return ldm


def check_full_size_loading(family: str, path: Path) -> None:
    """Write a random ``family`` checkpoint at ``path``, load it offline and assert the weights landed."""
    from sfumato.inference.detect import detect_family, read_safetensors_header
    from sfumato.inference.single_file import load_single_file

    ldm = random_ldm_checkpoint(family, path)
    assert detect_family(read_safetensors_header(path).shapes) == family
    pipe = load_single_file(path, torch_dtype=torch.float16)
    prefix = "model.diffusion_model."
    assert torch.equal(pipe.unet.conv_in.weight, ldm[prefix + "input_blocks.0.0.weight"])
    assert torch.equal(pipe.unet.conv_out.weight, ldm[prefix + "out.2.weight"])
    te_prefix = "conditioner.embedders.0.transformer." if family == "sdxl" else "cond_stage_model.transformer."
    token_key = te_prefix + "text_model.embeddings.token_embedding.weight"
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight, ldm[token_key])
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    if family == "sdxl":
        fused = ldm["conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight"]
        k_proj = pipe.text_encoder_2.text_model.encoder.layers[31].self_attn.k_proj.weight
        assert torch.equal(k_proj, fused[1280:2560])
        assert pipe.tokenizer_2.pad_token == "!"
        assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    else:
        assert type(pipe.scheduler).__name__ == "PNDMScheduler"

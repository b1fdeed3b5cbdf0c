"""Tiny transformer-family checkpoints fabricated in the test session, in the layouts
artists download: Black Forest Labs' / the original authors' key names, ComfyUI's
``model.diffusion_model.`` prefix, diffusers' names.

The original layouts are written here by hand, from diffusers' layout of a tiny random
model (the inverse of what a loader must undo), so a test compares the loader's result
with the source model and not with the loader's own key table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "chroma_to_bfl",
    "flux2_to_bfl",
    "flux_to_bfl",
    "save",
    "sd3_to_original",
    "tiny_chroma",
    "tiny_clip",
    "tiny_flux",
    "tiny_flux2",
    "tiny_qwen3",
    "qwenimage_vae_to_wan",
    "tiny_qwenimage",
    "tiny_qwenimage_vae",
    "tiny_sd3",
    "tiny_t5",
    "tiny_vae16",
    "tiny_zimage",
    "vae_to_ldm",
    "write_flux_config_folder",
    "write_t5_tokenizer",
    "zimage_to_original",
]

COMFY = "model.diffusion_model."


def save(path: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> Path:
    """Write ``tensors`` (contiguous copies, optionally cast) as a safetensors file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for k, v in tensors.items():
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous().clone()
    save_file(out, str(path))
    return path


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- tiny models


def tiny_flux(guidance: bool = True, in_channels: int = 64, heads: int = 2, head_dim: int = 8, seed: int = 0,
              out_channels: int | None = None) -> Any:
    import diffusers

    _seeded(seed)
    return diffusers.FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=out_channels, num_layers=1, num_single_layers=2, attention_head_dim=head_dim,
        num_attention_heads=heads, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=guidance,
        axes_dims_rope=(2, 2, head_dim - 4),
    ).eval()


def tiny_chroma(seed: int = 1) -> Any:
    import diffusers

    _seeded(seed)
    return diffusers.ChromaTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=32, axes_dims_rope=(2, 2, 4), approximator_num_channels=16, approximator_hidden_dim=32,
        approximator_layers=2,
    ).eval()


def tiny_sd3(seed: int = 2) -> Any:
    import diffusers

    _seeded(seed)
    return diffusers.SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=32, caption_projection_dim=16, pooled_projection_dim=32, out_channels=16,
        pos_embed_max_size=16,
    ).eval()


def tiny_flux2(seed: int = 3) -> Any:
    import diffusers

    _seeded(seed)
    return diffusers.Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=48, timestep_guidance_channels=16, mlp_ratio=3.0, axes_dims_rope=(2, 2, 2, 2),
        guidance_embeds=False,
    ).eval()


def tiny_zimage(seed: int = 4) -> Any:
    import diffusers

    _seeded(seed)
    return diffusers.ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1, n_heads=2,
        n_kv_heads=2, cap_feat_dim=24, axes_dims=[4, 6, 6], axes_lens=[64, 32, 32],
    ).eval()


def tiny_qwenimage(seed: int = 5) -> Any:
    import diffusers

    _seeded(seed)
    return diffusers.QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=24, axes_dims_rope=(2, 2, 4),
    ).eval()


def tiny_clip(vocab: int, seed: int = 6) -> Any:
    import transformers

    _seeded(seed)
    config = transformers.CLIPTextConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=32, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=1,
    )
    return transformers.CLIPTextModel(config).eval()


def tiny_t5(vocab: int = 64, seed: int = 7) -> Any:
    import transformers

    _seeded(seed)
    config = transformers.T5Config(
        vocab_size=vocab, d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2, feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=8, relative_attention_max_distance=16, is_encoder_decoder=False,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    return transformers.T5EncoderModel(config).eval()


def tiny_qwen3(seed: int = 8, causal: bool = False) -> Any:
    import transformers

    _seeded(seed)
    config = transformers.Qwen3Config(
        vocab_size=64, hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=12, tie_word_embeddings=True, max_position_embeddings=128,
    )
    cls = transformers.Qwen3ForCausalLM if causal else transformers.Qwen3Model
    return cls(config).eval()


def tiny_vae16(seed: int = 9, latent: int = 16) -> Any:
    import diffusers

    _seeded(seed)
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1, latent_channels=latent,
        norm_num_groups=4, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()


# --------------------------------------------------------------------------- original layouts


def _swap(value: torch.Tensor) -> torch.Tensor:
    """diffusers' (scale, shift) → the original (shift, scale) of a final adaLN."""
    scale, shift = value.chunk(2, dim=0)
    return torch.cat([shift, scale], dim=0)


def flux_to_bfl(model: Any, chroma: bool = False) -> dict[str, torch.Tensor]:
    """A diffusers FLUX.1 (or Chroma) transformer's weights in Black Forest Labs' names."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}

    def wb(new: str, old: str) -> None:
        out[f"{new}.weight"] = sd.pop(f"{old}.weight")
        out[f"{new}.bias"] = sd.pop(f"{old}.bias")

    def cat(new: str, olds: list[str]) -> None:
        for p in ("weight", "bias"):
            out[f"{new}.{p}"] = torch.cat([sd.pop(f"{o}.{p}") for o in olds], dim=0)

    if chroma:
        wb("distilled_guidance_layer.in_proj", "distilled_guidance_layer.in_proj")
        wb("distilled_guidance_layer.out_proj", "distilled_guidance_layer.out_proj")
        i = 0
        while f"distilled_guidance_layer.layers.{i}.linear_1.weight" in sd:
            wb(f"distilled_guidance_layer.layers.{i}.in_layer", f"distilled_guidance_layer.layers.{i}.linear_1")
            wb(f"distilled_guidance_layer.layers.{i}.out_layer", f"distilled_guidance_layer.layers.{i}.linear_2")
            out[f"distilled_guidance_layer.norms.{i}.scale"] = sd.pop(f"distilled_guidance_layer.norms.{i}.weight")
            i += 1
    else:
        wb("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1")
        wb("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2")
        wb("vector_in.in_layer", "time_text_embed.text_embedder.linear_1")
        wb("vector_in.out_layer", "time_text_embed.text_embedder.linear_2")
        if "time_text_embed.guidance_embedder.linear_1.weight" in sd:
            wb("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1")
            wb("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2")
    wb("txt_in", "context_embedder")
    wb("img_in", "x_embedder")
    i = 0
    while f"transformer_blocks.{i}.attn.to_q.weight" in sd:
        n, o = f"transformer_blocks.{i}", f"double_blocks.{i}"
        if not chroma:
            wb(f"{o}.img_mod.lin", f"{n}.norm1.linear")
            wb(f"{o}.txt_mod.lin", f"{n}.norm1_context.linear")
        cat(f"{o}.img_attn.qkv", [f"{n}.attn.to_q", f"{n}.attn.to_k", f"{n}.attn.to_v"])
        cat(f"{o}.txt_attn.qkv", [f"{n}.attn.add_q_proj", f"{n}.attn.add_k_proj", f"{n}.attn.add_v_proj"])
        out[f"{o}.img_attn.norm.query_norm.scale"] = sd.pop(f"{n}.attn.norm_q.weight")
        out[f"{o}.img_attn.norm.key_norm.scale"] = sd.pop(f"{n}.attn.norm_k.weight")
        out[f"{o}.txt_attn.norm.query_norm.scale"] = sd.pop(f"{n}.attn.norm_added_q.weight")
        out[f"{o}.txt_attn.norm.key_norm.scale"] = sd.pop(f"{n}.attn.norm_added_k.weight")
        wb(f"{o}.img_attn.proj", f"{n}.attn.to_out.0")
        wb(f"{o}.txt_attn.proj", f"{n}.attn.to_add_out")
        wb(f"{o}.img_mlp.0", f"{n}.ff.net.0.proj")
        wb(f"{o}.img_mlp.2", f"{n}.ff.net.2")
        wb(f"{o}.txt_mlp.0", f"{n}.ff_context.net.0.proj")
        wb(f"{o}.txt_mlp.2", f"{n}.ff_context.net.2")
        i += 1
    i = 0
    while f"single_transformer_blocks.{i}.attn.to_q.weight" in sd:
        n, o = f"single_transformer_blocks.{i}", f"single_blocks.{i}"
        if not chroma:
            wb(f"{o}.modulation.lin", f"{n}.norm.linear")
        cat(f"{o}.linear1", [f"{n}.attn.to_q", f"{n}.attn.to_k", f"{n}.attn.to_v", f"{n}.proj_mlp"])
        out[f"{o}.norm.query_norm.scale"] = sd.pop(f"{n}.attn.norm_q.weight")
        out[f"{o}.norm.key_norm.scale"] = sd.pop(f"{n}.attn.norm_k.weight")
        wb(f"{o}.linear2", f"{n}.proj_out")
        i += 1
    wb("final_layer.linear", "proj_out")
    if not chroma:
        out["final_layer.adaLN_modulation.1.weight"] = _swap(sd.pop("norm_out.linear.weight"))
        out["final_layer.adaLN_modulation.1.bias"] = _swap(sd.pop("norm_out.linear.bias"))
    assert not sd, f"unmapped: {sorted(sd)[:5]}"
    return out


def chroma_to_bfl(model: Any) -> dict[str, torch.Tensor]:
    return flux_to_bfl(model, chroma=True)


def flux2_to_bfl(model: Any) -> dict[str, torch.Tensor]:
    """A diffusers FLUX.2 transformer's weights in Black Forest Labs' names (no biases)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    renames = {
        "x_embedder.weight": "img_in.weight", "context_embedder.weight": "txt_in.weight",
        "time_guidance_embed.timestep_embedder.linear_1.weight": "time_in.in_layer.weight",
        "time_guidance_embed.timestep_embedder.linear_2.weight": "time_in.out_layer.weight",
        "double_stream_modulation_img.linear.weight": "double_stream_modulation_img.lin.weight",
        "double_stream_modulation_txt.linear.weight": "double_stream_modulation_txt.lin.weight",
        "single_stream_modulation.linear.weight": "single_stream_modulation.lin.weight",
        "proj_out.weight": "final_layer.linear.weight",
    }  # fmt: skip
    for new, old in renames.items():
        out[old] = sd.pop(new)
    out["final_layer.adaLN_modulation.1.weight"] = _swap(sd.pop("norm_out.linear.weight"))
    i = 0
    while f"transformer_blocks.{i}.attn.to_q.weight" in sd:
        n, o = f"transformer_blocks.{i}", f"double_blocks.{i}"
        out[f"{o}.img_attn.qkv.weight"] = torch.cat([sd.pop(f"{n}.attn.to_{x}.weight") for x in "qkv"])
        out[f"{o}.txt_attn.qkv.weight"] = torch.cat([sd.pop(f"{n}.attn.add_{x}_proj.weight") for x in "qkv"])
        for new, old in {"attn.norm_q.weight": "img_attn.norm.query_norm.scale",
                         "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
                         "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
                         "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
                         "attn.to_out.0.weight": "img_attn.proj.weight", "attn.to_add_out.weight": "txt_attn.proj.weight",
                         "ff.linear_in.weight": "img_mlp.0.weight", "ff.linear_out.weight": "img_mlp.2.weight",
                         "ff_context.linear_in.weight": "txt_mlp.0.weight",
                         "ff_context.linear_out.weight": "txt_mlp.2.weight"}.items():  # fmt: skip
            out[f"{o}.{old}"] = sd.pop(f"{n}.{new}")
        i += 1
    i = 0
    while f"single_transformer_blocks.{i}.attn.to_qkv_mlp_proj.weight" in sd:
        n, o = f"single_transformer_blocks.{i}", f"single_blocks.{i}"
        out[f"{o}.linear1.weight"] = sd.pop(f"{n}.attn.to_qkv_mlp_proj.weight")
        out[f"{o}.linear2.weight"] = sd.pop(f"{n}.attn.to_out.weight")
        out[f"{o}.norm.query_norm.scale"] = sd.pop(f"{n}.attn.norm_q.weight")
        out[f"{o}.norm.key_norm.scale"] = sd.pop(f"{n}.attn.norm_k.weight")
        i += 1
    assert not sd, f"unmapped: {sorted(sd)[:5]}"
    return out


def sd3_to_original(model: Any) -> dict[str, torch.Tensor]:
    """A diffusers SD 3 / 3.5 transformer's weights in Stability's MMDiT names."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}

    def wb(old: str, new: str, swap: bool = False) -> None:
        for p in ("weight", "bias"):
            value = sd.pop(f"{new}.{p}")
            out[f"{old}.{p}"] = _swap(value) if swap else value

    out["pos_embed"] = sd.pop("pos_embed.pos_embed")
    wb("x_embedder.proj", "pos_embed.proj")
    wb("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1")
    wb("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2")
    wb("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1")
    wb("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")
    wb("context_embedder", "context_embedder")
    count = model.config.num_layers
    for i in range(count):
        n, o = f"transformer_blocks.{i}", f"joint_blocks.{i}"
        last = i == count - 1
        for p in ("weight", "bias"):
            out[f"{o}.x_block.attn.qkv.{p}"] = torch.cat([sd.pop(f"{n}.attn.to_{x}.{p}") for x in "qkv"])
            out[f"{o}.context_block.attn.qkv.{p}"] = torch.cat([sd.pop(f"{n}.attn.add_{x}_proj.{p}") for x in "qkv"])
        wb(f"{o}.x_block.attn.proj", f"{n}.attn.to_out.0")
        for new, old in (("attn.norm_q", "x_block.attn.ln_q"), ("attn.norm_k", "x_block.attn.ln_k"),
                         ("attn.norm_added_q", "context_block.attn.ln_q"), ("attn.norm_added_k", "context_block.attn.ln_k"),
                         ("attn2.norm_q", "x_block.attn2.ln_q"), ("attn2.norm_k", "x_block.attn2.ln_k")):
            if f"{n}.{new}.weight" in sd:  # SD 3.5's RMS norms of queries and keys
                out[f"{o}.{old}.weight"] = sd.pop(f"{n}.{new}.weight")
        if f"{n}.attn2.to_q.weight" in sd:  # SD 3.5 medium's second self-attention (MMDiT-X)
            for p in ("weight", "bias"):
                out[f"{o}.x_block.attn2.qkv.{p}"] = torch.cat([sd.pop(f"{n}.attn2.to_{x}.{p}") for x in "qkv"])
            wb(f"{o}.x_block.attn2.proj", f"{n}.attn2.to_out.0")
        wb(f"{o}.x_block.adaLN_modulation.1", f"{n}.norm1.linear")
        wb(f"{o}.context_block.adaLN_modulation.1", f"{n}.norm1_context.linear", swap=last)
        wb(f"{o}.x_block.mlp.fc1", f"{n}.ff.net.0.proj")
        wb(f"{o}.x_block.mlp.fc2", f"{n}.ff.net.2")
        if not last:
            wb(f"{o}.context_block.attn.proj", f"{n}.attn.to_add_out")
            wb(f"{o}.context_block.mlp.fc1", f"{n}.ff_context.net.0.proj")
            wb(f"{o}.context_block.mlp.fc2", f"{n}.ff_context.net.2")
    wb("final_layer.linear", "proj_out")
    wb("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True)
    assert not sd, f"unmapped: {sorted(sd)[:5]}"
    return out


def zimage_to_original(model: Any) -> dict[str, torch.Tensor]:
    """A diffusers Z-Image transformer's weights in Alibaba's names (fused qkv)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for key in list(sd):
        if key.endswith(".attention.to_q.weight"):
            stem = key[: -len("to_q.weight")]
            out[stem + "qkv.weight"] = torch.cat([sd.pop(stem + f"to_{x}.weight") for x in "qkv"])
    for key, value in sd.items():
        new = (key.replace("all_x_embedder.2-1.", "x_embedder.").replace("all_final_layer.2-1.", "final_layer.")
               .replace(".attention.to_out.0.", ".attention.out.").replace(".attention.norm_q.", ".attention.q_norm.")
               .replace(".attention.norm_k.", ".attention.k_norm."))
        out[new] = value
    return out


def vae_to_ldm(model: Any) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL's weights in the original (LDM / ``ae.safetensors``) names."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    levels = len(model.config.block_out_channels)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        new = key
        for side in ("encoder", "decoder"):
            new = new.replace(f"{side}.conv_norm_out.", f"{side}.norm_out.")
            new = new.replace(f"{side}.mid_block.resnets.0.", f"{side}.mid.block_1.")
            new = new.replace(f"{side}.mid_block.resnets.1.", f"{side}.mid.block_2.")
            new = new.replace(f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1.")
        for i in range(levels):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{levels - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{levels - 1 - i}.upsample.")
        new = new.replace(".conv_shortcut.", ".nin_shortcut.")
        if ".mid.attn_1." in new:
            new = (new.replace(".group_norm.", ".norm.").replace(".to_q.", ".q.").replace(".to_k.", ".k.")
                   .replace(".to_v.", ".v.").replace(".to_out.0.", ".proj_out."))
            if new.endswith("weight") and value.ndim == 2:
                value = value[:, :, None, None]  # the original attention is made of 1×1 convolutions
        out[new] = value
    return out


def tiny_qwenimage_vae(seed: int = 10) -> Any:
    """A tiny Qwen-Image VAE with the released block structure (four levels, two residual
    blocks each: the structure ComfyUI's Wan-style names encode)."""
    import diffusers

    _seeded(seed)
    return diffusers.AutoencoderKLQwenImage(
        base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True],
    ).eval()


_WAN_RESIDUAL = {"norm1.gamma": "residual.0.gamma", "conv1.": "residual.2.", "norm2.gamma": "residual.3.gamma",
                 "conv2.": "residual.6.", "conv_shortcut.": "shortcut."}  # fmt: skip


def qwenimage_vae_to_wan(vae: Any) -> dict[str, torch.Tensor]:
    """A diffusers Qwen-Image VAE's weights in the original Wan names ComfyUI's
    ``qwen_image_vae.safetensors`` uses (decoder levels flattened: three residual blocks
    and an upsampler per level)."""
    out: dict[str, torch.Tensor] = {}

    def residual(tail: str) -> str:
        for new, old in _WAN_RESIDUAL.items():
            if tail.startswith(new):
                return old + tail[len(new):]
        return tail

    for key, value in vae.state_dict().items():
        side, rest = key.split(".", 1)
        if key.startswith(("quant_conv.", "post_quant_conv.")):
            name = ("conv1." if key.startswith("quant_conv.") else "conv2.") + key.split(".", 1)[1]
        elif rest.startswith("conv_in."):
            name = f"{side}.conv1.{rest[len('conv_in.'):]}"
        elif rest.startswith("norm_out."):
            name = f"{side}.head.0.{rest[len('norm_out.'):]}"
        elif rest.startswith("conv_out."):
            name = f"{side}.head.2.{rest[len('conv_out.'):]}"
        elif rest.startswith("mid_block.attentions.0."):
            name = f"{side}.middle.1.{rest[len('mid_block.attentions.0.'):]}"
        elif rest.startswith("mid_block.resnets."):
            index, tail = rest[len("mid_block.resnets."):].split(".", 1)
            name = f"{side}.middle.{2 * int(index)}.{residual(tail)}"
        elif rest.startswith("down_blocks."):
            index, tail = rest[len("down_blocks."):].split(".", 1)
            name = f"encoder.downsamples.{index}.{residual(tail)}"
        elif rest.startswith("up_blocks."):
            level, tail = rest[len("up_blocks."):].split(".", 1)
            if tail.startswith("upsamplers.0."):
                name = f"decoder.upsamples.{4 * int(level) + 3}.{tail[len('upsamplers.0.'):]}"
            else:
                block, tail = tail[len("resnets."):].split(".", 1)
                name = f"decoder.upsamples.{4 * int(level) + int(block)}.{residual(tail)}"
        else:
            raise AssertionError(f"unmapped: {key}")
        out[name] = value.detach().clone()
    return out


# --------------------------------------------------------------------------- configs, tokenizers


def write_t5_tokenizer(folder: Path, vocab: int = 64) -> Path:
    """A tiny SentencePiece-style (Unigram) T5 tokenizer, saved with ``save_pretrained``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    words = ["▁a", "▁cat", "▁dog", "▁sky", "▁the", "▁red", "▁blue", "a", "c", "t", "d", "o", "g", "s", "k", "y", "e",
             "r", "b", "l", "u", "h", "▁"]  # fmt: skip
    pieces += [(w, -float(i + 1)) for i, w in enumerate(words)]
    pieces = pieces[:vocab]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    fast = T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return folder


def write_flux_config_folder(folder: Path, transformer: Any, clip: Any, t5: Any, vae: Any) -> Path:
    """A diffusers-format config folder for a tiny FLUX.1 (``config=`` of the loader)."""
    for name, model in (("transformer", transformer), ("vae", vae)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "config.json").write_text(json.dumps(dict(model.config, _class_name=type(model).__name__)))
    clip.config.save_pretrained(str(folder / "text_encoder"))
    t5.config.architectures = ["T5EncoderModel"]
    t5.config.save_pretrained(str(folder / "text_encoder_2"))
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0}
    ))
    return folder

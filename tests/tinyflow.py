"""Tiny, randomly initialised diffusers folders for the flow-matching transformer families.

The companion of ``tinymodels`` (the UNet families) for FLUX.1 (dev, schnell, Fill),
Chroma, SD 3.5, Z-Image, Qwen-Image and FLUX.2 Klein, and their ControlNets::

    from tinyflow import build_tiny_flux, tiny_flow_model
    path = build_tiny_flux(tmp_path / "flux")   # a diffusers folder, a few hundred KB
    path = tiny_flow_model("flux")              # one build per test process (see KINDS)

Each builder writes what ``<Pipeline>.from_pretrained(path, local_files_only=True)`` reads:
``model_index.json``, the transformer, the VAE, the text encoder(s) with their tokenizers
and a scheduler config. Weights are random but seeded (``torch.manual_seed`` before each
module), so two builds are byte-identical. Everything is built here, offline:

* **T5** (FLUX, Chroma, SD3): a ``T5Tokenizer`` over a small Unigram vocabulary made with
  ``tokenizers`` (T5's ``<pad>``=0, ``</s>``=1, ``<unk>``=2, the ``$A </s>`` post-processor,
  ``▁`` word pieces for a few words and single characters for the rest, so unknown words
  are spelled out and different prompts give different ids).
* **CLIP** (FLUX, SD3): the byte-level BPE of ``tinymodels.write_tiny_clip_tokenizer``.
* **Qwen** (Z-Image, FLUX.2 Klein, Qwen-Image): a ``Qwen2Tokenizer`` (Qwen's split regex +
  byte-level BPE) with the chat special tokens and a chat template that renders a
  single user message exactly as Qwen3's does (``enable_thinking=False`` appends the empty
  ``<think>\\n\\n</think>\\n\\n`` block, as Qwen3's template does; Flux2Klein asks for that,
  Z-Image asks for ``enable_thinking=True``). QwenImagePipeline drops the first 34 tokens of
  its prompt template (the system prompt and ``<|im_start|>user\\n``), counted for the real
  Qwen vocabulary: the merges here make every word of that system prompt one token, so the
  template prefix is exactly 34 tokens too and the prompt's own tokens are what remain.

Sizes and shapes worth knowing:

* The VAEs keep the real 8× spatial factor, and the real latent channels (16; FLUX.2: 32,
  128 after its 2×2 patchify, 16× in all). Every family takes multiples of 16 px (48×48
  and 96×64 run too); FLUX.1, Chroma, Qwen-Image and FLUX.2 round other sizes down with a
  warning, SD3 and Z-Image raise. SD3's ``pos_embed_max_size`` 32 caps it at 512 px.
* FLUX.2 Klein sends all 512 Qwen3 positions, padding included, to the transformer
  unmasked (diffusers' pipeline does), so the hidden states at padding positions count.
* FLUX.2 Klein's pipeline stacks Qwen3 hidden states 9, 18 and 27 (``text_encoder_out_layers``
  default), so its tiny Qwen3 has 28 layers (hidden 16), and the transformer's
  ``joint_attention_dim`` is 3 × 16. Its VAE batch-norm statistics are random (not 0/1), so
  an engine that forgets them differs from the pipeline.
* Z-Image takes Qwen3's hidden state -2 and pads the image sequence with a learned
  ``x_pad_token`` (``torch.empty`` in diffusers, seeded here).
* ChromaPipeline keeps the first padding token of the T5 sequence unmasked in the
  transformer (all 512 positions stay; the ones after it are masked).
* ControlNets: their zero-initialised projections get small random weights, or they would
  add nothing; builders take the transformer's shape so they match the tiny transformer.
* Scheduler configs follow the public model repositories' (dynamic shifting for FLUX.1 dev,
  Chroma, Qwen-Image and FLUX.2; a fixed shift for schnell, SD3 and Z-Image).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from tinymodels import _Seeded, write_tiny_clip_tokenizer  # noqa: E402

_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from tools.make_clip_tokenizer import bytes_to_unicode  # noqa: E402

__all__ = [
    "build_tiny_chroma",
    "build_tiny_flux",
    "build_tiny_flux2_klein",
    "build_tiny_flux_controlnet",
    "build_tiny_qwenimage",
    "build_tiny_qwenimage21",
    "build_tiny_qwenimage_controlnet",
    "build_tiny_sd3",
    "build_tiny_sd3_controlnet",
    "build_tiny_zimage",
    "build_tiny_zimage_controlnet",
    "folder_bytes",
    "qwen_tokenizer",
    "t5_tokenizer",
    "tiny_flow_model",
    "KINDS",
]

# --- tokenizers ---------------------------------------------------------------------------

_WORDS = ("a", "the", "cat", "dog", "red", "blue", "green", "sky", "photo", "of", "and", "in",
          "on", "painting", "portrait", "forest", "house", "woman", "man", "light")  # fmt: skip


def t5_tokenizer() -> Any:
    """A T5 tokenizer (Unigram, ~130 pieces): ``<pad>``=0, ``</s>``=1, ``<unk>``=2, then ``▁``,
    printable ASCII one character a piece and a few ``▁word`` pieces; ``</s>`` is appended."""
    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(chr(c), -6.0) for c in range(33, 127)]
    pieces += [("▁" + w, -3.0 - 0.1 * i) for i, w in enumerate(_WORDS)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


# The words of QwenImagePipeline's system prompt, one token each (as with Qwen's vocabulary),
# plus a few prompt words; "Ġ" is byte-level BPE's space.
_QWEN_WORDS = ("system", "user", "assistant", "Describe", "Ġthe", "Ġimage", "Ġby", "Ġdetailing",
               "Ġcolor", "Ġshape", "Ġsize", "Ġtexture", "Ġquantity", "Ġtext", "Ġspatial",
               "Ġrelationships", "Ġof", "Ġobjects", "Ġand", "Ġbackground", "ĊĊ",
               *("Ġ" + w for w in _WORDS))  # fmt: skip
_QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")  # fmt: skip
# Qwen3's template, reduced to what these pipelines send (system/user/assistant messages
# with string content, the generation prompt and the empty thinking block).
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)


def _qwen_merges() -> list[tuple[str, str]]:
    """Left-to-right merges that make each of ``_QWEN_WORDS`` a single token."""
    merges: list[tuple[str, str]] = []
    for word in _QWEN_WORDS:
        left = word[0]
        for char in word[1:]:
            if (left, char) not in merges:
                merges.append((left, char))
            left += char
    return merges


def qwen_tokenizer() -> Any:
    """A Qwen2 byte-level BPE tokenizer (~400 tokens) with Qwen's chat special tokens,
    ``<think>``/``</think>`` and :data:`QWEN3_CHAT_TEMPLATE`; pads with ``<|endoftext|>``."""
    from transformers import AddedToken, Qwen2Tokenizer

    vocab: dict[str, int] = {}
    for char in bytes_to_unicode().values():
        vocab.setdefault(char, len(vocab))
    merges = _qwen_merges()
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for token in (*_QWEN_SPECIAL, "<think>", "</think>"):
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=131072)
    tokenizer.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(t, special=True, normalized=False) for t in _QWEN_SPECIAL[1:]
            ]
        }
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")]
    )
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    return tokenizer


def _clip_tokenizer(tmp: Path, pad_token: str = "<|endoftext|>") -> Any:
    from transformers import CLIPTokenizer

    write_tiny_clip_tokenizer(tmp)
    return CLIPTokenizer(
        str(tmp / "vocab.json"), str(tmp / "merges.txt"), pad_token=pad_token, model_max_length=77
    )


# --- text encoders ------------------------------------------------------------------------


def _clip(tokenizer: Any, hidden: int, *, projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=hidden, hidden_act="quick_gelu",
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )  # fmt: skip
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _t5(tokenizer: Any, d_model: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=2,
        num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=32,
        dropout_rate=0.0, feed_forward_proj="gated-gelu", is_encoder_decoder=False,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    return T5EncoderModel(config).eval()


def _qwen3_config(tokenizer: Any, layers: int, hidden: int) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2, max_position_embeddings=1024,
        tie_word_embeddings=True, rope_theta=1000000.0,
        bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )  # fmt: skip


# --- VAEs and schedulers -------------------------------------------------------------------

_VAE_CHANNELS = (8, 8, 8, 8)  # four levels: the real 8x downsampling


def _vae_kl(latent_channels: int, scaling_factor: float, shift_factor: float | None) -> Any:
    """The FLUX.1/SD3/Z-Image style AutoencoderKL (no quant convs, like theirs)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=_VAE_CHANNELS, layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=8, sample_size=64, scaling_factor=scaling_factor,
        shift_factor=shift_factor, use_quant_conv=False, use_post_quant_conv=False,
    )  # fmt: skip


def _flow_scheduler(**config: Any) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, **config)


_DYNAMIC = {"use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
            "max_image_seq_len": 4096, "shift": 3.0}  # fmt: skip


def _wake(module: Any, std: float = 0.05) -> Any:
    """Give the all-zero weights of ``module``'s linear and convolution layers small random
    values: diffusers zero-initialises ControlNet projections (and a few embedders), so a
    fresh one adds nothing and no test could see whether it is wired in."""
    import torch

    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, torch.nn.Linear | torch.nn.Conv2d) and not sub.weight.any():
                torch.nn.init.normal_(sub.weight, std=std)
    return module


# --- building -----------------------------------------------------------------------------


def _done(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "config.json").is_file()


def _save(pipe: Any, path: Path, *scratch: Path) -> Path:
    pipe.save_pretrained(str(path), safe_serialization=True)
    for folder in scratch:
        shutil.rmtree(folder, ignore_errors=True)
    return path


# FLUX.1: 2 heads of 16, RoPE axes 4+6+6 (the real 16+56+56 scaled), T5 d_model 32, CLIP-L 32.
_FLUX = {"num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16, "num_attention_heads": 2,
         "joint_attention_dim": 32, "pooled_projection_dim": 32, "axes_dims_rope": (4, 6, 6)}  # fmt: skip


def build_tiny_flux(
    path: Path, *, guidance_embeds: bool = True, fill: bool = False, seed: int = 0
) -> Path:
    """A tiny FLUX.1 folder: ``FluxPipeline`` (dev-like with ``guidance_embeds=True``,
    schnell-like without: no guidance embedder, fixed shift 1.0) or, with ``fill=True``, a
    ``FluxFillPipeline`` whose transformer takes 384 channels (64 packed latents + 64 packed
    masked-image latents + 256 = the 8×8 pixel mask of each latent pixel, 2×2-packed) and
    returns 64."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import FluxFillPipeline, FluxPipeline, FluxTransformer2DModel

    with _Seeded(seed + 10):
        tokenizer = _clip_tokenizer(path / "_tok")
    with _Seeded(seed + 11):
        text_encoder = _clip(tokenizer, 32, projection=False)
    tokenizer_2 = t5_tokenizer()
    with _Seeded(seed + 12):
        text_encoder_2 = _t5(tokenizer_2, 32)
    with _Seeded(seed + 13):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=384 if fill else 64, out_channels=64 if fill else None,
            guidance_embeds=guidance_embeds, **_FLUX,
        )  # fmt: skip
    with _Seeded(seed + 14):
        vae = _vae_kl(16, 0.3611, 0.1159)
    if guidance_embeds:
        scheduler = _flow_scheduler(**_DYNAMIC)
    else:
        scheduler = _flow_scheduler(**{**_DYNAMIC, "use_dynamic_shifting": False, "shift": 1.0})
    parts = {"scheduler": scheduler, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
             "text_encoder_2": text_encoder_2, "tokenizer_2": tokenizer_2, "transformer": transformer}  # fmt: skip
    pipe = (
        FluxFillPipeline(**parts)
        if fill
        else FluxPipeline(**parts, image_encoder=None, feature_extractor=None)
    )
    return _save(pipe, path, path / "_tok")


def build_tiny_flux_controlnet(path: Path, *, guidance_embeds: bool = True, seed: int = 0) -> Path:
    """A tiny ``FluxControlNetModel`` folder matching :func:`build_tiny_flux` (VAE-latent
    control input, one double and one single block; its zero-initialised projections woken)."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import FluxControlNetModel

    with _Seeded(seed + 15):
        controlnet = _wake(
            FluxControlNetModel(
                patch_size=1, in_channels=64, guidance_embeds=guidance_embeds, **_FLUX
            )
        )
    controlnet.save_pretrained(str(path), safe_serialization=True)
    return path


def build_tiny_chroma(path: Path, *, seed: int = 0) -> Path:
    """A tiny Chroma folder (``ChromaPipeline``: T5 only, the FLUX VAE, a modulation
    approximator in place of FLUX's per-block modulation)."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import ChromaPipeline, ChromaTransformer2DModel

    tokenizer = t5_tokenizer()
    with _Seeded(seed + 20):
        text_encoder = _t5(tokenizer, 32)
    with _Seeded(seed + 21):
        flux = {k: v for k, v in _FLUX.items() if k != "pooled_projection_dim"}
        transformer = ChromaTransformer2DModel(
            patch_size=1, in_channels=64, approximator_num_channels=16, approximator_hidden_dim=32,
            approximator_layers=1, **flux,
        )  # fmt: skip
    with _Seeded(seed + 22):
        vae = _vae_kl(16, 0.3611, 0.1159)
    pipe = ChromaPipeline(
        scheduler=_flow_scheduler(**_DYNAMIC), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        transformer=transformer, image_encoder=None, feature_extractor=None,
    )  # fmt: skip
    return _save(pipe, path)


# SD 3.5: 2 blocks (the first with dual attention, as in 3.5 Medium), RMS q/k norm, patch 2;
# CLIP-L 16 + CLIP-G 32 = 48 pooled, padded to T5's 64 for the joint sequence.
_SD3 = {"patch_size": 2, "in_channels": 16, "out_channels": 16, "attention_head_dim": 8, "num_attention_heads": 4,
        "joint_attention_dim": 64, "caption_projection_dim": 32, "pooled_projection_dim": 48,
        "qk_norm": "rms_norm", "pos_embed_max_size": 32, "sample_size": 8}  # fmt: skip


def build_tiny_sd3(path: Path, *, seed: int = 0) -> Path:
    """A tiny SD 3.5 folder (``StableDiffusion3Pipeline``: CLIP-L and CLIP-G with projections,
    T5, an MM-DiT with patch 2; ``sample_size`` 8 → 64 px by default, up to 512 px)."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    with _Seeded(seed + 30):
        tokenizer = _clip_tokenizer(path / "_tok")
        tokenizer_2 = _clip_tokenizer(path / "_tok2", pad_token="!")
    with _Seeded(seed + 31):
        text_encoder = _clip(tokenizer, 16, projection=True)
    with _Seeded(seed + 32):
        text_encoder_2 = _clip(tokenizer_2, 32, projection=True)
    tokenizer_3 = t5_tokenizer()
    with _Seeded(seed + 33):
        text_encoder_3 = _t5(tokenizer_3, 64)
    with _Seeded(seed + 34):
        transformer = SD3Transformer2DModel(num_layers=2, dual_attention_layers=(0,), **_SD3)
    with _Seeded(seed + 35):
        vae = _vae_kl(16, 1.5305, 0.0609)
    pipe = StableDiffusion3Pipeline(
        scheduler=_flow_scheduler(shift=3.0), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3, transformer=transformer, image_encoder=None, feature_extractor=None,
    )  # fmt: skip
    return _save(pipe, path, path / "_tok", path / "_tok2")


def build_tiny_sd3_controlnet(path: Path, *, seed: int = 0) -> Path:
    """A tiny ``SD3ControlNetModel`` folder matching :func:`build_tiny_sd3` (one block,
    sincos position embedding, VAE-latent control input; zero projections woken)."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import SD3ControlNetModel

    with _Seeded(seed + 36):
        controlnet = _wake(SD3ControlNetModel(num_layers=1, **_SD3))
    controlnet.save_pretrained(str(path), safe_serialization=True)
    return path


# Z-Image: dim 32 in 2 heads (RoPE axes 8+4+4 = head 16), 2 main layers, 1 refiner each.
_ZIMAGE = {"all_patch_size": (2,), "all_f_patch_size": (1,), "dim": 32, "n_refiner_layers": 1, "n_heads": 2,
           "n_kv_heads": 2, "norm_eps": 1e-5, "qk_norm": True}  # fmt: skip


def build_tiny_zimage(path: Path, *, seed: int = 0) -> Path:
    """A tiny Z-Image folder (``ZImagePipeline``: a 2-layer Qwen3 (hidden 16) whose hidden
    state -2 is the caption, the FLUX-style VAE, a single-stream DiT with patch 2)."""
    path = Path(path)
    if _done(path):
        return path
    import torch
    from diffusers import ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Model

    tokenizer = qwen_tokenizer()
    with _Seeded(seed + 40):
        text_encoder = Qwen3Model(_qwen3_config(tokenizer, layers=2, hidden=16))
    with _Seeded(seed + 41):
        transformer = ZImageTransformer2DModel(
            in_channels=16, n_layers=2, cap_feat_dim=16, rope_theta=256.0, t_scale=1000.0,
            axes_dims=[8, 4, 4], axes_lens=[1024, 512, 512], **_ZIMAGE,
        )  # fmt: skip
        with torch.no_grad():  # torch.empty in diffusers
            transformer.x_pad_token.normal_(std=0.5)
            transformer.cap_pad_token.normal_(std=0.5)
    with _Seeded(seed + 42):
        vae = _vae_kl(16, 0.3611, 0.1159)
    pipe = ZImagePipeline(
        scheduler=_flow_scheduler(shift=3.0), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        transformer=transformer,
    )  # fmt: skip
    return _save(pipe, path)


def build_tiny_zimage_controlnet(path: Path, *, seed: int = 0) -> Path:
    """A tiny ``ZImageControlNetModel`` folder for :func:`build_tiny_zimage` (the "Fun
    ControlNet Union" 1.0 layout: a control block at layer 0, 16 control channels). It holds
    only its own weights; the pipeline shares the transformer's embedders and refiners."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import ZImageControlNetModel

    with _Seeded(seed + 43):
        controlnet = _wake(
            ZImageControlNetModel(control_layers_places=[0], control_in_dim=16, **_ZIMAGE)
        )
    controlnet.save_pretrained(str(path), safe_serialization=True)
    return path


# Qwen-Image: 2 heads of 16, RoPE axes 4+6+6, joint dim = the Qwen2.5-VL hidden size 16.
_QWEN = {"patch_size": 2, "in_channels": 64, "out_channels": 16, "attention_head_dim": 16,
         "num_attention_heads": 2, "joint_attention_dim": 16, "axes_dims_rope": (4, 6, 6)}  # fmt: skip


def _qwen25_vl(tokenizer: Any) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 2048,
            "rope_theta": 1000000.0, "tie_word_embeddings": True, "bos_token_id": None,
            "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>"),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        },
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
                       "out_hidden_size": 16, "fullatt_block_indexes": [0]},
        vocab_size=len(tokenizer), tie_word_embeddings=True,
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        pad_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"), bos_token_id=None,
    )  # fmt: skip
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def build_tiny_qwenimage(path: Path, *, seed: int = 0) -> Path:
    """A tiny Qwen-Image folder (``QwenImagePipeline``: Qwen2.5-VL with a one-block vision
    tower, the causal 3-D ``AutoencoderKLQwenImage`` with the real 8× spatial factor and
    latent statistics, an MM-DiT with patch 2)."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import AutoencoderKLQwenImage, QwenImagePipeline, QwenImageTransformer2DModel

    tokenizer = qwen_tokenizer()
    with _Seeded(seed + 50):
        text_encoder = _qwen25_vl(tokenizer)
    with _Seeded(seed + 51):
        transformer = QwenImageTransformer2DModel(num_layers=2, guidance_embeds=False, **_QWEN)
    with _Seeded(seed + 52):
        vae = AutoencoderKLQwenImage(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                     temperal_downsample=[False, True, True])  # fmt: skip
    scheduler = _flow_scheduler(
        use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9, base_image_seq_len=256, max_image_seq_len=8192,
        shift=1.0, shift_terminal=0.02, time_shift_type="exponential",
    )  # fmt: skip
    pipe = QwenImagePipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    return _save(pipe, path)


def build_tiny_qwenimage_controlnet(path: Path, *, seed: int = 0) -> Path:
    """A tiny ``QwenImageControlNetModel`` folder matching :func:`build_tiny_qwenimage`
    (one block, VAE-latent control input; zero projections woken)."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import QwenImageControlNetModel

    with _Seeded(seed + 53):
        controlnet = _wake(QwenImageControlNetModel(num_layers=1, **_QWEN))
    controlnet.save_pretrained(str(path), safe_serialization=True)
    return path


# Qwen-Image 2.1: 2 heads of 16, RoPE axes 4+6+6, text width = the Qwen3-VL hidden size 16,
# 16 latent channels (the real 64) at the real 16x (five VAE levels).
_QWEN21_LATENTS = 16


def _qwen3_vl(tokenizer: Any) -> Any:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "max_position_embeddings": 2048,
            "rope_theta": 1000000.0, "tie_word_embeddings": True, "bos_token_id": None,
            "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>"),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "mrope_interleaved": True},
        },
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 16,
                       "deepstack_visual_indexes": [0], "patch_size": 16, "num_position_embeddings": 64},
        tie_word_embeddings=True, image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )  # fmt: skip
    return Qwen3VLForConditionalGeneration(config).eval()


def build_tiny_qwenimage21(path: Path, *, seed: int = 0, sample_sigmas: list[float] | None = None) -> Path:
    """A tiny Qwen-Image 2.1 folder (``QwenImage21Pipeline``: Qwen3-VL with a one-block vision
    tower, the RGBA ``AutoencoderKLQwenImage21`` at the real 16x with latent statistics, a
    2-block single-stream transformer). The processor folder holds the tokenizer alone
    (transformers builds Qwen3-VL's processor only with torchvision); ``model_index.json``
    names it as the real folders do, written here because the pipeline cannot save it.
    ``sample_sigmas``: a shipped sigma grid (2.1 Turbo's kind)."""
    path = Path(path)
    if _done(path):
        return path
    import json

    from diffusers import AutoencoderKLQwenImage21, QwenImage21Transformer2DModel

    tokenizer = qwen_tokenizer()
    z = _QWEN21_LATENTS
    with _Seeded(seed + 70):
        text_encoder = _qwen3_vl(tokenizer)
    with _Seeded(seed + 71):
        transformer = QwenImage21Transformer2DModel(
            in_channels=z, out_channels=z, num_layers=2, attention_head_dim=16, num_attention_heads=2,
            context_in_dim=16, axes_dims_rope=(4, 6, 6),
        )  # fmt: skip
    with _Seeded(seed + 72):
        vae = AutoencoderKLQwenImage21(
            base_dim=4, decoder_base_dim=4, z_dim=z, dim_mult=[1, 2, 2, 2, 2], num_res_blocks=1,
            temperal_downsample=[False, True, True, True], latents_mean=[0.1 * (i - 8) for i in range(z)],
            latents_std=[1.0 + 0.05 * i for i in range(z)],
        )  # fmt: skip
    scheduler = _flow_scheduler(
        use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9, base_image_seq_len=256, max_image_seq_len=8192,
        shift=1.0, time_shift_type="exponential",
    )  # fmt: skip
    scratch = path.with_name(path.name + ".part")
    shutil.rmtree(scratch, ignore_errors=True)
    for name, part in (("text_encoder", text_encoder), ("transformer", transformer), ("vae", vae)):
        part.save_pretrained(str(scratch / name), safe_serialization=True)
    scheduler.save_pretrained(str(scratch / "scheduler"))
    tokenizer.save_pretrained(str(scratch / "processor"))
    index: dict[str, Any] = {
        "_class_name": "QwenImage21Pipeline", "_diffusers_version": "0.42.1",
        "processor": ["transformers", "Qwen3VLProcessor"], "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Qwen3VLForConditionalGeneration"],
        "transformer": ["diffusers", "QwenImage21Transformer2DModel"], "vae": ["diffusers", "AutoencoderKLQwenImage21"],
    }  # fmt: skip
    if sample_sigmas is not None:
        index["sample_sigmas"] = sample_sigmas
    (scratch / "model_index.json").write_text(json.dumps(index, indent=2))
    scratch.rename(path)
    return path


def build_tiny_flux2_klein(path: Path, *, distilled: bool = True, seed: int = 0) -> Path:
    """A tiny FLUX.2 Klein folder (``Flux2KleinPipeline``: a 28-layer Qwen3 (hidden 16) read
    at layers 9/18/27, ``AutoencoderKLFlux2`` with 32 latent channels and random batch-norm
    statistics, a 128-channel transformer without guidance embedding). ``distilled`` is the
    pipeline's ``is_distilled`` (the 4-step Klein; ``False`` is Klein Base, with CFG)."""
    path = Path(path)
    if _done(path):
        return path
    import torch
    from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3ForCausalLM

    tokenizer = qwen_tokenizer()
    with _Seeded(seed + 60):
        text_encoder = Qwen3ForCausalLM(_qwen3_config(tokenizer, layers=28, hidden=16))
    with _Seeded(seed + 61):
        transformer = Flux2Transformer2DModel(
            patch_size=1, in_channels=128, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=3 * 16, timestep_guidance_channels=256,
            axes_dims_rope=(4, 4, 4, 4), guidance_embeds=False,
        )  # fmt: skip
    with _Seeded(seed + 62):
        vae = AutoencoderKLFlux2(
            block_out_channels=_VAE_CHANNELS, layers_per_block=1, latent_channels=32, norm_num_groups=8,
            sample_size=64,
        )  # fmt: skip
        with torch.no_grad():
            vae.bn.running_mean.normal_(std=0.3)
            vae.bn.running_var.uniform_(0.5, 2.0)
    scheduler = _flow_scheduler(**_DYNAMIC, time_shift_type="exponential")
    pipe = Flux2KleinPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
        is_distilled=distilled,
    )  # fmt: skip
    return _save(pipe, path)


# --- one build per process ----------------------------------------------------------------

_PROCESS_DIR: Path | None = None
_KINDS: dict[str, Callable[[Path], Path]] = {
    "flux": lambda p: build_tiny_flux(p),
    "flux-schnell": lambda p: build_tiny_flux(p, guidance_embeds=False),
    "flux-fill": lambda p: build_tiny_flux(p, fill=True),
    "chroma": lambda p: build_tiny_chroma(p),
    "sd3": lambda p: build_tiny_sd3(p),
    "zimage": lambda p: build_tiny_zimage(p),
    "qwenimage": lambda p: build_tiny_qwenimage(p),
    "qwenimage21": lambda p: build_tiny_qwenimage21(p),
    "qwenimage21-turbo": lambda p: build_tiny_qwenimage21(p, sample_sigmas=[1.0, 0.9, 0.6, 0.2]),
    "flux2-klein": lambda p: build_tiny_flux2_klein(p),
    "controlnet-flux": lambda p: build_tiny_flux_controlnet(p),
    "controlnet-sd3": lambda p: build_tiny_sd3_controlnet(p),
    "controlnet-zimage": lambda p: build_tiny_zimage_controlnet(p),
    "controlnet-qwenimage": lambda p: build_tiny_qwenimage_controlnet(p),
}
KINDS = tuple(_KINDS)


def tiny_flow_model(kind: str) -> Path:
    """The tiny model ``kind`` (one of :data:`KINDS`), built once per process in a temporary
    folder removed at exit, and shared by every test area that asks for it."""
    global _PROCESS_DIR
    if kind not in _KINDS:
        raise ValueError(f"unknown tiny flow model {kind!r}; known: {', '.join(_KINDS)}")
    if _PROCESS_DIR is None:
        import atexit
        import tempfile

        _PROCESS_DIR = Path(tempfile.mkdtemp(prefix="sfumato-tinyflow-"))
        atexit.register(shutil.rmtree, _PROCESS_DIR, True)
    return _KINDS[kind](_PROCESS_DIR / kind)


def folder_bytes(path: Path) -> int:
    """Bytes on disk under ``path`` (for the size budget: every tiny model well under 2 MB)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())

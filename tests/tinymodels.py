"""Tiny, randomly initialised diffusers models built locally (no hub, no network).

Other test areas import the plain builders::

    from tinymodels import build_tiny_sd15, build_tiny_sdxl, build_tiny_controlnet
    path = build_tiny_sd15(tmp_path / "sd15")      # a diffusers folder, a few hundred KB

or, to share one build per test process across test areas::

    from tinymodels import tiny_model
    path = tiny_model("sd15")   # "sd15", "sdxl", "sd15-inpaint", "sdxl-inpaint",
                                # "controlnet-sd15", "controlnet-sdxl",
                                # "sd2", "sd2-inpaint", "controlnet-sd2"

Each builder writes a complete diffusers folder (``model_index.json``, UNet, VAE, CLIP
text encoder(s), a CLIP BPE tokenizer whose ``vocab.json``/``merges.txt`` are written
here, and a scheduler config) and returns its path. Weights are random but seeded, so
two builds are identical. The VAE has four levels (the real 8× downsampling); the UNet
has cross-attention at both of its levels; ``sample_size`` gives the native size
(``sample_size × 8`` pixels, 64 px by default).

``size="bench"`` builds a larger (a few million parameters) UNet for the benchmarks, so
that the UNet, not Python, dominates a step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from tools.make_clip_tokenizer import bytes_to_unicode  # noqa: E402

__all__ = [
    "build_tiny_controlnet",
    "tiny_model",
    "build_tiny_sd15",
    "build_tiny_sd15_inpaint",
    "build_tiny_sdxl",
    "build_tiny_sd2",
    "build_tiny_sdxl_inpaint",
    "write_tiny_clip_tokenizer",
]

_SIZES: dict[str, dict[str, Any]] = {
    "test": {"channels": (16, 32), "layers": 1, "groups": 8, "head_dim": 8, "vae": (8, 16, 16, 16)},
    "bench": {"channels": (128, 256), "layers": 1, "groups": 32, "head_dim": 4, "vae": (8, 16, 16, 16)},
}


_MERGES = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("o", "n</w>"), ("e", "r"),
           ("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>"), ("s", "k"), ("sk", "y</w>")]  # fmt: skip


def write_tiny_clip_tokenizer(path: Path) -> Path:
    """Write a byte-level CLIP BPE tokenizer (``vocab.json``, ``merges.txt``) into ``path``.

    Every byte is a token (with and without the end-of-word mark), plus a dozen merges so
    that real BPE merging happens; ~540 tokens in all.
    """
    path.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    for a, b in _MERGES:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in _MERGES]
    (path / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _tokenizer(tmp: Path, pad_token: str = "<|endoftext|>") -> Any:
    from transformers import CLIPTokenizer

    write_tiny_clip_tokenizer(tmp)
    return CLIPTokenizer(
        str(tmp / "vocab.json"), str(tmp / "merges.txt"), pad_token=pad_token, model_max_length=77
    )


def _text_config(tokenizer: Any, hidden: int = 32, projection: int = 32) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        projection_dim=projection,
        hidden_act="quick_gelu",
    )


def _vae(size: str, scaling_factor: float) -> Any:
    from diffusers import AutoencoderKL

    channels = _SIZES[size]["vae"]
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _unet_kwargs(size: str, sample_size: int, in_channels: int) -> dict[str, Any]:
    spec = _SIZES[size]
    return {
        "sample_size": sample_size,
        "in_channels": in_channels,
        "out_channels": 4,
        "block_out_channels": spec["channels"],
        "layers_per_block": spec["layers"],
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "norm_num_groups": spec["groups"],
        "attention_head_dim": spec["head_dim"],
    }


def _scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        timestep_spacing="leading", steps_offset=1,
    )  # fmt: skip


class _Seeded:
    """Run module construction under a fixed torch seed without touching the caller's RNG."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        import torch

        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)


def _done(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "config.json").is_file()


def build_tiny_sd15(
    path: Path, *, size: str = "test", sample_size: int = 8, in_channels: int = 4, seed: int = 0
) -> Path:
    """A tiny SD 1.x diffusers folder at ``path`` (reused when already built); returns ``path``.

    ``in_channels=9`` makes a 9-channel inpainting UNet (an ``StableDiffusionInpaintPipeline``).
    """
    path = Path(path)
    if _done(path):
        return path
    from diffusers import (
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel

    with _Seeded(seed):
        tokenizer = _tokenizer(path / "_tok")
        text_encoder = CLIPTextModel(_text_config(tokenizer))
        unet = UNet2DConditionModel(cross_attention_dim=32, **_unet_kwargs(size, sample_size, in_channels))
        vae = _vae(size, 0.18215)
    cls = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    pipe = cls(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(str(path), safe_serialization=True)
    _rmtree(path / "_tok")
    return path


def build_tiny_sd15_inpaint(path: Path, **kwargs: Any) -> Path:
    """A tiny SD 1.x folder with a 9-channel inpainting UNet."""
    return build_tiny_sd15(path, in_channels=9, **kwargs)


def build_tiny_sd2(
    path: Path, *, size: str = "test", sample_size: int = 8, in_channels: int = 4,
    prediction_type: str = "v_prediction", seed: int = 0,
) -> Path:
    """A tiny SD 2.x diffusers folder: the SD 2.x signature (1024-wide text tokens, linear
    attention projections, a ``"!"``-padding tokenizer, v-prediction by default) around
    tiny layers. The text encoder must be 1024 wide for the UNet to cross-attend to it, so
    it has one layer (4 heads, a 64-wide MLP, GELU as OpenCLIP): ~4.8 M parameters, ~19 MB,
    its attention's four 1024² projections nearly all of it.
    """
    path = Path(path)
    if _done(path):
        return path
    from diffusers import (
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel

    with _Seeded(seed + 3):
        tokenizer = _tokenizer(path / "_tok", pad_token="!")
        config = _text_config(tokenizer, hidden=1024, projection=1024)
        config.update({"num_hidden_layers": 1, "intermediate_size": 64, "hidden_act": "gelu"})
        text_encoder = CLIPTextModel(config)
        unet = UNet2DConditionModel(
            cross_attention_dim=1024, use_linear_projection=True, **_unet_kwargs(size, sample_size, in_channels)
        )
        vae = _vae(size, 0.18215)
    scheduler = _scheduler()
    scheduler = type(scheduler).from_config(scheduler.config, prediction_type=prediction_type)
    cls = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    pipe = cls(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(str(path), safe_serialization=True)
    _rmtree(path / "_tok")
    return path


def build_tiny_sdxl(
    path: Path, *, size: str = "test", sample_size: int = 8, in_channels: int = 4, seed: int = 0
) -> Path:
    """A tiny SDXL diffusers folder (two text encoders, pooled embeddings, time ids)."""
    path = Path(path)
    if _done(path):
        return path
    from diffusers import (
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    with _Seeded(seed + 1):
        tokenizer = _tokenizer(path / "_tok")
        tokenizer_2 = _tokenizer(path / "_tok2", pad_token="!")
        text_encoder = CLIPTextModel(_text_config(tokenizer))
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer_2, projection=32))
        unet = UNet2DConditionModel(
            cross_attention_dim=64,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32,
            use_linear_projection=True,
            transformer_layers_per_block=(1, 2),
            **_unet_kwargs(size, sample_size, in_channels),
        )
        vae = _vae(size, 0.13025)
    cls = StableDiffusionXLInpaintPipeline if in_channels == 9 else StableDiffusionXLPipeline
    kwargs: dict[str, Any] = {"requires_aesthetics_score": False} if in_channels == 9 else {}
    pipe = cls(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=_scheduler(), **kwargs,
    )  # fmt: skip
    pipe.save_pretrained(str(path), safe_serialization=True)
    _rmtree(path / "_tok")
    _rmtree(path / "_tok2")
    return path


def build_tiny_sdxl_inpaint(path: Path, **kwargs: Any) -> Path:
    """A tiny SDXL folder with a 9-channel inpainting UNet."""
    return build_tiny_sdxl(path, in_channels=9, **kwargs)


def build_tiny_controlnet(path: Path, family: str = "sd15", *, size: str = "test", seed: int = 2) -> Path:
    """A tiny ControlNet folder (``config.json`` + safetensors) matching the tiny ``family`` UNet.

    The ControlNet's zero-initialised output convolutions get small random weights so that
    its residuals change the result (a freshly initialised ControlNet is a no-op), and its
    conditioning embedding is re-initialised (He normal, zero bias, the last convolution
    ×30) so that the control *image* counts: with the default initialisation, swapping the
    control image changed the embedding by 1.8e-5 (on a mean of 0.011) and the picture by
    0 levels, so no test could see whether the engine passed the image at all.
    """
    path = Path(path)
    if _done(path):
        return path
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    with _Seeded(seed):
        if family == "sdxl":
            unet = UNet2DConditionModel(
                cross_attention_dim=64,
                addition_embed_type="text_time",
                addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=6 * 8 + 32,
                use_linear_projection=True,
                transformer_layers_per_block=(1, 2),
                **_unet_kwargs(size, 8, 4),
            )
        elif family == "sd15":
            unet = UNet2DConditionModel(cross_attention_dim=32, **_unet_kwargs(size, 8, 4))
        elif family == "sd2":
            unet = UNet2DConditionModel(cross_attention_dim=1024, use_linear_projection=True, **_unet_kwargs(size, 8, 4))
        else:
            raise ValueError(f"unknown family {family!r}")
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
        with torch.no_grad():
            for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                           controlnet.controlnet_cond_embedding.conv_out]:  # fmt: skip
                torch.nn.init.normal_(module.weight, std=0.05)
            for module in controlnet.controlnet_cond_embedding.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    torch.nn.init.zeros_(module.bias)
            controlnet.controlnet_cond_embedding.conv_out.weight.mul_(30.0)
    controlnet.save_pretrained(str(path), safe_serialization=True)
    return path


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


_PROCESS_DIR: Path | None = None
_KINDS = {
    "sd15": lambda p: build_tiny_sd15(p),
    "sdxl": lambda p: build_tiny_sdxl(p),
    "sd15-inpaint": lambda p: build_tiny_sd15_inpaint(p),
    "sdxl-inpaint": lambda p: build_tiny_sdxl_inpaint(p),
    "controlnet-sd15": lambda p: build_tiny_controlnet(p, "sd15"),
    "controlnet-sdxl": lambda p: build_tiny_controlnet(p, "sdxl"),
    "sd2": lambda p: build_tiny_sd2(p),
    "sd2-inpaint": lambda p: build_tiny_sd2(p, in_channels=9, prediction_type="epsilon"),
    "controlnet-sd2": lambda p: build_tiny_controlnet(p, "sd2"),
}


def tiny_model(kind: str) -> Path:
    """The tiny model ``kind`` (see the module docstring), built once per process in a
    temporary folder removed at exit, and shared by every test area that asks for it."""
    global _PROCESS_DIR
    if kind not in _KINDS:
        raise ValueError(f"unknown tiny model {kind!r}; known: {', '.join(_KINDS)}")
    if _PROCESS_DIR is None:
        import atexit
        import tempfile

        _PROCESS_DIR = Path(tempfile.mkdtemp(prefix="sfumato-tinymodels-"))
        atexit.register(_rmtree, _PROCESS_DIR)
    return _KINDS[kind](_PROCESS_DIR / kind)

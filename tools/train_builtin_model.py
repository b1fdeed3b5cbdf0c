"""Train Sfumato's built-in miniature latent-diffusion model from scratch.

The model draws the scenes of :mod:`tools.shapes_dataset` (coloured shapes on flat,
gradient or split backgrounds) at 64 px.  It is an ordinary Stable-Diffusion-1.x-shaped
diffusers folder, so the engine loads it through exactly the code path of a real SD 1.x
model::

    resources/models/builtin/                     StableDiffusionPipeline
        model_index.json
        vae/            AutoencoderKL, 4x downsampling, 4 latent channels
        text_encoder/   CLIPTextModel (tiny)
        tokenizer/      CLIPTokenizer: vocab.json + merges.txt from the caption words
        unet/           UNet2DConditionModel with cross-attention blocks
        scheduler/      DDIMScheduler config
        training_log.json
    resources/models/builtin-controlnet-scribble/ ControlNetModel (sketch control)

Training runs in stages so that it fits in under two hours on two CPU cores:

1. the VAE (L1 + MSE reconstruction, a small KL term); the latent ``scaling_factor`` is
   computed from the latents' standard deviation and written into the VAE config;
2. text encoder and UNet together on pre-encoded latents (epsilon prediction, min-SNR
   weighting, a small offset noise, 10 % empty captions so classifier-free guidance works,
   and another scene's caption for a quarter of the low-noise samples so that img2img at
   low strength keeps the picture under a contradicting prompt), with regional steps
   interleaved: one shape in a quadrant or half, conditioned through the engine's own
   masked cross-attention as a document with one region layer is (main prompt, region
   prompt over the box, main prompt over the rest), so a region places its shape;
3. the scribble ControlNet (initialised from the UNet's encoder) with the UNet and text
   encoder frozen, on sketch maps of the same scenes in both polarities (dark strokes on
   white as a user draws them, and white on black as SD scribble ControlNets expect),
   with empty, "loose" (no positions or sizes) or full captions; uniform timesteps first,
   then timesteps biased to high noise, where the layout is decided.

Everything is seeded; all training is fp32 and the weights are saved as fp16 safetensors.

Usage::

    python tools/train_builtin_model.py                 # CPU default (85-115 min, see below)
    python tools/train_builtin_model.py --device cuda --large
    python tools/train_builtin_model.py --measure       # time a few steps of each stage
    # continue an earlier run (copy its folders first; --unet-steps 0 trains only the
    # ControlNet, --controlnet-from continues that ControlNet instead of a new one)
    python tools/train_builtin_model.py --resume COPY/builtin --unet-steps 1500 \\
        --out OUT/builtin --controlnet-out OUT/builtin-controlnet-scribble

Time of the defaults (the run that made the committed weights, see the model card), on
2 CPU cores with 2 torch threads and other jobs beside it part of the time: UNet 9,500
(8,000 + 1,500 regional) x 0.50 s, ControlNet 8,000 x 0.23 s, 115 min in all; on idle
cores v3's steps took 0.36 s and 0.17 s (75 min), so about 85 min idle. With one thread while another job uses
the second core the steps took 0.58 s (UNet) and 0.30 s (ControlNet): about 2 h 5 min.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import shapes_dataset as sd  # noqa: E402
from tools.make_clip_tokenizer import BOS, EOS, MAX_TOKENS, write_caption_tokenizer  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_OUT = REPO_ROOT / "resources" / "models" / "builtin"
DEFAULT_CONTROLNET_OUT = REPO_ROOT / "resources" / "models" / "builtin-controlnet-scribble"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting that decides the trained weights (stored in the training log)."""

    seed: int = 1234
    device: str = "cpu"
    threads: int = 2
    image_size: int = 64
    scenes: int = 8000
    # VAE
    vae_channels: tuple[int, ...] = (32, 64, 64)
    vae_steps: int = 2000
    vae_batch: int = 8
    vae_crop: int = 32  # random crops for the first steps (4x cheaper at 64 px) ...
    vae_full_fraction: float = 0.15  # ... and whole images for this final share of steps
    vae_lr: float = 2e-3
    vae_kl_weight: float = 1e-6
    # text encoder
    text_hidden: int = 96
    text_layers: int = 3
    text_heads: int = 4
    # UNet
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_heads: int = 2
    unet_steps: int = 8000
    unet_batch: int = 32
    unet_lr: float = 6e-4
    cfg_dropout: float = 0.1
    # At low noise the picture, not the caption, decides the prediction. Training only on
    # matching captions leaves (image, contradicting prompt) unseen, and guidance then
    # extrapolates wildly there: img2img at strength 0.3 towards another colour fell to
    # 9.8 dB. So below ``caption_swap_below`` this share of captions is another scene's.
    caption_swap: float = 0.25
    caption_swap_below: int = 350
    offset_noise: float = 0.05
    min_snr_gamma: float = 5.0
    # Regional steps, interleaved with the UNet steps above (one after every
    # ``unet_steps // regional_steps`` ordinary steps): a batch of one-shape scenes whose
    # shape lies in a region box (a quadrant or a half, shared by the batch), conditioned
    # as the engine conditions a document with one region layer: the main prompt, the
    # region's prompt (followed by the main prompt half the time, the planner's default)
    # over the box, the main prompt over the rest, through the engine's own masked
    # cross-attention. Without them the model draws "a green triangle" in the centre
    # whatever region it is given (measured on v3: 0 of 8 seeds put it in a quadrant).
    regional_steps: int = 1500
    regional_scenes_per_layout: int = 300
    ema_decay: float = 0.999
    # ControlNet
    controlnet_steps: int = 8000
    controlnet_batch: int = 16
    controlnet_lr: float = 1e-3
    # captions for the ControlNet: none (the sketch alone carries the layout), "loose"
    # (what is drawn but not where or how big: the sketch must move and size it), else full
    controlnet_caption_dropout: float = 0.3
    controlnet_loose_captions: float = 0.4
    # Two phases, each with its own warm-up and cosine decay: uniform timesteps, then
    # timesteps drawn as T * (1 - u**3) (three quarters above t = 600, where the layout
    # is decided). Measured: uniform alone, 2,500 steps moved no shape; cubic alone from
    # a new ControlNet, 4,000 steps left the loss flat and the sketch without effect;
    # 2,500 + 3,000 followed the sketch in 8/8 and 6/8 seeds; 2,500 + 5,500 in 8/8 and 8/8.
    controlnet_uniform_steps: int = 2500
    # noise schedule (shared with the shipped scheduler config)
    # SD 1.x's betas. DDPM's linear 0.0001-0.02 spends ~40 % of the steps at an SNR so
    # low that epsilon errors explode in x0 (first run: incoherent samples).
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    train_timesteps: int = 1000
    warmup_steps: int = 100
    log_every: int = 25
    # Continue from the VAE, text encoder and UNet of an earlier run's folder (the VAE
    # stage is skipped, its scaling factor kept); the ControlNet is always trained anew.
    resume_from: str | None = None
    # Continue training this ControlNet folder instead of starting one from the UNet.
    controlnet_from: str | None = None


LARGE = dict(
    scenes=60000,
    vae_steps=4000,
    vae_batch=32,
    vae_crop=64,
    unet_channels=(96, 192, 192),
    unet_heads=4,
    unet_steps=20000,
    unet_batch=128,
    unet_lr=3e-4,
    controlnet_steps=5000,
    controlnet_uniform_steps=2000,
    controlnet_batch=128,
    text_hidden=128,
    threads=8,
)

SMOKE = dict(
    scenes=256,
    vae_steps=3,
    unet_steps=3,
    regional_steps=2,
    regional_scenes_per_layout=4,
    controlnet_steps=3,
    controlnet_uniform_steps=1,
    warmup_steps=1,
    log_every=1,
)


# --------------------------------------------------------------------------- data


@dataclass
class SceneData:
    """Pre-rendered training scenes: images uint8 (N, H, W, 3), scribbles uint8 (N, H, W)."""

    images: np.ndarray
    scribbles: np.ndarray
    captions: list[str]
    loose_captions: list[str]  # the same scenes without positions and sizes


@dataclass
class RegionData:
    """Pre-rendered regional scenes, ``per_layout`` of each of ``layouts``: images uint8
    (L, N, H, W, 3), captions [L][N], masks float32 (L, H, W)."""

    layouts: list[str]
    images: np.ndarray
    region_captions: list[list[str]]
    background_captions: list[list[str]]
    masks: np.ndarray


def make_region_scenes(per_layout: int, size: int, seed: int) -> RegionData:
    rng = np.random.default_rng(seed + 7)
    layouts = list(sd.REGION_LAYOUTS)
    images = np.empty((len(layouts), per_layout, size, size, 3), dtype=np.uint8)
    regions: list[list[str]] = []
    backgrounds: list[list[str]] = []
    for li, layout in enumerate(layouts):
        regions.append([])
        backgrounds.append([])
        for i in range(per_layout):
            scene = sd.random_region_scene(rng, layout, size)
            images[li, i] = scene.image
            regions[li].append(scene.region_caption)
            backgrounds[li].append(scene.background_caption)
    masks = np.stack([sd.region_mask(sd.REGION_LAYOUTS[name], size) for name in layouts])
    return RegionData(layouts, images, regions, backgrounds, masks)


def make_scenes(count: int, size: int, seed: int) -> SceneData:
    rng = np.random.default_rng(seed)
    jitter_rng = np.random.default_rng(seed + 1)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    scribbles = np.empty((count, size, size), dtype=np.uint8)
    captions: list[str] = []
    loose: list[str] = []
    for i in range(count):
        spec = sd.random_scene(rng)
        images[i] = sd.render(spec, size)
        width = float(jitter_rng.uniform(1.2, 2.6)) * size / 64
        scribbles[i] = sd.scribble(spec, size, rng=jitter_rng, width=width)[..., 0]
        captions.append(sd.caption(spec))
        loose.append(sd.loose_caption(spec))
    return SceneData(images, scribbles, captions, loose)


# --------------------------------------------------------------------------- models


def build_vae(cfg: TrainConfig) -> Any:
    import torch
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.vae_channels,
        layers_per_block=1,
        latent_channels=4,
        # Few, wide groups: a group of one or two channels normalises a flat colour field
        # to zero, so the absolute colour could only pass through the image border.
        norm_num_groups=4,
        sample_size=cfg.image_size,
        scaling_factor=1.0,
    )
    # Start the posterior nearly deterministic (std ~0.05): with log-variance 0 the
    # sampled latents are drowned in unit noise and reconstruction learns very slowly.
    with torch.no_grad():
        vae.quant_conv.bias[4:].fill_(-6.0)
    return vae


def build_text_encoder(cfg: TrainConfig, vocab: dict[str, int]) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_hidden * 4,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=cfg.text_hidden,
        hidden_act="quick_gelu",
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )
    return CLIPTextModel(config)


def build_unet(cfg: TrainConfig) -> Any:
    from diffusers import UNet2DConditionModel

    latent = cfg.image_size // 2 ** (len(cfg.vae_channels) - 1)
    return UNet2DConditionModel(
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=cfg.unet_channels,
        layers_per_block=1,
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=cfg.unet_heads,  # diffusers' SD-1.x naming: the head count
        norm_num_groups=8,
    )


def build_noise_scheduler(cfg: TrainConfig) -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        prediction_type="epsilon",
        clip_sample=False,
    )


def build_inference_scheduler(cfg: TrainConfig) -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=cfg.train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        prediction_type="epsilon",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="trailing",
    )


def param_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# --------------------------------------------------------------------------- training helpers


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 %."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def stop_requested(stage: str) -> bool:
    """True once ``<out>.work/STOP-<stage>`` exists: ends that stage early (weights kept)."""
    return any((p / f"STOP-{stage}").exists() for p in _STOP_DIRS)


_STOP_DIRS: list[Path] = []


class StageLog:
    """Collects (step, loss, seconds) rows of one training stage."""

    def __init__(self, name: str, total: int, every: int) -> None:
        self.name = name
        self.total = total
        self.every = every
        self.rows: list[dict[str, float]] = []
        self.start = time.perf_counter()
        self._acc: list[float] = []

    def add(self, step: int, loss: float) -> None:
        self._acc.append(loss)
        if (step + 1) % self.every == 0 or step + 1 == self.total:
            elapsed = time.perf_counter() - self.start
            mean = float(np.mean(self._acc))
            self._acc.clear()
            self.rows.append({"step": step + 1, "loss": mean, "seconds": round(elapsed, 1)})
            eta = elapsed / (step + 1) * (self.total - step - 1)
            log.info(
                "%s step %d/%d loss %.5f  %.1fs elapsed, eta %.0fs",
                self.name, step + 1, self.total, mean, elapsed, eta,
            )

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.total,
            "seconds": round(time.perf_counter() - self.start, 1),
            "losses": self.rows,
        }


def optimise(opt: Any, loss: Any, params: Any, stage: StageLog, step: int) -> bool:
    """One optimiser step (gradients clipped to norm 1) and its log line; True when the
    stage's STOP file asks to end here (the stage's step count is then cut to this one)."""
    import torch

    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    stage.add(step, loss.item())
    if stop_requested(stage.name):
        log.warning("%s stage stopped early at step %d", stage.name, step + 1)
        stage.total = step + 1
        return True
    return False


def batches(n: int, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless shuffled index batches (a new permutation per epoch)."""
    while True:
        perm = rng.permutation(n)
        for k in range(0, n - batch + 1, batch):
            yield perm[k : k + batch]


def images_to_tensor(images: np.ndarray, device: str) -> Any:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in -1..1."""
    import torch

    t = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


def train_vae(cfg: TrainConfig, vae: Any, data: SceneData) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    vae.train().to(cfg.device)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    rng = np.random.default_rng(cfg.seed + 10)
    it = batches(len(data.images), cfg.vae_batch, rng)
    stage = StageLog("vae", cfg.vae_steps, cfg.log_every)
    for step in range(cfg.vae_steps):
        for g in opt.param_groups:
            g["lr"] = cfg.vae_lr * lr_factor(step, cfg.vae_steps, cfg.warmup_steps)
        imgs = data.images[next(it)]
        crop = cfg.vae_crop
        if step < cfg.vae_steps * (1 - cfg.vae_full_fraction) and crop < cfg.image_size:
            oy, ox = (int(v) for v in rng.integers(0, (cfg.image_size - crop) // 4 + 1, 2) * 4)
            imgs = imgs[:, oy : oy + crop, ox : ox + crop]
        x = images_to_tensor(np.ascontiguousarray(imgs), cfg.device)
        post = vae.encode(x).latent_dist
        z = post.sample()
        rec = vae.decode(z).sample
        kl = post.kl().mean() / (z.shape[1] * z.shape[2] * z.shape[3])
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + cfg.vae_kl_weight * kl * 1000
        if optimise(opt, loss, vae.parameters(), stage, step):
            break
    vae.eval()
    return stage.summary()


def encode_latents(cfg: TrainConfig, vae: Any, images: np.ndarray) -> Any:
    """Posterior means of all images, float32 (N, 4, h, w), before scaling."""
    import torch

    out = []
    with torch.no_grad():
        for k in range(0, len(images), 256):
            x = images_to_tensor(images[k : k + 256], cfg.device)
            out.append(vae.encode(x).latent_dist.mean)
    return torch.cat(out)


def tokenize(tokenizer: Any, captions: list[str], device: str) -> Any:
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)


def snr_weights(scheduler: Any, timesteps: Any, gamma: float) -> Any:
    import torch

    ac = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = ac / (1 - ac)
    return torch.clamp(snr, max=gamma) / snr


class Ema:
    """Exponential moving average of a model's parameters (with the usual warm-up)."""

    def __init__(self, model: Any, decay: float) -> None:
        self.decay = decay
        self.shadow = [p.detach().clone() for p in model.parameters()]
        self.steps = 0

    def update(self, model: Any) -> None:
        import torch

        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for s, p in zip(self.shadow, model.parameters()):
                s.lerp_(p.detach(), 1 - d)

    def copy_to(self, model: Any) -> None:
        import torch

        with torch.no_grad():
            for s, p in zip(self.shadow, model.parameters()):
                p.copy_(s)


def train_unet(
    cfg: TrainConfig,
    unet: Any,
    text_encoder: Any,
    tokenizer: Any,
    latents: Any,
    captions: list[str],
    progress: Callable[[int], None] | None = None,
    regional: RegionalBatches | None = None,
) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from sfumato.inference.regions import RegionalAttention

    unet.train().to(cfg.device)
    text_encoder.train().to(cfg.device)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=1e-2)
    ema_unet = Ema(unet, cfg.ema_decay)
    ema_text = Ema(text_encoder, cfg.ema_decay)
    noise_sched = build_noise_scheduler(cfg)
    rng = np.random.default_rng(cfg.seed + 20)
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed + 21)
    ids_all = tokenize(tokenizer, captions, cfg.device)
    empty_ids = tokenize(tokenizer, [""], cfg.device)[0]
    it = batches(len(captions), cfg.unet_batch, rng)
    n_regional = cfg.regional_steps if regional is not None else 0
    total = cfg.unet_steps + n_regional
    every = max(1, total // n_regional) if n_regional else 0
    attention = RegionalAttention(unet).install() if n_regional else None
    stage = StageLog("unet", total, cfg.log_every)
    for step in range(total):
        for g in opt.param_groups:
            g["lr"] = cfg.unet_lr * lr_factor(step, total, cfg.warmup_steps)
        is_regional = attention is not None and regional is not None and step % every == every - 1
        if is_regional:
            assert attention is not None and regional is not None
            z0, ids, masks, spans = regional.batch(cfg.unet_batch, rng)
            attention.set_regions(masks, spans)
        else:
            idx = torch.from_numpy(next(it)).to(cfg.device)
            z0 = latents[idx]
            ids = ids_all[idx].clone()
        n = z0.shape[0]
        drop = torch.rand(n, generator=gen, device=cfg.device) < cfg.cfg_dropout
        ids[drop] = empty_ids.repeat(ids.shape[1] // empty_ids.shape[0]) if is_regional else empty_ids
        t = torch.randint(0, cfg.train_timesteps, (n,), generator=gen, device=cfg.device)
        if not is_regional:
            swap = (t < cfg.caption_swap_below) & (
                torch.rand(n, generator=gen, device=cfg.device) < cfg.caption_swap
            )
            ids[swap] = ids.roll(1, dims=0)[swap]
        noise = torch.randn(z0.shape, generator=gen, device=cfg.device)
        if cfg.offset_noise:
            noise = noise + cfg.offset_noise * torch.randn(
                (z0.shape[0], z0.shape[1], 1, 1), generator=gen, device=cfg.device
            )
        zt = noise_sched.add_noise(z0, noise, t)
        if is_regional:  # three prompts, each its own 77 tokens, side by side (as the engine)
            chunks = ids.view(n, 3, -1)
            cond = torch.cat([text_encoder(chunks[:, k]).last_hidden_state for k in range(3)], dim=1)
        else:
            cond = text_encoder(ids).last_hidden_state
        pred = unet(zt, t, encoder_hidden_states=cond).sample
        if is_regional:
            assert attention is not None
            attention.clear()
        w = snr_weights(noise_sched, t, cfg.min_snr_gamma)
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * w).mean()
        stop = optimise(opt, loss, params, stage, step)
        ema_unet.update(unet)
        ema_text.update(text_encoder)
        if progress is not None:
            progress(step)
        if stop:
            break
    if attention is not None:
        attention.remove()
    ema_unet.copy_to(unet)
    ema_text.copy_to(text_encoder)
    unet.eval()
    text_encoder.eval()
    return stage.summary()


class RegionalBatches:
    """Batches for the regional UNet steps (see ``TrainConfig.regional_steps``): latents
    of one layout's scenes, the token ids of [main prompt | region prompt | main prompt]
    side by side (77 each), the region masks at the latent size and their token spans."""

    def __init__(self, cfg: TrainConfig, data: RegionData, latents: Any, tokenizer: Any, latent_side: int) -> None:
        import torch
        from sfumato.inference.regions import latent_masks
        from sfumato.planner.regions import region_prompt

        self.data = data
        self.latents = latents  # (L, N, C, h, w)
        rng = np.random.default_rng(cfg.seed + 8)
        region_ids, background_ids = [], []
        for li in range(len(data.layouts)):
            own = data.region_captions[li]
            main = data.background_captions[li]
            # The planner's text for a region: its own prompt, followed by the main one
            # unless the document keeps it out; both occur.
            texts = [region_prompt(o, m, bool(rng.random() < 0.5)) for o, m in zip(own, main)]
            region_ids.append(tokenize(tokenizer, texts, cfg.device))
            background_ids.append(tokenize(tokenizer, main, cfg.device))
        self.region_ids = torch.stack(region_ids)  # (L, N, 77)
        self.background_ids = torch.stack(background_ids)
        self.masks = [
            latent_masks([m, 1.0 - m], (latent_side, latent_side), device=cfg.device) for m in data.masks
        ]
        t = self.region_ids.shape[-1]
        self.spans = [(t, 2 * t), (2 * t, 3 * t)]  # after the main prompt's own tokens

    def batch(self, size: int, rng: np.random.Generator) -> tuple[Any, Any, Any, list[tuple[int, int]]]:
        import torch

        layout = int(rng.integers(len(self.data.layouts)))
        pool = self.latents.shape[1]
        idx = torch.from_numpy(rng.choice(pool, size=size, replace=size > pool))
        main = self.background_ids[layout, idx]
        ids = torch.cat([main, self.region_ids[layout, idx], main], dim=1)
        return self.latents[layout, idx], ids, self.masks[layout], self.spans


def scribble_condition(scribbles: np.ndarray, invert: np.ndarray, device: str) -> Any:
    """uint8 (B, H, W) dark-on-white sketches -> float32 (B, 3, H, W) in 0..1, where
    rows with ``invert`` become white strokes on black (SD scribble convention)."""
    import torch

    s = torch.from_numpy(scribbles).to(device).float() / 255.0
    inv = torch.from_numpy(invert).to(device)[:, None, None]
    s = torch.where(inv, 1.0 - s, s)
    return s[:, None].expand(-1, 3, -1, -1).contiguous()


def train_controlnet(
    cfg: TrainConfig,
    controlnet: Any,
    unet: Any,
    text_encoder: Any,
    tokenizer: Any,
    latents: Any,
    data: SceneData,
) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    unet.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)
    controlnet.train().to(cfg.device)
    opt = torch.optim.AdamW(controlnet.parameters(), lr=cfg.controlnet_lr, weight_decay=1e-2)
    noise_sched = build_noise_scheduler(cfg)
    rng = np.random.default_rng(cfg.seed + 30)
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed + 31)
    with torch.no_grad():
        ids_all = tokenize(tokenizer, data.captions, cfg.device)
        ids_loose = tokenize(tokenizer, data.loose_captions, cfg.device)
        empty = text_encoder(tokenize(tokenizer, [""], cfg.device)).last_hidden_state[0]
    has_shapes = np.array([s.min() < 128 for s in data.scribbles])
    usable = np.flatnonzero(has_shapes)
    it = batches(len(usable), cfg.controlnet_batch, rng)
    stage = StageLog("controlnet", cfg.controlnet_steps, cfg.log_every)
    uniform_steps = min(cfg.controlnet_uniform_steps, cfg.controlnet_steps)
    for step in range(cfg.controlnet_steps):
        uniform = step < uniform_steps
        if uniform:
            phase_step, phase_steps = step, uniform_steps
        else:
            phase_step, phase_steps = step - uniform_steps, cfg.controlnet_steps - uniform_steps
        for g in opt.param_groups:
            g["lr"] = cfg.controlnet_lr * lr_factor(phase_step, phase_steps, cfg.warmup_steps)
        sel = usable[next(it)]
        idx = torch.from_numpy(sel).to(cfg.device)
        z0 = latents[idx]
        caption_pick = torch.rand(len(idx), generator=gen, device=cfg.device)
        loose = (caption_pick >= cfg.controlnet_caption_dropout) & (
            caption_pick < cfg.controlnet_caption_dropout + cfg.controlnet_loose_captions
        )
        with torch.no_grad():
            ids = torch.where(loose[:, None], ids_loose[idx], ids_all[idx])
            cond = text_encoder(ids).last_hidden_state
        drop = caption_pick < cfg.controlnet_caption_dropout
        cond = torch.where(drop[:, None, None], empty.expand_as(cond), cond)
        invert = rng.random(len(sel)) < 0.5
        hint = scribble_condition(data.scribbles[sel], invert, cfg.device)
        noise = torch.randn(z0.shape, generator=gen, device=cfg.device)
        if uniform:
            t = torch.randint(0, cfg.train_timesteps, (len(idx),), generator=gen, device=cfg.device)
        else:
            u = torch.rand(len(idx), generator=gen, device=cfg.device)
            t = ((1 - u**3) * cfg.train_timesteps).long().clamp(0, cfg.train_timesteps - 1)
        zt = noise_sched.add_noise(z0, noise, t)
        down, mid = controlnet(
            zt, t, encoder_hidden_states=cond, controlnet_cond=hint, return_dict=False
        )
        pred = unet(
            zt,
            t,
            encoder_hidden_states=cond,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        w = snr_weights(noise_sched, t, cfg.min_snr_gamma)
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * w).mean()
        if optimise(opt, loss, controlnet.parameters(), stage, step):
            break
    controlnet.eval()
    return stage.summary()


# --------------------------------------------------------------------------- saving


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors"))


def strip_source_path(config: Path) -> None:
    """Drop ``_name_or_path`` (where a resumed run loaded from: a temporary folder) from a
    saved ``config.json``; the shipped configs say what the model is, not where it was."""
    data = json.loads(config.read_text())
    if data.pop("_name_or_path", None) is not None:
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_models(
    cfg: TrainConfig,
    out: Path,
    cn_out: Path,
    vae: Any,
    text_encoder: Any,
    tokenizer_dir: Path,
    unet: Any,
    controlnet: Any | None,
) -> None:
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    pipe = StableDiffusionPipeline(
        vae=vae.to("cpu", torch.float16),
        text_encoder=text_encoder.to("cpu", torch.float16),
        tokenizer=tokenizer,
        unet=unet.to("cpu", torch.float16),
        scheduler=build_inference_scheduler(cfg),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    staging = out.with_name(out.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    pipe.save_pretrained(str(staging), safe_serialization=True)
    # keep the hand-written tokenizer files byte-for-byte (save_pretrained may rewrite them)
    shutil.rmtree(staging / "tokenizer")
    shutil.copytree(tokenizer_dir, staging / "tokenizer")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    if controlnet is not None:
        if cn_out.exists():
            shutil.rmtree(cn_out)
        controlnet.to("cpu", torch.float16).save_pretrained(str(cn_out), safe_serialization=True)
    for config in [*out.rglob("config.json"), *cn_out.rglob("config.json")]:
        strip_source_path(config)
    for m in (vae, text_encoder, unet) + ((controlnet,) if controlnet is not None else ()):
        m.to(cfg.device, torch.float32)


# --------------------------------------------------------------------------- main


def measure(cfg: TrainConfig, steps: int = 4) -> None:
    """Time a few steps of each stage with the configured sizes (for picking steps)."""
    import torch

    small = dataclasses.replace(
        cfg, scenes=max(cfg.unet_batch, cfg.vae_batch, cfg.controlnet_batch) * 3,
        vae_steps=steps, unet_steps=steps, controlnet_steps=steps, warmup_steps=1, log_every=1,
    )
    data = make_scenes(small.scenes, cfg.image_size, cfg.seed)
    tok_dir = Path("/tmp/sfumato-tokenizer-measure")
    tokenizer = write_caption_tokenizer(tok_dir, sd.caption_words())
    vae = build_vae(small)
    text_encoder = build_text_encoder(small, tokenizer.get_vocab())
    unet = build_unet(small)
    from diffusers import ControlNetModel

    print(
        f"params: vae {param_count(vae):,} text {param_count(text_encoder):,} "
        f"unet {param_count(unet):,}"
    )
    t0 = time.perf_counter()
    train_vae(small, vae, data)
    t1 = time.perf_counter()
    lat = encode_latents(small, vae, data.images)
    t2 = time.perf_counter()
    train_unet(small, unet, text_encoder, tokenizer, lat, data.captions)
    t3 = time.perf_counter()
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 64))
    print(f"controlnet params {param_count(cn):,}")
    train_controlnet(small, cn, unet, text_encoder, tokenizer, lat, data)
    t4 = time.perf_counter()
    print(
        f"per step: vae {(t1 - t0) / steps:.2f}s  unet {(t3 - t2) / steps:.2f}s  "
        f"controlnet {(t4 - t3) / steps:.2f}s; encode {len(data.images)} images {t2 - t1:.1f}s"
    )
    del torch


def load_previous(folder: Path, tok_dir: Path) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """VAE, text encoder, UNet (fp32) and tokenizer of an earlier run, plus its log."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    shutil.copytree(folder / "tokenizer", tok_dir)
    kw: dict[str, Any] = {"local_files_only": True, "torch_dtype": torch.float32}
    vae = AutoencoderKL.from_pretrained(str(folder / "vae"), **kw)
    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), **kw)
    text = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), **kw)
    tok = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    log_file = folder / "training_log.json"
    previous = json.loads(log_file.read_text()) if log_file.exists() else {}
    return vae, text.float(), unet.float(), tok, previous


def train(cfg: TrainConfig, out: Path, cn_out: Path) -> dict[str, Any]:
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    report: dict[str, Any] = {"config": dataclasses.asdict(cfg), "stages": {}}
    log.info("rendering %d scenes at %d px", cfg.scenes, cfg.image_size)
    data = make_scenes(cfg.scenes, cfg.image_size, cfg.seed)
    report["stages"]["data"] = {"seconds": round(time.perf_counter() - t_start, 1)}

    work = out.parent / (out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    _STOP_DIRS.append(work)
    tok_dir = work / "tokenizer"
    if cfg.resume_from:
        vae, text_encoder, unet, tokenizer, previous = load_previous(Path(cfg.resume_from), tok_dir)
        report["resumed_from"] = previous
    else:
        tokenizer = write_caption_tokenizer(tok_dir, sd.caption_words())
        vocab = tokenizer.get_vocab()
        vae = build_vae(cfg)
        text_encoder = build_text_encoder(cfg, vocab)
        unet = build_unet(cfg)
    report["parameters"] = {
        "vae": param_count(vae),
        "text_encoder": param_count(text_encoder),
        "unet": param_count(unet),
    }
    log.info("parameters: %s", report["parameters"])

    if cfg.resume_from:
        lat = encode_latents(cfg, vae, data.images)
        std = float(lat.std())
    else:
        report["stages"]["vae"] = train_vae(cfg, vae, data)
        torch.save(vae.state_dict(), work / "vae.pt")
        lat = encode_latents(cfg, vae, data.images)
        std = float(lat.std())
        vae.register_to_config(scaling_factor=round(1.0 / std, 5))
    latents = lat * vae.config.scaling_factor
    report["latent_std"] = std
    report["scaling_factor"] = vae.config.scaling_factor
    with torch.no_grad():
        rec = vae.decode(lat[:256]).sample
        ref = images_to_tensor(data.images[:256], cfg.device)
        mse = float(torch.mean(((rec.clamp(-1, 1) - ref) / 2) ** 2))
    report["vae_psnr_db"] = round(10 * math.log10(1 / max(mse, 1e-12)), 2)
    log.info("VAE scaling factor %.4f, reconstruction PSNR %.2f dB",
             vae.config.scaling_factor, report["vae_psnr_db"])

    def checkpoint(step: int) -> None:
        if (step + 1) % 1000 == 0 and step + 1 < cfg.unet_steps:
            log.info("checkpoint (raw weights) at step %d", step + 1)
            torch.save({"unet": unet.state_dict(), "text": text_encoder.state_dict(),
                        "vae": vae.state_dict()}, work / "checkpoint.pt")

    regional = None
    if cfg.regional_steps and cfg.unet_steps:  # --unet-steps 0 trains only the ControlNet
        region_data = make_region_scenes(cfg.regional_scenes_per_layout, cfg.image_size, cfg.seed)
        flat = region_data.images.reshape(-1, *region_data.images.shape[2:])
        region_lat = encode_latents(cfg, vae, flat) * vae.config.scaling_factor
        region_lat = region_lat.reshape(len(region_data.layouts), -1, *region_lat.shape[1:])
        regional = RegionalBatches(cfg, region_data, region_lat, tokenizer, int(latents.shape[-1]))
    report["stages"]["unet"] = train_unet(
        cfg, unet, text_encoder, tokenizer, latents, data.captions, progress=checkpoint, regional=regional
    )
    # Save the text-to-image model first: a ControlNet failure must not lose it.
    report["total_seconds"] = round(time.perf_counter() - t_start, 1)
    save_models(cfg, out, cn_out, vae, text_encoder, tok_dir, unet, None)
    (out / "training_log.json").write_text(json.dumps(report, indent=1) + "\n")

    if cfg.controlnet_from:
        controlnet = ControlNetModel.from_pretrained(
            cfg.controlnet_from, local_files_only=True, torch_dtype=torch.float32
        )
        report["controlnet_resumed_from"] = cfg.controlnet_from
    else:
        controlnet = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=(16, 32, 64)
        )
    report["parameters"]["controlnet"] = param_count(controlnet)
    report["stages"]["controlnet"] = train_controlnet(
        cfg, controlnet, unet, text_encoder, tokenizer, latents, data
    )
    report["total_seconds"] = round(time.perf_counter() - t_start, 1)
    save_models(cfg, out, cn_out, vae, text_encoder, tok_dir, unet, controlnet)
    report["weights_bytes"] = folder_bytes(out) + folder_bytes(cn_out)
    (out / "training_log.json").write_text(json.dumps(report, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    log.info("done in %.0f s; weights %.1f MB", report["total_seconds"],
             report["weights_bytes"] / 1e6)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--large", action="store_true", help="bigger model and longer run (GPU)")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--controlnet-out", type=Path, default=DEFAULT_CONTROLNET_OUT)
    p.add_argument("--unet-steps", type=int, help="override the UNet step count")
    p.add_argument("--controlnet-steps", type=int, help="override the ControlNet step count")
    p.add_argument("--regional-steps", type=int, help="override the regional UNet step count (0: none)")
    p.add_argument(
        "--controlnet-from",
        type=Path,
        help="continue training this ControlNet folder (with --resume and --unet-steps 0: "
        "train only the ControlNet)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default 2; use 1 on a machine busy with other jobs: "
        "with more runnable threads than cores, 2 threads ran 10x slower than 1 here)",
    )
    p.add_argument("--measure", action="store_true", help="time a few steps per stage and exit")
    p.add_argument(
        "--resume", type=Path, help="continue from an earlier run's builtin/ folder (copy it first)"
    )
    p.add_argument("--unet-lr", type=float, help="override the UNet learning rate")
    p.add_argument("--smoke", action="store_true", help="a few steps per stage (tests the plumbing)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    overrides: dict[str, Any] = dict(LARGE) if args.large else {}
    if args.smoke:
        overrides.update(SMOKE)
    overrides["device"] = args.device
    overrides["seed"] = args.seed
    if args.unet_steps is not None:
        overrides["unet_steps"] = args.unet_steps
    if args.controlnet_steps is not None:
        overrides["controlnet_steps"] = args.controlnet_steps
    if args.regional_steps is not None:
        overrides["regional_steps"] = args.regional_steps
    if args.controlnet_from:
        overrides["controlnet_from"] = str(args.controlnet_from)
    if args.threads:
        overrides["threads"] = args.threads
    if args.resume:
        overrides["resume_from"] = str(args.resume)
    if args.unet_lr:
        overrides["unet_lr"] = args.unet_lr
    cfg = dataclasses.replace(TrainConfig(), **overrides)

    import torch

    torch.set_num_threads(cfg.threads)
    if args.measure:
        measure(cfg)
        return 0
    train(cfg, args.out, args.controlnet_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

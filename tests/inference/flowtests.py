"""What the transformer families' engine tests share (FLUX, Chroma, SD3, Z-Image,
Qwen-Image, FLUX.2): comparing the engine's uint8 pictures with a diffusers pipeline's
float ones, and the checks each family runs the same way — previews are the predicted
clean latents, regions cost no extra transformer call and keep each image token's
attention on its own prompt, a LoRA merges, acts and comes off, other samplers are refused.

What differs between the families (the latent layout, how a reference run is fed, a
documented difference with diffusers) stays in the family's own test file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, box_mask, request, run_keeping_latents, smooth_image
from PIL import Image
from sfumato.inference.request import (
    GenerationRequest,
    InitImage,
    InpaintSpec,
    LoraSpec,
    RegionSpec,
)
from sfumato.vocabulary.kinds import Sampler


def to_u8(image: np.ndarray) -> np.ndarray:
    """A pipeline's float picture (0..1) as the engine's bytes would be, in int16 to subtract."""
    return np.round(image * 255.0).astype(np.int16)


def assert_close_u8(ours: np.ndarray, theirs: np.ndarray) -> None:
    """The engine's uint8 picture is the pipeline's float one to within one level per value."""
    diff = np.abs(ours.astype(np.int16) - to_u8(theirs))
    assert diff.max() <= 1, f"max difference {diff.max()}"


def run_ok(engine: Any, req: GenerationRequest) -> np.ndarray:
    """Run ``req``; it must succeed; its first picture."""
    result = engine.run(req, Recorder())
    assert result.ok, result.error
    return result.images[0]


def mean_change(a: np.ndarray, b: np.ndarray) -> float:
    """The mean absolute difference of two uint8 pictures."""
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def latents_by_mode(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """diffusers' img2img/inpaint/ControlNet pipelines *sample* the VAE's latent
    distribution (drawing from the seed's generator); the engine takes its mode. Patch the
    pipeline ``module``'s ``retrieve_latents`` to the mode: the one intended difference."""
    monkeypatch.setattr(module, "retrieve_latents", lambda out, generator=None, sample_mode="sample": out.latent_dist.mode())


def cpu_generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def centre_inpaint(
    model: Path, side: int, *, steps: int, cfg: float, seed: int, strength: float = 1.0
) -> tuple[np.ndarray, np.ndarray, GenerationRequest]:
    """(init, mask, request) of an inpaint over a smooth ``side``-square picture: the centre
    half masked, on whole 16-px tokens, so the engine and a pipeline see the same mask."""
    init = smooth_image(side, side)
    mask = box_mask(side, side, side // 4, side // 4, 3 * side // 4, 3 * side // 4)
    req = request(model, width=side, height=side, steps=steps, cfg=cfg, seed=seed, init=InitImage(init, strength),
                  inpaint=InpaintSpec(mask))  # fmt: skip
    return init, mask, req


def pipeline_images(init: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Image.Image]:
    """An init picture (uint8) and inpaint mask (0..1) as diffusers' pipelines take them."""
    images = {"image": Image.fromarray(init)}
    if mask is not None:
        images["mask_image"] = Image.fromarray((mask * 255).astype(np.uint8))
    return images


def left_right_regions(width: int, height: int) -> tuple[RegionSpec, RegionSpec]:
    """Two regions splitting the picture down the middle, with prompts of different lengths."""
    left = box_mask(width, height, 0, 0, width // 2, height)
    right = box_mask(width, height, width // 2, 0, width, height)
    return RegionSpec(left, "a red cat"), RegionSpec(right, "green forest painting of the house")


def count_denoiser_calls(model: Any, run: Callable[[], Any]) -> int:
    """How many times ``run()`` calls the loaded model's transformer (its forward is
    counted on the instance and the class's put back afterwards)."""
    calls = 0
    transformer = model.denoiser
    real_forward = transformer.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_forward(*args, **kwargs)

    transformer.forward = counting
    try:
        run()
    finally:
        del transformer.forward
    return calls


def check_previews_are_x0(
    engine: Any,
    req: GenerationRequest,
    monkeypatch: pytest.MonkeyPatch,
    latent_shape: tuple[int, int, int],
    preview_shape: tuple[int, int, int] | None = None,
) -> None:
    """Each of ``req``'s steps previews the predicted clean latents (``x − σ·v``, of
    ``latent_shape``); the last prediction is exactly what gets decoded, and the first is
    far from the noise (``req.seed``'s) it started from. ``preview_shape``: the preview
    picture's, where the family's test states it."""
    from sfumato.inference.preview import LatentPreviewer

    previewed: list[torch.Tensor] = []
    real = LatentPreviewer.__call__

    def recording(self: LatentPreviewer, latents: torch.Tensor) -> np.ndarray:
        previewed.append(latents.clone())
        return real(self, latents)

    monkeypatch.setattr(LatentPreviewer, "__call__", recording)
    _, final, rec = run_keeping_latents(engine, req, monkeypatch)
    assert [p.step for p in rec.previews] == list(range(1, req.steps + 1))
    if preview_shape is not None:
        assert rec.previews[0].rgb.shape == preview_shape
    assert previewed[0].shape == latent_shape
    torch.testing.assert_close(previewed[-1], final[0], rtol=1e-4, atol=1e-4)
    noise = torch.randn((1, *latent_shape), generator=cpu_generator(req.seed))[0]
    assert not torch.allclose(previewed[0], noise, atol=1e-2)


def check_refuses_other_samplers(engine: Any, model: Path, side: int) -> None:
    """A flow-matching family names why it cannot take a diffusion sampler."""
    result = engine.run(request(model, width=side, height=side, steps=2, sampler=Sampler.DPMPP_2M), Recorder())
    assert result.error is not None and "flow matching" in str(result.error)


def check_lora_acts_and_comes_off(
    engine: Any, req: GenerationRequest, lora: LoraSpec, *, min_change: float, merged: Callable[[], None] | None = None
) -> None:
    """``req`` with ``lora`` changes the picture by more than ``min_change`` on average;
    ``merged()`` (the family's check of the merged weights) runs while the LoRA is in;
    without it again the picture is the first one, byte for byte."""
    plain = run_ok(engine, req)
    with_lora = run_ok(engine, req.replace(loras=(lora,)))
    if merged is not None:
        merged()
    assert mean_change(with_lora, plain) > min_change
    assert np.array_equal(run_ok(engine, req), plain)


def check_peft_lora_merges(
    engine: Any,
    req: GenerationRequest,
    layer: torch.nn.Linear,
    module_name: str,
    path: Path,
    *,
    seed: int,
    weight: float,
    min_change: float,
) -> None:
    """A rank-4 LoRA in diffusers/PEFT form (``transformer.<module_name>.lora_A/B``, random
    from ``seed``) written to ``path`` merges into ``layer`` as ``W + weight·B@A``, changes
    the picture by more than ``min_change`` and comes off byte for byte."""
    from safetensors.torch import save_file

    rank, (out_features, in_features) = 4, layer.weight.shape
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(rank, in_features, generator=g) * 0.5
    b = torch.randn(out_features, rank, generator=g) * 0.5
    save_file({f"transformer.{module_name}.lora_A.weight": a, f"transformer.{module_name}.lora_B.weight": b}, str(path))
    before = layer.weight.detach().clone()

    def merged() -> None:
        torch.testing.assert_close(layer.weight, before + weight * (b @ a), rtol=1e-5, atol=1e-5)

    check_lora_acts_and_comes_off(engine, req, LoraSpec(str(path), weight), min_change=min_change, merged=merged)


@dataclass
class LeakProbe:
    """What :func:`probe_region_leaks` measured: attention calls, each region image
    token's attention share on other prompts' text, the bias's query rows per call."""

    monkeypatch: pytest.MonkeyPatch
    module: Any
    name: str
    real: Any
    calls: int = 0
    leaks: list[float] = field(default_factory=list)
    mask_rows: list[int] = field(default_factory=list)

    def stop(self) -> None:
        """Put the module's attention function back (before runs that are not measured)."""
        self.monkeypatch.setattr(self.module, self.name, self.real)


def probe_region_leaks(
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    name: str,
    *,
    spans: Any,
    masks: torch.Tensor,
    image_tokens: int,
    patch: int,
    image_first: bool = False,
    tokens_first: bool = True,
) -> LeakProbe:
    """Measure every call of ``module.<name>`` (a joint attention over text and image
    tokens) from now on: each must carry the region bias, and its softmax gives each
    region image token's share on other prompts' text (``joint_regions.attention_shares``).
    ``tokens_first``: query and key come as (B, L, H, D), as diffusers' dispatch takes
    them; otherwise (B, H, L, D). The text is what the bias covers beyond ``image_tokens``."""
    from sfumato.inference import joint_regions

    probe = LeakProbe(monkeypatch, module, name, getattr(module, name))

    def measuring(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None, **kw: Any) -> Any:
        probe.calls += 1
        assert attn_mask is not None, "a block ran without the region bias"
        probe.mask_rows.append(attn_mask.shape[-2])
        q, k = (query.transpose(1, 2), key.transpose(1, 2)) if tokens_first else (query, key)
        q, k = q.float(), k.float()
        probs = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + attn_mask.float()).softmax(dim=-1)
        layout = joint_regions.JointLayout(spans, attn_mask.shape[-1] - image_tokens, image_first=image_first)
        probe.leaks.extend(joint_regions.attention_shares(probs, masks, layout, patch=patch).tolist())
        return probe.real(query, key, value, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(module, name, measuring)
    return probe

"""Regional prompting: masked cross-attention verified on the attention probabilities."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from diffusers import UNet2DConditionModel
from sfumato.inference.regions import (
    MaskPooling,
    RegionalAttention,
    attention_sizes,
    concat_region_embeddings,
    latent_masks,
)

LATENT = 16
TOKENS = 5  # tokens per prompt (77 in real use; fewer keeps the test fast)
CROSS_DIM = 12
POOLED = 8


def _tiny_unet(kind: str) -> UNet2DConditionModel:
    torch.manual_seed(0)
    if kind == "sd15":
        unet = UNet2DConditionModel(
            sample_size=LATENT, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(8, 16, 16), norm_num_groups=4, cross_attention_dim=CROSS_DIM,
            attention_head_dim=4,
            down_block_types=("CrossAttnDownBlock2D",) * 3, up_block_types=("CrossAttnUpBlock2D",) * 3,
        )  # fmt: skip
    else:  # SDXL-shaped: no attention at full size, text_time conditioning, linear proj
        unet = UNet2DConditionModel(
            sample_size=LATENT, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(8, 16, 16), norm_num_groups=4, cross_attention_dim=CROSS_DIM,
            attention_head_dim=(2, 4, 4), transformer_layers_per_block=(1, 1, 2),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            addition_embed_type="text_time", addition_time_embed_dim=4,
            projection_class_embeddings_input_dim=POOLED + 6 * 4, use_linear_projection=True,
        )  # fmt: skip
    return unet.eval()


def _run(unet: UNet2DConditionModel, kind: str, embeds: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)
    batch = embeds.shape[0]
    latents = torch.randn(batch, 4, LATENT, LATENT)
    extra: dict[str, Any] = {}
    if kind == "sdxl":
        extra["added_cond_kwargs"] = {"text_embeds": torch.randn(batch, POOLED), "time_ids": torch.randn(batch, 6)}
    with torch.no_grad():
        return unet(latents, 10, encoder_hidden_states=embeds, **extra).sample


def _prompts(n: int, batch: int = 2) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    gen = torch.Generator().manual_seed(2)
    # Scale up so that the softmax is far from uniform (a meaningful test of the bias).
    return concat_region_embeddings([torch.randn(batch, TOKENS, CROSS_DIM, generator=gen) * 3 for _ in range(n)])


class AttentionRecorder:
    """Replaces SDPA for masked cross-attention calls and records logits and probabilities."""

    def __init__(self, n_keys: int) -> None:
        self.n_keys = n_keys
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []  # (scores, probs): (B, heads, Nq, Nk)
        self._real: Callable[..., torch.Tensor] = F.scaled_dot_product_attention

    def __call__(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attn_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:  # fmt: skip
        if attn_mask is None or key.shape[-2] != self.n_keys:
            return self._real(query, key, value, attn_mask=attn_mask, **kwargs)
        scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
        probs = torch.softmax(scores + attn_mask, dim=-1)
        self.calls.append((scores, probs))
        return probs @ value


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], AttentionRecorder]]:
    def make(n_keys: int) -> AttentionRecorder:
        rec = AttentionRecorder(n_keys)
        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", rec)
        return rec

    yield make


def _n_cross_attention(unet: torch.nn.Module) -> int:
    return sum(1 for name, _ in unet.named_modules() if name.endswith("attn2"))


def _grid(n_queries: int) -> tuple[int, int]:
    for size in attention_sizes((LATENT, LATENT)):
        if size[0] * size[1] == n_queries:
            return size
    raise AssertionError(n_queries)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_region_tokens_invisible_outside_their_region(kind: str, recorder: Any) -> None:
    unet = _tiny_unet(kind)
    embeds, spans = _prompts(3)  # global, A, B
    masks = torch.zeros(2, LATENT, LATENT)
    masks[0, :, :6] = 1.0  # A: left columns
    masks[1, :, 10:] = 1.0  # B: right columns; the background in between
    rec = recorder(embeds.shape[1])
    with RegionalAttention(unet) as regional:
        regional.set_regions(masks, spans[1:])
        _run(unet, kind, embeds)

    assert len(rec.calls) == _n_cross_attention(unet)  # every attn2, every level, one pass
    levels = set()
    (ga, gb), (a0, a1), (b0, b1) = spans
    for _, probs in rec.calls:
        h, w = _grid(probs.shape[2])
        levels.add((h, w))
        cols = torch.arange(w).repeat(h)  # row-major positions -> column
        x0 = cols * LATENT // w  # first latent column of the cell
        x1 = (cols + 1) * LATENT // w  # one past its last
        inside_a = x1 <= 6
        inside_b = x0 >= 10
        background = (x0 >= 6) & (x1 <= 10)
        weight_a = probs[..., a0:a1].sum(-1)
        weight_b = probs[..., b0:b1].sum(-1)
        weight_g = probs[..., ga:gb].sum(-1)
        assert inside_a.any() and inside_b.any()
        assert weight_b[..., inside_a].max() < 1e-3
        assert weight_a[..., inside_b].max() < 1e-3
        assert weight_a[..., inside_a].min() > 0.999  # no background there either
        if background.any():
            assert weight_a[..., background].max() < 1e-3 and weight_b[..., background].max() < 1e-3
            assert weight_g[..., background].min() > 0.999
    expected = {(16, 16), (8, 8), (4, 4)} if kind == "sd15" else {(8, 8), (4, 4)}
    assert levels == expected


def test_four_regions_each_sees_only_its_own_prompt(recorder: Any) -> None:
    unet = _tiny_unet("sd15")
    embeds, spans = _prompts(5)  # global + four quadrants
    half = LATENT // 2
    masks = torch.zeros(4, LATENT, LATENT)
    quadrants = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for r, (qy, qx) in enumerate(quadrants):
        masks[r, qy * half : (qy + 1) * half, qx * half : (qx + 1) * half] = 1.0
    rec = recorder(embeds.shape[1])
    with RegionalAttention(unet) as regional:
        regional.set_regions(masks, spans[1:])
        _run(unet, "sd15", embeds)
    assert len(rec.calls) == _n_cross_attention(unet)
    for _, probs in rec.calls:
        h, w = _grid(probs.shape[2])
        ys = torch.arange(h).repeat_interleave(w) * 2 // h
        xs = torch.arange(w).repeat(h) * 2 // w
        for r, (qy, qx) in enumerate(quadrants):
            inside = (ys == qy) & (xs == qx)
            own = probs[..., spans[r + 1][0] : spans[r + 1][1]].sum(-1)[..., inside]
            assert own.min() > 0.999  # all of the weight on its own prompt
            for other in range(4):
                if other != r:
                    s0, s1 = spans[other + 1]
                    assert probs[..., s0:s1].sum(-1)[..., inside].max() < 1e-3


def test_soft_edges_give_partial_weight(recorder: Any) -> None:
    unet = _tiny_unet("sd15")
    embeds, spans = _prompts(2)  # global, A
    values = [0.0, 0.3, 0.6, 1.0]  # coverage per 4-column band (survives pooling exactly)
    mask = torch.tensor(values).repeat_interleave(LATENT // 4).expand(LATENT, LATENT)[None].clone()
    rec = recorder(embeds.shape[1])
    with RegionalAttention(unet) as regional:
        regional.set_regions(mask, spans[1:], pooling=MaskPooling.AREA)
        _run(unet, "sd15", embeds)
    (g0, g1), (a0, a1) = spans
    saw_partial = False
    for scores, probs in rec.calls:
        h, w = _grid(probs.shape[2])
        band = torch.arange(w).repeat(h) * 4 // w
        m = torch.tensor(values)[band]  # A's coverage per query; background 1 - m
        e = scores.double().exp()
        expect = m * e[..., a0:a1].sum(-1) / (m * e[..., a0:a1].sum(-1) + (1 - m) * e[..., g0:g1].sum(-1))
        got = probs[..., a0:a1].sum(-1).double()
        torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-4)
        partial = got[..., (m > 0) & (m < 1)]
        saw_partial |= bool(((partial > 0.01) & (partial < 0.99)).any())
        assert got[..., m == 0].max() < 1e-3
    assert saw_partial


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_without_regions_is_a_no_op(kind: str) -> None:
    unet = _tiny_unet(kind)
    embeds, spans = _prompts(3)
    baseline = _run(unet, kind, embeds)
    originals = {name: proc for name, proc in unet.attn_processors.items()}
    regional = RegionalAttention(unet).install()
    assert torch.equal(_run(unet, kind, embeds), baseline)
    masks = torch.zeros(2, LATENT, LATENT)
    masks[0, :8] = 1
    masks[1, 8:] = 1
    regional.set_regions(masks, spans[1:])
    assert not torch.allclose(_run(unet, kind, embeds), baseline)  # it does act
    regional.clear()
    assert torch.equal(_run(unet, kind, embeds), baseline)
    regional.remove()
    assert unet.attn_processors == originals
    assert torch.equal(_run(unet, kind, embeds), baseline)


def test_self_attention_untouched() -> None:
    unet = _tiny_unet("sd15")
    regional = RegionalAttention(unet).install()
    kinds = {name: type(proc).__name__ for name, proc in unet.attn_processors.items()}
    assert all(k == "RegionalAttnProcessor" for n, k in kinds.items() if ".attn2." in n)
    assert all(k != "RegionalAttnProcessor" for n, k in kinds.items() if ".attn1." in n)
    regional.remove()


def test_odd_latent_sizes_map_to_every_level() -> None:
    unet = _tiny_unet("sd15")
    embeds, spans = _prompts(2, batch=1)
    masks = torch.zeros(1, 10, 14)
    masks[0, :, :7] = 1
    with RegionalAttention(unet) as regional, torch.no_grad():
        regional.set_regions(masks, spans[1:])
        out = unet(torch.randn(1, 4, 10, 14), 5, encoder_hidden_states=embeds).sample
    assert out.shape == (1, 4, 10, 14)
    assert attention_sizes((10, 14))[:3] == [(10, 14), (5, 7), (3, 4)]


def test_errors_are_clear() -> None:
    unet = _tiny_unet("sd15")
    embeds, spans = _prompts(2, batch=1)
    regional = RegionalAttention(unet).install()
    with pytest.raises(ValueError, match="token spans"):
        regional.set_regions(torch.ones(2, LATENT, LATENT), spans[1:])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        regional.set_regions(torch.full((1, LATENT, LATENT), 2.0), spans[1:])
    regional.set_regions(torch.ones(1, 6, 6), spans[1:])  # wrong latent size
    with pytest.raises(ValueError, match="latent size"), torch.no_grad():
        unet(torch.randn(1, 4, LATENT, LATENT), 5, encoder_hidden_states=embeds)
    regional.set_regions(torch.ones(1, LATENT, LATENT), [(0, 50)])
    with pytest.raises(ValueError, match="concatenated"), torch.no_grad():
        unet(torch.randn(1, 4, LATENT, LATENT), 5, encoder_hidden_states=embeds)
    regional.remove()


def test_concat_and_latent_masks() -> None:
    a, b = torch.zeros(2, 77, 16), torch.ones(2, 77, 16)
    out, spans = concat_region_embeddings([a, b, a])
    assert out.shape == (2, 231, 16) and spans == [(0, 77), (77, 154), (154, 231)]
    assert torch.equal(out[:, 77:154], b)
    with pytest.raises(ValueError):
        concat_region_embeddings([a, torch.zeros(1, 77, 16)])
    pixel = np.zeros((64, 48), np.float32)
    pixel[:, :24] = 1.0
    pixel[:4, 24:28] = 1.0  # a 4x4 patch = one quarter of a latent cell... of an 8x8 cell
    lat = latent_masks([pixel], (8, 6))
    assert lat.shape == (1, 8, 6) and lat.dtype == torch.float32
    assert torch.equal(lat[0, :, :3], torch.ones(8, 3))
    assert lat[0, 0, 3].item() == pytest.approx(0.25)
    assert lat[0, 1:, 3:].max().item() == 0.0

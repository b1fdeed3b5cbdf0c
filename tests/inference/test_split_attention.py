"""The region bias's attention with its image block apart equals the biased call.

:func:`~sfumato.inference.split_attention.image_first_attention` merges two partial
softmaxes by their log-sum-exp; a merge off by anything (a missing weight, the wrong
maximum, the text rows forgotten) shows here against plain ``scaled_dot_product_attention``
with the whole bias. End to end, SD 3.5's and Z-Image's regional pictures equal the ones
the stock biased attention gives (Z-Image's processor recomputes the stock projections,
norms and rotary embedding around it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flowtests as flow
import numpy as np
import pytest
import torch
from enginehelpers import request
from sfumato.inference import split_attention
from sfumato.inference.joint_regions import JointLayout, joint_attention_bias
from sfumato.inference.regions import NEGATIVE_BIAS
from tinyflow import tiny_flow_model
from torch.nn.functional import scaled_dot_product_attention


def _qkv(batch: int, length: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, 3, length, 16, generator=g) * 2.0 for _ in range(3))


def test_equals_the_biased_call_for_a_region_bias() -> None:
    """Two regions over a 16×16-token picture, three prompts of 8 tokens, guidance batch 2."""
    masks = torch.zeros(2, 32, 32)
    masks[0, :, :16] = 1.0
    masks[1, :, 12:] = 0.6  # soft edge: image tokens reading two prompts with log weights
    layout = JointLayout([(8, 16), (16, 24)], 24, image_first=True)
    bias = joint_attention_bias(masks, layout, patch=2, dtype=torch.float32)  # (1, 1, 280, 280)
    q, k, v = _qkv(2, bias.shape[-1], 0)
    theirs = scaled_dot_product_attention(q, k, v, attn_mask=bias)
    ours = split_attention.image_first_attention(q, k, v, bias, image=256)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_equals_the_biased_call_for_per_row_biases_and_masked_keys() -> None:
    """A ``(B, 1, L, L)`` bias whose rows differ (batch padding masked past a row's end),
    text rows that read only their own prompt, image rows whose text is wholly masked."""
    length, image = 70, 48
    g = torch.Generator().manual_seed(3)
    bias = torch.zeros(2, 1, length, length)
    bias[:, :, :image, image:] = torch.where(torch.rand(2, 1, image, length - image, generator=g) > 0.5, 0.0,
                                             NEGATIVE_BIAS)  # fmt: skip
    bias[:, :, :5, image:] = NEGATIVE_BIAS  # five picture rows read no text at all
    bias[:, :, image:, :] = torch.randn(2, 1, length - image, length, generator=g)
    bias[1, :, :, 64:] = NEGATIVE_BIAS  # the second row's batch padding
    q, k, v = _qkv(2, length, 4)
    theirs = scaled_dot_product_attention(q, k, v, attn_mask=bias)
    ours = split_attention.image_first_attention(q, k, v, bias, image=image)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_without_an_image_block_it_is_the_plain_biased_call(monkeypatch: pytest.MonkeyPatch) -> None:
    q, k, v = _qkv(1, 12, 5)
    bias = torch.randn(1, 1, 12, 12)
    monkeypatch.setattr(split_attention, "_FLASH", None)  # as on a torch without the CPU kernel
    torch.testing.assert_close(split_attention.image_first_attention(q, k, v, bias, image=8),
                               scaled_dot_product_attention(q, k, v, attn_mask=bias))  # fmt: skip
    monkeypatch.undo()
    assert torch.equal(split_attention.image_first_attention(q, k, v, bias, image=0),
                       scaled_dot_product_attention(q, k, v, attn_mask=bias))  # fmt: skip


@pytest.mark.parametrize("kind", ["zimage", "sd3"])
def test_regional_pictures_equal_the_stock_biased_attention(
    shared_engine: Any, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Z-Image against its stock processor handed the whole bias (what ran before the
    split); SD 3.5, whose joint attention is already the denoiser's own, against the one
    biased call."""
    from sfumato.inference.denoisers import sd3, zimage

    model_path: Path = tiny_flow_model(kind)
    req = request(model_path, width=64, height=64, steps=3, cfg=3.0, seed=8, regions=flow.left_right_regions(64, 64),
                  negative="blue sky")  # fmt: skip
    ours = flow.run_ok(shared_engine, req)
    if kind == "zimage":
        real_init = zimage._BiasedProcessor.__init__

        def stock_only(self: Any, stock: Any, bias: torch.Tensor, image: int = 0) -> None:
            real_init(self, stock, bias, 0)

        monkeypatch.setattr(zimage._BiasedProcessor, "__init__", stock_only)
    else:

        def whole(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor,
                  *, image: int) -> torch.Tensor:  # fmt: skip
            return scaled_dot_product_attention(query, key, value, attn_mask=attn_mask.to(query.dtype))

        monkeypatch.setattr(sd3, "image_first_attention", whole)
    theirs = flow.run_ok(shared_engine, req)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1

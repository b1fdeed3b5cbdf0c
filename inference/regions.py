"""Regional prompting in one UNet pass: masked cross-attention.

The approach is InvokeAI's: every prompt's text embeddings — the global prompt and one
prompt per region, each a whole number of its encoder's 77-token chunks — are concatenated
along the token axis and given to the UNet as one ``encoder_hidden_states``. Each
cross-attention layer (``attn2``; self-attention ``attn1`` is never touched) adds a bias
to its attention logits so that an image position attends to a region's tokens only
where that region's mask covers it. The UNet runs once per step whatever the number of
regions; only the cross-attention key/value length grows (77 tokens a prompt).

How to use it (a sketch of what :mod:`sfumato.inference.engine` does with the tokens
:mod:`sfumato.inference.text_conditioning` lays out, after padding each negative to its
positive's length — long prompts take several chunks)::

    embeds, spans = concat_region_embeddings([global_emb, region1_emb, region2_emb])
    neg, _ = concat_region_embeddings([global_neg, region1_neg, region2_neg])  # same layout
    regional = RegionalAttention(pipe.unet)          # also a ControlNet, if one is used
    regional.install()
    regional.set_regions(latent_masks([m1, m2], (h // 8, w // 8)), spans[1:])
    ... unet(latents, t, encoder_hidden_states=torch.cat([neg, embeds])) ...
    regional.remove()                                 # or ``with RegionalAttention(...)``

Conventions
-----------
- ``masks``: float tensor ``(R, H_lat, W_lat)`` in ``[0, 1]`` over the *latent* grid
  (pixels / 8), 1 = inside region ``r``. :func:`latent_masks` turns pixel masks into
  that. They are resized to every attention resolution of the UNet (the latent size
  halved with ceiling, as the UNet's stride-2 convolutions do) by max-pooling (default,
  as InvokeAI: a thin region survives at the coarse levels) or by area averaging.
- ``token_spans``: one half-open ``(start, end)`` range of key tokens per region, in the
  concatenated sequence (what :func:`concat_region_embeddings` returns). Every token in
  no region span is a *global* token.
- Global tokens cover the background: ``clamp(1 - Σ_r mask_r, 0, 1)``, i.e. wherever no
  region does (pass ``global_mask`` to override, e.g. ones to let the global prompt act
  everywhere).
- Soft edges: the bias for a token of coverage ``m`` at a position is ``log(m)`` (``m =
  0`` → :data:`NEGATIVE_BIAS`). Adding ``log m`` to a logit multiplies that token's
  unnormalised attention weight ``exp(score)`` by ``m``, so at a position half covered
  by region A and half background, A's tokens and the global tokens each get weight in
  proportion to ``0.5 · Σ exp(score)``: partial coverage gives partial weight, and full
  coverage of A with no B gives B's tokens ``exp(-10000) = 0`` weight.
- The same bias serves both classifier-free-guidance halves: build the unconditional
  embeddings with the same layout (global negative, then each region's negative, each
  padded to its positive's token count) and per-region negatives follow their regions.
- SDXL: concatenate the (already channel-concatenated, 2048-wide) per-prompt embeddings
  the same way; the pooled embedding and time ids come from the global prompt alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from enum import Enum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

__all__ = [
    "NEGATIVE_BIAS",
    "MaskPooling",
    "RegionalAttention",
    "RegionalAttnProcessor",
    "attention_sizes",
    "concat_region_embeddings",
    "latent_masks",
]

log = logging.getLogger(__name__)

#: Bias for tokens of a prompt whose region does not cover a position. Safe in fp16
#: (the logits stay far from its -65504 limit) and ``exp(-1e4)`` is exactly 0.
NEGATIVE_BIAS = -1.0e4


class MaskPooling(Enum):
    """How a latent-size mask is brought down to a coarser attention resolution."""

    MAX = "max"  # a cell belongs to a region if any of its pixels does (InvokeAI)
    AREA = "area"  # a cell's coverage is the mean coverage of its pixels


def concat_region_embeddings(
    embeds_list: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Concatenate prompt embeddings along the token axis.

    ``embeds_list``: tensors ``(B, T_i, C)`` with equal ``B`` and ``C`` — by convention
    the global prompt first, then each region's. Returns ``(embeds (B, Σ T_i, C),
    spans)`` with ``spans[i] = (start, end)`` the half-open token range of entry ``i``;
    pass ``spans[1:]`` to :meth:`RegionalAttention.set_regions`.
    """
    if not embeds_list:
        raise ValueError("concat_region_embeddings needs at least one embedding tensor")
    first = embeds_list[0]
    spans: list[tuple[int, int]] = []
    start = 0
    for i, emb in enumerate(embeds_list):
        if emb.ndim != 3 or emb.shape[0] != first.shape[0] or emb.shape[2] != first.shape[2]:
            raise ValueError(
                f"embedding {i} has shape {tuple(emb.shape)}; all must be (B, T, C) with "
                f"B={first.shape[0]} and C={first.shape[2]}"
            )
        spans.append((start, start + emb.shape[1]))
        start += emb.shape[1]
    return torch.cat(list(embeds_list), dim=1), spans


def latent_masks(
    masks: Sequence[np.ndarray], latent_size: tuple[int, int], *, device: Any = None
) -> torch.Tensor:
    """Pixel masks (float32 ``(H, W)`` in [0, 1]) → ``(R, H_lat, W_lat)`` float32 tensor.

    Area-averaged (a latent cell's coverage is its pixels' mean), so soft and partial
    coverage survive the 8× reduction.
    """
    if not masks:
        return torch.zeros((0, *latent_size), dtype=torch.float32, device=device)
    stack = torch.from_numpy(np.stack([np.asarray(m, dtype=np.float32) for m in masks]))
    resized = F.adaptive_avg_pool2d(stack[None], latent_size)[0]
    return resized.clamp_(0.0, 1.0).to(device)


def attention_sizes(latent_size: tuple[int, int], levels: int = 8) -> list[tuple[int, int]]:
    """The spatial sizes a UNet's attention layers see: the latent size halved (ceiling)."""
    h, w = latent_size
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes.append((h, w))
    return sizes


class RegionalAttention:
    """Masked cross-attention on every ``attn2`` of a UNet (or ControlNet).

    ``install()`` swaps the processors of the cross-attention modules for
    :class:`RegionalAttnProcessor` (keeping the originals); while no regions are set those
    delegate to the original processor, so an installed but idle instance changes
    nothing. ``set_regions()`` activates the masks, ``clear()`` deactivates them,
    ``remove()`` restores the original processors. Usable as a context manager
    (install on enter, remove on exit).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self._originals: dict[str, Any] = {}
        self._masks: torch.Tensor | None = None
        self._global_mask: torch.Tensor | None = None
        self._spans: list[tuple[int, int]] = []
        self._pooling = MaskPooling.MAX
        self._cache: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}

    # ------------------------------------------------------------------ lifecycle
    def _cross_attention_modules(self) -> list[tuple[str, Any]]:
        return [
            (name, module)
            for name, module in self.model.named_modules()
            if name.endswith("attn2") and hasattr(module, "set_processor") and hasattr(module, "processor")
        ]

    @property
    def installed(self) -> bool:
        return bool(self._originals)

    def install(self) -> RegionalAttention:
        """Put a regional processor on every cross-attention module; idempotent."""
        if self._originals:
            return self
        modules = self._cross_attention_modules()
        if not modules:
            raise ValueError(f"{type(self.model).__name__} has no cross-attention (attn2) modules")
        for name, module in modules:
            original = module.processor
            self._originals[name] = original
            module.set_processor(RegionalAttnProcessor(self, original))
        log.debug("regional attention installed on %d cross-attention modules", len(modules))
        return self

    def remove(self) -> None:
        """Restore the processors saved by :meth:`install` and forget the regions."""
        modules = dict(self._cross_attention_modules())
        for name, original in self._originals.items():
            if name in modules:
                modules[name].set_processor(original)
        self._originals.clear()
        self.clear()

    def __enter__(self) -> RegionalAttention:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # ------------------------------------------------------------------ regions
    def set_regions(
        self,
        masks: torch.Tensor,
        token_spans: Sequence[tuple[int, int]],
        *,
        global_mask: torch.Tensor | None = None,
        pooling: MaskPooling = MaskPooling.MAX,
    ) -> None:
        """Activate regional attention.

        ``masks``: ``(R, H_lat, W_lat)`` in [0, 1] on the latent grid; ``token_spans``:
        ``R`` half-open ``(start, end)`` token ranges in the concatenated embeddings, in
        the same order. ``global_mask`` (``(H_lat, W_lat)``) is the coverage of the
        tokens outside every span; by default the background ``clamp(1 - Σ masks, 0, 1)``.
        """
        if masks.ndim != 3:
            raise ValueError(f"masks must be (R, H_lat, W_lat), got shape {tuple(masks.shape)}")
        if masks.shape[0] != len(token_spans):
            raise ValueError(f"{masks.shape[0]} masks but {len(token_spans)} token spans")
        for start, end in token_spans:
            if not 0 <= start < end:
                raise ValueError(f"token span ({start}, {end}) is empty or negative")
        if masks.numel() and (float(masks.min()) < 0.0 or float(masks.max()) > 1.0):
            raise ValueError("region masks must lie in [0, 1]")
        masks = masks.detach().float()
        if global_mask is None:
            global_mask = (1.0 - masks.sum(dim=0)).clamp(0.0, 1.0)
        elif tuple(global_mask.shape) != tuple(masks.shape[1:]):
            raise ValueError(
                f"global_mask is {tuple(global_mask.shape)} but the masks are {tuple(masks.shape[1:])}"
            )
        self._masks = masks
        self._global_mask = global_mask.detach().float().to(masks.device)
        self._spans = [(int(s), int(e)) for s, e in token_spans]
        self._pooling = pooling
        self._cache.clear()

    def clear(self) -> None:
        """Deactivate the regions: the processors pass through to the originals."""
        self._masks = None
        self._global_mask = None
        self._spans = []
        self._cache.clear()

    @property
    def active(self) -> bool:
        return self._masks is not None

    def _grid_for(self, n_queries: int) -> tuple[int, int]:
        assert self._masks is not None
        latent = (int(self._masks.shape[1]), int(self._masks.shape[2]))
        for size in attention_sizes(latent):
            if size[0] * size[1] == n_queries:
                return size
        raise ValueError(
            f"an attention layer has {n_queries} positions, which matches no downscale of the "
            f"{latent[0]}x{latent[1]} region masks; set_regions() needs masks at the latent size"
        )

    def _resize(self, coverage: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(coverage.shape[-2:]) == size:
            return coverage
        if self._pooling is MaskPooling.MAX:
            return F.adaptive_max_pool2d(coverage[None], size)[0]
        return F.adaptive_avg_pool2d(coverage[None], size)[0]

    def bias(self, n_queries: int, n_keys: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
        """The additive attention bias ``(1, 1, n_queries, n_keys)``, or ``None`` when idle.

        Row ``q`` (a position in row-major order at that layer's resolution) holds
        ``log(coverage)`` of each key token's prompt at ``q`` (``NEGATIVE_BIAS`` where the
        coverage is 0). Cached per layer shape until the regions change.
        """
        if self._masks is None or self._global_mask is None:
            return None
        key = (n_queries, n_keys, dtype, device)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if self._spans and max(end for _, end in self._spans) > n_keys:
            raise ValueError(
                f"region token spans reach token {max(e for _, e in self._spans)} but the "
                f"cross-attention sees only {n_keys} tokens: pass the concatenated embeddings"
            )
        size = self._grid_for(n_queries)
        coverage = self._resize(torch.cat([self._global_mask[None], self._masks]), size)
        coverage = coverage.reshape(coverage.shape[0], n_queries)  # (1 + R, Nq)
        owner = torch.zeros(n_keys, dtype=torch.long)  # 0 = global, r + 1 = region r
        for r, (start, end) in enumerate(self._spans):
            owner[start:end] = r + 1
        per_token = coverage[owner.to(coverage.device)]  # (Nk, Nq)
        log_cov = torch.where(
            per_token > 0, torch.log(per_token.clamp_min(1e-30)), torch.full_like(per_token, NEGATIVE_BIAS)
        ).clamp_min(NEGATIVE_BIAS)
        # Row stride a multiple of 16 elements: the fused (memory-efficient) SDPA kernels
        # want an aligned mask and would otherwise pad a copy on every call.
        padded = torch.zeros((n_queries, -(-n_keys // 16) * 16), dtype=dtype, device=device)
        padded[:, :n_keys] = log_cov.t().to(device=device, dtype=dtype)
        result = padded[:, :n_keys][None, None]
        self._cache[key] = result
        return result


class RegionalAttnProcessor:
    """A cross-attention processor adding the owner's regional bias (SDPA otherwise).

    Without active regions, or for a call without ``encoder_hidden_states``, it calls the
    processor it replaced, unchanged.
    """

    def __init__(self, owner: RegionalAttention, original: Any) -> None:
        self.owner = owner
        self.original = original

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if not self.owner.active or encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, n_queries, _ = hidden_states.shape
        n_keys = encoder_hidden_states.shape[1]

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, n_keys, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        bias = self.owner.bias(n_queries, n_keys, query.dtype, query.device)
        assert bias is not None
        if attention_mask is not None:
            bias = bias + attention_mask.to(bias.dtype)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=bias, dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

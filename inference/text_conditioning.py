"""Text conditioning: a request's prompts as the UNet and the ControlNets read them.

:func:`condition_text` encodes the global prompt and each region's (and, with
classifier-free guidance, their negatives) through the family's text encoders and lays
them out for one UNet pass per step:

- **tokens**: the global prompt first, then each region's, concatenated along the token
  axis (:func:`~.regions.concat_region_embeddings`); ``region_spans`` are the regions'
  token ranges, what :class:`~.regions.RegionalAttention` masks. A long prompt takes
  several 77-token chunks; with guidance each negative is padded with empty-prompt chunks
  to its positive's length (and vice versa), so both halves share one token layout and
  the same attention bias serves both.
- **control tokens**: the global prompt alone; ControlNets see no regions.
- **regional token count**: with regions, a family whose prompts are padded to a fixed
  length (FLUX's 512 T5 tokens) cuts every prompt — global and regional alike — to what
  the longest needs (:meth:`~.families.base.Family.regional_tokens`).
- **pooled**: the global prompt's pooled embedding (SDXL), for the family's extra UNet
  inputs (:meth:`~.families.base.Family.extra_unet_kwargs`); ``None`` for SD 1.x.
- **the CFG batch layout**: with guidance (``cfg > 1``) every batched tensor is
  ``[unconditional × batch, conditional × batch]``; without, ``conditional × batch``.
  :meth:`TextConditioning.unet_batch` and :meth:`TextConditioning.guide` are the two
  places the denoise loop meets that layout.
- **masked padding**: families whose prompts have their own lengths and whose models
  mask padding out (:attr:`~.families.base.Family.masked_padding`: Chroma, Qwen-Image,
  Z-Image) are padded with zero vectors instead, and :attr:`TextConditioning.token_mask`
  marks them, for the denoiser to turn into an attention mask or to take each prompt's
  real tokens alone (:meth:`TextConditioning.prompt_tokens`). The mask, not the vectors'
  values, says what is padding: a real token may be all zeros.
- **embedded guidance**: LCM-distilled UNets (a ``time_cond_proj_dim`` in their config,
  :func:`embedded_guidance_dim`) learnt the guided prediction in one pass: the scale goes
  in as an input (:func:`guidance_embedding`, the UNet's ``timestep_cond``) and the text is
  conditioned without guidance (``guided=False``: no negatives, no doubled batch).

The result depends only on the model (its weights, LoRAs included), the prompts, whether
guidance runs and the batch size: equal :class:`PromptPair` tuples give equal tensors.
Single prompts go through the model's LRU ``prompt_cache`` (live mode repeats prompts;
applying LoRAs clears it). Textual-inversion embeddings named in a prompt
(:mod:`~.embeddings`) add the files' identity to its cache key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from sfumato.inference.embeddings import EmbeddingLibrary
from sfumato.inference.model_cache import LoadedModel
from sfumato.inference.regions import concat_region_embeddings
from sfumato.inference.request import GenerationRequest

__all__ = [
    "PROMPT_CACHE_SIZE",
    "PromptPair",
    "TextConditioning",
    "condition_text",
    "embedded_guidance_dim",
    "encode_prompt",
    "guidance_embedding",
    "is_guided",
    "prompt_pairs",
]

#: one encoded prompt: ``(tokens (1, T, D), pooled (1, P) or None)``
_Encoded = tuple[torch.Tensor, torch.Tensor | None]

#: how many encoded prompts a model keeps (a text as positive and as negative counts twice)
PROMPT_CACHE_SIZE = 64


@dataclass(frozen=True)
class PromptPair:
    """One prompt and its negative: the request's global pair, or one region's."""

    positive: str
    negative: str = ""


def prompt_pairs(request: GenerationRequest) -> tuple[PromptPair, ...]:
    """The request's prompts, the global pair first, then each region's in order."""
    return (
        PromptPair(request.prompt, request.negative),
        *(PromptPair(r.prompt, r.negative) for r in request.regions),
    )


def is_guided(cfg: float) -> bool:
    """Whether classifier-free guidance runs: a scale above 1 (it doubles the UNet batch)."""
    return cfg > 1.0


def embedded_guidance_dim(unet: Any) -> int | None:
    """The size of the guidance embedding ``unet`` takes (its ``time_cond_proj_dim``:
    LCM-distilled UNets, e.g. LCM_Dreamshaper_v7's 256), ``None`` for a UNet without one."""
    dim = getattr(unet.config, "time_cond_proj_dim", None)
    return int(dim) if dim else None


def guidance_embedding(
    cfg: float, dim: int, batch: int, *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``(batch, dim)``: the guidance scale ``cfg`` as an LCM-distilled UNet's ``timestep_cond``.

    As diffusers' ``LatentConsistencyModelPipeline.get_guidance_scale_embedding`` does it:
    ``w = (cfg − 1) × 1000``, then a sinusoidal embedding (``sin`` of ``w·f``, then ``cos``,
    frequencies ``f_i = 10000^(−i / (dim/2 − 1))``; an odd ``dim`` is padded with a zero),
    computed in float32. One difference: a ``cfg`` below 1 embeds ``w = 0`` — in Sfumato 0 and
    1 both mean "no guidance", and a negative scale is outside what the model learnt.
    """
    if dim < 4:
        raise ValueError(f"a guidance embedding needs at least 4 dimensions, got {dim}")
    w = torch.full((batch,), max(float(cfg) - 1.0, 0.0) * 1000.0, dtype=torch.float32)
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    angles = w[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        embedding = torch.nn.functional.pad(embedding, (0, 1))
    return embedding.to(device=device, dtype=dtype)


@dataclass(frozen=True, eq=False)
class TextConditioning:
    """The encoded prompts of one request, batched in the CFG layout (module docstring).

    ``B_unet`` is ``2 × batch`` when ``guided``, else ``batch``; tensors are in the
    engine's dtype on its device.
    """

    tokens: torch.Tensor  # (B_unet, T, D): the global prompt's tokens, then each region's
    region_spans: tuple[tuple[int, int], ...]  # each region's half-open range along T
    control_tokens: torch.Tensor  # (B_unet, T_global, D): the global prompt alone
    pooled: torch.Tensor | None  # (B_unet, P): the global prompt's (SDXL), else None
    guided: bool
    #: (B_unet, T) True for real tokens, False for padding the model must not attend to
    #: (families with :attr:`~.families.base.Family.masked_padding`); ``None``: all real
    token_mask: torch.Tensor | None = None
    #: the same for :attr:`control_tokens`
    control_token_mask: torch.Tensor | None = None

    @property
    def copies(self) -> int:
        """How many times the UNet batch holds each image: 2 with guidance, else 1."""
        return 2 if self.guided else 1

    def unet_batch(self, latents: torch.Tensor) -> torch.Tensor:
        """``latents`` ``(batch, C, h, w)`` repeated into the UNet batch's layout."""
        return torch.cat([latents] * self.copies) if self.guided else latents

    def guide(self, out: torch.Tensor, cfg: float) -> torch.Tensor:
        """The UNet's prediction for the UNet batch → one guided prediction per image."""
        if not self.guided:
            return out
        uncond, cond = out.chunk(2)
        return uncond + cfg * (cond - uncond)

    @property
    def prompt_bounds(self) -> tuple[tuple[int, int], ...]:
        """Each prompt's half-open range along T: the global prompt's, then each region's."""
        total = self.tokens.shape[1]
        return ((0, self.region_spans[0][0] if self.region_spans else total), *self.region_spans)

    def prompt_tokens(self) -> list[list[torch.Tensor]]:
        """Each batch row's prompts (the global one first, then each region's), each its
        real tokens alone ``(T_i, D)``, the padding :attr:`token_mask` marks dropped: for a
        model that takes every prompt at its own length (Z-Image)."""
        return _real_tokens(self.tokens, self.token_mask, self.prompt_bounds)

    def control_prompt_tokens(self) -> list[torch.Tensor]:
        """Each batch row's global prompt, its real tokens alone (:attr:`control_tokens`,
        :attr:`control_token_mask`)."""
        bounds = ((0, self.control_tokens.shape[1]),)
        return [prompts[0] for prompts in _real_tokens(self.control_tokens, self.control_token_mask, bounds)]


def condition_text(
    model: LoadedModel,
    prompts: Sequence[PromptPair],
    *,
    guided: bool,
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
    embeddings: EmbeddingLibrary | None = None,
    pictures: Sequence[Any] = (),
) -> TextConditioning:
    """Encode ``prompts`` (the global pair first, then each region's) for ``batch`` images.

    Negatives are encoded only when ``guided``. ``embeddings``: the textual-inversion
    files the prompts may name. ``pictures``: an edit's pictures (uint8 ``(H, W, 3)``), for
    families whose text encoder reads them beside every prompt
    (:attr:`~sfumato.inference.families.base.Family.prompt_reads_pictures`: Qwen-Image-Edit).
    """
    if not prompts:
        raise ValueError("condition_text needs at least the global prompt")
    encode = partial(encode_prompt, model, device=device, dtype=dtype, embeddings=embeddings, pictures=pictures)
    positives = [encode(p.positive, negative=False) for p in prompts]
    negatives = [encode(p.negative, negative=True) for p in prompts] if guided else []
    if len(prompts) > 1:  # regions: the family may cut every prompt's padding alike
        texts = [p.positive for p in prompts] + ([p.negative for p in prompts] if guided else [])
        keep = model.family.regional_tokens(model.pipe, texts, positives[0][0].shape[1])
        if keep is not None:

            def cut(tokens: torch.Tensor) -> torch.Tensor:
                return torch.cat([tokens[:, part] for part in keep], dim=1)

            positives = [(cut(tokens), pooled) for tokens, pooled in positives]
            negatives = [(cut(tokens), pooled) for tokens, pooled in negatives]
    masked = model.family.masked_padding
    pos_masks = [_ones(pos[0]) for pos in positives]
    neg_masks = [_ones(neg[0]) for neg in negatives]
    for i, (pos, neg) in enumerate(zip(positives, negatives)):  # none without guidance
        length = max(pos[0].shape[1], neg[0].shape[1])
        if masked:
            positives[i], pos_masks[i] = _zero_padded(pos, pos_masks[i], length)
            negatives[i], neg_masks[i] = _zero_padded(neg, neg_masks[i], length)
        else:
            positives[i] = (_padded(pos[0], length, encode, negative=False), pos[1])
            negatives[i] = (_padded(neg[0], length, encode, negative=True), neg[1])
    cond, all_spans = concat_region_embeddings([p[0] for p in positives])
    if guided:
        uncond: torch.Tensor | None = concat_region_embeddings([n[0] for n in negatives])[0]  # the same layout
        global_neg: _Encoded | tuple[None, None] = negatives[0]
    else:
        uncond, global_neg = None, (None, None)
    global_pos = positives[0]

    def batched(cond: torch.Tensor, uncond: torch.Tensor | None) -> torch.Tensor:
        """A ``(1, ...)`` tensor and its negative's (``None`` without guidance) → the UNet batch."""
        cond = cond.expand(batch, *cond.shape[1:])
        if uncond is None:
            return cond
        return torch.cat([uncond.expand(batch, *uncond.shape[1:]), cond])

    token_mask = control_mask = None
    if masked:
        token_mask = batched(torch.cat(pos_masks, dim=1), torch.cat(neg_masks, dim=1) if guided else None)
        control_mask = batched(pos_masks[0], neg_masks[0] if guided else None)
    return TextConditioning(
        tokens=batched(cond, uncond),
        region_spans=tuple(all_spans[1:]),  # the global prompt is first
        control_tokens=batched(global_pos[0], global_neg[0]),
        pooled=None if global_pos[1] is None else batched(global_pos[1], global_neg[1]),
        guided=guided,
        token_mask=token_mask,
        control_token_mask=control_mask,
    )

def encode_prompt(
    model: LoadedModel,
    prompt: str,
    *,
    negative: bool,
    device: torch.device,
    dtype: torch.dtype,
    embeddings: EmbeddingLibrary | None = None,
    pictures: Sequence[Any] = (),
) -> _Encoded:
    """``(tokens (1, T, D), pooled (1, P) or None)`` for one prompt, in ``dtype``, through
    the model's LRU ``prompt_cache`` (keyed by the prompt, the side, the embedding files it
    names, if any, and the pictures an edit model's text encoder reads with it)."""
    used = () if embeddings is None else embeddings.fingerprint(prompt)
    key: tuple[Any, ...] = (prompt, negative, used) if used else (prompt, negative)
    seen: dict[str, Any] = {}
    if pictures and model.family.prompt_reads_pictures:
        import hashlib

        seen = {"pictures": pictures}
        key += tuple((p.shape, hashlib.blake2b(p.tobytes(), digest_size=16).hexdigest()) for p in pictures)
    cached = model.prompt_cache.get(key)
    if cached is None:
        tokens, pooled = model.family.encode_prompts(
            model.pipe, [prompt], device, negative=negative, embeddings=embeddings, **seen
        )
        cached = (tokens.to(dtype), None if pooled is None else pooled.to(dtype))
        model.prompt_cache[key] = cached
        while len(model.prompt_cache) > PROMPT_CACHE_SIZE:
            model.prompt_cache.popitem(last=False)
    else:
        model.prompt_cache.move_to_end(key)
    return cached


def _real_tokens(
    tokens: torch.Tensor, mask: torch.Tensor | None, bounds: tuple[tuple[int, int], ...]
) -> list[list[torch.Tensor]]:
    """For each batch row of ``tokens`` ``(B, T, D)``, each range of ``bounds`` with the
    tokens ``mask`` ``(B, T)`` marks False left out (``None``: all kept)."""
    rows = []
    for i, row in enumerate(tokens):
        if mask is None:
            rows.append([row[start:end] for start, end in bounds])
        else:
            rows.append([row[start:end][mask[i, start:end]] for start, end in bounds])
    return rows


def _ones(tokens: torch.Tensor) -> torch.Tensor:
    """``(1, T)`` all True: every token of ``tokens`` is real."""
    return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


def _zero_padded(encoded: _Encoded, mask: torch.Tensor, length: int) -> tuple[_Encoded, torch.Tensor]:
    """``encoded``'s tokens lengthened to ``length`` with zero vectors its mask marks False."""
    tokens, pooled = encoded
    missing = length - tokens.shape[1]
    if missing <= 0:
        return encoded, mask
    padding = tokens.new_zeros((tokens.shape[0], missing, tokens.shape[2]))
    pad_mask = torch.zeros((mask.shape[0], missing), dtype=torch.bool, device=mask.device)
    return (torch.cat([tokens, padding], dim=1), pooled), torch.cat([mask, pad_mask], dim=1)


def _padded(
    tokens: torch.Tensor, length: int, encode: Callable[..., _Encoded], *, negative: bool
) -> torch.Tensor:
    """``tokens`` lengthened to ``length`` with empty-prompt chunks of the same side."""
    if tokens.shape[1] >= length:
        return tokens
    empty = encode("", negative=negative)[0]
    repeats = -(-(length - tokens.shape[1]) // empty.shape[1])
    padding = empty.repeat(1, repeats, 1)[:, : length - tokens.shape[1]]
    return torch.cat([tokens, padding], dim=1)

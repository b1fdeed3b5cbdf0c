"""CLIP text encoding shared by the families that use it (SD 1.x, SDXL): long prompts in
77-token chunks, attention weights and ``BREAK``, A1111 style.

A prompt's tokens are split into chunks of the tokenizer's context (start token, up to 75
prompt tokens, end token, padding); every chunk runs through the text encoder as one batch
and the chunks' hidden states are joined along the token axis, so a prompt of ``C`` chunks
conditions on ``C × 77`` tokens. Imports no torch at import time (as :mod:`.base`).

**Weights.** The prompt is read with :mod:`sfumato.vocabulary.prompt_syntax` (``(a:1.3)``,
``(a)``, ``[a]``, ``BREAK``) and weighted as A1111 does (its default "Original" emphasis),
because the prompts artists paste come from A1111/Forge pages and were tuned there: each
token's embedding (after the encoder, per encoder for SDXL) is multiplied by its weight,
then each 77-token chunk is rescaled so that its mean equals the mean it had unweighted
(:func:`emphasize`). The pooled embedding is not weighted (A1111 neither). ComfyUI weighs
differently: it also encodes an empty (all-padding) sequence and moves each weighted
token from the empty sequence's embedding at its position by the weight,
``empty + (z − empty) × w``, with no mean restored. The same ``(a:1.3)`` does not give the
same push in both, so weights tuned on one read differently in the other.
A prompt without syntax (and ``(a:1.0)``) encodes bit for bit as plain text.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sfumato.vocabulary.prompt_syntax import parse_prompt

if TYPE_CHECKING:
    import torch
__all__ = ["MAX_CHUNKS", "chunked_token_ids", "emphasize", "encode_chunks", "join_chunks", "weighted_token_ids"]

log = logging.getLogger(__name__)


#: longest prompt encoded, in 77-token chunks (75 prompt tokens each): 600 tokens
MAX_CHUNKS = 8


def chunked_token_ids(tokenizer: Any, prompts: list[str], min_chunks: int = 1) -> torch.Tensor:
    """Token ids ``(N, C, L)`` for ``prompts``: the ids of :func:`weighted_token_ids`."""
    return weighted_token_ids(tokenizer, prompts, min_chunks)[0]


def weighted_token_ids(
    tokenizer: Any, prompts: list[str], min_chunks: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(N, C, L)`` for ``prompts`` and each token's weight ``(N, C, L)``
    (float32), long prompts split into chunks (A1111 style).

    Each chunk is ``L`` = the tokenizer's context (77 for CLIP): start token, up to
    ``L − 2`` prompt tokens, end token, padding. The prompt is read for A1111's syntax
    (:func:`~sfumato.vocabulary.prompt_syntax.parse_prompt`): each span is tokenized on
    its own and its tokens get its weight (start, end and padding: 1.0); a ``BREAK`` pads
    the chunk being filled and starts a new one (a ``BREAK`` at the very end adds none).
    Every prompt gets ``C`` chunks, the most any of them needs and at least
    ``min_chunks`` (short prompts are padded with empty chunks, which encode exactly like
    the empty prompt), at most :data:`MAX_CHUNKS` (longer prompts are cut, with a
    warning). A prompt without syntax gives the ids it gave before the syntax was read; one
    that fits one chunk, the same ids as the tokenizer's own
    ``padding="max_length", truncation=True``.
    """
    import torch

    length = int(getattr(tokenizer, "model_max_length", 77))
    body = length - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    split: list[list[list[tuple[int, float]]]] = []
    for prompt in prompts:
        chunks = _windows(tokenizer, prompt, body)
        if len(chunks) > MAX_CHUNKS:
            log.warning(
                "prompt needs %d chunks of %d tokens; only the first %d are used: %.60r",
                len(chunks), body, MAX_CHUNKS, prompt,
            )
            chunks = chunks[:MAX_CHUNKS]
        split.append(chunks)
    count = max(min_chunks, *(len(c) for c in split))
    ids, weights = [], []
    for chunks in split:
        chunks = chunks + [[]] * (count - len(chunks))
        ids.append([[bos, *(t for t, _ in c), eos] + [pad] * (body - len(c)) for c in chunks])
        weights.append([[1.0, *(w for _, w in c), 1.0] + [1.0] * (body - len(c)) for c in chunks])
    return torch.tensor(ids, dtype=torch.long), torch.tensor(weights, dtype=torch.float32)


def _windows(tokenizer: Any, prompt: str, body: int) -> list[list[tuple[int, float]]]:
    """``prompt``'s ``(token id, weight)`` pairs in windows of at most ``body`` tokens."""
    parsed = parse_prompt(prompt)
    windows: list[list[tuple[int, float]]] = []
    for i, chunk in enumerate(parsed):
        tokens = [
            (int(t), span.weight)
            for span in chunk
            for t in tokenizer(span.text, truncation=False, add_special_tokens=False).input_ids
        ]
        if not tokens and windows and i == len(parsed) - 1:
            continue  # a trailing BREAK: A1111 adds no empty window for it
        windows += [tokens[j : j + body] for j in range(0, len(tokens), body)] or [[]]
    return windows


def emphasize(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Token embeddings ``(N·C, L, D)`` of one encoder weighted by ``weights``
    ``(N·C, L)``, A1111's way ("Original" emphasis).

    Per chunk: every token's embedding is multiplied by its weight, then the whole chunk
    is scaled so its mean over tokens and channels is the mean it had before weighting.
    Computed in float32; a chunk whose weights are all 1.0 is returned as it was, bit for bit.
    """
    import torch

    weights = weights.to(hidden.device)
    rows = (weights != 1.0).any(dim=1)
    if not bool(rows.any()):
        return hidden
    z = hidden[rows].float()
    before = z.mean(dim=(1, 2), keepdim=True)
    weighted = z * weights[rows][..., None]
    after = weighted.mean(dim=(1, 2), keepdim=True)
    # A chunk whose weighted mean is exactly 0 (weights summing to nothing) keeps its scale.
    ratio = torch.where(after == 0, torch.ones_like(after), before / after)
    out = hidden.clone()
    out[rows] = (weighted * ratio).to(hidden.dtype)
    return out


def encode_chunks(encoder: Any, ids: torch.Tensor, device: torch.device, **kwargs: Any) -> Any:
    """Run a text ``encoder`` (in inference mode) on chunked ids ``(N, C, L)`` as one batch
    of ``N·C`` chunks; returns the encoder's output for that batch."""
    import torch

    n, c, length = ids.shape
    with torch.inference_mode():
        return encoder(ids.view(n * c, length).to(device), **kwargs)


def join_chunks(hidden: torch.Tensor, prompts: int) -> torch.Tensor:
    """Hidden states ``(N·C, L, D)`` of :func:`encode_chunks` → ``(N, C·L, D)``: each
    prompt's chunks one after another along the token axis."""
    return hidden.reshape(prompts, -1, hidden.shape[-1])

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

**Embeddings.** With an :class:`~sfumato.inference.embeddings.EmbeddingLookup`, names of
textual-inversion files in a span become placeholder tokens (the start token's id, never
the end token the pooled output looks for) carrying the file's vectors, with the span's
weight; :func:`encode_chunks` writes those vectors over the token embeddings while the
encoder runs (:mod:`sfumato.inference.embeddings` says why).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sfumato.inference.embeddings import EmbeddingLookup, EmbeddingRef, split_embeddings
from sfumato.vocabulary.prompt_syntax import parse_prompt

if TYPE_CHECKING:
    import torch
__all__ = [
    "MAX_CHUNKS",
    "TokenVector",
    "chunked_token_ids",
    "emphasize",
    "encode_chunks",
    "join_chunks",
    "weighted_token_ids",
    "weighted_token_inputs",
]

#: an embedding's vector placed in the chunked ids: ``(prompt·chunk row, position, vector (D,))``
TokenVector = tuple[int, int, "torch.Tensor"]

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
    (float32), long prompts split into chunks (A1111 style): :func:`weighted_token_inputs`
    without embeddings."""
    ids, weights, _ = weighted_token_inputs(tokenizer, prompts, min_chunks)
    return ids, weights


def weighted_token_inputs(
    tokenizer: Any, prompts: list[str], min_chunks: int = 1, embeddings: EmbeddingLookup | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[TokenVector]]:
    """Token ids ``(N, C, L)`` for ``prompts``, each token's weight ``(N, C, L)``
    (float32), and the embedding vectors to write over placeholder tokens (rows index the
    ``N·C`` chunks), long prompts split into chunks (A1111 style).

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
    ``padding="max_length", truncation=True``. Embedding names (found by ``embeddings``)
    take as many tokens as the file has vectors.
    """
    import torch

    length = int(getattr(tokenizer, "model_max_length", 77))
    body = length - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    split: list[list[list[_Token]]] = []
    for prompt in prompts:
        chunks = _windows(tokenizer, prompt, body, embeddings)
        if len(chunks) > MAX_CHUNKS:
            log.warning(
                "prompt needs %d chunks of %d tokens; only the first %d are used: %.60r",
                len(chunks), body, MAX_CHUNKS, prompt,
            )
            chunks = chunks[:MAX_CHUNKS]
        split.append(chunks)
    count = max(min_chunks, *(len(c) for c in split))
    ids, weights, vectors = [], [], []
    for n, chunks in enumerate(split):
        chunks = chunks + [[]] * (count - len(chunks))
        ids.append([[bos, *(t for t, _, _ in c), eos] + [pad] * (body - len(c)) for c in chunks])
        weights.append([[1.0, *(w for _, w, _ in c), 1.0] + [1.0] * (body - len(c)) for c in chunks])
        vectors += [
            (n * count + j, 1 + k, v) for j, c in enumerate(chunks) for k, (_, _, v) in enumerate(c) if v is not None
        ]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(weights, dtype=torch.float32), vectors


#: one prompt token: ``(id, weight, embedding vector or None)``
_Token = tuple[int, float, Any]


def _windows(tokenizer: Any, prompt: str, body: int, embeddings: EmbeddingLookup | None) -> list[list[_Token]]:
    """``prompt``'s tokens in windows of at most ``body`` tokens."""
    parsed = parse_prompt(prompt)
    windows: list[list[_Token]] = []
    for i, chunk in enumerate(parsed):
        tokens = [token for span in chunk for token in _span_tokens(tokenizer, span.text, span.weight, embeddings)]
        if not tokens and windows and i == len(parsed) - 1:
            continue  # a trailing BREAK: A1111 adds no empty window for it
        windows += [tokens[j : j + body] for j in range(0, len(tokens), body)] or [[]]
    return windows


def _span_tokens(tokenizer: Any, text: str, weight: float, embeddings: EmbeddingLookup | None) -> list[_Token]:
    """One weighted span's tokens; embedding names become placeholders with vectors."""
    pieces: list[str | EmbeddingRef] = [text] if embeddings is None else split_embeddings(text, embeddings.names)
    tokens: list[_Token] = []
    for piece in pieces:
        vectors = embeddings(piece) if isinstance(piece, EmbeddingRef) and embeddings is not None else None
        if vectors is not None:
            tokens += [(int(tokenizer.bos_token_id), weight, v) for v in vectors]
            continue
        words = piece.text if isinstance(piece, EmbeddingRef) else piece
        tokens += [(int(t), weight, None) for t in tokenizer(words, truncation=False, add_special_tokens=False).input_ids]
    return tokens


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


def encode_chunks(
    encoder: Any, ids: torch.Tensor, device: torch.device, vectors: list[TokenVector] | None = None, **kwargs: Any
) -> Any:
    """Run a text ``encoder`` (in inference mode) on chunked ids ``(N, C, L)`` as one batch
    of ``N·C`` chunks; returns the encoder's output for that batch.

    ``vectors`` (embeddings, :func:`weighted_token_inputs`) replace the token embeddings
    at their positions through a forward hook on the encoder's input embeddings, removed
    before this returns: the encoder is left as it was.
    """
    import torch

    n, c, length = ids.shape
    flat = ids.view(n * c, length).to(device)
    if not vectors:
        with torch.inference_mode():
            return encoder(flat, **kwargs)
    rows = torch.tensor([r for r, _, _ in vectors], device=device)
    cols = torch.tensor([p for _, p, _ in vectors], device=device)
    values = torch.stack([v for _, _, v in vectors])

    def place(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out[rows, cols] = values.to(device=out.device, dtype=out.dtype)
        return out

    handle = encoder.get_input_embeddings().register_forward_hook(place, prepend=True)
    try:
        with torch.inference_mode():
            return encoder(flat, **kwargs)
    finally:
        handle.remove()


def join_chunks(hidden: torch.Tensor, prompts: int) -> torch.Tensor:
    """Hidden states ``(N·C, L, D)`` of :func:`encode_chunks` → ``(N, C·L, D)``: each
    prompt's chunks one after another along the token axis."""
    return hidden.reshape(prompts, -1, hidden.shape[-1])

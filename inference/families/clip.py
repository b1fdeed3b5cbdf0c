"""CLIP text encoding shared by the families that use it (SD 1.x, SDXL): long prompts in
77-token chunks, A1111 style.

A prompt's tokens are split into chunks of the tokenizer's context (start token, up to 75
prompt tokens, end token, padding); every chunk runs through the text encoder as one batch
and the chunks' hidden states are joined along the token axis, so a prompt of ``C`` chunks
conditions on ``C × 77`` tokens. Imports no torch at import time (as :mod:`.base`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
__all__ = ["MAX_CHUNKS", "chunked_token_ids", "encode_chunks", "join_chunks"]

log = logging.getLogger(__name__)


#: longest prompt encoded, in 77-token chunks (75 prompt tokens each): 600 tokens
MAX_CHUNKS = 8


def chunked_token_ids(tokenizer: Any, prompts: list[str], min_chunks: int = 1) -> torch.Tensor:
    """Token ids ``(N, C, L)`` for ``prompts``, long prompts split into chunks (A1111 style).

    Each chunk is ``L`` = the tokenizer's context (77 for CLIP): start token, up to
    ``L − 2`` prompt tokens, end token, padding. Every prompt gets ``C`` chunks, the most
    any of them needs and at least ``min_chunks`` (short prompts are padded with empty
    chunks, which encode exactly like the empty prompt), at most :data:`MAX_CHUNKS`
    (longer prompts are cut, with a warning). A prompt that fits one chunk gives the same ids as the tokenizer's own
    ``padding="max_length", truncation=True``.
    """
    import torch

    length = int(getattr(tokenizer, "model_max_length", 77))
    body = length - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    split: list[list[list[int]]] = []
    for prompt in prompts:
        ids = list(tokenizer(prompt, truncation=False, add_special_tokens=False).input_ids)
        chunks = [ids[i : i + body] for i in range(0, len(ids), body)] or [[]]
        if len(chunks) > MAX_CHUNKS:
            log.warning(
                "prompt is %d tokens; only the first %d are used: %.60r", len(ids), MAX_CHUNKS * body, prompt
            )
            chunks = chunks[:MAX_CHUNKS]
        split.append(chunks)
    count = max(min_chunks, *(len(c) for c in split))
    rows = []
    for chunks in split:
        chunks = chunks + [[]] * (count - len(chunks))
        rows.append([[bos, *c, eos] + [pad] * (body - len(c)) for c in chunks])
    return torch.tensor(rows, dtype=torch.long)


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

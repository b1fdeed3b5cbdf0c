"""Weighted prompts for the sequence text encoders (T5, and the LLM encoders after it).

A prompt without syntax goes through the pipeline's own encoder call, so it encodes bit
for bit as diffusers does. A prompt with A1111 syntax (:mod:`sfumato.vocabulary.prompt_syntax`:
``(a:1.3)``, ``[a]``; ``BREAK`` is read as a space, since these encoders have no 77-token
windows) is tokenised span by span, the spans' ids are joined (end token and padding as the
tokenizer adds them), and after the encoder each token's hidden state is multiplied by its
span's weight and the whole sequence rescaled to its unweighted mean — the emphasis A1111
applies to CLIP (:func:`sfumato.inference.families.clip.emphasize`), here over the one
sequence. Artists' prompts keep their meaning when they move from SD to FLUX; ComfyUI
weighs T5 tokens in the same spirit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from sfumato.vocabulary.prompt_syntax import has_syntax, parse_prompt

if TYPE_CHECKING:
    import torch

__all__ = ["needs_weighting", "plain_text", "weighted_t5"]


def needs_weighting(prompt: str) -> bool:
    """Whether ``prompt`` has weights that change its encoding (not just ``(a:1.0)``)."""
    if not has_syntax(prompt):
        return False
    return any(span.weight != 1.0 for chunk in parse_prompt(prompt) for span in chunk)


def plain_text(prompt: str) -> str:
    """``prompt`` with its syntax read and removed (brackets, weights, ``BREAK``)."""
    if not has_syntax(prompt):
        return prompt
    return " ".join("".join(span.text for span in chunk).strip() for chunk in parse_prompt(prompt)).strip()


@overload
def weighted_t5(
    tokenizer: Any, encoder: Any, prompt: str, max_length: int, device: torch.device, *, masked: Literal[False] = ...
) -> torch.Tensor: ...


@overload
def weighted_t5(
    tokenizer: Any, encoder: Any, prompt: str, max_length: int, device: torch.device, *, masked: Literal[True]
) -> tuple[torch.Tensor, int]: ...


def weighted_t5(
    tokenizer: Any, encoder: Any, prompt: str, max_length: int, device: torch.device, *, masked: bool = False
) -> torch.Tensor | tuple[torch.Tensor, int]:
    """``(1, max_length, D)``: ``prompt``'s weighted T5 hidden states (module docstring).

    ``masked``: the encoder sees an attention mask over the real tokens (Chroma's way);
    then ``(hidden, number of real tokens)`` is returned, and the mean is restored over
    the real tokens only.
    """
    import torch

    ids: list[int] = []
    weights: list[float] = []
    for chunk in parse_prompt(prompt):
        for span in chunk:
            piece = tokenizer(span.text, add_special_tokens=False)["input_ids"]
            ids.extend(piece)
            weights.extend([span.weight] * len(piece))
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, weights = ids[: max_length - 1] + [eos], weights[: max_length - 1] + [1.0]
    ids += [pad] * (max_length - len(ids))
    weights += [1.0] * (max_length - len(weights))
    input_ids = torch.tensor([ids], device=device)
    real = min(len([i for i in ids if i != pad]) or 1, max_length)
    if masked:
        attention = (torch.arange(max_length, device=device) < real)[None].long()
        hidden = encoder(input_ids, output_hidden_states=False, attention_mask=attention)[0]
    else:
        hidden = encoder(input_ids, output_hidden_states=False)[0]
    scale = torch.tensor(weights, device=device, dtype=hidden.dtype)[None, :, None]
    span = slice(0, real) if masked else slice(0, max_length)
    before = hidden[:, span].float().mean()
    weighted = hidden * scale
    after = weighted[:, span].float().mean()
    if float(after) != 0.0:
        weighted = weighted * (before / after).to(hidden.dtype)
    return (weighted, real) if masked else weighted

"""Regional prompting for the joint-attention transformers, in one pass: an attention bias.

The UNet families mask cross-attention (:mod:`.regions`). The transformer families have
none: text and image tokens are concatenated into one sequence and attend to each other
in every block (FLUX's double and single blocks, SD 3.5's joint blocks, Z-Image's and
Qwen-Image's). The same idea carries over as one additive bias over that sequence:

- the text part is every prompt's tokens concatenated (the global prompt first, then
  each region's: :func:`~.regions.concat_region_embeddings`), the image part one token per
  latent patch;
- an image token attends to a region's text tokens with bias ``log(coverage)`` — the
  region's mask averaged over the token's patch — and to the global prompt's tokens with
  the log of the background's coverage (``1 − Σ regions``, clamped), so a token inside a
  region reads that region's prompt only; ``log 0`` is :data:`~.regions.NEGATIVE_BIAS`;
- a prompt's text tokens attend to the image tokens of its own region the same way, and
  to their own prompt's text tokens only (never another prompt's);
- image tokens attend to each other freely: the picture stays one composition.

One bias ``(1, 1, L, L)`` serves every block, every head and both guidance halves (the
negatives are laid out like the positives). It costs ``L²`` numbers: for FLUX at 1024²
with two regions of 512 T5 tokens, ``L = 5632`` (about 63 MB in bfloat16).
:func:`attention_shares` is the instrument the tests use: it measures, for each
region's image tokens, the share of their attention that lands on another region's text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from sfumato.inference.regions import NEGATIVE_BIAS

__all__ = ["JointLayout", "joint_attention_bias", "token_coverage"]


def token_coverage(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """``(R, h, w)`` latent masks → ``(R, N)`` each region's coverage of each image token
    (area mean over the token's ``patch × patch`` latent pixels, row-major)."""
    if masks.shape[0] == 0:
        return masks.reshape(0, 0)
    pooled = torch.nn.functional.avg_pool2d(masks[:, None].float(), patch)[:, 0]
    return pooled.flatten(1)


class JointLayout:
    """Where each prompt's tokens and the image tokens sit in the joint sequence.

    ``spans``: the regions' text ranges (the global prompt owns every other text token);
    ``text_length``: all text tokens; ``image_first``: whether image tokens come before
    the text (Z-Image, and every family that appends the text) or after it (FLUX, SD 3.5,
    Qwen-Image put the text first).
    """

    def __init__(self, spans: Sequence[tuple[int, int]], text_length: int, *, image_first: bool = False) -> None:
        self.spans = tuple(spans)
        self.text_length = text_length
        self.image_first = image_first

    def owners(self) -> torch.Tensor:
        """``(T,)`` the owner of each text token: ``r + 1`` for region ``r``, 0 for global."""
        owner = torch.zeros(self.text_length, dtype=torch.long)
        for r, (start, end) in enumerate(self.spans):
            owner[start:end] = r + 1
        return owner


def joint_attention_bias(
    masks: torch.Tensor,
    layout: JointLayout,
    *,
    patch: int,
    dtype: torch.dtype,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``(1, 1, L, L)`` additive attention bias of the module docstring.

    ``masks``: ``(R, h, w)`` region masks at latent resolution, one per span in ``layout``.
    """
    if masks.shape[0] != len(layout.spans):
        raise ValueError(f"{masks.shape[0]} region masks for {len(layout.spans)} region prompts")
    # Built on the CPU in float32 (the masks are small), moved to the device once at the end.
    cover = token_coverage(masks.detach().float().cpu(), patch).clamp(0.0, 1.0)  # (R, N)
    background = (1.0 - cover.sum(dim=0)).clamp(0.0, 1.0)  # (N,)
    per_owner = torch.cat([background[None], cover], dim=0)  # (R + 1, N): owner 0 is global
    logs = torch.where(per_owner > 0, per_owner.clamp_min(1e-30).log(), torch.full_like(per_owner, NEGATIVE_BIAS))
    logs = logs.clamp_min(NEGATIVE_BIAS)
    owner = layout.owners()
    text_image = logs[owner]  # (T, N): text token → image token
    same = owner[:, None] == owner[None, :]
    text_text = torch.where(same, 0.0, NEGATIVE_BIAS)  # (T, T)
    n = cover.shape[1]
    image_image = torch.zeros((n, n))
    if layout.image_first:
        top = torch.cat([image_image, text_image.T], dim=1)
        bottom = torch.cat([text_image, text_text], dim=1)
    else:
        top = torch.cat([text_text, text_image], dim=1)
        bottom = torch.cat([text_image.T, image_image], dim=1)
    bias = torch.cat([top, bottom], dim=0)
    return bias.to(device=device, dtype=dtype)[None, None]


def attention_shares(
    probabilities: torch.Tensor, masks: torch.Tensor, layout: JointLayout, *, patch: int
) -> torch.Tensor:
    """``(R,)``: for each region, the largest share of attention any image token wholly
    inside it gives to *other* prompts' text tokens (``probabilities``: ``(B, H, L, L)``
    softmax weights of one attention call). What "< 1e-3 leaks" is measured with."""
    cover = token_coverage(masks.detach().float().cpu(), patch)
    owner = layout.owners()
    t, n = layout.text_length, cover.shape[1]
    text = slice(n, n + t) if layout.image_first else slice(0, t)
    image = slice(0, n) if layout.image_first else slice(t, t + n)
    rows = probabilities[:, :, image, text].float().cpu()  # (B, H, N, T)
    shares = []
    for r in range(cover.shape[0]):
        inside = cover[r] >= 1.0 - 1e-6
        if not bool(inside.any()):
            shares.append(math.nan)
            continue
        foreign = owner != r + 1
        leak = rows[:, :, inside][..., foreign].sum(dim=-1)  # (B, H, inside)
        shares.append(float(leak.max()))
    return torch.tensor(shares)

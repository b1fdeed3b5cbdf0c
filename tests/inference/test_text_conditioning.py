"""Text conditioning: the token layout and the CFG batch layout of a request's prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from enginehelpers import box_mask, request
from sfumato.inference.request import ModelRef, RegionSpec
from sfumato.inference.text_conditioning import (
    PromptPair,
    condition_text,
    encode_prompt,
    is_guided,
    prompt_pairs,
)

LONG = "a lighthouse on a cliff above a stormy sea at dusk, " * 4  # more than one 77-token chunk


def _condition(engine: Any, folder: Path, prompts: list[PromptPair], *, guided: bool, batch: int) -> Any:
    model = engine.cache.get(ModelRef(str(folder)))
    return model, condition_text(model, prompts, guided=guided, batch=batch, device=engine.device, dtype=engine.dtype)


def test_prompt_pairs_put_the_global_pair_first() -> None:
    mask = box_mask(64, 64, 0, 0, 32, 64)
    req = request(Path("m"), width=64, prompt="sky", negative="fog", regions=(RegionSpec(mask, "a dog", "ugly"), RegionSpec(mask, "a cat")))
    assert prompt_pairs(req) == (PromptPair("sky", "fog"), PromptPair("a dog", "ugly"), PromptPair("a cat", ""))
    assert is_guided(1.5) and not is_guided(1.0)


def test_guided_layout_regions_spans_and_padding(shared_engine: Any, tiny_sdxl: Path) -> None:
    prompts = [PromptPair("sky", ""), PromptPair(LONG, "ugly"), PromptPair("a tree", "blurry " * 40)]
    model, text = _condition(shared_engine, tiny_sdxl, prompts, guided=True, batch=3)
    encode = [encode_prompt(model, p.positive, negative=False, device=shared_engine.device, dtype=shared_engine.dtype) for p in prompts]
    lengths = [e[0].shape[1] for e in encode]
    assert lengths[0] == 77 and lengths[1] > 77 and lengths[2] == 77
    # The third region's negative is longer than its positive: the positive is padded to it.
    neg3 = encode_prompt(model, "blurry " * 40, negative=True, device=shared_engine.device, dtype=shared_engine.dtype)[0]
    assert neg3.shape[1] > 77
    lengths[2] = neg3.shape[1]
    starts = [sum(lengths[:i]) for i in range(3)]
    assert text.region_spans == ((starts[1], starts[2]), (starts[2], starts[2] + lengths[2]))
    assert text.tokens.shape[:2] == (6, sum(lengths))  # [uncond × 3, cond × 3]
    assert text.copies == 2 and text.guided
    for k in range(3):
        assert torch.equal(text.tokens[3 + k, : lengths[0]], encode[0][0][0])  # the global prompt first
        assert torch.equal(text.tokens[3 + k, starts[1] : starts[2]], encode[1][0][0])
        assert torch.equal(text.control_tokens[3 + k], encode[0][0][0])  # ControlNets: global only
    empty_positive = encode_prompt(model, "", negative=False, device=shared_engine.device, dtype=shared_engine.dtype)[0]
    assert torch.equal(text.tokens[3, starts[2] + 77 : starts[2] + 154], empty_positive[0])  # padded with "" chunks
    assert text.pooled is not None and text.pooled.shape[0] == 6
    assert torch.equal(text.pooled[:3], torch.zeros_like(text.pooled[:3]))  # SDXL: empty negative zeroed


def test_unguided_is_the_conditional_half_alone(shared_engine: Any, tiny_sd15: Path) -> None:
    prompts = [PromptPair("sky", "fog")]
    _, guided = _condition(shared_engine, tiny_sd15, prompts, guided=True, batch=2)
    _, plain = _condition(shared_engine, tiny_sd15, prompts, guided=False, batch=2)
    assert plain.tokens.shape[0] == 2 and plain.copies == 1 and plain.pooled is None
    assert torch.equal(plain.tokens, guided.tokens[2:])
    latents = torch.randn(2, 4, 8, 8)
    assert plain.unet_batch(latents) is latents
    assert torch.equal(guided.unet_batch(latents), torch.cat([latents, latents]))
    out = torch.cat([torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)])  # [uncond, cond]
    assert torch.equal(guided.guide(out, 7.0), torch.full((2, 4, 8, 8), 7.0))
    cond = out[2:]
    assert plain.guide(cond, 7.0) is cond


def test_prompt_tokens_are_each_prompts_real_tokens_by_the_mask() -> None:
    """Each batch row's prompts, global first, their padding (the mask's False) left out
    whatever its values, a real all-zero token kept; without a mask every token is real."""
    from sfumato.inference.text_conditioning import TextConditioning

    tokens = torch.arange(1, 2 * 7 * 2 + 1, dtype=torch.float32).view(2, 7, 2)
    tokens[1, 1] = 0.0  # a real token that happens to be all zeros
    mask = torch.tensor([[1, 1, 0, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    text = TextConditioning(tokens=tokens, region_spans=((3, 5), (5, 7)), control_tokens=tokens[:, :3],
                            pooled=None, guided=True, token_mask=mask, control_token_mask=mask[:, :3])  # fmt: skip
    assert text.prompt_bounds == ((0, 3), (3, 5), (5, 7))
    rows = text.prompt_tokens()
    assert [[len(p) for p in row] for row in rows] == [[2, 1, 2], [3, 2, 1]]
    assert torch.equal(rows[0][0], tokens[0, :2]) and torch.equal(rows[0][1], tokens[0, 3:4])
    assert torch.equal(rows[1][0], tokens[1, :3]) and torch.equal(rows[1][2], tokens[1, 5:6])
    assert [len(c) for c in text.control_prompt_tokens()] == [2, 3]
    plain = TextConditioning(tokens=tokens, region_spans=(), control_tokens=tokens, pooled=None, guided=False)
    assert plain.prompt_bounds == ((0, 7),)
    assert [torch.equal(p[0], t) for p, t in zip(plain.prompt_tokens(), tokens)] == [True, True]

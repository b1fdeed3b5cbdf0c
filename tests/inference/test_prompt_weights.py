"""Attention weights and BREAK in the text encoding (A1111's "Original" emphasis), on tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from enginehelpers import Recorder, request
from sfumato.inference.families.clip import MAX_CHUNKS, emphasize, weighted_token_ids
from sfumato.inference.request import ModelRef
from sfumato.inference.text_conditioning import encode_prompt

CPU = torch.device("cpu")
LONG = "a lighthouse on a cliff above a stormy sea at dusk, " * 4  # ~200 tokens of the tiny BPE
PLAIN = ["a red cat", "", "a lighthouse: on a cliff, <lora:x:0.8>", LONG]


def _model(engine: Any, path: Path) -> Any:
    return engine.cache.get(ModelRef(str(path)))


def _encode(engine: Any, path: Path, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    model = _model(engine, path)
    return model.family.encode_prompts(model.pipe, [prompt], CPU)  # type: ignore[no-any-return]


def _old_ids(tokenizer: Any, prompt: str) -> torch.Tensor:
    """The ids ``(1, C, 77)`` the engine used before the syntax was read: the whole text
    tokenized at once, cut every 75 tokens."""
    ids = list(tokenizer(prompt, truncation=False, add_special_tokens=False).input_ids)
    chunks = [ids[i : i + 75] for i in range(0, len(ids), 75)] or [[]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [[tokenizer.bos_token_id, *c, tokenizer.eos_token_id] + [pad] * (75 - len(c)) for c in chunks]
    return torch.tensor([rows])


def _old_sd15(pipe: Any, prompt: str) -> torch.Tensor:
    ids = _old_ids(pipe.tokenizer, prompt)
    with torch.inference_mode():
        return pipe.text_encoder(ids.view(-1, 77))[0].reshape(1, -1, pipe.text_encoder.config.hidden_size)


def _old_sdxl(pipe: Any, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    hidden, pooled = [], None
    for tok, enc in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        ids = _old_ids(tok, prompt)
        with torch.inference_mode():
            out = enc(ids.view(-1, 77), output_hidden_states=True)
        pooled = out[0].view(1, ids.shape[1], -1)[:, 0]
        hidden.append(out.hidden_states[-2].reshape(1, -1, out.hidden_states[-2].shape[-1]))
    assert pooled is not None
    return torch.cat(hidden, dim=-1), pooled


@pytest.mark.parametrize("prompt", PLAIN)
def test_plain_text_encodes_bit_for_bit_as_before(
    shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, prompt: str
) -> None:
    sd15 = _model(shared_engine, tiny_sd15).pipe
    assert torch.equal(_encode(shared_engine, tiny_sd15, prompt)[0], _old_sd15(sd15, prompt))
    tokens, pooled = _encode(shared_engine, tiny_sdxl, prompt)
    old_tokens, old_pooled = _old_sdxl(_model(shared_engine, tiny_sdxl).pipe, prompt)
    assert torch.equal(tokens, old_tokens) and pooled is not None and torch.equal(pooled, old_pooled)


@pytest.mark.parametrize(
    ("weighted", "plain"),
    [("(red:1.0)", "red"), ("a (red:1.0) cat", "a red cat"), ("a [(red:1.1)] cat", "a red cat")],
)
@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_weight_one_is_plain_text(
    shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str, weighted: str, plain: str
) -> None:
    path = tiny_sd15 if family == "sd15" else tiny_sdxl
    a, b = _encode(shared_engine, path, weighted), _encode(shared_engine, path, plain)
    assert torch.equal(a[0], b[0])
    assert (a[1] is None and b[1] is None) or torch.equal(a[1], b[1])  # type: ignore[arg-type]


def test_tokens_take_their_span_weight(shared_engine: Any, tiny_sd15: Path) -> None:
    tok = _model(shared_engine, tiny_sd15).pipe.tokenizer
    ids, weights = weighted_token_ids(tok, ["a (red:1.5) [cat]", "a red cat"])
    assert torch.equal(ids[0], ids[1])  # the brackets and the number are not tokens
    red = len(tok("a", add_special_tokens=False).input_ids) + 1
    n_red = len(tok("red", add_special_tokens=False).input_ids)
    n_cat = len(tok("cat", add_special_tokens=False).input_ids)
    row = weights[0, 0]
    assert row[red : red + n_red].tolist() == [1.5] * n_red
    assert row[red + n_red : red + n_red + n_cat] == pytest.approx([1 / 1.1] * n_cat)
    assert (row[:red] == 1).all() and (row[red + n_red + n_cat :] == 1).all()  # start, "a", end, padding
    assert (weights[1] == 1).all()


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_weighted_tokens_scale_and_the_mean_is_restored(
    shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str
) -> None:
    path = tiny_sd15 if family == "sd15" else tiny_sdxl
    pipe = _model(shared_engine, path).pipe
    tok = pipe.tokenizer
    # The tiny SD 1.x encoder ends in an untrained LayerNorm: every token's mean is 0, so
    # the chunk's mean is float noise and restoring it is meaningless. A real CLIP's final
    # LayerNorm has a learnt bias; give the tiny one a bias for this test.
    norm = getattr(pipe.text_encoder, "text_model", pipe.text_encoder).final_layer_norm
    saved = norm.bias.detach().clone()
    with torch.no_grad():
        norm.bias.add_(torch.linspace(-0.2, 0.6, saved.shape[0]))
    try:
        raw, raw_pooled = _encode(shared_engine, path, "a red cat")
        out, pooled = _encode(shared_engine, path, "a (red:1.5) cat")
    finally:
        with torch.no_grad():
            norm.bias.copy_(saved)
    _, weights = weighted_token_ids(tok, ["a (red:1.5) cat"])
    w = weights[0, 0]
    heavy = w != 1
    assert int(heavy.sum()) >= 1
    widths = [raw.shape[-1]] if family == "sd15" else [32, 32]  # the tiny SDXL's two encoders: 32 + 32 wide
    start = 0
    for width in widths:  # each encoder's part is weighted and restored on its own
        r, o = raw[0, :, start : start + width].double(), out[0, :, start : start + width].double()
        start += width
        assert o.mean().item() == pytest.approx(r.mean().item(), rel=1e-4, abs=1e-6)
        k = (r.mean() / (r * w.double()[:, None]).mean()).item()  # the mean-restoring factor
        assert torch.allclose(o[~heavy], r[~heavy] * k, rtol=1e-4, atol=1e-5)  # unweighted: one common factor
        assert torch.allclose(o[heavy], r[heavy] * 1.5 * k, rtol=1e-4, atol=1e-5)
    if family == "sdxl":
        assert pooled is not None and raw_pooled is not None and torch.equal(pooled, raw_pooled)  # unweighted


def test_emphasize_leaves_unweighted_chunks_alone() -> None:
    hidden = torch.randn(3, 77, 8, generator=torch.Generator().manual_seed(1))
    weights = torch.ones(3, 77)
    weights[1, 5] = 2.0
    out = emphasize(hidden, weights)
    assert torch.equal(out[0], hidden[0]) and torch.equal(out[2], hidden[2])
    assert out[1].mean().item() == pytest.approx(hidden[1].mean().item(), abs=1e-6)
    assert emphasize(hidden, torch.ones(3, 77)) is hidden
    half = hidden.half()
    assert emphasize(half, weights).dtype == torch.float16


@pytest.mark.parametrize(
    ("prompt", "windows"),
    [
        ("a cat", 1),
        ("a cat BREAK a dog", 2),
        ("a cat BREAK", 1),  # a trailing BREAK adds no window (A1111)
        ("BREAK a cat", 2),  # a leading one leaves an empty window first
        ("a BREAK BREAK b", 3),
        ("a cat, BREAKfast", 1),
        (LONG + "BREAK a dog", 4),  # ~200 tokens: 3 windows, then the dog's
    ],
)
def test_break_starts_a_new_window(shared_engine: Any, tiny_sd15: Path, prompt: str, windows: int) -> None:
    tok = _model(shared_engine, tiny_sd15).pipe.tokenizer
    ids, _ = weighted_token_ids(tok, [prompt])
    assert ids.shape == (1, windows, 77)
    tokens, _ = _encode(shared_engine, tiny_sd15, prompt)
    assert tokens.shape[1] == 77 * windows


def test_break_pads_the_window_and_the_next_starts_fresh(shared_engine: Any, tiny_sd15: Path) -> None:
    tok = _model(shared_engine, tiny_sd15).pipe.tokenizer
    ids, _ = weighted_token_ids(tok, ["a cat BREAK a dog"])
    cat, dog = weighted_token_ids(tok, ["a cat"])[0], weighted_token_ids(tok, ["a dog"])[0]
    assert torch.equal(ids[0, 0], cat[0, 0]) and torch.equal(ids[0, 1], dog[0, 0])
    # Each window encodes as its own prompt would: the dog's window does not see the cat.
    tokens, _ = _encode(shared_engine, tiny_sd15, "a cat BREAK a dog")
    assert torch.equal(tokens[:, 77:], _encode(shared_engine, tiny_sd15, "a dog")[0])
    many = weighted_token_ids(tok, [" BREAK ".join(["x"] * 20)])[0]
    assert many.shape[1] == MAX_CHUNKS


def test_the_prompt_cache_tells_weights_apart(shared_engine: Any, tiny_sd15: Path) -> None:
    model = _model(shared_engine, tiny_sd15)
    plain = encode_prompt(model, "a red cat", negative=False, device=CPU, dtype=torch.float32)[0]
    heavy = encode_prompt(model, "a (red:1.5) cat", negative=False, device=CPU, dtype=torch.float32)[0]
    assert not torch.equal(plain, heavy)
    assert torch.equal(encode_prompt(model, "a red cat", negative=False, device=CPU, dtype=torch.float32)[0], plain)


def test_weighted_prompts_render(shared_engine: Any, tiny_sdxl: Path) -> None:
    base = request(tiny_sdxl, steps=2, seed=3, prompt="a (red:1.4) cat BREAK [blurry background]", negative="ugly")
    result = shared_engine.run(base, Recorder())
    assert result.ok, result.error

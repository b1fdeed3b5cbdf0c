"""Prompt encoding: long prompts in 77-token chunks, pos/neg layouts that match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, box_mask, request
from sfumato.inference.families.clip import MAX_CHUNKS, chunked_token_ids
from sfumato.inference.request import ModelRef, RegionSpec

LONG = "a lighthouse on a cliff above a stormy sea at dusk, " * 4  # ~200 tokens of the tiny BPE
TAIL = "with a purple moon"


def _model(engine: Any, path: Path) -> Any:
    return engine.cache.get(ModelRef(str(path)))


def test_short_prompt_ids_match_the_tokenizer(shared_engine: Any, tiny_sd15: Path) -> None:
    tok = _model(shared_engine, tiny_sd15).pipe.tokenizer
    ours = chunked_token_ids(tok, ["a red cat", ""])
    theirs = tok(["a red cat", ""], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    assert ours.shape == (2, 1, 77)
    assert torch.equal(ours[:, 0], theirs)


def test_long_prompts_split_into_chunks(shared_engine: Any, tiny_sd15: Path) -> None:
    tok = _model(shared_engine, tiny_sd15).pipe.tokenizer
    n = len(tok(LONG, add_special_tokens=False).input_ids)
    ids = chunked_token_ids(tok, [LONG, "short"])
    chunks = -(-n // 75)
    assert ids.shape == (2, chunks, 77)
    assert (ids[:, :, 0] == tok.bos_token_id).all()
    # The short prompt's extra chunks are empty prompts.
    empty = chunked_token_ids(tok, [""])[0, 0]
    assert all(torch.equal(ids[1, c], empty) for c in range(1, chunks))
    too_long = chunked_token_ids(tok, [LONG * 10])
    assert too_long.shape[1] == MAX_CHUNKS


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_words_after_token_77_still_matter(shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str) -> None:
    model = tiny_sd15 if family == "sd15" else tiny_sdxl
    tokens, _ = _model(shared_engine, model).family.encode_prompts(
        _model(shared_engine, model).pipe, [LONG + TAIL], torch.device("cpu")
    )
    assert tokens.shape[1] % 77 == 0 and tokens.shape[1] > 77
    base = request(model, steps=2, seed=4, prompt=LONG + "with a green sun", negative="blurry " * 40)
    rec = Recorder()
    a = shared_engine.run(base, rec)
    b = shared_engine.run(base.replace(prompt=LONG + TAIL), Recorder())
    assert a.ok and b.ok, (a.error, b.error)
    assert not np.array_equal(a.images[0], b.images[0])


def test_long_region_prompts_and_short_negatives(shared_engine: Any, tiny_sdxl: Path) -> None:
    w, h = 80, 64
    regions = (
        RegionSpec(box_mask(w, h, 0, 0, 40, 64), LONG, ""),
        RegionSpec(box_mask(w, h, 40, 0, 80, 64), "a tree", "ugly " * 30),
    )
    result = shared_engine.run(request(tiny_sdxl, width=w, height=h, steps=2, regions=regions), Recorder())
    assert result.ok, result.error

"""Textual-inversion embeddings: finding the files, the matching rule, and their vectors
in the text encoding of the tiny SD 1.x and SDXL models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from sfumato.inference.embeddings import (
    EmbeddingLibrary,
    EmbeddingNotFoundError,
    EmbeddingRef,
    find_embeddings,
    load_embedding,
    split_embeddings,
)
from sfumato.inference.errors import EngineError, UnsafeModelError
from sfumato.inference.families.clip import weighted_token_inputs
from sfumato.inference.request import ModelRef
from sfumato.inference.text_conditioning import encode_prompt

CPU = torch.device("cpu")


class NotATensor:
    """Something a weights-only load must refuse."""


def _model(engine: Any, path: Path) -> Any:
    return engine.cache.get(ModelRef(str(path)))


def _library(tmp_path: Path, name: str, tensors: dict[str, torch.Tensor]) -> EmbeddingLibrary:
    folder = tmp_path / "models" / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    return EmbeddingLibrary(find_embeddings(dirs=[folder]))


def _captured_inputs(encoder: Any) -> tuple[list[torch.Tensor], Any]:
    """A hook that records the encoder's token-embedding outputs (after ours ran)."""
    seen: list[torch.Tensor] = []
    handle = encoder.get_input_embeddings().register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    return seen, handle


def test_matching_rule() -> None:
    names = {"myemb": Path("x"), "bad-hands": Path("y")}
    pieces = split_embeddings("a myemb, MyEmb2 and (bad-hands) embedding:Other.pt.", names)
    refs = [p for p in pieces if isinstance(p, EmbeddingRef)]
    assert [(r.name, r.text, r.explicit) for r in refs] == [
        ("myemb", "myemb", False),
        ("bad-hands", "bad-hands", False),
        ("other", "embedding:Other.pt", True),
    ]
    assert "".join(p if isinstance(p, str) else p.text for p in pieces) == "a myemb, MyEmb2 and (bad-hands) embedding:Other.pt."
    assert split_embeddings("plain text, no names", names) == ["plain text, no names"]


def test_find_embeddings_lists_configured_embeddings_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sfumato.vocabulary.config import Config

    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "1")
    (tmp_path / "embeddings" / "sub").mkdir(parents=True)
    (tmp_path / "embeddings" / "A.safetensors").write_bytes(b"")
    (tmp_path / "embeddings" / "sub" / "b.pt").write_bytes(b"")
    (tmp_path / "embeddings" / "notes.txt").write_bytes(b"")
    found = find_embeddings(Config(model_paths=(str(tmp_path),)))
    assert sorted(found) == ["a", "b"]


def test_sd15_embedding_vectors_reach_the_encoder(shared_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    model = _model(shared_engine, tiny_sd15)
    encoder = model.pipe.text_encoder
    width = int(encoder.config.hidden_size)
    vectors = torch.randn(2, width, generator=torch.Generator().manual_seed(1))
    library = _library(tmp_path, "MyEmb", {"emb_params": vectors})
    before_weight = encoder.get_input_embeddings().weight.clone()

    plain, _ = model.family.encode_prompts(model.pipe, ["a red cat"], CPU)
    plain_lib, _ = model.family.encode_prompts(model.pipe, ["a red cat"], CPU, embeddings=library)
    assert torch.equal(plain, plain_lib)  # no name in the prompt: bit for bit as before

    ids, weights, placed = weighted_token_inputs(model.pipe.tokenizer, ["a (myemb:1.5) cat"], 1, library.lookups((("sd1", width),))[0])
    positions = [p for _, p, _ in placed]
    assert len(placed) == 2 and all(torch.equal(v, vectors[i]) for i, (_, _, v) in enumerate(placed))
    assert [float(weights[0, 0, p]) for p in positions] == [1.5, 1.5]

    seen, handle = _captured_inputs(encoder)
    try:
        used, _ = model.family.encode_prompts(model.pipe, ["a (myemb:1.5) cat"], CPU, embeddings=library)
    finally:
        handle.remove()
    assert torch.allclose(seen[0][0, positions], vectors)
    as_text, _ = model.family.encode_prompts(model.pipe, ["a (myemb:1.5) cat"], CPU)
    assert not torch.equal(used, as_text)
    # the model is left as it was: same weights, no hook left behind
    assert torch.equal(encoder.get_input_embeddings().weight, before_weight)
    assert not encoder.get_input_embeddings()._forward_hooks
    again, _ = model.family.encode_prompts(model.pipe, ["a (myemb:1.5) cat"], CPU)
    assert torch.equal(again, as_text)


def test_prompt_cache_keys(shared_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    model = _model(shared_engine, tiny_sd15)
    width = int(model.pipe.text_encoder.config.hidden_size)
    library = _library(tmp_path, "cachedemb", {"emb_params": torch.ones(1, width)})
    model.prompt_cache.clear()
    encode_prompt(model, "a cat", negative=False, device=CPU, dtype=torch.float32, embeddings=library)
    encode_prompt(model, "a cachedemb cat", negative=False, device=CPU, dtype=torch.float32, embeddings=library)
    keys = list(model.prompt_cache)
    assert keys[0] == ("a cat", False)
    assert keys[1][:2] == ("a cachedemb cat", False) and keys[1][2][0][0] == "cachedemb"


def test_missing_explicit_embedding_names_it(shared_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    model = _model(shared_engine, tiny_sd15)
    library = EmbeddingLibrary({})
    with pytest.raises(EmbeddingNotFoundError, match="nosuchthing"):
        model.family.encode_prompts(model.pipe, ["a embedding:nosuchthing cat"], CPU, embeddings=library)
    # a bare word that names nothing is text
    model.family.encode_prompts(model.pipe, ["a nosuchthing cat"], CPU, embeddings=library)


def test_pt_needs_weights_only(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"string_to_param": {"*": torch.ones(3, 8)}, "name": "good"}, good)
    assert load_embedding(good)["sd1"].shape == (3, 8)
    bad = tmp_path / "bad.pt"
    torch.save({"string_to_param": {"*": torch.ones(3, 8)}, "extra": NotATensor()}, bad)
    with pytest.raises(UnsafeModelError, match="bad.pt"):
        load_embedding(bad)


def test_sdxl_clip_l_and_clip_g(shared_engine: Any, tiny_sdxl: Path, tmp_path: Path) -> None:
    model = _model(shared_engine, tiny_sdxl)
    first, second = model.pipe.text_encoder, model.pipe.text_encoder_2
    gen = torch.Generator().manual_seed(2)
    clip_l = torch.randn(3, int(first.config.hidden_size), generator=gen)
    clip_g = torch.randn(3, int(second.config.hidden_size), generator=gen)
    library = _library(tmp_path, "xlemb", {"clip_l": clip_l, "clip_g": clip_g})

    plain = model.family.encode_prompts(model.pipe, ["a red cat"], CPU)
    plain_lib = model.family.encode_prompts(model.pipe, ["a red cat"], CPU, embeddings=library)
    assert torch.equal(plain[0], plain_lib[0]) and torch.equal(plain[1], plain_lib[1])

    seen_l, handle_l = _captured_inputs(first)
    seen_g, handle_g = _captured_inputs(second)
    try:
        used, _ = model.family.encode_prompts(model.pipe, ["a embedding:xlemb cat"], CPU, embeddings=library)
    finally:
        handle_l.remove()
        handle_g.remove()
    ids, _, placed = weighted_token_inputs(model.pipe.tokenizer, ["a embedding:xlemb cat"], 1, library.lookups((("clip_l", clip_l.shape[1]), ("clip_g", clip_g.shape[1])))[0])
    positions = [p for _, p, _ in placed]
    assert torch.allclose(seen_l[0][0, positions], clip_l)
    assert torch.allclose(seen_g[0][0, positions], clip_g)

    # an SD 1.x file does not fit SDXL: explicit is an error, a bare word stays text
    sd1 = _library(tmp_path / "sd1", "onlysd1", {"emb_params": torch.ones(1, int(first.config.hidden_size))})
    with pytest.raises(EngineError, match="onlysd1"):
        model.family.encode_prompts(model.pipe, ["embedding:onlysd1"], CPU, embeddings=sd1)
    as_text = model.family.encode_prompts(model.pipe, ["a onlysd1"], CPU)
    bare = model.family.encode_prompts(model.pipe, ["a onlysd1"], CPU, embeddings=sd1)
    assert torch.equal(as_text[0], bare[0])

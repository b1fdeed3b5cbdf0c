"""The tokenizer files the project ships are the ones its tools write.

``resources/models/builtin/tokenizer`` must be what the trainer would write for today's
caption grammar: a word added to the grammar without retraining would reach the model as
characters it never saw, and this test names it. The SD tokenizer's configs are checked
the same way (its vocabulary needs CLIP's merges file, which is not in the repository).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from tools import shapes_dataset as sd  # noqa: E402
from tools.make_clip_tokenizer import (  # noqa: E402
    EOS,
    caption_vocabulary,
    write_caption_tokenizer,
    write_special_configs,
)

BUILTIN_TOKENIZER = REPO_ROOT / "resources" / "models" / "builtin" / "tokenizer"
CLIP_TOKENIZER = REPO_ROOT / "resources" / "configs" / "clip-tokenizer"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_committed_builtin_tokenizer_is_what_the_caption_grammar_builds(tmp_path: Path) -> None:
    write_caption_tokenizer(tmp_path, sd.caption_words())
    assert _files(tmp_path) == _files(BUILTIN_TOKENIZER)


def test_every_caption_word_is_one_token_and_other_words_fall_back_to_characters(
    tmp_path: Path,
) -> None:
    words = ["red", "reddish", "circle", "background"]
    vocab, merges = caption_vocabulary(words)
    assert len(vocab) == 512 + len(merges) + 2 and vocab[EOS] == len(vocab) - 1
    tok = write_caption_tokenizer(tmp_path, words)
    for w in words:
        assert tok(w, add_special_tokens=False).input_ids == [vocab[w + "</w>"]]
    # "redd" is no caption word: BPE merges what it can ("red") and spells the rest
    pieces = tok.convert_ids_to_tokens(tok("redd", add_special_tokens=False).input_ids)
    assert "".join(pieces) == "redd</w>" and len(pieces) > 1


def test_sd_tokenizer_configs_are_what_the_tool_writes(tmp_path: Path) -> None:
    write_special_configs(tmp_path)
    for name, content in _files(tmp_path).items():
        assert content == (CLIP_TOKENIZER / name).read_bytes(), name

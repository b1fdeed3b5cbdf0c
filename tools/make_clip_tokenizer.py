"""Build the CLIP tokenizer files (``vocab.json`` + ``merges.txt``) from the BPE merges list.

OpenAI's CLIP ships its byte-pair vocabulary as ``bpe_simple_vocab_16e6.txt.gz`` (a header
line, then one merge per line); the same file is inside the ``open-clip-torch`` wheel. The
Hugging Face ``CLIPTokenizer`` wants ``vocab.json`` (token → id) and ``merges.txt``. This
script rebuilds them exactly as CLIP's ``SimpleTokenizer`` does:

    vocab = 256 byte tokens (GPT-2's byte → unicode table)
          + the same 256 with ``</w>`` appended
          + one token per merge, for merges[1 : 49152 - 256 - 2 + 1]
          + ``<|startoftext|>``, ``<|endoftext|>``            → 49408 tokens

Usage (no network besides the package index)::

    pip download --no-deps open-clip-torch -d /tmp/oc
    python tools/make_clip_tokenizer.py /tmp/oc/open_clip_torch-*.whl \
        resources/configs/clip-tokenizer

The argument may be the wheel, or the ``.txt.gz`` file itself. Also writes
``tokenizer_config.json`` and ``special_tokens_map.json`` (SD's settings: 77 tokens,
``<|endoftext|>`` padding; SDXL's second tokenizer pads with ``!`` instead, which the
loader sets when it builds that tokenizer).

:func:`write_caption_tokenizer` builds the other kind of CLIP tokenizer this project
ships: the built-in model's, whose vocabulary is the 512 byte symbols plus just enough
merges to make every caption word one token (``tools/train_builtin_model.py``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import zipfile
from pathlib import Path
from typing import Any

VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2  # merges actually used by CLIP
MAX_TOKENS = 77  # SD 1.x's prompt length
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def read_bpe_text(source: Path) -> str:
    """The merges file's text, from the gz file or from a wheel that contains it."""
    if source.suffix == ".whl" or zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            names = [n for n in wheel.namelist() if n.endswith("bpe_simple_vocab_16e6.txt.gz")]
            if not names:
                raise SystemExit(f"{source} contains no bpe_simple_vocab_16e6.txt.gz")
            return gzip.decompress(wheel.read(names[0])).decode("utf-8")
    return gzip.decompress(source.read_bytes()).decode("utf-8")


def build(bpe_text: str) -> tuple[dict[str, int], list[str]]:
    """(vocab token → id, merge lines) exactly as CLIP's SimpleTokenizer builds them."""
    lines = bpe_text.split("\n")
    merges = lines[1 : N_MERGES + 1]
    if len(merges) != N_MERGES:
        raise SystemExit(f"expected {N_MERGES} merges, found {len(merges)}")
    byte_tokens = list(bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != VOCAB_SIZE:
        raise SystemExit(f"expected {VOCAB_SIZE} tokens, built {len(tokens)}")
    return {t: i for i, t in enumerate(tokens)}, merges


def write_special_configs(out: Path, *, clean_up_spaces: bool = False) -> None:
    """``special_tokens_map.json`` and ``tokenizer_config.json`` with SD 1.x's settings."""
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    config: dict[str, Any] = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_TOKENS,
        "do_lower_case": True,
    }
    if clean_up_spaces:
        config["clean_up_tokenization_spaces"] = True
    config.update({"errors": "replace", "add_prefix_space": False, **special})
    for name, content in (("special_tokens_map.json", special), ("tokenizer_config.json", config)):
        (out / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def write(out: Path, vocab: dict[str, int], merges: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # transformers skips the first line of merges.txt (the version header).
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    write_special_configs(out)


# ----------------------------------------------------------- the built-in model's vocabulary


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one word (the last symbol carries ``</w>``)."""
    parts = [*word[:-1], word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), math.inf), k) for k, (a, b) in enumerate(zip(parts, parts[1:]))]
        best, k = min(pairs)
        if best == math.inf:
            break
        parts = parts[:k] + [parts[k] + parts[k + 1]] + parts[k + 2 :]
    return parts


def caption_vocabulary(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP BPE vocabulary in which every caption word is one token.

    The vocabulary holds the 256 byte symbols (with and without ``</w>``) like CLIP's, so
    words outside the grammar still tokenize (into characters), then the merge results,
    then the special tokens. Merges are added until BPE turns every word into itself.
    """
    byte_chars = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for tok in byte_chars + [c + "</w>" for c in byte_chars]:
        vocab.setdefault(tok, len(vocab))
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        for _ in range(64):
            parts = _bpe(word, ranks)
            if len(parts) == 1:
                break
            # BPE got stuck: merge the remaining pieces left to right, lowest priority.
            acc = parts[0]
            for nxt in parts[1:]:
                pair = (acc, nxt)
                if pair not in ranks:
                    ranks[pair] = len(merges)
                    merges.append(pair)
                acc = acc + nxt
                vocab.setdefault(acc, len(vocab))
        else:  # pragma: no cover - the loop always converges
            raise RuntimeError(f"could not build merges for {word!r}")
    for w in words:
        if _bpe(w, ranks) != [w + "</w>"]:
            raise RuntimeError(f"the merges do not make {w!r} one token")
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab, merges


def write_caption_tokenizer(folder: Path, words: list[str]) -> Any:
    """Write the caption vocabulary's tokenizer files; return the loaded ``CLIPTokenizer``."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = caption_vocabulary(words)
    vocab_text = json.dumps(vocab, ensure_ascii=False, indent=0) + "\n"
    (folder / "vocab.json").write_text(vocab_text, encoding="utf-8")
    with (folder / "merges.txt").open("w", encoding="utf-8") as f:
        f.write("#version: 0.2 - sfumato built-in caption vocabulary\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    write_special_configs(folder, clean_up_spaces=True)
    tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    for w in words:
        ids = tok(w, add_special_tokens=False).input_ids
        if ids != [vocab[w + "</w>"]]:
            raise RuntimeError(f"tokenizer splits {w!r} into {ids}")
    return tok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "source", type=Path, help="open-clip-torch wheel or bpe_simple_vocab_16e6.txt.gz"
    )
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args(argv)
    vocab, merges = build(read_bpe_text(args.source))
    write(args.out, vocab, merges)
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

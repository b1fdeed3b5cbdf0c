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
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zipfile
from pathlib import Path

VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2  # merges actually used by CLIP


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


def write(out: Path, vocab: dict[str, int], merges: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # transformers skips the first line of merges.txt (the version header).
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        **special,
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="open-clip-torch wheel or bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args(argv)
    vocab, merges = build(read_bpe_text(args.source))
    write(args.out, vocab, merges)
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

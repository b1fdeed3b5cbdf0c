"""A1111's attention syntax and BREAK: prompts as A1111 reads them → chunks of weighted spans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sfumato.vocabulary.prompt_syntax import WeightedText, has_syntax, parse_prompt

W = WeightedText

# prompt → chunks of (text, weight); the first rows are the examples in A1111's own
# parse_prompt_attention docstring, with the outputs it lists.
TABLE: list[tuple[str, list[list[tuple[str, float]]]]] = [
    ("normal text", [[("normal text", 1.0)]]),
    ("an (important) word", [[("an ", 1.0), ("important", 1.1), (" word", 1.0)]]),
    ("(unbalanced", [[("unbalanced", 1.1)]]),
    ("\\(literal\\]", [[("(literal]", 1.0)]]),
    ("(unnecessary)(parens)", [[("unnecessaryparens", 1.1)]]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            [
                ("a ", 1.0),
                ("house", 1.3 * 1.1 * 1.1),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.1**4),
                (".", 1.1),
            ]
        ],
    ),
    ("a (cat:1.5) in the garden", [[("a ", 1.0), ("cat", 1.5), (" in the garden", 1.0)]]),
    ("a [cat] in the garden", [[("a ", 1.0), ("cat", 1 / 1.1), (" in the garden", 1.0)]]),
    # model-card style prompts (Civitai / Hugging Face pages)
    (
        "masterpiece, best quality, (ultra-detailed:1.2), 1girl, [[bad hands]]",
        [[("masterpiece, best quality, ", 1.0), ("ultra-detailed", 1.2), (", 1girl, ", 1.0), ("bad hands", 1 / 1.21)]],
    ),
    ("(worst quality, low quality:1.4), blurry", [[("worst quality, low quality", 1.4), (", blurry", 1.0)]]),
    ("( spaced : 0.8 )", [[(" spaced ", 0.8)]]),
    ("(negative:-1)", [[("negative", -1.0)]]),
    ("[(nested:1.5)]", [[("nested", 1.5 / 1.1)]]),
    ("(a:1.0)", [[("a", 1.0)]]),
    ("a (b:1.0) c", [[("a b c", 1.0)]]),
    # unbalanced and stray closers, literal colons, lone backslashes (A1111's reading)
    ("stray) and ]", [[("stray) and ]", 1.0)]]),
    ("x:1.3) y", [[("x:1.3) y", 1.0)]]),
    ("[unclosed square", [[("unclosed square", 1 / 1.1)]]),
    ("(a:1.2.3)", [[("a:1.2.3)", 1.1)]]),  # A1111 raises on the number; we read it as text
    ("time: 12:30", [[("time: 12:30", 1.0)]]),
    ("back\\slash \\\\ kept", [[("backslash \\ kept", 1.0)]]),
    ("()", [[]]),
    ("", [[]]),
    # LoRA tags pass through as text (stripped before encoding elsewhere)
    ("<lora:add_detail:0.8> a cat", [[("<lora:add_detail:0.8> a cat", 1.0)]]),
    ("(<lora:x:1>:1.2)", [[("<lora:x:1>", 1.2)]]),
    # BREAK
    ("a castle BREAK a dragon", [[("a castle", 1.0)], [("a dragon", 1.0)]]),
    ("red hair,BREAK\nblue eyes", [[("red hair,", 1.0)], [("blue eyes", 1.0)]]),
    ("BREAK a", [[], [("a", 1.0)]]),
    ("a BREAK", [[("a", 1.0)], []]),
    ("a BREAK BREAK b", [[("a", 1.0)], [], [("b", 1.0)]]),
    ("(a BREAK b:1.3)", [[("a", 1.3)], [("b", 1.3)]]),
    ("BREAKfast, break, Break, xBREAK", [[("BREAKfast, break, Break, xBREAK", 1.0)]]),
]


@pytest.mark.parametrize(("prompt", "expected"), TABLE)
def test_prompts_read_as_a1111_reads_them(prompt: str, expected: list[list[tuple[str, float]]]) -> None:
    parsed = parse_prompt(prompt)
    got = [[(span.text, span.weight) for span in chunk] for chunk in parsed]
    assert [[t for t, _ in c] for c in got] == [[t for t, _ in c] for c in expected]
    assert [[w for _, w in c] for c in got] == [[pytest.approx(w) for _, w in c] for c in expected]


def test_has_syntax() -> None:
    assert not has_syntax("a cat, 12:30, <lora:x:0.5>, BREAKfast")
    for text in ("(a)", "[a]", "a)", "\\", "a BREAK b", "BREAK"):
        assert has_syntax(text), text


def test_weights_are_exactly_a1111s() -> None:
    # Floats multiplied in A1111's order, so merging of equal weights matches it too.
    assert parse_prompt("a (((house:1.3)) x")[0][1] == W("house", 1.3 * 1.1 * 1.1)
    assert parse_prompt("((a))")[0][0].weight == 1.0 * 1.1 * 1.1


@given(st.text())
def test_any_text_parses(text: str) -> None:
    parsed = parse_prompt(text)
    assert parsed and all(isinstance(chunk, tuple) for chunk in parsed)
    for chunk in parsed:
        assert all(span.text for span in chunk)  # no empty spans
        assert all(a.weight != b.weight for a, b in zip(chunk, chunk[1:]))  # neighbours merged


_PLAIN = st.text(alphabet=st.characters(blacklist_characters="()[]\\"))


@given(_PLAIN)
def test_text_without_syntax_is_itself_at_weight_one(text: str) -> None:
    if has_syntax(text):  # only a BREAK can still be syntax here
        return
    assert parse_prompt(text) == (((W(text),) if text else ()),)


@given(st.lists(st.sampled_from(["a", " ", "(", ")", "[", "]", ":1.5)", ":", "\\", "BREAK", " BREAK ", "x y"]), max_size=30))
def test_bracket_soup_parses(parts: list[str]) -> None:
    text = "".join(parts)
    parsed = parse_prompt(text)
    assert len(parsed) >= 1
    assert all(span.weight > 0 for chunk in parsed for span in chunk)  # only 1.1, 1/1.1 and 1.5 here

"""LoRA tags and wildcards in prompt text (vocabulary/prompt_tags.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfumato.vocabulary.prompt_tags import (
    LoraTag,
    PromptTagError,
    extract_lora_tags,
    load_wildcards,
    resolve_wildcards,
    unescape_wildcards,
)

# --------------------------------------------------------------------------- LoRA tags


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("<lora:grain>", LoraTag("grain", 1.0, 1.0)),
        ("<lora:grain:0.5>", LoraTag("grain", 0.5, 0.5)),
        ("<lora:grain:-1>", LoraTag("grain", -1.0, -1.0)),
        ("<lora: grain : 0.5 >", LoraTag("grain", 0.5, 0.5)),
        ("<LoRA:grain:.25>", LoraTag("grain", 0.25, 0.25)),
        # A1111's order: text encoder first, then UNet.
        ("<lora:grain:0.3:0.8>", LoraTag("grain", unet_weight=0.8, text_encoder_weight=0.3)),
        ("<lora:grain:te=0.3:unet=0.8>", LoraTag("grain", unet_weight=0.8, text_encoder_weight=0.3)),
        ("<lora:grain:0.6:unet=1>", LoraTag("grain", unet_weight=1.0, text_encoder_weight=0.6)),
        ("<lora:film grain v2:1.5>", LoraTag("film grain v2", 1.5, 1.5)),
    ],
)
def test_tag_forms_and_weights(text: str, tag: LoraTag) -> None:
    assert extract_lora_tags(f"a cat, {text}") == ("a cat", (tag,))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat, <lora:x:0.5>, oil paint", "a cat, oil paint"),
        ("a cat <lora:x> oil paint", "a cat oil paint"),
        ("<lora:x>, a cat", "a cat"),
        ("<lora:x> a cat", "a cat"),
        ("a cat, <lora:x>", "a cat"),
        ("a cat,<lora:x>", "a cat"),
        ("a cat <lora:x>, oil", "a cat, oil"),
        ("a cat, <lora:x> <lora:y:2>, oil", "a cat, oil"),
        ("a cat,<lora:x>,<lora:y>,oil", "a cat, oil"),
        ("<lora:x>", ""),
        ("a cat\n<lora:x>, oil\nBREAK", "a cat\noil\nBREAK"),
        ("a  cat,, oil", "a  cat,, oil"),  # no tag: the text is left exactly as it is
    ],
)
def test_removed_tags_leave_no_double_spaces_or_empty_parts(text: str, expected: str) -> None:
    assert extract_lora_tags(text)[0] == expected


def test_tags_come_back_in_order() -> None:
    _, tags = extract_lora_tags("<lora:a:1>, x, <lora:b:0.5>")
    assert [t.name for t in tags] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<lora:grain:strong>", ["<lora:grain:strong>", "'strong'", "not a number"]),
        ("<lora::0.5>", ["<lora::0.5>", "no name"]),
        ("<lora:grain:1:1:1>", ["<lora:grain:1:1:1>", "3 weights"]),
        ("<lora:grain:dyn=4>", ["<lora:grain:dyn=4>", "'dyn'"]),
        ("<lora:grain:unet=x>", ["<lora:grain:unet=x>", "not a number"]),
    ],
)
def test_malformed_tags_are_errors_naming_the_tag(text: str, words: list[str]) -> None:
    with pytest.raises(PromptTagError) as caught:
        extract_lora_tags(f"a cat, {text}")
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value)


def test_tag_text_is_what_a1111_writes() -> None:
    assert LoraTag("grain", 0.5, 0.5).text == "<lora:grain:0.5>"
    assert LoraTag("grain", 1.0, 1.0).text == "<lora:grain:1>"
    assert LoraTag("grain", 0.8, 0.3).text == "<lora:grain:0.3:0.8>"
    assert extract_lora_tags(LoraTag("grain", 0.8, 0.3).text)[1] == (LoraTag("grain", 0.8, 0.3),)


# --------------------------------------------------------------------------- wildcards

LISTS = {"color": ["red", "green", "blue"], "animal": ["a {small|big} cat", "a __color__ dog"]}


def test_same_seed_same_choice() -> None:
    text = "a {red|blue|green} house, __animal__"
    assert resolve_wildcards(text, 7, LISTS) == resolve_wildcards(text, 7, LISTS)


def test_different_seeds_cover_the_options() -> None:
    seen = {resolve_wildcards("{red|blue|green}", seed) for seed in range(60)}
    assert seen == {"red", "blue", "green"}
    lines = {resolve_wildcards("__color__", seed, LISTS) for seed in range(60)}
    assert lines == {"red", "green", "blue"}


def test_nesting_and_lists_inside_lists() -> None:
    seen = {resolve_wildcards("{a|{b|c}}", seed) for seed in range(80)}
    assert seen == {"a", "b", "c"}
    animals = {resolve_wildcards("__animal__", seed, LISTS) for seed in range(100)}
    assert animals == {"a small cat", "a big cat", "a red dog", "a green dog", "a blue dog"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no markup here", "no markup here"),
        ("{only}", "only"),
        ("{|}", ""),
        (r"a \{literal\} brace \| bar", r"a \{literal\} brace \| bar"),
        (r"{x\|y}", r"x\|y"),  # an escaped bar inside a choice is not a separator
        (r"(a cat:1.2), \(paren\)", r"(a cat:1.2), \(paren\)"),  # left to the prompt parser
        ("a stray } and | stay", "a stray } and | stay"),
        ("snake_case and my__file stay", "snake_case and my__file stay"),
    ],
)
def test_escapes_and_plain_text_stay_literal(text: str, expected: str) -> None:
    assert resolve_wildcards(text, 3, LISTS) == expected


def test_resolving_twice_changes_nothing() -> None:
    once = resolve_wildcards(r"{a|b} \{x\} __color__", 5, LISTS)
    assert resolve_wildcards(once, 99, LISTS) == once


def test_unescape_gives_the_plain_characters() -> None:
    assert unescape_wildcards(r"a \{x\} \| \(y\)") == r"a {x} | \(y\)"


def test_missing_list_is_an_error_naming_it() -> None:
    with pytest.raises(PromptTagError, match=r"'flowers'.*__flowers__.*flowers\.txt"):
        resolve_wildcards("a vase of __flowers__", 1, LISTS)


def test_unclosed_choice_is_an_error() -> None:
    with pytest.raises(PromptTagError, match="no closing"):
        resolve_wildcards("a {red|blue house", 1)


def test_a_list_naming_itself_stops() -> None:
    with pytest.raises(PromptTagError, match="nest"):
        resolve_wildcards("__loop__", 1, {"loop": ["more __loop__"]})


def test_load_wildcards_skips_blank_and_comment_lines(tmp_path: Path) -> None:
    folder = tmp_path / "wildcards"
    (folder / "styles").mkdir(parents=True)
    (folder / "color.txt").write_text("# colours\nred\n\n  blue  \n#green\n", encoding="utf-8")
    (folder / "styles" / "paint.txt").write_text("oil\nwatercolour\n", encoding="utf-8")
    (folder / "notes.md").write_text("not a list", encoding="utf-8")
    assert load_wildcards(folder) == {"color": ("red", "blue"), "styles/paint": ("oil", "watercolour")}
    assert load_wildcards(tmp_path / "missing") == {}


def test_load_wildcards_defaults_to_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(tmp_path))
    (tmp_path / "wildcards").mkdir()
    (tmp_path / "wildcards" / "season.txt").write_text("spring\nautumn\n", encoding="utf-8")
    assert load_wildcards() == {"season": ("spring", "autumn")}
    with pytest.raises(PromptTagError, match=str(tmp_path / "wildcards")):
        resolve_wildcards("__weather__", 1, load_wildcards())

"""The A1111 ``parameters`` text: writing, parsing real strings, PNG text chunks, ComfyUI."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin
from sfumato.canvas.files.comfyui_prompt import parse_comfyui_prompt
from sfumato.canvas.files.image_parameters import (
    read_image_parameters,
    read_png_parameters,
    read_png_text,
)
from sfumato.canvas.files.imageio import save_png
from sfumato.canvas.files.parameters import format_parameters, model_display_name, parse_parameters
from sfumato.canvas.files.recipe_parameters import document_parameters, recipe_from_parameters
from sfumato.canvas.model.document import Document, Recipe
from sfumato.inference.request import GenerationRequest, InitImage, ModelRef, Sampler

A1111_HIRES = """masterpiece, best quality, 1girl, (detailed eyes:1.2),
looking at viewer, <lora:add_detail:0.5>
Negative prompt: (worst quality, low quality:1.4), easynegative,
bad hands
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, Model hash: 7f96a1a9ca, Model: anything-v5, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, Hires steps: 10, Hires upscaler: R-ESRGAN 4x+ Anime6B, Lora hashes: "a: 1, b: 2", TI hashes: "easynegative: c74b4e810b03", Version: v1.9.4"""

A1111_OLD = """a photograph of an astronaut riding a horse
Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"""


def summary(**changes: Any) -> dict[str, Any]:
    request = GenerationRequest(
        prompt="a castle on a hill, sunset",
        negative="blurry, lowres",
        model=ModelRef("runwayml/stable-diffusion-v1-5"),
        width=512,
        height=768,
        sampler=Sampler.EULER_A,
        steps=20,
        cfg=7.0,
        seed=1,
        init=InitImage(np.zeros((768, 512, 3), np.uint8), strength=0.6),
    )
    return {**request.summary(), **changes}


# -- writing -------------------------------------------------------------------------------
def test_format_follows_a1111_order_and_spelling() -> None:
    text = format_parameters(summary())
    prompt, negative, line = text.split("\n")
    assert prompt == "a castle on a hill, sunset"
    assert negative == "Negative prompt: blurry, lowres"
    keys = [pair.split(": ")[0] for pair in line.split(", ")]
    assert keys == ["Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Denoising strength"]
    assert "Sampler: Euler a" in line and "CFG scale: 7," in line and "Size: 512x768" in line
    assert "Model: runwayml/stable-diffusion-v1-5" in line and line.endswith("Denoising strength: 0.6")


def test_format_leaves_out_what_is_not_known() -> None:
    text = format_parameters({"prompt": "only a prompt", "seed": 3, "mode": "txt2img", "strength": 1.0, "sampler": "default"})
    assert text == "only a prompt\nSeed: 3"
    assert "Negative prompt" not in format_parameters(summary(negative=""))


def test_values_with_commas_colons_or_newlines_are_quoted_as_a1111_does() -> None:
    text = format_parameters({"prompt": "p", "steps": 1, "extra": {"Lora hashes": "a: 1, b: 2", "Note": "plain"}})
    assert 'Lora hashes: "a: 1, b: 2"' in text and "Note: plain" in text
    assert parse_parameters(text)["extra"] == {"Lora hashes": "a: 1, b: 2", "Note": "plain"}


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("/home/ann/models/dreamshaper_8.safetensors", "dreamshaper_8"),
        ("C:\\SD\\models\\juggernaut.ckpt", "juggernaut"),
        ("./checkpoints/my-diffusers-folder/", "my-diffusers-folder"),
        ("sd15.safetensors", "sd15"),
        ("stabilityai/sdxl-turbo", "stabilityai/sdxl-turbo"),
        ("builtin", "builtin"),
    ],
)
def test_model_paths_show_only_their_name(source: str, shown: str) -> None:
    assert model_display_name(source) == shown
    assert f"Model: {shown}" in format_parameters({"prompt": "", "model": source, "steps": 1})


def test_controls_are_written_as_controlnet_units() -> None:
    controls = [{"kind": "scribble", "strength": 0.8, "start": 0.0, "end": 0.9, "model": None}]
    text = format_parameters(summary(controls=controls))
    assert 'ControlNet 0: "Module: scribble, Weight: 0.8, Guidance Start: 0, Guidance End: 0.9"' in text


# -- parsing -------------------------------------------------------------------------------
def test_parse_recent_a1111_with_hires_loras_and_schedule_type() -> None:
    parsed = parse_parameters(A1111_HIRES)
    assert parsed["prompt"] == (
        "masterpiece, best quality, 1girl, (detailed eyes:1.2),\nlooking at viewer, <lora:add_detail:0.5>"
    )
    assert parsed["negative"] == "(worst quality, low quality:1.4), easynegative,\nbad hands"
    assert (parsed["steps"], parsed["cfg"], parsed["seed"]) == (28, 7.0, 1234567890)
    assert parsed["sampler"] == Sampler.DPMPP_2M_KARRAS.value  # "DPM++ 2M" + "Karras"
    assert (parsed["width"], parsed["height"]) == (512, 768)
    assert parsed["model"] == "anything-v5" and parsed["strength"] == 0.45
    extra = parsed["extra"]
    assert extra["Hires upscale"] == "2" and extra["Hires upscaler"] == "R-ESRGAN 4x+ Anime6B"
    assert extra["Lora hashes"] == "a: 1, b: 2"
    assert extra["TI hashes"] == "easynegative: c74b4e810b03"
    assert extra["Clip skip"] == "2" and extra["Model hash"] == "7f96a1a9ca"
    assert "Schedule type" not in extra  # merged into the sampler


def test_parse_older_a1111_without_negative() -> None:
    parsed = parse_parameters(A1111_OLD)
    assert parsed["prompt"] == "a photograph of an astronaut riding a horse"
    assert parsed["negative"] == ""
    assert parsed["sampler"] == "euler_a" and parsed["cfg"] == 7.5 and parsed["seed"] == 42


def test_parse_keeps_an_unknown_sampler_and_schedule_as_text() -> None:
    parsed = parse_parameters("p\nSteps: 5, Sampler: DPM++ 3M SDE, Schedule type: Exponential, Seed: 1")
    assert "sampler" not in parsed
    assert parsed["extra"] == {"Sampler": "DPM++ 3M SDE", "Schedule type": "Exponential"}


def test_parse_schedule_type_automatic_keeps_the_plain_sampler() -> None:
    parsed = parse_parameters("p\nSteps: 5, Sampler: Euler a, Schedule type: Automatic, Seed: 1")
    assert parsed["sampler"] == "euler_a" and parsed["extra"] == {"Schedule type": "Automatic"}


def test_parse_prompt_only_text_and_weighted_last_line() -> None:
    text = "a cat\n(masterpiece:1.2), (best quality:1.1), (sharp:1.0)"
    assert parse_parameters(text) == {"prompt": text, "negative": ""}


def test_parse_windows_line_endings_and_bad_numbers() -> None:
    parsed = parse_parameters("a\r\nNegative prompt: b\r\nSteps: lots, Seed: 7, Size: big, CFG scale: 4")
    assert (parsed["prompt"], parsed["negative"], parsed["seed"], parsed["cfg"]) == ("a", "b", 7, 4.0)
    assert parsed["extra"] == {"Steps": "lots", "Size": "big"}


def test_parse_empty_text() -> None:
    assert parse_parameters("") == {"prompt": "", "negative": ""}


prompt_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\n,:\"'"),
    max_size=60,
).map(lambda s: "\n".join(line.strip() for line in s.split("\n")).strip())


@settings(max_examples=150, deadline=None)
@given(
    prompt=prompt_text.filter(lambda s: "Negative prompt:" not in s),
    negative=prompt_text,
    steps=st.integers(1, 150),
    cfg=st.floats(0, 30, allow_nan=False).map(lambda v: round(v, 2)),
    seed=st.integers(0, 2**63 - 1),
    strength=st.floats(0, 1).map(lambda v: round(v, 3)),
    sampler=st.sampled_from([s for s in Sampler if s is not Sampler.DEFAULT]),
    model=st.sampled_from(["runwayml/stable-diffusion-v1-5", "builtin", "dreamshaper, v8"]),
)
def test_round_trip(prompt: str, negative: str, steps: int, cfg: float, seed: int, strength: float, sampler: Sampler, model: str) -> None:
    original = summary(
        prompt=prompt, negative=negative, steps=steps, cfg=cfg, seed=seed, strength=strength, sampler=sampler.value, model=model
    )
    parsed = parse_parameters(format_parameters(original))
    expected = {key: original[key] for key in ("prompt", "negative", "steps", "cfg", "seed", "strength", "sampler", "model", "width", "height")}
    assert {key: parsed.get(key) for key in expected} == expected


# -- ComfyUI -------------------------------------------------------------------------------
COMFY = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "dpmpp_2m",
                                                "scheduler": "karras", "denoise": 1, "model": ["10", 0],
                                                "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "x.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery nature glass bottle", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}


def test_comfyui_prompt_graph() -> None:
    parsed = parse_comfyui_prompt(json.dumps(COMFY))
    assert parsed is not None
    assert parsed["prompt"] == "beautiful scenery nature glass bottle" and parsed["negative"] == "text, watermark"
    assert (parsed["seed"], parsed["steps"], parsed["cfg"]) == (156680208700286, 20, 8.0)
    assert parsed["sampler"] == "dpmpp_2m_karras" and parsed["model"] == "v1-5-pruned-emaonly"
    assert (parsed["width"], parsed["height"]) == (512, 640) and "strength" not in parsed


def test_comfyui_through_controlnet_apply_keeps_prompts_apart() -> None:
    graph = json.loads(json.dumps(COMFY))
    graph["11"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["6", 0], "negative": ["7", 0], "strength": 1}}
    graph["3"]["inputs"]["positive"] = ["11", 0]
    graph["3"]["inputs"]["negative"] = ["11", 1]
    parsed = parse_comfyui_prompt(json.dumps(graph))
    assert parsed is not None
    assert (parsed["prompt"], parsed["negative"]) == ("beautiful scenery nature glass bottle", "text, watermark")


def test_comfyui_hostile_graphs() -> None:
    # A node linking to itself through many inputs must not explode (cycles, fan-out).
    loop = {"1": {"class_type": "KSampler", "inputs": {"positive": ["2", 0], "seed": float("inf"), "steps": True}},
            "2": {"class_type": "Loop", "inputs": {k: ["2", 0] for k in "abcdefghijklmnop"}}}
    parsed = parse_comfyui_prompt(json.dumps(loop))
    assert parsed is not None and parsed["prompt"] == "" and "seed" not in parsed and "steps" not in parsed
    odd = {"1": {"class_type": "KSampler", "inputs": [1, 2]}, "2": {"inputs": "x"}}
    assert parse_comfyui_prompt(json.dumps(odd)) is not None


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
                    max_leaves=30))
@settings(max_examples=200, deadline=None)
@example({"²": {}})  # a node id that str.isdigit() accepts and int() refuses
def test_comfyui_never_crashes_on_any_json(value: Any) -> None:
    graph = {"1": {"class_type": "KSampler", "inputs": value}, "2": value}
    parse_comfyui_prompt(json.dumps(graph))
    parse_comfyui_prompt(json.dumps(value))


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_parse_parameters_never_crashes(text: str) -> None:
    parsed = parse_parameters(text)
    assert isinstance(parsed["prompt"], str) and isinstance(parsed["negative"], str)
    format_parameters(parsed)  # and whatever came out can be written again


@pytest.mark.parametrize("text", ["not json", "[1, 2]", json.dumps({"1": {"class_type": "SamplerCustom", "inputs": {}}})])
def test_comfyui_without_a_ksampler_says_no(text: str) -> None:
    assert parse_comfyui_prompt(text) is None


# -- PNG chunks ------------------------------------------------------------------------------
def write_png(path: Path, chunks: list[tuple[str, str, str]]) -> Path:
    info = PngImagePlugin.PngInfo()
    for kind, key, value in chunks:
        if kind == "tEXt":
            info.add_text(key, value)
        elif kind == "zTXt":
            info.add_text(key, value, zip=True)
        else:
            info.add_itxt(key, value, zip=kind == "iTXt-z")
    Image.new("RGBA", (3, 2), (1, 2, 3, 4)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt", "iTXt-z"])
def test_read_png_text_in_every_chunk_kind(tmp_path: Path, kind: str) -> None:
    text = A1111_OLD if kind in ("tEXt", "zTXt") else A1111_OLD.replace("astronaut", "宇宙飛行士 🚀")
    path = write_png(tmp_path / "a.png", [(kind, "parameters", text), ("tEXt", "other", "x")])
    assert read_png_text(path) == {"parameters": text}
    params = read_png_parameters(path)
    assert params is not None and params["seed"] == 42


def test_read_png_parameters_prefers_a1111_then_comfyui(tmp_path: Path) -> None:
    comfy = write_png(tmp_path / "c.png", [("tEXt", "prompt", json.dumps(COMFY)), ("tEXt", "workflow", "{}")])
    params = read_png_parameters(comfy)
    assert params is not None and params["seed"] == 156680208700286
    assert read_png_parameters(write_png(tmp_path / "n.png", [])) is None


def test_read_png_text_survives_damage_and_non_pngs(tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png", [("zTXt", "parameters", "x" * 1000)])
    data = path.read_bytes()
    at = data.index(b"zTXt")
    damaged = tmp_path / "d.png"
    damaged.write_bytes(data[: at + 20] + b"\xff" * 10 + data[at + 30 :])  # broken zlib stream
    assert read_png_text(damaged) == {}
    (tmp_path / "t.png").write_bytes(b"not a png")
    assert read_png_text(tmp_path / "t.png") == {} and read_png_parameters(tmp_path / "t.png") is None
    (tmp_path / "cut.png").write_bytes(data[:30])
    assert read_png_text(tmp_path / "cut.png") == {}
    assert read_png_text(tmp_path / "missing.png") == {}


def with_ztxt(tmp_path: Path, stream: bytes) -> Path:
    """A valid PNG with a zTXt ``parameters`` chunk holding ``stream`` (correct CRC)."""
    data = write_png(tmp_path / "base.png", []).read_bytes()
    body = b"parameters\x00\x00" + stream
    chunk = len(body).to_bytes(4, "big") + b"zTXt" + body + zlib.crc32(b"zTXt" + body).to_bytes(4, "big")
    path = tmp_path / "z.png"
    path.write_bytes(data[:33] + chunk + data[33:])  # right after IHDR
    return path


def test_text_bomb_is_not_inflated_beyond_the_limit(tmp_path: Path) -> None:
    from sfumato.canvas.files import image_parameters

    assert read_png_text(with_ztxt(tmp_path, zlib.compress(b"Steps: 1"))) == {"parameters": "Steps: 1"}
    bomb = zlib.compress(b"a" * (image_parameters.MAX_TEXT_BYTES + 10), 9)
    assert read_png_text(with_ztxt(tmp_path, bomb)) == {}


def test_truncated_compressed_text_is_not_returned(tmp_path: Path) -> None:
    stream = zlib.compress(b"Steps: 20, Seed: 1, CFG scale: 7" * 20)
    assert read_png_text(with_ztxt(tmp_path, stream[: len(stream) // 2])) == {}


# -- recipe <-> parameters -------------------------------------------------------------------
def test_document_recipe_round_trips_through_a_png(tmp_path: Path) -> None:
    recipe = Recipe(prompt="a fox\nin snow", negative="blur", model="sdxl-base", seed=9, steps=12, cfg=4.5, strength=0.7, sampler="dpmpp_2m")
    doc = Document(16, 8, recipe=recipe)
    text = document_parameters(doc)
    assert text is not None and "Size: 16x8" in text
    save_png(np.zeros((8, 16, 4), np.uint8), tmp_path / "r.png", text)
    params = read_png_parameters(tmp_path / "r.png")
    assert params is not None and recipe_from_parameters(params) == recipe


def test_empty_recipe_gives_no_parameters() -> None:
    assert document_parameters(Document(8, 8)) is None


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le", "ascii"])
def test_jpeg_and_webp_exif_user_comment(tmp_path: Path, fmt: str, encoding: str) -> None:
    text = A1111_OLD if encoding == "ascii" else A1111_OLD.replace("horse", "馬")
    prefix = b"ASCII\x00\x00\x00" if encoding == "ascii" else b"UNICODE\x00"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = prefix + text.encode(encoding)
    path = tmp_path / f"a.{fmt.lower()}"
    Image.new("RGB", (8, 8)).save(path, fmt, exif=exif)
    params = read_image_parameters(path)
    assert params is not None and params["prompt"] == text.split("\n")[0] and params["seed"] == 42


def test_read_image_parameters_without_any(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    (tmp_path / "t.txt").write_text("Steps: 1, Seed: 2, CFG scale: 3")
    assert read_image_parameters(tmp_path / "a.jpg") is None
    assert read_image_parameters(tmp_path / "t.txt") is None
    assert read_image_parameters(tmp_path / "missing.jpg") is None
    png = write_png(tmp_path / "p.png", [("tEXt", "parameters", A1111_OLD)])
    assert read_image_parameters(png) == read_png_parameters(png)

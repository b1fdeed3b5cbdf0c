"""The tiny flow-matching models of ``tests/tinyflow.py`` run in diffusers' own pipelines.

For every family: the folder loads with ``<Pipeline>.from_pretrained(..., local_files_only=True)``;
2 steps of txt2img at 64×64 (every family takes multiples of 16 px) give a 64×64 image; a
second build is byte-identical and gives the same image for the same seed; two prompts give
different images (the text path is live, down to the tokenizer). Each ControlNet runs in its
family's ControlNet pipeline, and two control images give two different pictures (so the
control input reaches the transformer).

What the families need from a test (see also the ``tinyflow`` docstring): Qwen-Image only
applies true CFG with a ``negative_prompt`` (one is given, so CFG runs, as in real use);
FLUX.2 Klein (distilled) ignores guidance, so it runs at ``guidance_scale=1``; FLUX Fill
needs an image and a mask.
"""

from __future__ import annotations

import filecmp
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tinyflow import build_tiny_flux, folder_bytes, qwen_tokenizer, t5_tokenizer, tiny_flow_model

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

SIZE = 64
PROMPT = "a red cat on the sky"
OTHER = "a portrait of a woman in the forest"


def _pipeline_class(kind: str) -> Any:
    import diffusers

    return getattr(diffusers, {
        "flux": "FluxPipeline", "flux-schnell": "FluxPipeline", "flux-fill": "FluxFillPipeline",
        "chroma": "ChromaPipeline", "sd3": "StableDiffusion3Pipeline", "zimage": "ZImagePipeline",
        "qwenimage": "QwenImagePipeline", "flux2-klein": "Flux2KleinPipeline",
    }[kind])  # fmt: skip


def _extra(kind: str) -> dict[str, Any]:
    from PIL import Image

    if kind == "flux2-klein":
        return {"guidance_scale": 1.0}
    if kind == "qwenimage":
        return {"negative_prompt": " ", "true_cfg_scale": 4.0}
    if kind == "flux-fill":
        gray = np.full((SIZE, SIZE, 3), 128, np.uint8)
        gray[:, : SIZE // 2] = (200, 40, 40)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[16:48, 16:48] = 255
        return {"image": Image.fromarray(gray), "mask_image": Image.fromarray(mask)}
    return {}


def _run(pipe: Any, kind: str, prompt: str, seed: int = 7, **kwargs: Any) -> np.ndarray:
    import torch

    out = pipe(
        prompt=prompt, height=SIZE, width=SIZE, num_inference_steps=2, output_type="np",
        generator=torch.Generator("cpu").manual_seed(seed), **{**_extra(kind), **kwargs},
    )  # fmt: skip
    return np.asarray(out.images)


def _load(kind: str, path: Path) -> Any:
    return _pipeline_class(kind).from_pretrained(str(path), local_files_only=True)


FAMILIES = [
    "flux",
    "flux-schnell",
    "flux-fill",
    "chroma",
    "sd3",
    "zimage",
    "qwenimage",
    "flux2-klein",
]


@pytest.mark.parametrize("kind", FAMILIES)
def test_family_runs_in_its_pipeline(kind: str, tmp_path: Path) -> None:
    from tinyflow import _KINDS

    path = tiny_flow_model(kind)
    assert folder_bytes(path) < 2_000_000
    start = time.perf_counter()
    again = _KINDS[kind](tmp_path / kind)
    assert time.perf_counter() - start < 2.0
    mismatched = [
        str(f.relative_to(path)) for f in sorted(path.rglob("*"))
        if f.is_file() and not filecmp.cmp(f, again / f.relative_to(path), shallow=False)
    ]  # fmt: skip
    assert not mismatched, f"two builds differ in {mismatched}"

    pipe = _load(kind, path)
    assert pipe.vae_scale_factor == 8  # the real spatial factor (FLUX.2 packs a further 2x2)
    image = _run(pipe, kind, PROMPT)
    assert image.shape == (1, SIZE, SIZE, 3)
    assert np.isfinite(image).all() and image.std() > 0.0
    np.testing.assert_array_equal(image, _run(_load(kind, again), kind, PROMPT))
    other = _run(pipe, kind, OTHER)
    assert np.abs(other - image).max() > 1e-3, (
        "two prompts gave the same image: the text path is dead"
    )


def test_schnell_is_flux_without_guidance() -> None:
    import json

    dev = json.loads((tiny_flow_model("flux") / "transformer" / "config.json").read_text())
    schnell = json.loads(
        (tiny_flow_model("flux-schnell") / "transformer" / "config.json").read_text()
    )
    assert dev["guidance_embeds"] and not schnell["guidance_embeds"]
    sched = json.loads(
        (tiny_flow_model("flux-schnell") / "scheduler" / "scheduler_config.json").read_text()
    )
    assert sched["use_dynamic_shifting"] is False and sched["shift"] == 1.0
    fill = json.loads((tiny_flow_model("flux-fill") / "transformer" / "config.json").read_text())
    assert (fill["in_channels"], fill["out_channels"]) == (384, 64)


def test_build_takes_a_fresh_folder_each_time(tmp_path: Path) -> None:
    """A builder reuses a finished folder rather than rebuilding over it."""
    path = build_tiny_flux(tmp_path / "f")
    stamp = (path / "model_index.json").stat().st_mtime_ns
    assert build_tiny_flux(path) == path
    assert (path / "model_index.json").stat().st_mtime_ns == stamp


def test_t5_tokenizer_is_t5_shaped() -> None:
    tok = t5_tokenizer()
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    a, b = tok("a red cat").input_ids, tok("a blue zebra").input_ids
    assert a[-1] == 1 and b[-1] == 1 and a != b
    assert tok.unk_token_id not in b  # unknown words are spelled out, not <unk>


def test_qwen_template_prefix_is_the_dropped_tokens() -> None:
    """QwenImagePipeline drops the first 34 tokens (counted with Qwen's vocabulary) of its
    template; with the tiny vocabulary the template's prefix is exactly that long too."""
    pipe = _load("qwenimage", tiny_flow_model("qwenimage"))
    template, drop = pipe.prompt_template_encode, pipe.prompt_template_encode_start_idx
    assert len(pipe.tokenizer(template.split("{}")[0]).input_ids) == drop
    ids = pipe.tokenizer(template.format("a red cat")).input_ids
    assert pipe.tokenizer.decode(ids[drop:]).startswith("a red cat<|im_end|>")


def test_qwen3_chat_template_matches_qwen3() -> None:
    tok = qwen_tokenizer()
    messages = [{"role": "user", "content": "a cat"}]
    think = tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=True
    )
    plain = tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert think == "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n"
    assert plain == think + "<think>\n\n</think>\n\n"
    ids = tok(plain).input_ids
    for special in ("<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        assert tok.convert_tokens_to_ids(special) in ids


CONTROLNETS = {
    "controlnet-flux": ("flux", "FluxControlNetModel", "FluxControlNetPipeline"),
    "controlnet-sd3": ("sd3", "SD3ControlNetModel", "StableDiffusion3ControlNetPipeline"),
    "controlnet-zimage": ("zimage", "ZImageControlNetModel", "ZImageControlNetPipeline"),
    "controlnet-qwenimage": (
        "qwenimage",
        "QwenImageControlNetModel",
        "QwenImageControlNetPipeline",
    ),
}


@pytest.mark.parametrize("kind", list(CONTROLNETS))
def test_controlnet_runs_in_its_pipeline(kind: str) -> None:
    import diffusers
    from PIL import Image

    family, model_cls, pipe_cls = CONTROLNETS[kind]
    path = tiny_flow_model(kind)
    assert folder_bytes(path) < 2_000_000
    controlnet = getattr(diffusers, model_cls).from_pretrained(str(path), local_files_only=True)
    pipe = getattr(diffusers, pipe_cls).from_pretrained(
        str(tiny_flow_model(family)), controlnet=controlnet, local_files_only=True
    )
    ramp = np.linspace(0, 255, SIZE, dtype=np.uint8)
    edges = np.stack([np.tile(ramp, (SIZE, 1))] * 3, axis=-1)
    images = [
        _run(
            pipe,
            family,
            PROMPT,
            control_image=Image.fromarray(c),
            controlnet_conditioning_scale=1.0,
        )
        for c in (edges, 255 - edges.transpose(1, 0, 2))
    ]
    assert images[0].shape == (1, SIZE, SIZE, 3)
    assert np.abs(images[0] - images[1]).max() > 1e-3, (
        "the control image does not reach the picture"
    )

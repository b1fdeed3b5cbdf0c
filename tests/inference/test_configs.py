"""The shipped diffusers configs and CLIP tokenizer files (offline single-file loading)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import sfumato.resources
import torch

CONFIGS = Path(sfumato.resources.__file__).parent / "configs"

# Parameter counts of the official models (public figures; built on the meta device here).
KNOWN_PARAMS = {
    ("sd15", "unet"): 859_520_964,
    ("sdxl", "unet"): 2_567_463_684,
    ("sd15", "vae"): 83_653_863,
    ("sdxl", "vae"): 83_653_863,
    ("sd15", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder_2"): 694_659_840,
    ("sd15", "controlnet"): 361_279_120,
}


@pytest.mark.parametrize(("family", "component"), sorted(KNOWN_PARAMS))
def test_config_builds_the_official_architecture(family: str, component: str) -> None:
    import diffusers
    import transformers

    folder = CONFIGS / family / component
    if component.startswith("text_encoder"):
        config = transformers.CLIPTextConfig.from_pretrained(folder)
        arch = json.loads((folder / "config.json").read_text())["architectures"][0]
        cls = getattr(transformers, arch)
        with torch.device("meta"):
            model = cls(config)
    else:
        data = json.loads((folder / "config.json").read_text())
        cls = getattr(diffusers, data["_class_name"])
        unknown = [k for k in data if not k.startswith("_") and k not in inspect.signature(cls.__init__).parameters]
        assert not unknown, f"{family}/{component}: keys the class does not take: {unknown}"
        with torch.device("meta"):
            model = cls.from_config(data)
    assert sum(p.numel() for p in model.parameters()) == KNOWN_PARAMS[(family, component)]


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_model_index_components_exist(family: str) -> None:
    index = json.loads((CONFIGS / family / "model_index.json").read_text())
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        if name.startswith("tokenizer"):
            continue  # shared files in clip-tokenizer/, attached by the loader
        folder = CONFIGS / family / name
        assert (folder / "config.json").exists() or (folder / "scheduler_config.json").exists(), name


def test_clip_tokenizer_matches_openai_ids() -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(CONFIGS / "clip-tokenizer")
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.model_max_length == 77

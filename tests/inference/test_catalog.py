"""Model discovery: configured folders, ComfyUI/A1111 layouts, hub cache, header sniffing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sfumato.inference import catalog
from sfumato.inference.catalog import (
    BUILTIN_LABEL,
    ModelEntry,
    Origin,
    WeightsKind,
    find_controlnet,
    find_default_model,
    find_loras,
    list_models,
    system_model_dirs,
)
from sfumato.vocabulary.config import Config, config_path, load_config, read_json, save_config
from sfumato.vocabulary.kinds import ControlKind

T = np.zeros((1,), np.float16)
SD15_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4, 1, 1), np.float16),
    "cond_stage_model.transformer.text_model.final_layer_norm.weight": T,
}
SDXL_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4, 1, 1), np.float16),
    "model.diffusion_model.label_emb.0.0.weight": T,
    "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": T,
    "conditioner.embedders.1.model.ln_final.weight": T,
}
SD2_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": T,
    "cond_stage_model.model.ln_final.weight": T,
}
CONTROL_KEYS = {"control_model.input_hint_block.0.weight": T, "control_model.input_blocks.0.0.weight": T}
LORA_SD15 = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": T, "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": T}
LORA_SDXL = {"lora_unet_input_blocks_4_1_proj_in.lora_down.weight": T, "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": T}


def _st(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home with ComfyUI and A1111 layouts; system folders enabled for the test."""
    home = tmp_path / "home"
    comfy = home / "ComfyUI" / "models"
    _st(comfy / "checkpoints" / "dreamy_v1.safetensors", SD15_KEYS)
    _st(comfy / "checkpoints" / "xl" / "juggernaut_xl.safetensors", SDXL_KEYS)
    _st(comfy / "controlnet" / "control_v11p_sd15_scribble.safetensors", CONTROL_KEYS)
    _st(comfy / "controlnet" / "control_v11p_sd15_canny.safetensors", CONTROL_KEYS)
    _st(comfy / "loras" / "watercolor.safetensors", LORA_SD15)
    _st(comfy / "loras" / "pixel_xl.safetensors", LORA_SDXL)
    (comfy / "checkpoints" / "notes.txt").write_text("not a model")
    webui = home / "stable-diffusion-webui" / "models"
    _st(webui / "Stable-diffusion" / "v2-1_768.safetensors", SD2_KEYS)
    (webui / "Stable-diffusion" / "old.ckpt").write_bytes(b"PK")
    _st(webui / "Lora" / "ink.safetensors", LORA_SD15)
    hub = home / ".cache" / "huggingface" / "hub"
    snap = hub / "models--org--tiny-sdxl" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    (hub / "models--org--tiny-sdxl" / "refs").mkdir()
    (hub / "models--org--tiny-sdxl" / "refs" / "main").write_text("abc123")
    cn = hub / "models--lllyasviel--sd-controlnet-depth" / "snapshots" / "def"
    cn.mkdir(parents=True)
    (cn / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", "cross_attention_dim": 768}))
    junk = hub / "models--org--bert" / "snapshots" / "x"
    junk.mkdir(parents=True)
    (junk / "config.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "0")
    return home


def _by_label(entries: list[ModelEntry]) -> dict[str, ModelEntry]:
    return {e.label: e for e in entries}


def test_system_folders_found_with_kinds_and_families(home: Path) -> None:
    entries = _by_label(list_models(config=Config()))
    assert entries["dreamy_v1"] == ModelEntry(
        WeightsKind.CHECKPOINT, str(home / "ComfyUI/models/checkpoints/dreamy_v1.safetensors"), "dreamy_v1", "sd15", Origin.COMFYUI
    )
    assert entries["juggernaut_xl"].family == "sdxl"  # found one level down
    assert entries["control_v11p_sd15_scribble"].kind is WeightsKind.CONTROLNET
    assert entries["control_v11p_sd15_scribble"].family == "sd15"
    assert entries["watercolor"].kind is WeightsKind.LORA and entries["watercolor"].family == "sd15"
    assert entries["pixel_xl"].family == "sdxl"
    assert entries["v2-1_768"].origin is Origin.A1111 and entries["v2-1_768"].family == "sd2"
    assert entries["v2-1_768"].supported  # SD 2.x is a supported family (tests/inference/test_sd2.py)
    assert entries["old"].family is None and entries["old"].kind is WeightsKind.CHECKPOINT
    assert entries["ink"].kind is WeightsKind.LORA
    hub = entries["org/tiny-sdxl"]
    snapshot = home / ".cache/huggingface/hub/models--org--tiny-sdxl/snapshots/abc123"
    assert (hub.origin, hub.kind, hub.family, hub.source, hub.path) == (Origin.HUB, WeightsKind.CHECKPOINT, "sdxl", "org/tiny-sdxl", snapshot)
    assert entries["lllyasviel/sd-controlnet-depth"].kind is WeightsKind.CONTROLNET
    assert "notes" not in entries and "org/bert" not in entries


def test_kind_filter_and_order(home: Path) -> None:
    loras = list_models(WeightsKind.LORA, config=Config())
    assert {e.label for e in loras} == {"watercolor", "pixel_xl", "ink"}
    origins = [e.origin for e in list_models(config=Config())]
    assert origins == sorted(origins, key=list(Origin).index)


def test_system_folders_skipped_when_disabled(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "1")
    assert all(e.origin in (Origin.BUILTIN, Origin.CONFIGURED) for e in list_models(config=Config()))


def test_configured_paths_files_and_diffusers_folders(tmp_path: Path) -> None:
    models = tmp_path / "my models"
    _st(models / "a.safetensors", SD15_KEYS)
    folder = models / "my-xl-diffusers"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"ignored")
    sd2 = models / "sd2-folder"
    (sd2 / "unet").mkdir(parents=True)
    (sd2 / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (sd2 / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 1024}))
    single = _st(tmp_path / "elsewhere" / "b.safetensors", SDXL_KEYS)
    config = Config(model_paths=(str(models), str(single), str(tmp_path / "missing")))
    entries = _by_label(list_models(config=config))
    assert entries["a"].origin is Origin.CONFIGURED and entries["a"].family == "sd15"
    assert entries["my-xl-diffusers"].family == "sdxl" and entries["my-xl-diffusers"].source == str(folder)
    assert entries["sd2-folder"].family == "sd2"
    assert entries["b"].family == "sdxl"
    # the unet's own weights file inside the diffusers folder is not a separate entry
    assert "diffusion_pytorch_model" not in entries
    # the same file configured twice is listed once
    twice = list_models(config=Config(model_paths=(str(single), str(single.parent))))
    assert [e.label for e in twice if e.origin is Origin.CONFIGURED] == ["b"]


def test_corrupt_file_listed_without_family(tmp_path: Path) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (entry,) = [e for e in list_models(config=Config(model_paths=(str(bad),))) if e.origin is Origin.CONFIGURED]
    assert entry.family is None and entry.kind is WeightsKind.CHECKPOINT


def test_default_model(tmp_path: Path) -> None:
    builtin = find_default_model(Config())
    assert builtin.source == "builtin" and builtin.label == BUILTIN_LABEL and builtin.origin is Origin.BUILTIN
    ckpt = _st(tmp_path / "fav.safetensors", SDXL_KEYS)
    chosen = find_default_model(Config(default_model=str(ckpt)))
    assert chosen.source == str(ckpt) and chosen.family == "sdxl"
    assert find_default_model(Config(default_model=str(tmp_path / "gone.safetensors"))).source == "builtin"
    hub = find_default_model(Config(default_model="stabilityai/sdxl-turbo"))
    assert hub.origin is Origin.HUB and hub.source == "stabilityai/sdxl-turbo" and hub.path is None


def test_default_model_from_saved_config() -> None:
    save_config(Config(default_model="org/name"))
    assert find_default_model().source == "org/name"
    save_config(Config())
    assert find_default_model().source == "builtin"


def test_find_controlnet_and_loras(home: Path) -> None:
    scribble = find_controlnet(ControlKind.SCRIBBLE, "sd15")
    assert scribble is not None and scribble.label == "control_v11p_sd15_scribble"
    assert find_controlnet(ControlKind.CANNY, "sd15").label == "control_v11p_sd15_canny"  # type: ignore[union-attr]
    depth = find_controlnet(ControlKind.DEPTH, "sd15")
    assert depth is not None and depth.source == "lllyasviel/sd-controlnet-depth"
    assert depth.path is not None and (depth.path / "config.json").is_file()  # the cached snapshot
    assert find_controlnet(ControlKind.SCRIBBLE, "sdxl") is None
    assert find_controlnet(ControlKind.POSE, "sd15") is None
    assert {e.label for e in find_loras("sdxl", config=Config())} == {"pixel_xl"}


def test_builtin_entries_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "builtin"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (model / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 64}))
    control = tmp_path / "builtin-controlnet-scribble"
    control.mkdir()
    (control / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", "cross_attention_dim": 64}))
    monkeypatch.setattr(catalog, "BUILTIN_MODEL_DIR", model)
    monkeypatch.setattr(catalog, "BUILTIN_CONTROLNET_DIR", control)
    entries = list_models(config=Config())
    assert entries[0].source == "builtin" and entries[0].label == BUILTIN_LABEL and entries[0].path == model
    assert any(e.kind is WeightsKind.CONTROLNET and e.source == str(control) for e in entries)
    assert find_controlnet(ControlKind.SCRIBBLE, "sd15", entries=entries) is None  # 64-dim demo: no family
    demo = next(e for e in entries if e.kind is WeightsKind.CONTROLNET)
    assert demo.family == "builtin"  # listed as the built-in model's, not "unknown"
    (control / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", "cross_attention_dim": 768}))
    entries = list_models(config=Config())
    assert find_controlnet(ControlKind.SCRIBBLE, "sd15", entries=entries).origin is Origin.BUILTIN  # type: ignore[union-attr]
    real = _st(tmp_path / "mine" / "my_scribble.safetensors", CONTROL_KEYS)
    entries = list_models(config=Config(model_paths=(str(real.parent),)))
    assert find_controlnet(ControlKind.SCRIBBLE, "sd15", entries=entries).source == str(real)  # type: ignore[union-attr]


def test_system_dirs_layout(tmp_path: Path) -> None:
    dirs = {(str(p.relative_to(tmp_path)), o, k) for p, o, k in system_model_dirs(tmp_path)}
    assert ("ComfyUI/models/checkpoints", Origin.COMFYUI, WeightsKind.CHECKPOINT) in dirs
    assert ("ComfyUI/models/loras", Origin.COMFYUI, WeightsKind.LORA) in dirs
    assert ("stable-diffusion-webui/models/ControlNet", Origin.A1111, WeightsKind.CONTROLNET) in dirs
    assert ("stable-diffusion-webui/models/Stable-diffusion", Origin.A1111, WeightsKind.CHECKPOINT) in dirs


# ---------------------------------------------------------------- sfumato.vocabulary.config


def test_config_round_trip_keeps_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "c" / "config.json"
    config = Config(model_paths=("/a", "/b"), default_model="/a/x.safetensors", extra={"theme": "dark"})
    save_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    assert json.loads(path.read_text())["theme"] == "dark"
    assert loaded.replace(default_model=None).default_model is None
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary file left


def test_config_location_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(tmp_path / "cfg"))
    assert config_path() == tmp_path / "cfg" / "config.json"
    assert load_config() == Config()
    save_config(Config(model_paths=("/m",)))
    assert load_config().model_paths == ("/m",)


def test_damaged_config_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{nope")
    assert load_config(path) == Config()
    path.write_text("[1, 2]")
    assert load_config(path) == Config()
    path.write_text(json.dumps({"model_paths": [1, 2], "default_model": 5}))
    assert load_config(path) == Config()
    path.write_text(json.dumps({"model_paths": "/single"}))
    assert load_config(path).model_paths == ("/single",)


def test_read_json_gives_none_for_anything_but_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    assert read_json(path) is None  # missing
    for text in ("{nope", "[1, 2]", "3"):
        path.write_text(text)
        assert read_json(path) is None
    path.write_text('{"a": 1}')
    assert read_json(path) == {"a": 1}
    assert read_json(tmp_path) is None  # a folder


def test_catalog_imports_no_torch() -> None:
    code = "import sys, sfumato.inference.catalog, sfumato.vocabulary.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""Generation sizes per family: native resolution, aspect ratio, multiples of 8, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sfumato.planner.errors import AreaTooLargeError
from sfumato.planner.families import FAMILIES, SD15, SDXL, FamilyInfo, family_for_model
from sfumato.planner.sizing import MAX_AREA_SIDE, generation_size


def test_native_area_generates_at_its_own_size() -> None:
    assert (generation_size(512, 512, FAMILIES[SD15]).width, generation_size(512, 512, FAMILIES[SD15]).height) == (512, 512)
    size = generation_size(1024, 1024, FAMILIES[SDXL])
    assert (size.width, size.height) == (1024, 1024)


def test_large_square_area_is_generated_at_native_size() -> None:
    size = generation_size(2048, 2048, FAMILIES[SD15])
    assert (size.width, size.height) == (512, 512)
    size = generation_size(4000, 4000, FAMILIES[SDXL])
    assert (size.width, size.height) == (1024, 1024)


def test_small_area_is_generated_larger() -> None:
    size = generation_size(100, 100, FAMILIES[SD15])
    assert (size.width, size.height) == (512, 512)


def test_aspect_ratio_kept_within_the_range() -> None:
    # 3:2 fits SD 1.x's 512-768 range exactly
    size = generation_size(1200, 800, FAMILIES[SD15])
    assert (size.width, size.height) == (768, 512)
    size = generation_size(800, 1200, FAMILIES[SD15])
    assert (size.width, size.height) == (512, 768)
    # 2:1 fits SDXL's 640-1280 range
    size = generation_size(3000, 1500, FAMILIES[SDXL])
    assert (size.width, size.height) == (1280, 640)


def test_extreme_aspect_is_clamped_into_the_range() -> None:
    info = FAMILIES[SD15]
    size = generation_size(4000, 400, info)
    assert info.min_side <= size.height <= size.width <= info.max_side


def test_odd_area_rounds_to_multiples_of_8() -> None:
    for width, height in [(515, 515), (601, 433), (777, 523)]:
        size = generation_size(width, height, FAMILIES[SD15])
        assert size.width % 8 == 0 and size.height % 8 == 0
        # the aspect ratio survives rounding to within one 8-pixel step
        assert abs(size.width / size.height - width / height) < 0.05


def test_refuses_areas_beyond_the_maximum_with_a_clear_message() -> None:
    with pytest.raises(AreaTooLargeError, match="pixels a side"):
        generation_size(MAX_AREA_SIDE + 8, 512, FAMILIES[SD15])
    tiny = FamilyInfo.for_native("tiny", 64)
    with pytest.raises(AreaTooLargeError, match="smaller part of the canvas"):
        generation_size(4096, 4096, tiny)


def test_for_native_derives_a_legal_range() -> None:
    info = FamilyInfo.for_native("builtin", 128)
    assert info.native == 128 and info.min_side <= 128 <= info.max_side
    assert info.min_side % 8 == 0 and info.max_side % 8 == 0


def test_family_from_a_diffusers_folder_reads_native_size(tmp_path) -> None:
    (tmp_path / "unet").mkdir()
    (tmp_path / "vae").mkdir()
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"sample_size": 16}))
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [8, 16, 16, 16]}))
    info = family_for_model(str(tmp_path))
    assert info.native == 128 and info.name == SD15
    # a folder at the family's own native size uses the table entry
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"sample_size": 64}))
    assert family_for_model(str(tmp_path)) == FAMILIES[SD15]
    sdxl_index = {
        "_class_name": "StableDiffusionXLPipeline",
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(sdxl_index))
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"sample_size": 128}))
    assert family_for_model(str(tmp_path)) == FAMILIES[SDXL]


def test_table_entries_are_the_engine_families_sizes() -> None:
    from sfumato.inference.families import get_family

    sd15, sdxl = FAMILIES[SD15], FAMILIES[SDXL]
    assert (sd15.native, sd15.min_side, sd15.max_side) == (512, 512, 768)
    assert (sd15.min_pixels, sd15.max_pixels) == (512 * 512, 512 * 768)
    assert (sdxl.native, sdxl.min_side, sdxl.max_side) == (1024, 640, 1280)
    assert (sdxl.min_pixels, sdxl.max_pixels) == (896 * 896, 1024 * 1024)
    for name, info in FAMILIES.items():
        assert (info.min_side, info.max_side) == get_family(name).side_limits(info.native)


def test_a_folder_no_engine_family_loads_is_planned_as_sd15(tmp_path) -> None:
    (tmp_path / "unet").mkdir()
    index = {"_class_name": "StableDiffusionPipeline"}
    (tmp_path / "model_index.json").write_text(json.dumps({**index, "text_encoder_2": ["transformers", "CLIPTextModel"]}))
    # two text encoders without SDXL's size conditioning: no engine family loads that
    unet = {"sample_size": 96, "cross_attention_dim": 1024}
    (tmp_path / "unet" / "config.json").write_text(json.dumps(unet))
    info = family_for_model(str(tmp_path))
    assert info.name == SD15 and info.native == 768
    # one encoder and 1024-wide text tokens: SD 2.x, its own family, 768 native
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    info = family_for_model(str(tmp_path))
    assert info.name == "sd2" and info.native == 768


def test_family_for_a_file_uses_the_given_family(tmp_path) -> None:
    assert family_for_model(str(tmp_path / "x.safetensors"), SDXL) == FAMILIES[SDXL]
    assert family_for_model("some/hub-id") == FAMILIES[SD15]


def test_an_sd2_file_is_sized_by_what_its_name_or_yaml_says(tmp_path: Path) -> None:
    """SD 2.x files are 768-v or 512-base: the planner sizes a '512-base' file at 512, a
    768-v file (or one whose sidecar .yaml says v) at 768."""
    base = tmp_path / "v2-1_512-ema-pruned.safetensors"
    v768 = tmp_path / "v2-1_768-ema-pruned.safetensors"
    custom = tmp_path / "my-finetune.safetensors"
    for path in (base, v768, custom):
        path.write_bytes(b"")
    (tmp_path / "my-finetune.yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert family_for_model(str(base), "sd2").native == 512
    assert family_for_model(str(v768), "sd2").native == 768
    assert family_for_model(str(custom), "sd2").native == 768

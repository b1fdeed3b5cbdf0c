"""Offline single-file loading: LDM-layout round trips, family detection, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ldm_checkpoint import ldm_state_dict, write_ldm_checkpoint, write_ldm_controlnet
from safetensors.torch import save_file
from sfumato.inference.detect import SD15, SDXL, detect_family, read_safetensors_header
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsafeModelError
from sfumato.inference.single_file import (
    family_config_dir,
    load_checkpoint_state_dict,
    load_clip_tokenizer,
    load_controlnet_file,
    load_single_file,
)
from tinymodels import (
    build_tiny_controlnet,
    build_tiny_sd15,
    build_tiny_sd15_inpaint,
    build_tiny_sdxl,
    build_tiny_sdxl_inpaint,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("single-file")
    out: dict[str, Path] = {}
    builders = (
        ("sd15", build_tiny_sd15),
        ("sdxl", build_tiny_sdxl),
        ("sd15-inpaint", build_tiny_sd15_inpaint),
        ("sdxl-inpaint", build_tiny_sdxl_inpaint),
    )
    for name, build in builders:
        folder = build(root / name)
        out[name] = folder
        out[name + ".safetensors"] = write_ldm_checkpoint(folder, root / f"{name}.safetensors")
    out["controlnet"] = build_tiny_controlnet(root / "controlnet")
    out["controlnet-sdxl"] = build_tiny_controlnet(root / "controlnet-sdxl", family="sdxl")
    return out


def _reference(folder: Path) -> object:
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_round_trip_same_weights(models: dict[str, Path], name: str) -> None:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    checkpoint = models[name + ".safetensors"]
    header = read_safetensors_header(checkpoint)
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in header.tensors)
    assert detect_family(header.shapes) == name

    pipe = load_single_file(checkpoint, config=models[name])
    ref = _reference(models[name])
    expected_cls = StableDiffusionXLPipeline if name == "sdxl" else StableDiffusionPipeline
    assert type(pipe) is expected_cls
    for component in ("unet", "vae", "text_encoder") + (("text_encoder_2",) if name == "sdxl" else ()):
        _assert_same_weights(getattr(pipe, component), getattr(ref, component))
    assert pipe.unet.config.in_channels == 4


def test_round_trip_generates_same_pixels(models: dict[str, Path]) -> None:
    pipe = load_single_file(models["sd15.safetensors"], config=models["sd15"])
    ref = _reference(models["sd15"])
    kwargs = {"prompt": "the cat", "num_inference_steps": 2, "height": 64, "width": 64, "output_type": "np"}
    ours = pipe(generator=torch.Generator().manual_seed(3), **kwargs).images
    theirs = ref(generator=torch.Generator().manual_seed(3), **kwargs).images  # type: ignore[operator]
    assert (ours == theirs).all()


def test_inpaint_checkpoint_gets_inpaint_pipeline(models: dict[str, Path]) -> None:
    from diffusers import StableDiffusionInpaintPipeline

    # The config says 4 input channels; the checkpoint's 9-channel conv_in wins.
    pipe = load_single_file(models["sd15-inpaint.safetensors"], config=models["sd15"])
    assert isinstance(pipe, StableDiffusionInpaintPipeline)
    assert pipe.unet.config.in_channels == 9
    _assert_same_weights(pipe.unet, _reference(models["sd15-inpaint"]).unet)  # type: ignore[attr-defined]


def test_sdxl_inpaint_checkpoint(models: dict[str, Path]) -> None:
    from diffusers import StableDiffusionXLInpaintPipeline

    pipe = load_single_file(models["sdxl-inpaint.safetensors"], config=models["sdxl"])
    assert isinstance(pipe, StableDiffusionXLInpaintPipeline)
    ref = _reference(models["sdxl-inpaint"])
    for component in ("unet", "text_encoder", "text_encoder_2"):
        _assert_same_weights(getattr(pipe, component), getattr(ref, component))


def test_truncated_file_is_corrupt(models: dict[str, Path], tmp_path: Path) -> None:
    data = models["sd15.safetensors"].read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModelError, match="truncated"):
        load_single_file(cut, config=models["sd15"])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptModelError):
        load_single_file(garbage)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_single_file(tmp_path / "nope.safetensors")


class Payload:
    """An arbitrary object: loading it from a pickle would mean importing/running code."""

    def __init__(self) -> None:
        self.value = 1


def test_pickle_with_arbitrary_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, "x": Payload()}, path)
    with pytest.raises(UnsafeModelError, match="refused"):
        load_single_file(path)


def test_weights_only_ckpt_loads(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": ldm_state_dict(models["sd15"]), "global_step": 1234, "epoch": 3}, path)
    state = load_checkpoint_state_dict(path)
    assert detect_family(state) == SD15
    pipe = load_single_file(path, config=models["sd15"])
    _assert_same_weights(pipe.unet, _reference(models["sd15"]).unet)  # type: ignore[attr-defined]
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptModelError):
        load_single_file(truncated, config=models["sd15"])


def test_unknown_extension_and_folder(models: dict[str, Path], tmp_path: Path) -> None:
    odd = tmp_path / "model.gguf"
    odd.write_bytes(b"GGUF")
    with pytest.raises(CorruptModelError, match="safetensors"):
        load_single_file(odd)
    with pytest.raises(CorruptModelError, match="folder"):
        load_single_file(models["sd15"])


@pytest.mark.parametrize("drop", ["model.diffusion_model.output_blocks.1.2.conv.weight", "first_stage_model.decoder.conv_out.bias",
                                  "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc2.weight"])  # fmt: skip
def test_missing_tensors_are_reported_not_left_random(models: dict[str, Path], tmp_path: Path, drop: str) -> None:
    state = ldm_state_dict(models["sd15"])
    assert drop in state
    del state[drop]
    path = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(CorruptModelError, match=r"lacks \d+ tensors"):
        load_single_file(path, config=models["sd15"])


def test_wrong_architecture_is_corrupt(models: dict[str, Path]) -> None:
    # An SD 1.x checkpoint read with the SDXL tiny configs cannot fit.
    with pytest.raises(CorruptModelError, match="does not match"):
        load_single_file(models["sd15.safetensors"], family=SD15, config=models["sdxl"])


def test_controlnet_ldm_and_diffusers_layouts(models: dict[str, Path], tmp_path: Path) -> None:
    from diffusers import ControlNetModel

    reference = ControlNetModel.from_pretrained(str(models["controlnet"]), local_files_only=True)
    ldm = write_ldm_controlnet(models["controlnet"], tmp_path / "control_ldm.safetensors")
    assert detect_family(read_safetensors_header(ldm).shapes) == SD15
    loaded = load_controlnet_file(ldm, config=models["controlnet"])
    _assert_same_weights(loaded, reference)
    flat = tmp_path / "control_diffusers.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(flat))
    _assert_same_weights(load_controlnet_file(flat, config=models["controlnet"]), reference)


def test_sdxl_controlnet_ldm_keeps_its_size_embedding(models: dict[str, Path], tmp_path: Path) -> None:
    from diffusers import ControlNetModel

    reference = ControlNetModel.from_pretrained(str(models["controlnet-sdxl"]), local_files_only=True)
    ldm = write_ldm_controlnet(models["controlnet-sdxl"], tmp_path / "xl_control.safetensors")
    assert detect_family(read_safetensors_header(ldm).shapes) == SDXL
    loaded = load_controlnet_file(ldm, config=models["controlnet-sdxl"])
    _assert_same_weights(loaded, reference)  # add_embedding included (diffusers alone drops it)


def test_shipped_configs_and_tokenizers() -> None:
    assert (family_config_dir(SD15) / "unet" / "config.json").is_file()
    assert (family_config_dir(SDXL) / "text_encoder_2" / "config.json").is_file()
    tok2 = load_clip_tokenizer(pad_token="!")
    assert tok2.pad_token == "!" and tok2.convert_tokens_to_ids("!") == 0
    assert load_clip_tokenizer().pad_token == "<|endoftext|>"


def test_tokenizers_are_built_once_per_folder_and_pad_token(tmp_path: Path) -> None:
    """Building a CLIP tokenizer holds the GIL for a visible moment; a model load reuses it."""
    assert load_clip_tokenizer() is load_clip_tokenizer()
    assert load_clip_tokenizer(pad_token="!") is load_clip_tokenizer(pad_token="!")
    assert load_clip_tokenizer(pad_token="!") is not load_clip_tokenizer()
    assert load_clip_tokenizer().pad_token == "<|endoftext|>"
    # Another folder (a config override's own tokenizer) is another tokenizer, rebuilt
    # when its files change.
    import shutil

    from sfumato.inference.single_file import TOKENIZER_DIR

    copy = tmp_path / "tokenizer"
    shutil.copytree(TOKENIZER_DIR, copy)
    own = load_clip_tokenizer(copy)
    assert own is not load_clip_tokenizer() and own is load_clip_tokenizer(copy)
    (copy / "special_tokens_map.json").write_text((copy / "special_tokens_map.json").read_text() + "\n")
    assert load_clip_tokenizer(copy) is not own


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="madvise of a file mapping: Linux")
def test_releasing_a_checkpoints_pages_keeps_its_values(tmp_path: Path) -> None:
    """The load drops the mapped file's pages without the GIL before freeing the state
    dict (see ``release_file_pages``); a tensor still reading them gets the same values."""
    from safetensors.torch import load_file
    from sfumato.inference.checkpoint_reading import release_file_pages

    generator = torch.Generator().manual_seed(0)
    original = {f"w{i}": torch.randn(256, 256, generator=generator) for i in range(8)}
    path = tmp_path / "model.safetensors"
    save_file(original, str(path))
    mapped = load_file(str(path))
    assert release_file_pages(path, mapped) is True
    for name, tensor in original.items():
        assert torch.equal(mapped[name], tensor)
    pickled = tmp_path / "model.ckpt"
    torch.save(original, pickled)
    loaded = torch.load(pickled, weights_only=True)
    assert release_file_pages(pickled, loaded) is False  # not a mapping of that file: untouched
    assert all(torch.equal(loaded[k], v) for k, v in original.items())

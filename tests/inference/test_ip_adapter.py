"""Reference pictures on SD 1.x and SDXL through IP-Adapter (:mod:`sfumato.inference.reference_adapters`).

The engine's loop with an IP-Adapter equals diffusers' own pipelines with
``load_ip_adapter`` + ``ip_adapter_image`` (one adapter, two adapters with their scales,
with and without guidance, SDXL); a masked reference adds nothing to the attention
outside its mask; the kinds scale the layers the family names; the step range switches
the adapter per step; a missing image encoder is named; FaceID is refused by name; and
after a run with references the UNet is as it was (a plain request is byte-identical to
a fresh engine's).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, box_mask, request, smooth_image
from PIL import Image
from sfumato.inference.detect import (
    WeightsKind,
    detect_weights_kind,
    ip_adapter_info,
    read_safetensors_header,
)
from sfumato.inference.errors import MissingImageEncoderError, UnsupportedModeError
from sfumato.inference.families import get_family
from sfumato.inference.request import ModelRef, ReferenceImage, ReferenceKind, RegionSpec
from tinyadapters import AdapterFiles, build_tiny_ip_adapter
from tinymodels import tiny_model

SIDE = 64


@pytest.fixture(scope="module")
def sd15_files(tmp_path_factory: pytest.TempPathFactory) -> AdapterFiles:
    return build_tiny_ip_adapter(tmp_path_factory.mktemp("ipa-sd15"), "sd15")


@pytest.fixture(scope="module")
def sdxl_files(tmp_path_factory: pytest.TempPathFactory) -> AdapterFiles:
    return build_tiny_ip_adapter(tmp_path_factory.mktemp("ipa-sdxl"), "sdxl")


def _picture(seed: int = 0) -> np.ndarray:
    picture = smooth_image(48, 40)
    rng = np.random.default_rng(seed)
    picture[8:24, 10:30] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return picture


def _ref(files: AdapterFiles, picture: np.ndarray | None = None, **kw: Any) -> ReferenceImage:
    return ReferenceImage(_picture() if picture is None else picture, model=ModelRef(str(files.adapter)), **kw)


def _ok(engine: Any, req: Any) -> np.ndarray:
    result = engine.run(req, Recorder())
    assert result.ok, result.error
    return result.images[0]


def _levels(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _diffusers_sd15(files: AdapterFiles, weights: list[str]) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model("sd15")), safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    pipe.load_ip_adapter(str(files.h94), subfolder="models", weight_name=weights)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _max_diff(ours: np.ndarray, theirs: np.ndarray) -> int:
    return int(np.abs(ours.astype(np.int16) - np.round(theirs * 255.0).astype(np.int16)).max())


# ----------------------------------------------------------------------------- equality


@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_sd15_with_a_reference_equals_diffusers_load_ip_adapter(shared_engine: Any, sd15_files: AdapterFiles, cfg: float) -> None:
    """(a) the reference changes the picture; (b) the engine equals StableDiffusionPipeline
    with load_ip_adapter + ip_adapter_image, with guidance (zero negative image embeds)
    and without."""
    sd15 = tiny_model("sd15")
    req = request(sd15, width=SIDE, height=SIDE, steps=4, cfg=cfg, seed=3, references=(_ref(sd15_files, strength=0.8),))
    ours = _ok(shared_engine, req)
    plain = _ok(shared_engine, req.replace(references=()))
    assert _levels(ours, plain) > 2.0
    pipe = _diffusers_sd15(sd15_files, [sd15_files.weight_name])
    pipe.set_ip_adapter_scale(0.8)
    theirs = pipe(prompt=req.prompt, ip_adapter_image=Image.fromarray(_picture()), num_inference_steps=4,
                  guidance_scale=cfg, height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(3),
                  output_type="np").images[0]  # fmt: skip
    assert _max_diff(ours, theirs) <= 1


@pytest.mark.parametrize("variant", ["plus", "full"])
def test_plus_and_full_face_adapters_read_hidden_states_as_diffusers(
    shared_engine: Any, tmp_path_factory: pytest.TempPathFactory, variant: str
) -> None:
    """IP-Adapter Plus (a resampler over the encoder's penultimate hidden states) and
    full-face (an MLP over all of them; a face reference's adapter), the CFG negative a
    black picture's encoding: equal to diffusers; a batch of two keeps image 0 (seed) and
    records the adapter."""
    name = {"plus": "ip-adapter-plus_tiny", "full": "ip-adapter-full-face_tiny"}[variant]
    files = build_tiny_ip_adapter(tmp_path_factory.mktemp("ipa-" + variant), "sd15", variant=variant,
                                  name=name + ".safetensors")  # fmt: skip
    kind = ReferenceKind.FACE if variant == "full" else ReferenceKind.CONTENT
    req = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=3, cfg=5.0, seed=3,
                  references=(_ref(files, kind=kind),))  # fmt: skip
    ours = _ok(shared_engine, req)
    assert _levels(ours, _ok(shared_engine, req.replace(references=()))) > 2.0
    pipe = _diffusers_sd15(files, [files.weight_name])
    theirs = pipe(prompt=req.prompt, ip_adapter_image=Image.fromarray(_picture()), num_inference_steps=3,
                  guidance_scale=5.0, height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(3),
                  output_type="np").images[0]  # fmt: skip
    assert _max_diff(ours, theirs) <= 1
    result = shared_engine.run(req.replace(batch=2), Recorder())
    assert result.ok, result.error
    assert np.abs(result.images[0].astype(np.int16) - ours).max() <= 1
    assert result.metadata["reference_adapters"] == [name]


def test_two_adapters_with_their_strengths_equal_diffusers(shared_engine: Any, sd15_files: AdapterFiles) -> None:
    """Several references at once: two adapter files, each with its picture and scale, as
    diffusers' list of adapters and ``set_ip_adapter_scale([...])``."""
    other = build_tiny_ip_adapter(sd15_files.root, "sd15", name="ip-adapter_tiny-sd15-b.safetensors", seed=12)
    first, second = _picture(1), _picture(2)
    refs = (_ref(sd15_files, first, strength=0.5),
            ReferenceImage(second, strength=1.2, model=ModelRef(str(other.adapter))))  # fmt: skip
    req = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=3, cfg=4.0, seed=9, references=refs)
    ours = _ok(shared_engine, req)
    one = _ok(shared_engine, req.replace(references=refs[:1]))
    assert _levels(ours, one) > 1.0
    pipe = _diffusers_sd15(sd15_files, [sd15_files.weight_name, other.weight_name])
    pipe.set_ip_adapter_scale([0.5, 1.2])
    theirs = pipe(prompt=req.prompt, ip_adapter_image=[Image.fromarray(first), Image.fromarray(second)],
                  num_inference_steps=3, guidance_scale=4.0, height=SIDE, width=SIDE,
                  generator=torch.Generator("cpu").manual_seed(9), output_type="np").images[0]  # fmt: skip
    assert _max_diff(ours, theirs) <= 1


def test_sdxl_with_a_reference_equals_diffusers(shared_engine: Any, sdxl_files: AdapterFiles) -> None:
    from diffusers import StableDiffusionXLPipeline

    sdxl = tiny_model("sdxl")
    req = request(sdxl, width=SIDE, height=SIDE, steps=3, cfg=5.0, seed=4, references=(_ref(sdxl_files),))
    ours = _ok(shared_engine, req)
    assert _levels(ours, _ok(shared_engine, req.replace(references=()))) > 1.0
    pipe = StableDiffusionXLPipeline.from_pretrained(str(sdxl))
    pipe.load_ip_adapter(str(sdxl_files.h94), subfolder="models", weight_name=sdxl_files.weight_name)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt=req.prompt, ip_adapter_image=Image.fromarray(_picture()), num_inference_steps=3,
                  guidance_scale=5.0, height=SIDE, width=SIDE, generator=torch.Generator("cpu").manual_seed(4),
                  output_type="np").images[0]  # fmt: skip
    assert _max_diff(ours, theirs) <= 1


def test_the_h94_folder_and_a_pickled_adapter_read_the_same(shared_engine: Any, sd15_files: AdapterFiles, tmp_path: Path) -> None:
    """The same adapter in h94's layout (its image_encoder/ folder beside it) and as a
    ``.bin`` pickle (read weights-only) named by its folder gives the same picture as the
    ComfyUI file (whose encoder is a bare file)."""
    from safetensors.torch import load_file

    state = load_file(str(sd15_files.adapter))
    split = {part: {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
             for part in ("image_proj", "ip_adapter")}  # fmt: skip
    pickled = tmp_path / "models" / "ip-adapter_tiny.bin"
    pickled.parent.mkdir(parents=True)
    torch.save(split, pickled)
    shutil.copytree(sd15_files.h94 / "models" / "image_encoder", tmp_path / "models" / "image_encoder")
    req = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=2, cfg=3.0, seed=1, references=(_ref(sd15_files),))
    comfy = _ok(shared_engine, req)
    h94, pickle = (
        _ok(shared_engine, req.replace(references=(ReferenceImage(_picture(), model=ModelRef(str(source))),)))
        for source in (sd15_files.h94 / "models" / sd15_files.weight_name, tmp_path)
    )
    assert np.array_equal(pickle, h94)
    # transformers' from_pretrained and our build from the bare file's shapes differ by
    # 2e-7 in the embedding (same config, same weights)
    assert np.abs(h94.astype(np.int16) - comfy).max() <= 1


# ----------------------------------------------------------------------------- masks, kinds, steps


def test_a_masked_reference_adds_nothing_to_the_attention_outside_its_mask(
    shared_engine: Any, sd15_files: AdapterFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(c) a reference scoped to the left half: at every cross-attention the picture's
    contribution (the processor's output minus the text-only output) is zero on the right
    half and not on the left."""
    import sfumato.inference.reference_adapters as ra

    seen: list[tuple[torch.Tensor, int]] = []
    real = ra.ReferenceAttnProcessor.__call__

    # The same parameters as the processor's: diffusers passes ``ip_adapter_masks`` only to
    # a processor whose signature names it.
    def spy(self: Any, attn: Any, hidden: torch.Tensor, encoder_hidden_states: Any = None,
            attention_mask: Any = None, temb: Any = None, scale: float = 1.0, ip_adapter_masks: Any = None) -> torch.Tensor:
        out = real(self, attn, hidden, encoder_hidden_states, attention_mask, temb, scale, ip_adapter_masks)
        states = encoder_hidden_states
        if isinstance(states, tuple):
            text_only = self.inner(attn, hidden, states[0])
            seen.append(((out - text_only).abs().amax(dim=(0, 2)), hidden.shape[1]))
        return out

    monkeypatch.setattr(ra.ReferenceAttnProcessor, "__call__", spy)
    mask = box_mask(SIDE, SIDE, 0, 0, SIDE // 2, SIDE)
    req = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=2, cfg=5.0, seed=2,
                  references=(_ref(sd15_files, mask=mask),))  # fmt: skip
    masked = _ok(shared_engine, req)
    monkeypatch.setattr(ra.ReferenceAttnProcessor, "__call__", real)
    assert seen
    for change, queries in seen:
        side = int(round(queries**0.5))
        grid = change.reshape(side, side)
        assert float(grid[:, side // 2 :].max()) < 1e-5, grid
        assert float(grid[:, : side // 2].max()) > 1e-3, grid
    whole = _ok(shared_engine, req.replace(references=(_ref(sd15_files),)))
    assert not np.array_equal(masked, whole)


def _scales(engine: Any, req: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, list[float]]]:
    """Every step's processor scales (name → one scale per reference)."""
    import sfumato.inference.reference_adapters as ra

    steps: list[dict[str, list[float]]] = []
    real = ra.ReferenceAttention.set_step

    def record(self: Any, j: int, n: int) -> None:
        real(self, j, n)
        steps.append({name: list(p.scale) for name, p in self.processors.items()})

    monkeypatch.setattr(ra.ReferenceAttention, "set_step", record)
    _ok(engine, req)
    monkeypatch.setattr(ra.ReferenceAttention, "set_step", real)
    return steps


def test_style_and_composition_scale_the_blocks_the_family_names(
    shared_engine: Any, sdxl_files: AdapterFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(d) SDXL: content scales every cross-attention, style only up_blocks.0.attentions.1
    (InstantStyle), composition only down_blocks.2.attentions.1 (absent from the tiny
    UNet: no layer); the pictures differ accordingly."""
    sdxl = tiny_model("sdxl")
    base = request(sdxl, width=SIDE, height=SIDE, steps=2, cfg=5.0, seed=6)
    pictures = {}
    for kind in (ReferenceKind.CONTENT, ReferenceKind.STYLE, ReferenceKind.COMPOSITION):
        req = base.replace(references=(_ref(sdxl_files, kind=kind, strength=0.7),))
        first = _scales(shared_engine, req, monkeypatch)[0]
        on = {name for name, scale in first.items() if scale[0] != 0.0}
        if kind is ReferenceKind.CONTENT:
            assert on == set(first) and all(s == [0.7] for s in first.values())
        elif kind is ReferenceKind.STYLE:
            assert on and all(name.startswith("up_blocks.0.attentions.1.") for name in on)
            assert len(on) < len(first)
        else:
            assert on == set()
        pictures[kind] = _ok(shared_engine, req)
    plain = _ok(shared_engine, base)
    assert np.array_equal(pictures[ReferenceKind.COMPOSITION], plain)  # no layer of the tiny UNet
    assert not np.array_equal(pictures[ReferenceKind.STYLE], pictures[ReferenceKind.CONTENT])
    assert not np.array_equal(pictures[ReferenceKind.STYLE], plain)


def test_the_layer_maps_name_real_blocks() -> None:
    """The maps against the real UNets' processor names (InstantStyle for SDXL,
    ComfyUI_IPAdapter_plus's weight types for SD 1.5)."""
    sdxl, sd15 = get_family("sdxl"), get_family("sd15")
    name = "{}.transformer_blocks.0.attn2.processor".format
    assert sdxl.reference_layer_scale(ReferenceKind.STYLE, name("up_blocks.0.attentions.1")) == 1.0
    assert sdxl.reference_layer_scale(ReferenceKind.STYLE, name("up_blocks.0.attentions.0")) == 0.0
    assert sdxl.reference_layer_scale(ReferenceKind.COMPOSITION, name("down_blocks.2.attentions.1")) == 1.0
    assert sdxl.reference_layer_scale(ReferenceKind.CONTENT, name("mid_block.attentions.0")) == 1.0
    assert sd15.reference_layer_scale(ReferenceKind.COMPOSITION, name("down_blocks.2.attentions.0")) == 0.25
    assert sd15.reference_layer_scale(ReferenceKind.STYLE, name("up_blocks.3.attentions.2")) == 1.0
    assert sd15.reference_layer_scale(ReferenceKind.STYLE, name("mid_block.attentions.0")) == 0.0
    assert sd15.reference_layer_scale(ReferenceKind.FACE, name("mid_block.attentions.0")) == 1.0
    assert sd15.takes_references and sdxl.takes_references and sd15.reference_adapter == "ip-adapter"


def test_a_reference_for_the_last_step_only(
    shared_engine: Any, sd15_files: AdapterFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(e) start 0.75 of 4 steps: scale 0 for steps 0-2, the strength at step 3; the
    picture differs from the whole-run reference's and from the plain one."""
    base = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=4, cfg=5.0, seed=8)
    late = base.replace(references=(_ref(sd15_files, start=0.75),))
    steps = _scales(shared_engine, late, monkeypatch)
    assert [max(max(s) for s in step.values()) for step in steps] == [0.0, 0.0, 0.0, 1.0]
    last = _ok(shared_engine, late)
    full = _ok(shared_engine, base.replace(references=(_ref(sd15_files),)))
    plain = _ok(shared_engine, base)
    assert not np.array_equal(last, full) and not np.array_equal(last, plain)


def test_references_inside_regional_prompts(shared_engine: Any, sd15_files: AdapterFiles) -> None:
    """With regions the text attention is the regional processor's and the pictures' is
    added: at strength 0 the picture is the regions-only picture, byte for byte; at 1 it
    differs."""
    left = box_mask(SIDE, SIDE, 0, 0, SIDE // 2, SIDE)
    base = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=2, cfg=5.0, seed=5,
                   regions=(RegionSpec(left, "a blue sky"),))  # fmt: skip
    regions = _ok(shared_engine, base)
    silent = _ok(shared_engine, base.replace(references=(_ref(sd15_files, strength=0.0, mask=left),)))
    assert np.array_equal(silent, regions)
    loud = _ok(shared_engine, base.replace(references=(_ref(sd15_files, mask=left),)))
    assert _levels(loud, regions) > 0.5


# ----------------------------------------------------------------------------- files and errors


def test_a_missing_image_encoder_names_the_file_and_the_folder(shared_engine: Any, sd15_files: AdapterFiles, tmp_path: Path) -> None:
    """(f) the adapter alone: a typed error naming what to install and where."""
    alone = tmp_path / "ipadapter" / sd15_files.adapter.name
    alone.parent.mkdir()
    shutil.copy(sd15_files.adapter, alone)
    req = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=2,
                  references=(ReferenceImage(_picture(), model=ModelRef(str(alone))),))  # fmt: skip
    result = shared_engine.run(req, Recorder())
    assert isinstance(result.error, MissingImageEncoderError), result.error
    assert alone.name in result.error.message and "24 wide" in result.error.message
    assert "clip_vision" in result.error.user_message


def test_real_adapters_name_their_encoder_files() -> None:
    """From the shapes of h94's files: ip-adapter_sd15 reads ViT-H's 1024-wide embeds,
    ip-adapter-plus_sdxl_vit-h ViT-H's hidden states, ip-adapter_sdxl bigG's embeds."""
    def shapes(proj: dict[str, tuple[int, ...]], cross: int, layers: int) -> dict[str, tuple[int, ...]]:
        out = {f"image_proj.{k}": v for k, v in proj.items()}
        for i in range(layers):
            out[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = (320, cross)
        return out

    sd15 = ip_adapter_info(shapes({"proj.weight": (3072, 1024), "norm.weight": (768,)}, 768, 16))
    plus_xl = ip_adapter_info(shapes({"latents": (1, 16, 1280), "proj_in.weight": (1280, 1280)}, 2048, 70))
    xl = ip_adapter_info(shapes({"proj.weight": (8192, 1280), "norm.weight": (2048,)}, 2048, 70))
    faceid = ip_adapter_info(shapes({"proj.0.weight": (1024, 512), "proj.2.weight": (3072, 1024), "norm.weight": (768,)}, 768, 16))
    assert sd15 is not None and sd15.family == "sd15" and sd15.encoder_file == "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    assert plus_xl is not None and plus_xl.variant == "plus" and plus_xl.tokens == 16
    assert plus_xl.encoder_file == "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors" and plus_xl.family == "sdxl"
    assert xl is not None and xl.encoder_file == "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"
    assert faceid is not None and faceid.faceid


def test_faceid_and_another_familys_adapter_are_refused_by_name(
    shared_engine: Any, sd15_files: AdapterFiles, sdxl_files: AdapterFiles, tmp_path: Path
) -> None:
    faceid = build_tiny_ip_adapter(tmp_path, "sd15", variant="faceid", name="ip-adapter-faceid_tiny.safetensors")
    assert detect_weights_kind(read_safetensors_header(faceid.adapter).tensors) is WeightsKind.IP_ADAPTER
    sd15 = tiny_model("sd15")
    for source, words in ((faceid.adapter, "FaceID"), (sdxl_files.adapter, "another model family")):
        req = request(sd15, width=SIDE, height=SIDE, steps=2,
                      references=(ReferenceImage(_picture(), model=ModelRef(str(source))),))  # fmt: skip
        result = shared_engine.run(req, Recorder())
        assert isinstance(result.error, UnsupportedModeError), result.error
        assert words in result.error.message and source.name in result.error.message


def test_no_adapter_installed_is_said_by_name(shared_engine: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "0")
    req = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=2,
                  references=(ReferenceImage(_picture(), kind=ReferenceKind.FACE),))  # fmt: skip
    result = shared_engine.run(req, Recorder())
    assert isinstance(result.error, UnsupportedModeError)
    assert "No face IP-Adapter" in result.error.message and "Stable Diffusion 1.x" in result.error.message
    assert "ComfyUI/models/ipadapter" in result.error.user_message


def test_the_catalog_finds_adapters_and_encoders_and_the_engine_uses_them(
    shared_engine: Any, sd15_files: AdapterFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ComfyUI's ipadapter/ and clip_vision/ are scanned; A1111's ControlNet folder's
    pickled IP-Adapter is an adapter, not a ControlNet; a face adapter serves face
    references only; with no model named the engine finds the family's adapter and the
    encoder (a bare file, its config read from its shapes)."""
    from sfumato.inference.catalog import (
        find_controlnet,
        find_image_encoder,
        find_reference_adapter,
        list_models,
    )
    from sfumato.inference.request import ControlKind
    from sfumato.vocabulary.config import Config

    root = sd15_files.root
    face = root / "ComfyUI" / "models" / "ipadapter" / "ip-adapter-plus-face_tiny.safetensors"
    shutil.copy(sd15_files.adapter, face)
    a1111 = root / "stable-diffusion-webui" / "models" / "ControlNet"
    a1111.mkdir(parents=True, exist_ok=True)
    (a1111 / "ip-adapter_sd15_plus.pth").write_bytes(b"not read")
    monkeypatch.setenv("HOME", str(root))
    for var in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "0")
    try:
        entries = {Path(e.source).name: e for e in list_models(config=Config())}
        assert entries[sd15_files.adapter.name].kind is WeightsKind.IP_ADAPTER
        assert entries["tiny-clip-vision.safetensors"].kind is WeightsKind.CLIP_VISION
        assert entries["ip-adapter_sd15_plus.pth"].kind is WeightsKind.IP_ADAPTER
        assert entries["ip-adapter_sd15_plus.pth"].family == "sd15"
        assert find_controlnet(ControlKind.SCRIBBLE, "sd15") is None
        chosen = find_reference_adapter("sd15", ReferenceKind.STYLE)
        assert chosen is not None and chosen.source == str(a1111 / "ip-adapter_sd15_plus.pth")  # sd15 and "plus"
        pool = [e for e in entries.values() if not e.source.endswith(".pth")]
        content = find_reference_adapter("sd15", ReferenceKind.CONTENT, entries=pool)
        assert content is not None and content.source == str(sd15_files.adapter)
        faces = find_reference_adapter("sd15", ReferenceKind.FACE, entries=pool)
        assert faces is not None and faces.source == str(face)
        info = ip_adapter_info(read_safetensors_header(sd15_files.adapter).shapes)
        assert info is not None and find_image_encoder(info) == sd15_files.encoder
        (a1111 / "ip-adapter_sd15_plus.pth").unlink()
        req = request(tiny_model("sd15"), width=SIDE, height=SIDE, steps=2, cfg=3.0, seed=1,
                      references=(ReferenceImage(_picture()),))  # fmt: skip
        found = _ok(shared_engine, req)
        named = _ok(shared_engine, req.replace(references=(_ref(sd15_files),)))
        assert np.array_equal(found, named)
    finally:
        face.unlink(missing_ok=True)


def test_after_references_a_plain_request_is_a_fresh_engines(
    fresh_engine: Any, sd15_files: AdapterFiles, sdxl_files: AdapterFiles
) -> None:
    """(g) no leaked processors, projections or config: plain requests after a run with
    references (and after one that failed) are byte-identical to a fresh engine's."""
    for family, files in (("sd15", sd15_files), ("sdxl", sdxl_files)):
        model = tiny_model(family)
        plain = request(model, width=SIDE, height=SIDE, steps=2, cfg=5.0, seed=11)
        engine = fresh_engine()
        before = _ok(engine, plain)
        unet = engine.cache.get(plain.model).unet
        classes = {name: type(p) for name, p in unet.attn_processors.items()}
        mask = box_mask(SIDE, SIDE, 0, 0, SIDE, SIDE // 2)
        _ok(engine, plain.replace(references=(_ref(files, kind=ReferenceKind.STYLE), _ref(files, mask=mask))))
        bad = plain.replace(references=(_ref(files, picture=np.zeros((8, 8, 3), np.uint8), start=0.5),
                                        ReferenceImage(_picture(), model=ModelRef("/nowhere/ip-adapter.safetensors"))))  # fmt: skip
        assert engine.run(bad, Recorder()).error is not None
        after = _ok(engine, plain)
        assert np.array_equal(before, after)
        assert np.array_equal(after, _ok(fresh_engine(), plain))
        assert {name: type(p) for name, p in unet.attn_processors.items()} == classes
        assert unet.encoder_hid_proj is None and unet.config.encoder_hid_dim_type is None
        assert not any("to_k_ip" in name for name, _ in unet.named_parameters())

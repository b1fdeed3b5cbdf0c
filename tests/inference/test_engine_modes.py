"""Every generation mode and their combinations, through the engine, on tiny CPU models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import (
    Recorder,
    assert_known_latents_kept,
    box_mask,
    count_calls,
    mean_abs_diff,
    noise_image,
    request,
    run_keeping_latents,
    smooth_image,
)
from sfumato.inference.events import Finished, Preview, Progress
from sfumato.inference.families.base import Family
from sfumato.inference.request import (
    ControlKind,
    ControlSpec,
    FillMode,
    InitImage,
    InpaintSpec,
    ModelRef,
    RegionSpec,
    RequestError,
    Sampler,
)
from sfumato.inference.steps import plan_steps


def _run_ok(engine: Any, req: Any) -> tuple[tuple[np.ndarray, ...], Recorder]:
    rec = Recorder()
    result = engine.run(req, rec)
    assert result.error is None, result.error
    assert result.ok
    assert isinstance(rec.last, Finished)
    images = result.images
    assert len(images) == req.batch
    for image in images:
        assert image.dtype == np.uint8
        assert image.shape == (req.height, req.width, 3)
    return images, rec


def _two_regions(width: int, height: int) -> tuple[RegionSpec, RegionSpec]:
    left = box_mask(width, height, 0, 0, width // 2, height)
    right = box_mask(width, height, width // 2, 0, width, height)
    return RegionSpec(left, "a blue sky", "fog"), RegionSpec(right, "a green dog")


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_txt2img_any_size_with_progress_and_previews(
    shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str
) -> None:
    model = tiny_sd15 if family == "sd15" else tiny_sdxl
    req = request(model, width=120, height=72, steps=4)
    images, rec = _run_ok(shared_engine, req)
    assert [p.step for p in rec.progress] == [1, 2, 3, 4]
    assert all(p.total == 4 for p in rec.progress)
    assert len(rec.previews) == 4
    assert rec.finished is not None and rec.finished.metadata["family"] == family
    # Generated near native size (64 px for the tiny models), keeping the aspect ratio.
    meta = rec.finished.metadata
    assert meta["gen_width"] % 8 == 0 and meta["gen_height"] % 8 == 0
    assert meta["gen_width"] / meta["gen_height"] == pytest.approx(120 / 72, rel=0.25)
    assert images[0].std() > 0


def test_same_request_same_pixels_and_seed_matters(shared_engine: Any, tiny_sd15: Path) -> None:
    req = request(tiny_sd15, seed=7, sampler=Sampler.EULER_A)
    a, _ = _run_ok(shared_engine, req)
    b, _ = _run_ok(shared_engine, req)
    c, _ = _run_ok(shared_engine, req.replace(seed=8))
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_batch_uses_consecutive_seeds(shared_engine: Any, tiny_sd15: Path) -> None:
    req = request(tiny_sd15, seed=3, batch=2)
    batch, rec = _run_ok(shared_engine, req)
    assert rec.finished is not None and rec.finished.metadata["seeds"] == [3, 4]
    assert not np.array_equal(batch[0], batch[1])
    alone, _ = _run_ok(shared_engine, req.replace(seed=4, batch=1))
    # Batched and single UNet calls may round differently, but it is the same image.
    assert mean_abs_diff(batch[1], alone[0]) < 1.0


def test_img2img_depends_on_init_and_strength(shared_engine: Any, tiny_sd15: Path) -> None:
    w, h = 72, 64
    base = request(tiny_sd15, width=w, height=h, steps=6)
    txt, _ = _run_ok(shared_engine, base)
    init_a = smooth_image(w, h)
    init_b = noise_image(w, h, seed=5)
    a, rec = _run_ok(shared_engine, base.replace(init=InitImage(init_a, 0.5)))
    b, _ = _run_ok(shared_engine, base.replace(init=InitImage(init_b, 0.5)))
    assert not np.array_equal(a[0], txt[0])
    assert not np.array_equal(a[0], b[0])
    assert len(rec.progress) == plan_steps(6, 0.5).effective


#: Strengths for the monotonicity test, and the least growth factor of the change between
#: neighbouring strengths (see the test for the measured figures).
STRENGTHS = (0.15, 0.3, 0.5, 0.75, 1.0)
MIN_STRENGTH_GROWTH = 1.2


def test_higher_strength_moves_further_from_the_source(
    shared_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strength sets how far img2img departs from the init image.

    The departure is measured in latent space (mean |final latents − init latents|): in
    pixels the tiny random VAE hides it (its decode is ~42 levels from the init at every
    strength, 0.15 as 1.0). Measured (64², 6 steps), seed 0: 0.289, 0.463, 0.824, 1.225,
    4.575 for strengths 0.15 … 1.0; seed 1: 0.315, 0.508, 0.894, 1.331, 4.98 — each step
    grows the change by 1.49× or more, so MIN_STRENGTH_GROWTH (1.2×) has a wide margin.
    """
    encoded: list[torch.Tensor] = []
    final: list[torch.Tensor] = []
    real_encode, real_decode = Family.encode_images, Family.decode_latents

    def encode(family: Any, pipe: Any, images: Any, device: Any) -> torch.Tensor:
        encoded.append(real_encode(family, pipe, images, device))
        return encoded[-1]

    def decode(family: Any, pipe: Any, latents: torch.Tensor) -> Any:
        final.append(latents.clone())
        return real_decode(family, pipe, latents)

    monkeypatch.setattr(Family, "encode_images", encode)
    monkeypatch.setattr(Family, "decode_latents", decode)
    w = h = 64
    init = smooth_image(w, h)
    base = request(tiny_sd15, width=w, height=h, steps=6, seed=0)
    changes = []
    for strength in STRENGTHS:
        _run_ok(shared_engine, base.replace(init=InitImage(init, strength)))
        changes.append(float((final[-1] - encoded[-1]).abs().mean()))
    growth = [b / a for a, b in zip(changes, changes[1:])]
    assert min(growth) >= MIN_STRENGTH_GROWTH, [round(c, 3) for c in changes]


@pytest.mark.parametrize("sampler", list(Sampler))
def test_every_sampler_runs(shared_engine: Any, tiny_sd15: Path, sampler: Sampler) -> None:
    req = request(tiny_sd15, width=64, height=64, steps=3, sampler=sampler)
    images, rec = _run_ok(shared_engine, req)
    assert len(rec.progress) >= 3  # Heun evaluates twice per step
    assert rec.progress[-1].step == rec.progress[-1].total
    assert np.isfinite(images[0]).all()


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_regions_change_the_image_in_one_unet_pass_per_step(
    fresh_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = fresh_engine()
    model = tiny_sd15 if family == "sd15" else tiny_sdxl
    w, h = 96, 64
    plain = request(model, width=w, height=h, steps=3, seed=11)
    base, _ = _run_ok(engine, plain)
    unet = engine.cache.get(ModelRef(str(model))).unet
    calls = count_calls(unet, monkeypatch)
    regions = tuple(
        RegionSpec(box_mask(w, h, i * w // 4, 0, (i + 1) * w // 4, h), f"thing number {i}", "blurry")
        for i in range(4)
    )
    regional, rec = _run_ok(engine, plain.replace(regions=regions))
    assert calls[0] == 3  # one (batched CFG) UNet pass per step, whatever the region count
    assert not np.array_equal(regional[0], base[0])
    # The processors are removed afterwards: the plain request gives the plain result again.
    again, _ = _run_ok(engine, plain)
    assert np.array_equal(again[0], base[0])


def test_region_prompts_act_where_their_masks_are(shared_engine: Any, tiny_sd15: Path) -> None:
    w, h = 128, 64
    left, right = _two_regions(w, h)
    req = request(tiny_sd15, width=w, height=h, steps=3, seed=2, regions=(left, right))
    a, _ = _run_ok(shared_engine, req)
    changed = RegionSpec(right.mask, "a purple mountain at night")
    b, _ = _run_ok(shared_engine, req.replace(regions=(left, changed)))
    diff = np.abs(a[0].astype(np.int16) - b[0].astype(np.int16)).mean(axis=(0, 2))
    # Changing the right region's prompt changes the right half more than the left.
    assert diff[w // 2 + 8 :].mean() > diff[: w // 2 - 8].mean()


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_controlnet_changes_result_and_respects_step_range(
    fresh_engine: Any,
    tiny_sd15: Path,
    tiny_sdxl: Path,
    tiny_controlnet_sd15: Path,
    tiny_controlnet_sdxl: Path,
    family: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = fresh_engine()
    model, cn = (tiny_sd15, tiny_controlnet_sd15) if family == "sd15" else (tiny_sdxl, tiny_controlnet_sdxl)
    w, h = 64, 64
    sketch = np.zeros((h, w, 3), np.uint8)
    sketch[20:44, 30:34] = 255
    plain = request(model, width=w, height=h, steps=4, seed=5)
    base, _ = _run_ok(engine, plain)
    control = ControlSpec(ControlKind.SCRIBBLE, sketch, strength=1.0, model=ModelRef(str(cn)))
    controlled, _ = _run_ok(engine, plain.replace(controls=(control,)))
    assert not np.array_equal(controlled[0], base[0])
    # A range that covers no step (end 0.1 of 4 steps) is exactly no control.
    idle = ControlSpec(ControlKind.SCRIBBLE, sketch, start=0.0, end=0.1, model=ModelRef(str(cn)))
    none, _ = _run_ok(engine, plain.replace(controls=(idle,)))
    assert np.array_equal(none[0], base[0])
    # Second half only: the ControlNet runs for steps 3 and 4.
    net = engine.cache.controlnet(ModelRef(str(cn)), ControlKind.SCRIBBLE, engine.cache.get(ModelRef(str(model))))
    calls = count_calls(net, monkeypatch)
    late = ControlSpec(ControlKind.SCRIBBLE, sketch, start=0.5, end=1.0, model=ModelRef(str(cn)))
    _run_ok(engine, plain.replace(controls=(late,)))
    assert calls[0] == 2


#: Mean |Δ| (0..255) that counts as "the result depends on this control image". Measured
#: with the tiny ControlNet (64², 4 steps; its image embedding made responsive, see
#: tinymodels.build_tiny_controlnet): moving the first control's band changes the picture
#: by 15.0 levels, the second's (strength 0.7, 2 of the 4 steps) by 2.46; the same request
#: twice differs by 0. So 0.25 is ~10× under the weakest effect and far over the noise
#: floor. (Before the embedding was made responsive: 0.19 / 0.02.)
MIN_CONTROL_EFFECT = 0.25


def test_two_controls_each_condition_the_result(
    shared_engine: Any, tiny_sd15: Path, tiny_controlnet_sd15: Path
) -> None:
    w, h = 64, 64
    a_img = np.zeros((h, w, 3), np.uint8)
    a_img[10:20] = 255
    b_img = np.zeros((h, w, 3), np.uint8)
    b_img[:, 40:50] = 255
    cn = ModelRef(str(tiny_controlnet_sd15))
    one = ControlSpec(ControlKind.SCRIBBLE, a_img, model=cn)
    two = ControlSpec(ControlKind.LINEART, b_img, strength=0.7, start=0.2, end=0.9, model=cn)
    req = request(tiny_sd15, width=w, height=h, steps=4, controls=(one,))
    single, _ = _run_ok(shared_engine, req)
    only_two, _ = _run_ok(shared_engine, req.replace(controls=(two,)))
    double, _ = _run_ok(shared_engine, req.replace(controls=(one, two)))
    assert not np.array_equal(single[0], double[0])
    # Each control's own image reaches the result: move one band, keep the other.
    a_moved = np.zeros_like(a_img)
    a_moved[:, 10:20] = 255
    b_moved = np.zeros_like(b_img)
    b_moved[40:50] = 255
    first_moved, _ = _run_ok(shared_engine, req.replace(controls=(replace(one, image=a_moved), two)))
    second_moved, _ = _run_ok(shared_engine, req.replace(controls=(one, replace(two, image=b_moved))))
    assert mean_abs_diff(first_moved[0], double[0]) > MIN_CONTROL_EFFECT
    assert mean_abs_diff(second_moved[0], double[0]) > MIN_CONTROL_EFFECT
    # A control at strength 0 is exactly absent: the result is the other control's alone.
    second_off, _ = _run_ok(shared_engine, req.replace(controls=(one, replace(two, strength=0.0))))
    first_off, _ = _run_ok(shared_engine, req.replace(controls=(replace(one, strength=0.0), two)))
    assert np.array_equal(second_off[0], single[0])
    assert np.array_equal(first_off[0], only_two[0])


@pytest.mark.parametrize("fill", list(FillMode))
def test_inpaint_every_fill_mode_keeps_the_known_latents(
    shared_engine: Any, tiny_sd15: Path, fill: FillMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, h = 96, 80
    init = noise_image(w, h, seed=3)
    mask = box_mask(w, h, 30, 20, 60, 50)
    req = request(tiny_sd15, width=w, height=h, init=InitImage(init, 1.0), inpaint=InpaintSpec(mask, fill=fill))
    images, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    assert_known_latents_kept(shared_engine, req, latents)
    assert images[0].shape == init.shape


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_inpaint_with_nine_channel_unet(
    shared_engine: Any, tiny_sd15_inpaint: Path, tiny_sdxl_inpaint: Path, family: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny_sd15_inpaint if family == "sd15" else tiny_sdxl_inpaint
    w, h = 80, 64
    init = smooth_image(w, h)
    mask = box_mask(w, h, 20, 16, 50, 40)
    req = request(model, width=w, height=h, init=InitImage(init, 1.0), inpaint=InpaintSpec(mask))
    images, latents, _ = run_keeping_latents(shared_engine, req, monkeypatch)
    assert_known_latents_kept(shared_engine, req, latents)
    assert not np.array_equal(images[0][mask > 0], init[mask > 0])
    # The same model also does plain txt2img (mask all ones, masked image grey).
    _run_ok(shared_engine, request(model, width=w, height=h))


def test_soft_mask_changes_less_where_the_mask_is_low(shared_engine: Any, tiny_sd15: Path) -> None:
    w, h = 128, 64
    init = smooth_image(w, h)
    mask = np.zeros((h, w), np.float32)
    mask[8:56, 8:60] = 1.0  # fully regenerated
    mask[8:56, 68:120] = 0.25  # only the last quarter of the steps
    req = request(tiny_sd15, width=w, height=h, steps=8, init=InitImage(init, 1.0),
                  inpaint=InpaintSpec(mask))  # fmt: skip
    images, _ = _run_ok(shared_engine, req)
    strong = mean_abs_diff(images[0][12:52, 12:56], init[12:52, 12:56])
    weak = mean_abs_diff(images[0][12:52, 72:116], init[12:52, 72:116])
    assert weak < strong


def test_img2img_regions_controls_together(shared_engine: Any, tiny_sd15: Path, tiny_controlnet_sd15: Path) -> None:
    w, h = 96, 64
    init = smooth_image(w, h)
    sketch = np.zeros((h, w, 3), np.uint8)
    sketch[30:34] = 255
    req = request(
        tiny_sd15, width=w, height=h, steps=4, init=InitImage(init, 0.7), regions=_two_regions(w, h),
        controls=(ControlSpec(ControlKind.SCRIBBLE, sketch, model=ModelRef(str(tiny_controlnet_sd15))),),
    )  # fmt: skip
    images, rec = _run_ok(shared_engine, req)
    assert len(rec.previews) == len(rec.progress) == plan_steps(4, 0.7).effective


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_inpaint_controls_regions_together(
    shared_engine: Any,
    tiny_sd15: Path,
    tiny_sdxl: Path,
    tiny_controlnet_sd15: Path,
    tiny_controlnet_sdxl: Path,
    family: str,
) -> None:
    model, cn = (tiny_sd15, tiny_controlnet_sd15) if family == "sd15" else (tiny_sdxl, tiny_controlnet_sdxl)
    w, h = 160, 96
    init = noise_image(w, h, seed=9)
    mask = box_mask(w, h, 100, 30, 140, 70, value=0.8)
    sketch = np.zeros((h, w, 3), np.uint8)
    sketch[40:60, 110:130] = 255
    req = request(
        model, width=w, height=h, steps=3, batch=2, init=InitImage(init, 0.9),
        inpaint=InpaintSpec(mask, fill=FillMode.BLUR), regions=_two_regions(w, h),
        controls=(ControlSpec(ControlKind.SCRIBBLE, sketch, model=ModelRef(str(cn))),),
    )  # fmt: skip
    images, latents, rec = run_keeping_latents(shared_engine, req, pytest.MonkeyPatch())
    assert len(images) == 2
    assert_known_latents_kept(shared_engine, req, latents)  # both images of the batch
    assert isinstance(rec.previews[0], Preview)
    assert all(isinstance(p, Progress) for p in rec.progress)


def test_nine_channel_inpaint_with_regions_and_controls(
    shared_engine: Any, tiny_sd15_inpaint: Path, tiny_controlnet_sd15: Path
) -> None:
    w, h = 64, 64
    init = smooth_image(w, h)
    mask = box_mask(w, h, 16, 16, 48, 48)
    sketch = np.zeros((h, w, 3), np.uint8)
    sketch[20:44, 30:34] = 255
    req = request(
        tiny_sd15_inpaint, width=w, height=h, init=InitImage(init, 1.0), inpaint=InpaintSpec(mask),
        regions=_two_regions(w, h),
        controls=(ControlSpec(ControlKind.SCRIBBLE, sketch, model=ModelRef(str(tiny_controlnet_sd15))),),
    )  # fmt: skip
    _, latents, _ = run_keeping_latents(shared_engine, req, pytest.MonkeyPatch())
    assert_known_latents_kept(shared_engine, req, latents)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_no_cfg_path_is_the_conditional_prediction(
    shared_engine: Any, tiny_sd15: Path, tiny_sdxl: Path, family: str
) -> None:
    """cfg <= 1 skips the unconditional half (Turbo/LCM style), with regions too. Guidance
    ``uncond + g·(cond − uncond)`` is ``cond`` for any ``g`` when every negative equals its
    positive, so a CFG run with negatives = prompts is the reference for the single pass.
    Measured (64², 2 steps): reference 0 levels away (max |Δ| 0) in both families; the
    same CFG run with other negatives 9–10 levels away (mean |Δ|)."""
    model = tiny_sd15 if family == "sd15" else tiny_sdxl
    w, h = 64, 64
    left, right = _two_regions(w, h)
    same = (RegionSpec(left.mask, left.prompt, left.prompt), RegionSpec(right.mask, right.prompt, right.prompt))
    req = request(model, width=w, height=h, steps=2, cfg=1.0, negative="a red cat", regions=same)
    single_pass, _ = _run_ok(shared_engine, req)
    reference, _ = _run_ok(shared_engine, req.replace(cfg=7.0))
    # Batch 2 (CFG) and batch 1 may round differently; measured: identical bytes.
    assert np.abs(single_pass[0].astype(np.int16) - reference[0]).max() <= 1
    # Without guidance the negatives play no part; with it they do.
    other = dict(negative="blurry", regions=_two_regions(w, h))
    negatives_changed, _ = _run_ok(shared_engine, req.replace(**other))
    assert np.array_equal(negatives_changed[0], single_pass[0])
    guided, _ = _run_ok(shared_engine, req.replace(cfg=7.0, **other))
    assert mean_abs_diff(guided[0], single_pass[0]) > 2.0


def _tiled_request(model: Path) -> Any:
    # 96×64 generates at 96×64: 12×8 latents, over the tiny VAE's 8-latent tile size.
    return request(model, width=96, height=64, steps=3, seed=4)


def test_vae_tiling_decodes_in_tiles_close_to_the_untiled_picture(
    shared_engine: Any, fresh_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same denoising, decoded in overlapping tiles that are blended back together.

    Measured (96×64, seed 4): decoded in 4 tiles, 7.2 levels mean |Δ| from the untiled
    picture (the tiny random VAE sees little context in 64-px tiles; real VAEs differ far
    less); the seed-5 picture is 42.6 levels away. Requiring under half of the other-seed
    distance keeps the tiled picture recognisably the same one (measured ratio 0.17)."""
    req = _tiled_request(tiny_sd15)
    untiled, _ = _run_ok(shared_engine, req)
    other_seed, _ = _run_ok(shared_engine, req.replace(seed=5))
    engine = fresh_engine(vae_tiling=True)
    vae = engine.cache.get(ModelRef(str(tiny_sd15))).vae
    calls = count_calls(vae.decoder, monkeypatch)
    tiled, _ = _run_ok(engine, req)
    assert calls[0] > 1, "the picture was decoded in one piece"
    assert mean_abs_diff(tiled[0], untiled[0]) < 0.5 * mean_abs_diff(other_seed[0], untiled[0])


def test_channels_last_gives_the_contiguous_picture(
    shared_engine: Any, fresh_engine: Any, tiny_sd15: Path, tiny_controlnet_sd15: Path
) -> None:
    """channels_last is a memory layout only. Measured (96×64, img2img + ControlNet):
    mean |Δ| 5e-5 levels, max 1 (one channel of one pixel rounds the other way)."""
    sketch = np.zeros((64, 96, 3), np.uint8)
    sketch[20:44, 30:34] = 255
    cn = ModelRef(str(tiny_controlnet_sd15))
    req = _tiled_request(tiny_sd15).replace(
        init=InitImage(smooth_image(96, 64), 0.6), controls=(ControlSpec(ControlKind.SCRIBBLE, sketch, model=cn),)
    )
    contiguous, _ = _run_ok(shared_engine, req)
    engine = fresh_engine(channels_last=True)
    last, _ = _run_ok(engine, req)
    loaded = engine.cache.get(ModelRef(str(tiny_sd15)))
    assert loaded.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    net = engine.cache.controlnet(cn, ControlKind.SCRIBBLE, loaded)
    assert net.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(last[0].astype(np.int16) - contiguous[0]).max() <= 2
    assert mean_abs_diff(last[0], contiguous[0]) < 0.05


def test_v_prediction_model_runs_with_every_mode_unchanged(shared_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    """A v-prediction checkpoint (SD 2.x style) needs no change in the modes: the schedule
    arithmetic reads ``prediction_type`` from the model's scheduler config."""
    import json
    import shutil

    folder = tmp_path / "vpred"
    shutil.copytree(tiny_sd15, folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["prediction_type"] = "v_prediction"
    config_path.write_text(json.dumps(config))
    w, h = 64, 64
    init = smooth_image(w, h)
    mask = box_mask(w, h, 16, 16, 48, 48)
    req = request(folder, width=w, height=h, init=InitImage(init, 0.8), inpaint=InpaintSpec(mask),
                  regions=_two_regions(w, h))  # fmt: skip
    images, latents, rec = run_keeping_latents(shared_engine, req, pytest.MonkeyPatch())
    assert_known_latents_kept(shared_engine, req, latents)
    eps, _ = _run_ok(shared_engine, req.replace(model=ModelRef(str(tiny_sd15))))
    assert not np.array_equal(images[0], eps[0])


@pytest.mark.parametrize(("width", "height"), [(8, 8), (504, 8), (24, 400)])
def test_tiny_and_extreme_sizes_generate_exactly_the_request(
    shared_engine: Any, tiny_sd15: Path, width: int, height: int
) -> None:
    """Latents of 1×1, 63×1 and 3×50: odd sizes go through the UNet's down- and upsampling;
    the engine generates the request's own size (the planner chose it) and resizes nothing."""
    images, rec = _run_ok(shared_engine, request(tiny_sd15, width=width, height=height, steps=2))
    meta = rec.finished.metadata
    assert (meta["gen_width"], meta["gen_height"]) == (width, height)
    assert images[0].shape == (height, width, 3)


def test_a_size_that_is_not_a_multiple_of_8_is_refused_with_a_reason(tiny_sd15: Path) -> None:
    with pytest.raises(RequestError, match="not a multiple of 8"):
        request(tiny_sd15, width=500, height=64).validate()

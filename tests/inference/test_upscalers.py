"""Super-resolution files (inference/upscalers.py): tiny RRDBNets built here, saved in both
key layouts as .safetensors and weights-only .pth, load with their scale and upscale to
the right size; tiling does not change the result; a pickle that needs code is refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sfumato.inference.errors import CorruptModelError, UnsafeModelError, UnsupportedUpscalerError
from sfumato.inference.upscalers import RRDBNet, UpscalerInfo, load_upscaler, rrdb_info

TINY = dict(nf=8, nb=2, gc=4)


def tiny_rrdbnet(upconvs: int = 2, unshuffle: int = 1, seed: int = 0) -> RRDBNet:
    """A small RRDBNet with random weights (the shapes of a real one, far fewer features)."""
    torch.manual_seed(seed)
    return RRDBNet(UpscalerInfo(upconvs=upconvs, unshuffle=unshuffle, **TINY)).eval()


def old_layout(state: dict[str, torch.Tensor], nb: int) -> dict[str, torch.Tensor]:
    """Real-ESRGAN keys renamed to the original ESRGAN's (``model.N``...)."""
    ups = sorted(k.split(".")[0] for k in state if k.startswith("conv_up"))
    index = {"conv_first": "model.0", "conv_body": f"model.1.sub.{nb}"}
    position = 3
    for name in ups:
        index[name] = f"model.{position}"
        position += 3
    index["conv_hr"] = f"model.{position - 1}"
    index["conv_last"] = f"model.{position + 1}"
    out = {}
    for key, value in state.items():
        head, _, part = key.rpartition(".")
        if head.startswith("body."):
            _, block, rdb, conv = head.split(".")
            out[f"model.1.sub.{block}.RDB{rdb[-1]}.{conv}.0.{part}"] = value
        else:
            out[f"{index[head]}.{part}"] = value
    return out


def save(path: Path, state: dict[str, torch.Tensor]) -> Path:
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return path


PICTURE = np.random.default_rng(3).integers(0, 256, (20, 28, 3), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["real-esrgan", "esrgan"])
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_tiny_rrdbnet_loads_in_both_layouts_and_upscales(tmp_path: Path, layout: str, suffix: str) -> None:
    net = tiny_rrdbnet()
    state = net.state_dict()
    if layout == "esrgan":
        state = old_layout(state, TINY["nb"])
    path = save(tmp_path / f"4x-tiny{suffix}", state)
    upscaler = load_upscaler(path, device="cpu")
    assert upscaler.scale == 4
    out = upscaler.upscale(PICTURE)
    assert out.shape == (80, 112, 3) and out.dtype == np.uint8
    with torch.no_grad():
        expected = net(torch.from_numpy(PICTURE).permute(2, 0, 1)[None].float() / 255)
    expected = (expected.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_real_esrgan_pth_nested_under_params_ema(tmp_path: Path) -> None:
    net = tiny_rrdbnet()
    path = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": {k: v.clone() for k, v in net.state_dict().items()}}, str(path))
    assert load_upscaler(path, device="cpu").scale == 4


def test_x2_with_pixel_unshuffle_and_x2_old_layout(tmp_path: Path) -> None:
    unshuffled = save(tmp_path / "RealESRGAN_x2plus.safetensors", tiny_rrdbnet(unshuffle=2).state_dict())
    upscaler = load_upscaler(unshuffled, device="cpu")
    assert upscaler.scale == 2
    assert upscaler.upscale(PICTURE[:19, :27]).shape == (38, 54, 3)  # odd sides padded for the unshuffle
    old = save(tmp_path / "2x-old.pth", old_layout(tiny_rrdbnet(upconvs=1).state_dict(), TINY["nb"]))
    assert load_upscaler(old, device="cpu").scale == 2


def test_shapes_are_read_from_the_weights() -> None:
    info = rrdb_info(tiny_rrdbnet().state_dict())
    assert info == UpscalerInfo(in_ch=3, out_ch=3, nf=8, nb=2, gc=4, upconvs=2, unshuffle=1)
    assert rrdb_info({"foo.weight": torch.zeros(1)}) is None


def test_tiles_do_not_change_the_result(tmp_path: Path) -> None:
    path = save(tmp_path / "4x.safetensors", tiny_rrdbnet(seed=1).state_dict())
    upscaler = load_upscaler(path, device="cpu")
    picture = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    whole = upscaler.upscale(picture, tile=512)
    tiled = upscaler.upscale(picture, tile=24, pad=40)  # padding beyond the receptive field
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


class Payload:
    """Any class instance: unpickling it needs this module's code."""

    def __reduce__(self):  # noqa: ANN204
        return (print, ("this would run",))


def test_a_pickle_that_needs_code_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "4x-evil.pth"
    torch.save({"conv_first.weight": torch.zeros(1), "payload": Payload()}, str(path))
    with pytest.raises(UnsafeModelError, match="4x-evil.pth"):
        load_upscaler(path, device="cpu")
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(UnsafeModelError, match="legacy.pth"):
        load_upscaler(legacy, device="cpu")


def test_other_architectures_need_spandrel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "spandrel", None)  # as on a machine without it
    path = save(tmp_path / "swinir.safetensors", {"layers.0.attn.qkv.weight": torch.zeros(4, 4)})
    with pytest.raises(UnsupportedUpscalerError, match="spandrel") as caught:
        load_upscaler(path, device="cpu")
    assert "sfumato[upscale]" in caught.value.user_message


def test_damaged_files_are_corrupt(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CorruptModelError, match="empty"):
        load_upscaler(empty, device="cpu")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CorruptModelError):
        load_upscaler(text, device="cpu")

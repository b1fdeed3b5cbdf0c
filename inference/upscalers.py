"""Super-resolution models: a user's ESRGAN-family file enlarges a picture before refining.

Where users keep them: ComfyUI's ``models/upscale_models/``, A1111's ``models/ESRGAN/``
(``RealESRGAN_x4plus.pth``, ``4x-UltraSharp.pth``, ``4x_foolhardy_Remacri.safetensors``, …).

Reading: ``.safetensors`` directly; ``.pth``/``.pt``/``.ckpt``/``.bin`` only through
``torch.load(weights_only=True)`` (:mod:`.checkpoint_reading`): a pickle that needs code
is refused with :class:`~sfumato.inference.errors.UnsafeModelError` naming what it
imports. Real-ESRGAN's ``.pth`` nest the weights under ``params_ema`` (or ``params``).

Architectures:

- **RRDBNet (ESRGAN, Real-ESRGAN, and the community models trained from them)** is ours,
  below: both key layouts — the original ESRGAN's ``model.0.weight``,
  ``model.1.sub.N.RDB1.conv1.0.weight``, … and Real-ESRGAN's ``conv_first``,
  ``body.N.rdb1.conv1``, … — with the scale read from the keys (the number of
  nearest-neighbour ×2 up-convolutions, divided by the ``pixel_unshuffle`` factor of
  Real-ESRGAN's x2/x1 models, read from ``conv_first``'s input channels), the feature
  width and block count from the shapes.
- **Anything else** (SwinIR, HAT, OmniSR, DAT, SPAN, …) through ``spandrel`` when it is
  installed (``pip install 'sfumato[upscale]'``; spandrel imports torchvision, which must
  be the build matching the installed torch). Without it, such a file is refused with an
  :class:`UnsupportedUpscalerError` saying what to install.

Running: tiles of :data:`TILE` input pixels, each with :data:`PAD` pixels of context on
every side (cut off again after the model), so memory is bounded by one tile whatever the
picture's size and the result equals the untiled one wherever the model's receptive field
fits in the padding. numpy ``uint8`` RGB in and out, on the engine's device and dtype.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sfumato.inference.errors import (
    CancelledError,
    CorruptModelError,
    UnsupportedUpscalerError,
)
from torch import nn

__all__ = [
    "PAD",
    "TILE",
    "RRDBNet",
    "Upscaler",
    "UpscalerInfo",
    "load_upscaler",
    "read_upscaler_weights",
    "rrdb_info",
]

log = logging.getLogger(__name__)

#: Input pixels a side of one tile, and the context each tile sees around it.
TILE = 256
PAD = 16
UPSCALER_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


# ----------------------------------------------------------------------------- the network
class ResidualDenseBlock(nn.Module):
    """Five 3×3 convolutions, each seeing all the features before it (ESRGAN's RDB)."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks with a scaled residual around them."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@dataclass(frozen=True)
class UpscalerInfo:
    """An RRDBNet's shape: ``in_ch``/``out_ch`` colour channels, ``nf`` features, ``nb``
    RRDB blocks, ``gc`` growth channels, ``upconvs`` ×2 up-convolutions, ``unshuffle`` the
    ``pixel_unshuffle`` factor before them (1, 2 or 4)."""

    in_ch: int = 3
    out_ch: int = 3
    nf: int = 64
    nb: int = 23
    gc: int = 32
    upconvs: int = 2
    unshuffle: int = 1

    @property
    def scale(self) -> int:
        return 2**self.upconvs // self.unshuffle


class RRDBNet(nn.Module):
    """ESRGAN's generator in Real-ESRGAN's key layout (``conv_first``, ``body.N.rdbK``,
    ``conv_body``, ``conv_upK``, ``conv_hr``, ``conv_last``). Input and output are float
    ``(B, C, H, W)`` in [0, 1]; the output is ``info.scale`` times larger."""

    def __init__(self, info: UpscalerInfo) -> None:
        super().__init__()
        self.info = info
        self.conv_first = nn.Conv2d(info.in_ch * info.unshuffle**2, info.nf, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(info.nf, info.gc) for _ in range(info.nb)))
        self.conv_body = nn.Conv2d(info.nf, info.nf, 3, 1, 1)
        for k in range(1, info.upconvs + 1):
            self.add_module(f"conv_up{k}", nn.Conv2d(info.nf, info.nf, 3, 1, 1))
        self.conv_hr = nn.Conv2d(info.nf, info.nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(info.nf, info.out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.info.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.info.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for k in range(1, self.info.upconvs + 1):
            up = getattr(self, f"conv_up{k}")
            feat = self.lrelu(up(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# ----------------------------------------------------------------------------- key layouts
_OLD_RDB = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_TOP = re.compile(r"^model\.(\d+)\.(weight|bias)$")
_OLD_TRUNK = re.compile(r"^model\.1\.sub\.(\d+)\.(weight|bias)$")


def _old_to_new(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The original ESRGAN layout renamed into Real-ESRGAN's; ``None`` when it is not it.

    ``model.0`` first conv; ``model.1.sub.0..nb-1`` the RRDBs and ``model.1.sub.nb`` the
    trunk conv; then, after ``model.2`` (an upsample), ``model.3``, ``model.6``, … the
    up-convolutions, and the last two convolutions the HR conv and the output conv.
    """
    if "model.0.weight" not in state:
        return None
    out: dict[str, torch.Tensor] = {}
    tops: set[int] = set()
    trunk: int | None = None
    for key, value in state.items():
        if m := _OLD_RDB.match(key):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
        elif m := _OLD_TOP.match(key):
            tops.add(int(m[1]))
        elif m := _OLD_TRUNK.match(key):
            trunk = int(m[1])
            out[f"conv_body.{m[2]}"] = value
        else:
            return None  # a key this layout does not have: another architecture
    if trunk is None or not tops >= {0} or len(tops) < 3:
        return None
    later = sorted(i for i in tops if i >= 2)
    *ups, hr, last = later
    names = {0: "conv_first", hr: "conv_hr", last: "conv_last"}
    names.update({index: f"conv_up{k}" for k, index in enumerate(ups, start=1)})
    for index, name in names.items():
        for part in ("weight", "bias"):
            if f"model.{index}.{part}" in state:
                out[f"{name}.{part}"] = state[f"model.{index}.{part}"]
    return out


_NEW_KEY = re.compile(
    r"^(conv_first|conv_body|conv_hr|conv_last|conv_up\d+|body\.\d+\.rdb[123]\.conv[1-5])\.(weight|bias)$"
)


def rrdb_info(state: dict[str, torch.Tensor]) -> UpscalerInfo | None:
    """The RRDBNet ``state`` (Real-ESRGAN layout) describes, or ``None`` when it is not one."""
    if not state or not all(_NEW_KEY.match(k) for k in state):
        return None
    needed = ("conv_first.weight", "conv_body.weight", "conv_hr.weight", "conv_last.weight", "body.0.rdb1.conv1.weight")
    if any(k not in state for k in needed):
        return None
    first = state["conv_first.weight"]
    nf, in_total = int(first.shape[0]), int(first.shape[1])
    out_ch = int(state["conv_last.weight"].shape[0])
    in_ch = out_ch if out_ch in (1, 3, 4) else 3
    unshuffle = math.isqrt(max(1, in_total // in_ch))
    if in_ch * unshuffle * unshuffle != in_total or unshuffle not in (1, 2, 4):
        return None
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("body.")}
    upconvs = len({k.split(".")[0] for k in state if k.startswith("conv_up")})
    gc = int(state["body.0.rdb1.conv1.weight"].shape[0])
    info = UpscalerInfo(in_ch, out_ch, nf, len(blocks), gc, upconvs, unshuffle)
    if blocks != set(range(info.nb)) or info.scale < 1 or 2**upconvs % unshuffle:
        return None
    return info


# ----------------------------------------------------------------------------- loading
def read_upscaler_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an upscaler file (CPU), unwrapped from ``params_ema``/``params``."""
    from sfumato.inference.checkpoint_reading import read_weights_file

    return read_weights_file(
        path,
        missing="Upscaler file not found: {path}",
        missing_hint="Choose an ESRGAN-family file (ComfyUI's models/upscale_models, A1111's models/ESRGAN).",
        folder=("{path} is a folder, not an upscaler file.", "Choose a .pth or .safetensors file."),
        unknown=("{name} is not an upscaler file Sfumato reads ({suffix}).",
                 "Use a .pth or .safetensors super-resolution model."),
        wrappers=("params_ema", "params", "state_dict", "model"),
        strip_prefix="module.",
    )  # fmt: skip


Network = Callable[[torch.Tensor], torch.Tensor]


class Upscaler:
    """A loaded super-resolution model: :meth:`upscale` a uint8 picture by :attr:`scale`."""

    def __init__(self, network: Network, scale: int, name: str, device: torch.device,
                 dtype: torch.dtype, architecture: str) -> None:  # fmt: skip
        self.network = network
        self.scale = scale
        self.name = name
        self.device = device
        self.dtype = dtype
        self.architecture = architecture

    def __repr__(self) -> str:
        return f"Upscaler({self.name!r}, {self.architecture}, x{self.scale}, {self.device})"

    @torch.inference_mode()
    def upscale(
        self,
        picture: np.ndarray,
        *,
        tile: int = TILE,
        pad: int = PAD,
        cancel: Any = None,
        on_tile: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """``picture`` uint8 ``(H, W, 3)`` → uint8 ``(H·scale, W·scale, 3)``.

        In tiles of ``tile`` input pixels with ``pad`` pixels of context (module doc);
        ``cancel.is_set()`` is checked before each tile (raises :class:`CancelledError`),
        ``on_tile(done, count)`` reports after each.
        """
        if picture.ndim != 3 or picture.shape[2] < 3 or picture.dtype != np.uint8:
            raise ValueError(f"expected a uint8 RGB picture, got {picture.dtype} {picture.shape}")
        h, w = picture.shape[:2]
        s = self.scale
        out = np.empty((h * s, w * s, 3), dtype=np.uint8)
        ys, xs = range(0, h, tile), range(0, w, tile)
        count, done = len(ys) * len(xs), 0
        for y in ys:
            for x in xs:
                if cancel is not None and cancel.is_set():
                    raise CancelledError()
                th, tw = min(tile, h - y), min(tile, w - x)
                y0, x0 = max(0, y - pad), max(0, x - pad)
                y1, x1 = min(h, y + th + pad), min(w, x + tw + pad)
                crop = np.ascontiguousarray(picture[y0:y1, x0:x1, :3])
                result = self._run(crop)
                top, left = (y - y0) * s, (x - x0) * s
                out[y * s : (y + th) * s, x * s : (x + tw) * s] = result[top : top + th * s, left : left + tw * s]
                done += 1
                if on_tile is not None:
                    on_tile(done, count)
        return out

    def _run(self, crop: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].to(self.dtype) / 255.0
        multiple = 4 if isinstance(self.network, RRDBNet) and self.network.info.unshuffle > 1 else 1
        h, w = tensor.shape[2:]
        ph, pw = (-h) % multiple, (-w) % multiple  # pixel_unshuffle needs sides it divides
        if ph or pw:
            tensor = F.pad(tensor, (0, pw, 0, ph), mode="replicate")
        result = self.network(tensor)[:, :3, : h * self.scale, : w * self.scale]
        result = (result.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        return result[0].permute(1, 2, 0).cpu().numpy()


def load_upscaler(path: str | Path, device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None) -> Upscaler:  # fmt: skip
    """Load a super-resolution model file (module doc) onto ``device`` (default: the best
    available, as the engine chooses; pass ``engine.device`` to share the engine's).

    Raises :class:`ModelNotFoundError`, :class:`CorruptModelError`,
    :class:`~sfumato.inference.errors.UnsafeModelError` or :class:`UnsupportedUpscalerError`.
    """
    from sfumato.inference.devices import choose_device

    path = Path(path).expanduser()
    choice = choose_device(None if device is None else str(device))
    target = choice.device
    dtype = dtype or choice.dtype
    state = read_upscaler_weights(path)
    renamed = _old_to_new(state)
    layout = "ESRGAN" if renamed is not None else "Real-ESRGAN"
    info = rrdb_info(renamed if renamed is not None else state)
    if info is not None:
        network = RRDBNet(info)
        try:
            network.load_state_dict(renamed if renamed is not None else state, strict=True)
        except RuntimeError as error:
            raise CorruptModelError(f"{path.name} looks like an ESRGAN model but its weights do not fit: {error}") from error
        network.eval().to(device=target, dtype=dtype)
        log.info("upscaler %s: RRDBNet (%s keys) x%d, %d features, %d blocks", path.name, layout, info.scale, info.nf, info.nb)
        return Upscaler(network, info.scale, path.stem, target, dtype, f"RRDBNet ({layout})")
    return _load_with_spandrel(path, state, target, dtype)


def _load_with_spandrel(path: Path, state: dict[str, torch.Tensor], device: torch.device,
                        dtype: torch.dtype) -> Upscaler:  # fmt: skip
    try:
        import spandrel
    except Exception as error:  # ImportError, or torchvision failing inside it
        raise UnsupportedUpscalerError(
            f"{path.name} is not an ESRGAN (RRDBNet) model, the one architecture Sfumato reads "
            f"by itself; other architectures (SwinIR, HAT, DAT, OmniSR, …) need spandrel, which "
            f"is not available ({type(error).__name__}: {error}).",
        ) from error
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as error:  # spandrel's UnsupportedModelError and friends
        raise UnsupportedUpscalerError(
            f"{path.name} is no super-resolution architecture that Sfumato or spandrel knows ({error}).",
            "Choose an ESRGAN, Real-ESRGAN, SwinIR, HAT or DAT upscaler file.",
        ) from error
    if getattr(descriptor, "purpose", "SR") not in ("SR", "Restoration"):
        raise UnsupportedUpscalerError(f"{path.name} is a {descriptor.purpose} model, not an upscaler.")
    descriptor.to(device)
    if dtype != torch.float32 and getattr(descriptor, "supports_half", False):
        descriptor.to(dtype)
    else:
        dtype = torch.float32
    descriptor.eval()
    return Upscaler(descriptor, int(descriptor.scale), path.stem, device, dtype, f"{descriptor.architecture.name} (spandrel)")


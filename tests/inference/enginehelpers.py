"""Small helpers shared by the engine tests (requests, event recording)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sfumato.inference.events import Cancelled, Failed, Finished, Preview, Progress
from sfumato.inference.request import GenerationRequest, ModelRef


@dataclass
class Recorder:
    """Collects events; ``on_step`` is called with each Progress (for cancel injection)."""

    events: list[Any] = field(default_factory=list)
    on_step: Any = None

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, Progress) and self.on_step is not None:
            self.on_step(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def last(self) -> Any:
        return self.events[-1]

    @property
    def progress(self) -> list[Progress]:
        return self.of(Progress)

    @property
    def previews(self) -> list[Preview]:
        return self.of(Preview)

    @property
    def finished(self) -> Finished | None:
        found = self.of(Finished)
        return found[-1] if found else None

    @property
    def failed(self) -> Failed | None:
        found = self.of(Failed)
        return found[-1] if found else None

    @property
    def cancelled(self) -> bool:
        return bool(self.of(Cancelled))


def request(model: Path | str, *, width: int = 80, height: int = 64, steps: int = 3, **kw: Any) -> GenerationRequest:
    return GenerationRequest(prompt=kw.pop("prompt", "a red cat"), model=ModelRef(str(model)),
                             width=width, height=height, steps=steps, **kw)  # fmt: skip


def noise_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def smooth_image(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    r = (255 * x / max(1, width - 1)).astype(np.uint8)
    g = (255 * y / max(1, height - 1)).astype(np.uint8)
    b = np.full_like(r, 90)
    return np.stack([r, g, b], axis=-1)


def box_mask(width: int, height: int, x0: int, y0: int, x1: int, y1: int, value: float = 1.0) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    mask[y0:y1, x0:x1] = value
    return mask


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())



def run_keeping_latents(engine: Any, req: GenerationRequest, monkeypatch: Any) -> tuple[list[np.ndarray], Any, Recorder]:
    """Run ``req``; return (images, the final latents the engine decoded, its events)."""
    from sfumato.inference.families.base import Family

    seen: list[Any] = []
    real = Family.decode_latents

    def record(family: Any, pipe: Any, latents: Any) -> list[np.ndarray]:
        seen.append(latents.detach().clone())
        return real(family, pipe, latents)

    monkeypatch.setattr(Family, "decode_latents", record)
    rec = Recorder()
    try:
        result = engine.run(req, rec)
    finally:
        monkeypatch.setattr(Family, "decode_latents", real)
    assert result.ok, result.error
    return result.images, seen[-1], rec


def assert_known_latents_kept(engine: Any, req: GenerationRequest, latents: Any) -> None:
    """Where the (latent-resolution) inpaint mask is 0, the final latents are exactly the
    (filled) init's: the engine's inpaint contract. (The decoded pixels there still move:
    a VAE decoder mixes neighbouring latents, the tiny test VAE all of them; keeping
    those pixels' bytes is the planner's placement, through its paste mask.)"""
    import torch
    from sfumato.inference.inpaint import apply_fill

    assert req.init is not None and req.inpaint is not None
    loaded = engine.cache.get(req.model)
    filled = apply_fill(req.init.image, req.inpaint.mask, req.inpaint.fill, seed=req.seed)
    known = loaded.family.encode_images(loaded.pipe, [filled], engine.device).to(engine.dtype)
    lat = latents.shape[-2:]
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(np.array(req.inpaint.mask))[None, None], lat)[0, 0]
    keep = pooled <= 0
    assert keep.any(), "the mask leaves no latent pixel to check"
    for image_latents in latents:
        assert torch.equal(image_latents[:, keep], known[0][:, keep].to(image_latents.dtype))
    free = pooled >= 1
    if free.any():
        assert not torch.equal(latents[0][:, free], known[0][:, free].to(latents.dtype))


def count_calls(module: Any, monkeypatch: Any) -> list[int]:
    """Count ``module``'s forward calls from now on: ``calls[0]`` (undone with ``monkeypatch``)."""
    calls = [0]
    original = module.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "forward", counting)
    return calls

"""Tiny, randomly initialised depth estimators saved as transformers folders (no hub).

::

    from tinydepth import tiny_depth_model
    folder = tiny_depth_model(tmp_path)            # Depth Anything (V2 layout), ~100 KB
    folder = tiny_depth_model(tmp_path, "dpt")     # DPT (MiDaS' architecture)

Each folder holds ``config.json``, ``model.safetensors`` and ``preprocessor_config.json``
(a ``DPTImageProcessor`` as Depth Anything's and DPT's repositories ship it, at a tiny
input size: aspect kept for Depth Anything, square for DPT), which is what :func:`sfumato.inference.depth.estimate_depth` reads. Weights
are random but seeded: two builds are identical.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["tiny_depth_model"]

#: the processor's input side (a multiple of the 14-pixel patch; the real models use 518)
_SIDE = 28


def tiny_depth_model(tmp_dir: Path, kind: str = "depth_anything", *, seed: int = 0) -> Path:
    """Build (or reuse) a tiny depth estimator folder under ``tmp_dir``; returns its path.

    ``kind``: ``"depth_anything"`` (``DepthAnythingForDepthEstimation`` over a DINOv2
    backbone, relative depth as Depth Anything V2) or ``"dpt"`` (``DPTForDepthEstimation``).
    """
    import torch
    from transformers import DPTImageProcessor

    path = Path(tmp_dir) / f"tiny-{kind.replace('_', '-')}"
    if (path / "config.json").is_file():
        return path
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "depth_anything":
            model = _depth_anything()
        elif kind == "dpt":
            model = _dpt()
        else:
            raise ValueError(f"unknown tiny depth model {kind!r}")
    model.save_pretrained(str(path), safe_serialization=True)
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": _SIDE, "width": _SIDE},
        # Depth Anything keeps the aspect (its DINOv2 interpolates positions); DPT's plain ViT
        # reads square inputs only, as Intel/dpt-large's processor makes them.
        keep_aspect_ratio=kind == "depth_anything",
        ensure_multiple_of=14 if kind == "depth_anything" else 1,
        resample=3,  # bicubic, as the real repositories
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_pad=False,
    )
    processor.save_pretrained(str(path))
    return path


def _depth_anything():  # type: ignore[no-untyped-def]
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=1,  # one head: as wide as the real models' 64-wide heads allow
        patch_size=14,
        image_size=_SIDE,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    return DepthAnythingForDepthEstimation(config).eval()


def _dpt():  # type: ignore[no-untyped-def]
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=_SIDE,
        patch_size=14,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8,
        head_in_index=-1,
        is_hybrid=False,
    )
    return DPTForDepthEstimation(config).eval()

"""Tiny, randomly initialised VitPose estimators saved as transformers folders (no hub).

::

    from tinypose import tiny_pose_model
    folder = tiny_pose_model(tmp_path)   # VitPose (simple decoder), 17 COCO keypoints, ~40 KB

The folder holds ``config.json``, ``model.safetensors`` and ``preprocessor_config.json``
(written as ``usyd-community/vitpose-base-simple`` ships it, at a tiny input size: 32×24
(height × width, the real models' 256×192 aspect), heatmaps of 16×12), which is what
:mod:`sfumato.inference.pose_estimation` reads. Weights are random but seeded; the
head's last convolution is scaled down and biased to 0.5, so every keypoint's peak is
about 0.5 (above the 0.3 threshold: a whole skeleton) at a place the picture decides.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["INPUT_SIZE", "tiny_pose_model"]

#: the model's input (height, width): the real models' 256×192 aspect, a multiple of the 8-px patch
INPUT_SIZE = (32, 24)


def tiny_pose_model(tmp_dir: Path, *, seed: int = 0) -> Path:
    """Build (or reuse) a tiny VitPose folder under ``tmp_dir``; returns its path."""
    import torch
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    path = Path(tmp_dir) / "vitpose-tiny-simple"
    if (path / "config.json").is_file():
        return path
    backbone = VitPoseBackboneConfig(
        image_size=list(INPUT_SIZE), patch_size=[8, 8], hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, mlp_ratio=2, out_indices=[2],
    )  # fmt: skip
    config = VitPoseConfig(backbone_config=backbone, scale_factor=4, use_simple_decoder=True)
    config.num_labels = 17
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VitPoseForPoseEstimation(config).eval()
        with torch.no_grad():
            model.head.conv.weight.mul_(0.05)
            model.head.conv.bias.fill_(0.5)
    model.save_pretrained(str(path), safe_serialization=True)
    processor = {
        "do_affine_transform": True, "do_normalize": True, "do_rescale": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "image_processor_type": "VitPoseImageProcessor", "normalize_factor": 200.0,
        "rescale_factor": 1 / 255, "size": {"height": INPUT_SIZE[0], "width": INPUT_SIZE[1]},
    }  # fmt: skip
    (path / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return path

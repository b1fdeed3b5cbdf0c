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

__all__ = ["INPUT_SIZE", "tiny_person_detector", "tiny_pose_model"]

#: the model's input (height, width): the real models' 256×192 aspect, a multiple of the 8-px patch
INPUT_SIZE = (32, 24)


def tiny_pose_model(tmp_dir: Path, *, seed: int = 0) -> Path:
    """Build (or reuse) a tiny VitPose folder under ``tmp_dir``; returns its path."""
    import torch
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    path = Path(tmp_dir) / "vitpose-tiny-simple"
    if (path / "config.json").is_file():
        return path
    backbone = VitPoseBackboneConfig(  # type: ignore[call-arg]  # out_indices: a backbone keyword
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


def tiny_person_detector(tmp_dir: Path, *, seed: int = 0, people: bool = True) -> Path:
    """Build (or reuse) a tiny RT-DETR folder (``RTDetrForObjectDetection`` over a tiny
    ResNet, 10 queries, labels person/cat/dog; a 64×64 ``RTDetrImageProcessor``) under
    ``tmp_dir``. ``people``: the last decoder layer's "person" logit is biased up, so every
    query is a confident person (random boxes); else the scores stay low (nobody found)."""
    import torch
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    path = Path(tmp_dir) / ("rtdetr-tiny" if people else "rtdetr-tiny-nobody")
    if (path / "config.json").is_file():
        return path
    backbone = RTDetrResNetConfig(  # type: ignore[call-arg]  # out_features: a backbone keyword
        embedding_size=8, hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )  # fmt: skip
    labels = {0: "person", 1: "cat", 2: "dog"}
    config = RTDetrConfig(
        backbone_config=backbone, encoder_in_channels=[8, 16, 16],
        feat_strides=[8, 16, 32], encoder_hidden_dim=16, encoder_ffn_dim=32, encoder_attention_heads=2,
        encode_proj_layers=[2], d_model=16, decoder_in_channels=[16, 16, 16], decoder_ffn_dim=32,
        decoder_attention_heads=2, decoder_layers=1, num_feature_levels=3, num_queries=10,
        num_denoising=0, anchor_image_size=None, id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RTDetrForObjectDetection(config).eval()
        if people:
            with torch.no_grad():
                model.model.decoder.class_embed[-1].bias[0] = 12.0
    model.save_pretrained(str(path), safe_serialization=True)
    processor = {
        "image_processor_type": "RTDetrImageProcessor", "do_resize": True, "size": {"height": 64, "width": 64},
        "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": False, "do_pad": False,
        "format": "coco_detection",
    }  # fmt: skip
    (path / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return path

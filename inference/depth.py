"""Depth maps from a picture: a monocular depth estimator run through transformers.

"Depth from the picture" turns the visible canvas into the map a depth ControlNet reads:
near is white, far is black, the values stretched over 0–255 (as ControlNet's depth
preprocessors make them, MiDaS' and Depth Anything's alike), at the picture's own size.

Estimators (transformers folders, read offline: ``config.json``, the weights and the
folder's own ``preprocessor_config.json``, which says how the picture is resized and
normalised):

- Depth Anything V1/V2 (``DepthAnythingForDepthEstimation``; ``depth-anything/Depth-Anything-V2-Small-hf``
  and its Base/Large siblings, ``LiheYoung/depth-anything-*-hf``);
- DPT (``DPTForDepthEstimation``; ``Intel/dpt-hybrid-midas``, ``Intel/dpt-large``);

or an original Depth Anything checkpoint, as comfyui_controlnet_aux and
sd-webui-controlnet download them (``depth_anything_v2_vits.pth``,
``depth_anything_vitl14.pth``): its tensors are renamed as transformers' own conversion
script renames them, its sizes read from the tensors, V1/V2 and metric from its name, and
it is processed as the converted repositories say (518 px, aspect kept).

Relative models predict inverse depth (disparity: larger is nearer), which maps straight
to white-is-near; metric models (Depth Anything V2 *Metric*, ``depth_estimation_type:
"metric"``) predict distances, which are inverted first. The prediction, at the
processor's input size (518 px for the real models), is resized bicubically to the
picture's size before it is normalised, as ``post_process_depth_estimation`` does.

Where the folders are found is the annotators module's business (:func:`sfumato.inference.annotators.find_depth_estimator`);
the engine runs this on its device (:meth:`sfumato.inference.engine.Engine.estimate_depth`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sfumato.inference.detect import is_original_depth_anything
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.vocabulary.config import read_json

__all__ = [
    "DEPTH_MODEL_TYPES",
    "DepthEstimator",
    "depth_folder",
    "estimate_depth",
    "is_original_depth_anything",
    "load_depth_estimator",
    "original_key_map",
]

log = logging.getLogger(__name__)

#: transformers ``model_type`` → the class that predicts depth
DEPTH_MODEL_TYPES = {
    "depth_anything": "DepthAnythingForDepthEstimation",
    "dpt": "DPTForDepthEstimation",
}


@dataclass
class DepthEstimator:
    """A loaded depth estimator on its device."""

    path: Path
    model: Any  # a transformers *ForDepthEstimation model, eval mode
    processor: Any  # its image processor, from the folder's preprocessor_config.json
    #: the model predicts distances (metric) rather than inverse depth (relative)
    metric: bool
    device: torch.device
    dtype: torch.dtype

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """uint8 ``(H, W, 3)`` RGB → uint8 ``(H, W)`` depth map, near = 255."""
        image = _rgb(image)
        height, width = image.shape[:2]
        inputs = self.processor(images=image, return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            predicted = self.model(pixel_values=pixels).predicted_depth  # (1, h, w)
            depth = torch.nn.functional.interpolate(
                predicted[:, None].float(), size=(height, width), mode="bicubic", align_corners=False
            )[0, 0]
        return normalise_depth(depth.cpu().numpy(), metric=self.metric)


def normalise_depth(depth: np.ndarray, *, metric: bool) -> np.ndarray:
    """A float depth prediction → uint8, stretched over 0–255 with near = 255.

    ``metric``: ``depth`` is a distance (larger is farther) and is inverted; otherwise it
    is inverse depth (larger is nearer). A flat prediction is all black.
    """
    values = np.asarray(depth, dtype=np.float64)
    if metric:
        values = -values
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    low, high = float(values[finite].min()), float(values[finite].max())
    values = np.where(finite, values, low)
    if high - low <= 1e-12:
        return np.zeros(values.shape, np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def depth_folder(path: Path) -> Path:
    """The depth estimator at ``path``: a transformers folder (the folder itself, or the
    folder of a file in it: its ``config.json`` or weights), or an original Depth Anything
    checkpoint file (:func:`is_original_depth_anything`); a typed error when it is neither
    (missing, another kind of model, an original checkpoint of another estimator)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"Depth estimator not found: {path}.")
    if path.is_file() and is_original_depth_anything(path):
        return path
    folder = path if path.is_dir() else path.parent
    config = read_json(folder / "config.json")
    if not config:
        if path.is_file() and path.suffix.lower() in (".pth", ".pt", ".ckpt", ".safetensors", ".bin"):
            raise UnsupportedModeError(
                f"{path.name} is an original depth checkpoint Sfumato does not read (only Depth Anything's are).",
                "Download the transformers version instead (e.g. depth-anything/Depth-Anything-V2-Small-hf: "
                "config.json, model.safetensors, preprocessor_config.json) into one folder.",
            )
        raise CorruptModelError(
            f"{folder} is not a depth estimator folder (no config.json).",
            "A depth estimator is a transformers folder: config.json, model.safetensors, preprocessor_config.json.",
        )
    model_type = str(config.get("model_type", ""))
    if model_type not in DEPTH_MODEL_TYPES:
        raise UnsupportedModeError(
            f"{folder.name} is a {model_type or 'unknown'} model, not a depth estimator Sfumato runs.",
            "Use Depth Anything (V1 or V2) or DPT (MiDaS) in the transformers format.",
        )
    if not (folder / "preprocessor_config.json").is_file():
        raise CorruptModelError(
            f"The depth estimator {folder.name} has no preprocessor_config.json.",
            "Download the whole folder: config.json, model.safetensors and preprocessor_config.json.",
        )
    return folder


def load_depth_estimator(
    path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> DepthEstimator:
    """Load the estimator at ``path`` (:func:`depth_folder`) offline onto ``device``."""
    import transformers

    source = depth_folder(path)
    device = torch.device(device)
    if source.is_file():
        model, processor, metric = _original_depth_anything(source, dtype)
        model.to(device).eval()
        log.info("loaded depth estimator %s (original Depth Anything checkpoint%s)", source, ", metric" if metric else "")
        return DepthEstimator(source, model, processor, metric, device, dtype)
    config = read_json(source / "config.json") or {}
    cls = getattr(transformers, DEPTH_MODEL_TYPES[str(config["model_type"])])
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(str(source), local_files_only=True)
        model = cls.from_pretrained(str(source), local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        raise CorruptModelError(f"Could not load the depth estimator {source.name}: {error}") from error
    model.to(device).eval()
    metric = str(config.get("depth_estimation_type", "relative")) == "metric"
    log.info("loaded depth estimator %s (%s%s)", source, cls.__name__, ", metric" if metric else "")
    return DepthEstimator(source, model, processor, metric, device, dtype)


def estimate_depth(
    model_dir_or_file: Path | str,
    image: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """uint8 ``(H, W, 3)`` picture → uint8 ``(H, W)`` depth map (near = white), with the
    estimator at ``model_dir_or_file`` loaded for this one call (the engine keeps its own
    loaded: :meth:`~sfumato.inference.engine.Engine.estimate_depth`)."""
    return load_depth_estimator(Path(model_dir_or_file), device, dtype)(image)


def _rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        from sfumato.inference.request import RequestError

        raise RequestError(f"a depth map needs a uint8 (H, W, 3) picture, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array[..., :3])


# --------------------------------------------------------------------------- original checkpoints

def original_key_map(layers: int) -> list[tuple[str, str]]:
    """``(original name, transformers name)`` of an original Depth Anything checkpoint with
    ``layers`` DINOv2 blocks; the attention's fused ``qkv`` is split apart separately.
    The same renaming as transformers' ``convert_depth_anything_to_hf.py``."""
    pairs = [
        ("pretrained.cls_token", "backbone.embeddings.cls_token"),
        ("pretrained.mask_token", "backbone.embeddings.mask_token"),
        ("pretrained.pos_embed", "backbone.embeddings.position_embeddings"),
        ("pretrained.patch_embed.proj.weight", "backbone.embeddings.patch_embeddings.projection.weight"),
        ("pretrained.patch_embed.proj.bias", "backbone.embeddings.patch_embeddings.projection.bias"),
        ("pretrained.norm.weight", "backbone.layernorm.weight"),
        ("pretrained.norm.bias", "backbone.layernorm.bias"),
    ]
    for i in range(layers):
        ours, theirs = f"pretrained.blocks.{i}.", f"backbone.encoder.layer.{i}."
        pairs += [(ours + "ls1.gamma", theirs + "layer_scale1.lambda1"), (ours + "ls2.gamma", theirs + "layer_scale2.lambda1")]
        for part in ("weight", "bias"):
            pairs += [
                (ours + f"norm1.{part}", theirs + f"norm1.{part}"),
                (ours + f"norm2.{part}", theirs + f"norm2.{part}"),
                (ours + f"mlp.fc1.{part}", theirs + f"mlp.fc1.{part}"),
                (ours + f"mlp.fc2.{part}", theirs + f"mlp.fc2.{part}"),
                (ours + f"attn.proj.{part}", theirs + f"attention.output.dense.{part}"),
            ]
    for part in ("weight", "bias"):
        for i in range(4):
            pairs.append((f"depth_head.projects.{i}.{part}", f"neck.reassemble_stage.layers.{i}.projection.{part}"))
            if i != 2:
                pairs.append((f"depth_head.resize_layers.{i}.{part}", f"neck.reassemble_stage.layers.{i}.resize.{part}"))
        for i, j in ((1, 3), (2, 2), (3, 1), (4, 0)):  # the refinenets count the other way
            ours, theirs = f"depth_head.scratch.refinenet{i}.", f"neck.fusion_stage.layers.{j}."
            pairs.append((ours + f"out_conv.{part}", theirs + f"projection.{part}"))
            for unit in (1, 2):
                for conv in (1, 2):
                    pairs.append((ours + f"resConfUnit{unit}.conv{conv}.{part}",
                                  theirs + f"residual_layer{unit}.convolution{conv}.{part}"))  # fmt: skip
        pairs += [
            (f"depth_head.scratch.output_conv1.{part}", f"head.conv1.{part}"),
            (f"depth_head.scratch.output_conv2.0.{part}", f"head.conv2.{part}"),
            (f"depth_head.scratch.output_conv2.2.{part}", f"head.conv3.{part}"),
        ]
    pairs += [(f"depth_head.scratch.layer{i + 1}_rn.weight", f"neck.convs.{i}.weight") for i in range(4)]
    return pairs


def _out_indices(layers: int, v2: bool) -> list[int]:
    """The DINOv2 blocks whose outputs the head reads: V1 the last four, V2 spread out
    (3, 6, 9, 12 of ViT-S/B's 12; 5, 12, 18, 24 of ViT-L's 24), as transformers converts them."""
    if not v2:
        return [layers - 3, layers - 2, layers - 1, layers]
    known = {12: [3, 6, 9, 12], 24: [5, 12, 18, 24]}
    return known.get(layers, [max(1, round(layers * k / 4)) for k in (1, 2, 3, 4)])


def _original_depth_anything(path: Path, dtype: torch.dtype) -> tuple[Any, Any, bool]:
    """An original Depth Anything checkpoint as ``(DepthAnythingForDepthEstimation, its
    DPTImageProcessor, metric)``: sizes from the tensors, V1/V2 and metric from the name
    (``depth_anything_v2_…``, ``…_metric_hypersim_…``/``…_metric_vkitti_…``), the input
    processing of the converted repositories (518 px, aspect kept, multiples of 14,
    bicubic, ImageNet normalisation)."""
    import transformers
    from sfumato.inference.checkpoint_reading import load_checkpoint_state_dict

    state = load_checkpoint_state_dict(path)
    name = str(path).lower().replace("-", "_")
    try:
        hidden = int(state["pretrained.cls_token"].shape[-1])
        layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("pretrained.blocks."))
        if any(".mlp.w12." in k for k in state):
            raise UnsupportedModeError(f"{path.name} is Depth Anything Giant, which Sfumato does not read.")
        patch = int(state["pretrained.patch_embed.proj.weight"].shape[-1])
        grid = int(round((int(state["pretrained.pos_embed"].shape[1]) - 1) ** 0.5))
        metric = "metric" in name
        backbone = transformers.Dinov2Config(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
            mlp_ratio=int(state["pretrained.blocks.0.mlp.fc1.weight"].shape[0]) // hidden,
            image_size=grid * patch, patch_size=patch, out_indices=_out_indices(layers, "v2" in name),
            apply_layernorm=True, reshape_hidden_states=False,
        )  # fmt: skip
        config = transformers.DepthAnythingConfig(
            backbone_config=backbone,
            patch_size=patch,
            reassemble_hidden_size=hidden,
            neck_hidden_sizes=[int(state[f"depth_head.projects.{i}.weight"].shape[0]) for i in range(4)],
            fusion_hidden_size=int(state["depth_head.scratch.layer1_rn.weight"].shape[0]),
            head_hidden_size=int(state["depth_head.scratch.output_conv2.0.weight"].shape[0]),
            depth_estimation_type="metric" if metric else "relative",
            max_depth=(20 if "hypersim" in name else 80) if metric else 1,
        )
        weights = {theirs: state[ours] for ours, theirs in original_key_map(layers) if ours in state}
        for i in range(layers):
            qkv_w, qkv_b = state[f"pretrained.blocks.{i}.attn.qkv.weight"], state[f"pretrained.blocks.{i}.attn.qkv.bias"]
            for k, part in enumerate(("query", "key", "value")):
                prefix = f"backbone.encoder.layer.{i}.attention.attention.{part}."
                weights[prefix + "weight"] = qkv_w[k * hidden:(k + 1) * hidden]
                weights[prefix + "bias"] = qkv_b[k * hidden:(k + 1) * hidden]
        weights.setdefault("backbone.embeddings.mask_token", torch.zeros(1, hidden))  # unused at inference
        with torch.device("meta"):
            model = transformers.DepthAnythingForDepthEstimation(config)
        if "backbone.encoder.layer.0.attention.q_proj.weight" in model.state_dict():
            # transformers 5 names DINOv2's attention q/k/v/o_proj in memory (the files
            # keep the older names, which its loader renames; load_state_dict does not)
            weights = {_in_memory_name(k): v for k, v in weights.items()}
        weights = {k: v.to(dtype) for k, v in weights.items()}
        result = model.load_state_dict(weights, strict=False, assign=True)
    except (KeyError, ValueError, RuntimeError, IndexError, TypeError) as error:
        raise CorruptModelError(f"{path.name} is not a Depth Anything checkpoint Sfumato can read ({error}).") from error
    if result.missing_keys:
        raise CorruptModelError(
            f"{path.name} lacks {len(result.missing_keys)} tensors of Depth Anything (e.g. {result.missing_keys[0]})."
        )
    processor = transformers.DPTImageProcessor(
        do_resize=True, size={"height": 518, "width": 518}, ensure_multiple_of=14, keep_aspect_ratio=True,
        resample=3, do_rescale=True, do_normalize=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )  # fmt: skip
    return model, processor, metric


_IN_MEMORY = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)


def _in_memory_name(name: str) -> str:
    for old, new in _IN_MEMORY:
        if old in name and name.startswith("backbone."):
            return name.replace(old, new)
    return name

"""Depth maps from a picture: a monocular depth estimator run through transformers.

"Depth from the picture" turns the visible canvas into the map a depth ControlNet reads:
near is white, far is black, the values stretched over 0–255 (as ControlNet's depth
preprocessors make them, MiDaS' and Depth Anything's alike), at the picture's own size.

Estimators (transformers folders, read offline: ``config.json``, the weights and the
folder's own ``preprocessor_config.json``, which says how the picture is resized and
normalised):

- Depth Anything V1/V2 (``DepthAnythingForDepthEstimation``; ``depth-anything/Depth-Anything-V2-Small-hf``
  and its Base/Large siblings, ``LiheYoung/depth-anything-*-hf``);
- DPT (``DPTForDepthEstimation``; ``Intel/dpt-hybrid-midas``, ``Intel/dpt-large``).

Relative models predict inverse depth (disparity: larger is nearer), which maps straight
to white-is-near; metric models (Depth Anything V2 *Metric*, ``depth_estimation_type:
"metric"``) predict distances, which are inverted first. The prediction, at the
processor's input size (518 px for the real models), is resized bicubically to the
picture's size before it is normalised, as ``post_process_depth_estimation`` does.

Where the folders are found is the catalog's business (:func:`sfumato.inference.catalog.find_depth_estimator`);
the engine runs this on its device (:meth:`sfumato.inference.engine.Engine.estimate_depth`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.vocabulary.config import read_json

__all__ = ["DEPTH_MODEL_TYPES", "DepthEstimator", "estimate_depth", "depth_folder", "load_depth_estimator"]

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
    """The transformers folder of the depth estimator at ``path`` (the folder itself, or
    the folder of a file in it: its ``config.json`` or weights); a typed error when it is
    none (missing, an original ``.pth`` checkpoint, another kind of model)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"Depth estimator not found: {path}.")
    folder = path if path.is_dir() else path.parent
    config = read_json(folder / "config.json")
    if not config:
        if path.is_file() and path.suffix.lower() in (".pth", ".pt", ".ckpt"):
            raise UnsupportedModeError(
                f"{path.name} is an original Depth Anything/MiDaS checkpoint, which Sfumato does not read.",
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

    folder = depth_folder(path)
    config = read_json(folder / "config.json") or {}
    cls = getattr(transformers, DEPTH_MODEL_TYPES[str(config["model_type"])])
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        model = cls.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        raise CorruptModelError(f"Could not load the depth estimator {folder.name}: {error}") from error
    device = torch.device(device)
    model.to(device).eval()
    metric = str(config.get("depth_estimation_type", "relative")) == "metric"
    log.info("loaded depth estimator %s (%s%s)", folder, cls.__name__, ", metric" if metric else "")
    return DepthEstimator(folder, model, processor, metric, device, dtype)


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

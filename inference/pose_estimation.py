"""Body poses from a picture: VitPose (top-down, COCO-17) read as OpenPose body-18.

"Pose from Image" fills a pose layer's skeleton from the visible picture. VitPose
(``VitPoseForPoseEstimation``; ``usyd-community/vitpose-base-simple`` and its siblings,
transformers folders read offline) is *top-down*: it finds the 17 COCO keypoints of one
person inside a box. The boxes come from a person detector when one is installed
(RT-DETR, ``RTDetrForObjectDetection``, as transformers' VitPose documentation pairs
them: ``PekingU/rtdetr_r50vd_coco_o365``, class "person"), otherwise the whole picture is
one box, read as a single person, and :attr:`PoseEstimate.note` says so.

Each box goes through VitPose as its processor does it (mmpose's top-down recipe): the
box is widened to the model's input aspect (192:256 for the real models) and padded by
1.25, that square-cornered window is sampled bilinearly to the input size (zeros outside
the picture), normalised with the folder's ``image_mean``/``image_std``. The heatmaps
(a quarter of the input size) give each keypoint at the peak, moved a quarter of a
heatmap pixel towards the larger neighbour, mapped back through the same window: heatmap
column ``j`` of ``w`` is ``x0 + j · box_width / (w − 1)``, as transformers'
``transform_preds``. Its confidence is the peak's value. We do this ourselves (numpy and
``grid_sample``) because transformers' VitPose processor needs SciPy, which Sfumato does
not ship.

COCO-17 → OpenPose-18 (:data:`OPENPOSE_FROM_COCO`): OpenPose's order is nose, neck,
right shoulder/elbow/wrist, left shoulder/elbow/wrist, right hip/knee/ankle, left
hip/knee/ankle, right eye, left eye, right ear, left ear; the neck, which COCO lacks, is
the midpoint of the shoulders when both are confident. A keypoint whose confidence is
below :data:`KEYPOINT_THRESHOLD` is absent (``None``). Keypoints are in the picture's
pixels (``x`` right, ``y`` down; pixel centres at integers).

Where the folders are found is the catalog's business
(:func:`~sfumato.inference.annotators.find_pose_estimator`,
:func:`~sfumato.inference.annotators.find_person_detector`); the engine keeps them loaded
(:meth:`sfumato.inference.engine.Engine.estimate_pose`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.vocabulary.config import read_json

__all__ = [
    "COCO_KEYPOINTS",
    "DETECTOR_MODEL_TYPES",
    "KEYPOINT_THRESHOLD",
    "OPENPOSE_FROM_COCO",
    "PERSON_THRESHOLD",
    "WHOLE_PICTURE_NOTE",
    "EstimatedPerson",
    "PersonDetector",
    "PoseEstimate",
    "PoseEstimator",
    "PoseModels",
    "detector_folder",
    "estimate_pose",
    "load_person_detector",
    "load_pose_estimator",
    "openpose_from_coco",
    "pose_folder",
]

log = logging.getLogger(__name__)

#: COCO-17's keypoints, in the order VitPose's heatmaps come
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left eye", "right eye", "left ear", "right ear",
    "left shoulder", "right shoulder", "left elbow", "right elbow", "left wrist", "right wrist",
    "left hip", "right hip", "left knee", "right knee", "left ankle", "right ankle",
)
#: for each OpenPose body-18 slot, the COCO keypoint it takes (``None``: the neck)
OPENPOSE_FROM_COCO: tuple[int | None, ...] = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
#: a keypoint less confident than this (its heatmap peak) is absent (as controlnet_aux's 0.3)
KEYPOINT_THRESHOLD = 0.3
#: a detected box less sure than this to be a person is not read
PERSON_THRESHOLD = 0.5
#: the box padding of VitPose's processor (mmpose's top-down recipe)
PADDING = 1.25
#: transformers model types that detect people
DETECTOR_MODEL_TYPES = {"rt_detr": "RTDetrForObjectDetection", "rt_detr_v2": "RTDetrV2ForObjectDetection"}
WHOLE_PICTURE_NOTE = (
    "No person detector is installed, so the whole picture was read as one person; "
    "for several people put PekingU/rtdetr_r50vd_coco_o365 beside the pose estimator."
)

Point = tuple[float, float]


@dataclass(frozen=True)
class EstimatedPerson:
    """One person found: 18 OpenPose keypoints (image pixels, ``None`` when absent), the
    box it was read in (``x, y, width, height``, image pixels) and the box's score."""

    keypoints: tuple[Point | None, ...]
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class PoseEstimate:
    """The people of one picture, and a ``note`` for the user when the result has a
    known limit (no detector: one person assumed), else ``None``."""

    people: tuple[EstimatedPerson, ...]
    note: str | None = None


def openpose_from_coco(
    points: np.ndarray, scores: np.ndarray, threshold: float = KEYPOINT_THRESHOLD
) -> tuple[Point | None, ...]:
    """COCO-17 ``points`` ``(17, 2)`` with ``scores`` ``(17,)`` → OpenPose's 18 slots
    (see the module docstring); below ``threshold`` a keypoint is absent."""
    present = [float(s) >= threshold and bool(np.isfinite(points[k]).all()) for k, s in enumerate(scores)]
    out: list[Point | None] = []
    for coco in OPENPOSE_FROM_COCO:
        if coco is None:  # the neck: between the shoulders
            left, right = 5, 6
            if present[left] and present[right]:
                out.append((float(points[left, 0] + points[right, 0]) / 2, float(points[left, 1] + points[right, 1]) / 2))
            else:
                out.append(None)
        else:
            out.append((float(points[coco, 0]), float(points[coco, 1])) if present[coco] else None)
    return tuple(out)


def padded_window(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    """The picture window ``(x0, y0, w, h)`` VitPose reads for ``box`` (``x, y, w, h``):
    widened to the ``width``:``height`` aspect, padded by :data:`PADDING`, same centre."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    aspect = width / height
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    w, h = w * PADDING, h * PADDING
    return cx - w / 2, cy - h / 2, w, h


@dataclass
class PersonDetector:
    """A loaded RT-DETR (or any transformers object detector with a "person" label)."""

    path: Path
    model: Any
    processor: Any
    person: frozenset[int]  # the label ids that mean "person"
    device: torch.device
    dtype: torch.dtype

    def __call__(self, image: np.ndarray, threshold: float = PERSON_THRESHOLD) -> list[tuple[tuple[float, float, float, float], float]]:
        """``[(box (x, y, w, h), score)]`` of the people in ``image``, best first."""
        height, width = image.shape[:2]
        inputs = self.processor(images=image, return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            outputs = self.model(pixel_values=pixels)
        found = self.processor.post_process_object_detection(
            outputs, target_sizes=torch.tensor([(height, width)]), threshold=threshold
        )[0]
        people = []
        for label, score, (x0, y0, x1, y1) in zip(found["labels"].tolist(), found["scores"].tolist(),
                                                 found["boxes"].float().tolist(), strict=True):  # fmt: skip
            if int(label) in self.person and x1 > x0 and y1 > y0:
                people.append(((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), float(score)))
        people.sort(key=lambda item: -item[1])
        return people


@dataclass
class PoseEstimator:
    """A loaded VitPose on its device, with an optional person detector."""

    path: Path
    model: Any  # VitPoseForPoseEstimation, eval mode
    size: tuple[int, int]  # the model's input (height, width)
    mean: np.ndarray  # (3,), of 0–1 values
    std: np.ndarray
    device: torch.device
    dtype: torch.dtype
    detector: PersonDetector | None = None
    threshold: float = KEYPOINT_THRESHOLD

    def __call__(self, image: np.ndarray, cancel: Callable[[], None] | None = None) -> PoseEstimate:
        """uint8 ``(H, W, 3)`` RGB → the people in it (see the module docstring).
        ``cancel`` is called between the stages (it raises to stop)."""
        image = _rgb(image)
        height, width = image.shape[:2]
        note = None
        if self.detector is not None:
            found = self.detector(image)
            if cancel is not None:
                cancel()
            if not found:
                return PoseEstimate((), "The person detector found nobody in the picture.")
        else:
            found = [((0.0, 0.0, float(width), float(height)), 1.0)]
            note = WHOLE_PICTURE_NOTE
        in_h, in_w = self.size
        windows = [padded_window(box, in_w, in_h) for box, _ in found]
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
        crops = torch.stack([self._crop(pixels, window) for window in windows])
        kwargs: dict[str, Any] = {}
        if int(getattr(self.model.config.backbone_config, "num_experts", 1)) > 1:
            kwargs["dataset_index"] = torch.zeros(len(windows), dtype=torch.long, device=self.device)  # COCO
        with torch.inference_mode():
            heatmaps = self.model(pixel_values=crops.to(self.device, self.dtype), **kwargs).heatmaps
        maps = heatmaps.float().cpu().numpy()
        people = []
        for (box, score), window, person_maps in zip(found, windows, maps, strict=True):
            points, scores = heatmap_keypoints(person_maps[:17], window)
            people.append(EstimatedPerson(openpose_from_coco(points, scores, self.threshold), box, score))
        return PoseEstimate(tuple(people), note)

    def _crop(self, pixels: torch.Tensor, window: tuple[float, float, float, float]) -> torch.Tensor:
        """The normalised ``(3, h, w)`` input of one window of ``pixels`` (``(1, 3, H, W)``,
        0–1; corners aligned: input pixel ``u`` of ``w`` is picture ``x0 + u · width / (w − 1)``,
        as VitPose's warp; zeros outside the picture)."""
        in_h, in_w = self.size
        height, width = pixels.shape[-2:]
        x0, y0, bw, bh = window
        xs = x0 + np.arange(in_w) * bw / max(in_w - 1, 1)
        ys = y0 + np.arange(in_h) * bh / max(in_h - 1, 1)
        gx = torch.from_numpy(xs / max(width - 1, 1) * 2 - 1).float()
        gy = torch.from_numpy(ys / max(height - 1, 1) * 2 - 1).float()
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]  # (1, h, w, 2)
        crop = torch.nn.functional.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        mean = torch.from_numpy(self.mean).float()[:, None, None]
        std = torch.from_numpy(self.std).float()[:, None, None]
        return (crop - mean) / std


def heatmap_keypoints(heatmaps: np.ndarray, window: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``(K, h, w)`` heatmaps of one window → ``(K, 2)`` picture points and ``(K,)``
    confidences: the peak, a quarter heatmap pixel towards the larger neighbour, mapped
    through ``window`` (``x0, y0, width, height``) corners-aligned."""
    count, h, w = heatmaps.shape
    flat = heatmaps.reshape(count, -1)
    peaks = flat.argmax(axis=1)
    scores = flat[np.arange(count), peaks]
    rows, cols = (peaks // w).astype(np.float64), (peaks % w).astype(np.float64)
    for k in range(count):
        r, c = int(rows[k]), int(cols[k])
        if 0 < c < w - 1:
            cols[k] += 0.25 * np.sign(heatmaps[k, r, c + 1] - heatmaps[k, r, c - 1])
        if 0 < r < h - 1:
            rows[k] += 0.25 * np.sign(heatmaps[k, r + 1, c] - heatmaps[k, r - 1, c])
    x0, y0, bw, bh = window
    points = np.stack([x0 + cols * bw / max(w - 1, 1), y0 + rows * bh / max(h - 1, 1)], axis=1)
    return points, scores.astype(np.float64)


# --------------------------------------------------------------------------- folders and loading

def pose_folder(path: Path) -> Path:
    """The VitPose folder at ``path`` (the folder, or a file in it); a typed error when it
    is missing or not a VitPose transformers folder."""
    return _folder(Path(path), {"vitpose": "VitPoseForPoseEstimation"}, "pose estimator",
                   "usyd-community/vitpose-base-simple")  # fmt: skip


def detector_folder(path: Path) -> Path:
    """The person detector folder at ``path`` (RT-DETR, transformers format)."""
    return _folder(Path(path), DETECTOR_MODEL_TYPES, "person detector", "PekingU/rtdetr_r50vd_coco_o365")


def _folder(path: Path, types: dict[str, str], what: str, example: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"The {what} was not found: {path}.")
    folder = path if path.is_dir() else path.parent
    config = read_json(folder / "config.json")
    if not config:
        raise CorruptModelError(
            f"{folder} is not a {what} folder (no config.json).",
            f"A {what} is a transformers folder (e.g. {example}): config.json, model.safetensors, "
            "preprocessor_config.json.",
        )
    model_type = str(config.get("model_type", ""))
    if model_type not in types:
        raise UnsupportedModeError(
            f"{folder.name} is a {model_type or 'unknown'} model, not a {what} Sfumato runs.",
            f"Use {example} (transformers format).",
        )
    if not (folder / "preprocessor_config.json").is_file():
        raise CorruptModelError(
            f"The {what} {folder.name} has no preprocessor_config.json.",
            "Download the whole folder: config.json, model.safetensors and preprocessor_config.json.",
        )
    return folder


def load_pose_estimator(
    path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
    detector: PersonDetector | None = None,
) -> PoseEstimator:
    """Load the VitPose at ``path`` (:func:`pose_folder`) offline onto ``device``."""
    import transformers

    folder = pose_folder(path)
    device = torch.device(device)
    processor = read_json(folder / "preprocessor_config.json") or {}
    try:
        model: Any = transformers.VitPoseForPoseEstimation.from_pretrained(
            str(folder), local_files_only=True, dtype=dtype
        )
        side: Any = model.config.backbone_config.image_size  # (height, width), or one side
        size = (int(side[0]), int(side[1])) if isinstance(side, list | tuple) else (int(side), int(side))
        mean = np.asarray(processor.get("image_mean", [0.485, 0.456, 0.406]), np.float64).reshape(3)
        std = np.asarray(processor.get("image_std", [0.229, 0.224, 0.225]), np.float64).reshape(3)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as error:
        raise CorruptModelError(f"Could not load the pose estimator {folder.name}: {error}") from error
    model.to(device).eval()
    log.info("loaded pose estimator %s (input %dx%d)", folder, size[1], size[0])
    return PoseEstimator(folder, model, size, mean, std, device, dtype, detector)


def load_person_detector(
    path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> PersonDetector:
    """Load the person detector at ``path`` (:func:`detector_folder`) offline."""
    import transformers

    folder = detector_folder(path)
    device = torch.device(device)
    config = read_json(folder / "config.json") or {}
    cls = getattr(transformers, DETECTOR_MODEL_TYPES[str(config["model_type"])])
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        model = cls.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, ImportError) as error:
        raise CorruptModelError(f"Could not load the person detector {folder.name}: {error}") from error
    labels = {int(k): str(v).lower() for k, v in (model.config.id2label or {}).items()}
    person = frozenset(k for k, v in labels.items() if v == "person")
    if not person:
        raise UnsupportedModeError(f"The detector {folder.name} has no \"person\" class.",
                                   "Use a COCO detector such as PekingU/rtdetr_r50vd_coco_o365.")
    model.to(device).eval()
    log.info("loaded person detector %s (%s)", folder, cls.__name__)
    return PersonDetector(folder, model, processor, person, device, dtype)


def estimate_pose(
    image: np.ndarray,
    model: Path | str,
    detector: Path | str | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PoseEstimate:
    """The people in ``image`` (uint8 ``(H, W, 3)``) with the VitPose folder ``model`` and
    the person detector folder ``detector`` (``None``: the whole picture is one person),
    loaded for this one call (the engine keeps its own loaded: :class:`PoseModels`)."""
    found = None if detector is None else load_person_detector(Path(detector), device, dtype)
    return load_pose_estimator(Path(model), device, dtype, found)(image)


class PoseModels:
    """The last pose estimator and detector loaded, kept for the next call (the engine's)."""

    def __init__(self) -> None:
        self._estimator: tuple[str, PoseEstimator] | None = None
        self._detector: tuple[str, PersonDetector] | None = None
        self.load_count = 0

    def get(self, model: Path | str | None, device: torch.device, dtype: torch.dtype) -> PoseEstimator:
        """The estimator of the VitPose folder ``model`` (``None``: the catalog's; a hub id,
        which is not read, is refused), with the catalog's person detector when there is one.

        Raises :class:`~sfumato.inference.errors.MissingPoseEstimatorError` naming what to
        download and where to put it when there is no estimator."""
        import sfumato.inference.annotators as annotators
        from sfumato.inference.errors import MissingPoseEstimatorError

        if model is None:
            model = annotators.find_pose_estimator()
            if model is None:
                raise MissingPoseEstimatorError(annotators.POSE_ESTIMATOR_DOWNLOAD, annotators.POSE_ESTIMATOR_FOLDER)
        elif isinstance(model, str):
            raise MissingPoseEstimatorError(
                annotators.POSE_ESTIMATOR_DOWNLOAD, annotators.POSE_ESTIMATOR_FOLDER,
                f"Pose estimator not found: {model} (hub ids are not downloaded; Sfumato reads folders offline).",
            )  # fmt: skip
        folder = pose_folder(Path(model))
        detector = annotators.find_person_detector()
        found = None
        if detector is not None:
            key = str(Path(detector).resolve())
            if self._detector is None or self._detector[0] != key:
                self._detector = None
                self._detector = (key, load_person_detector(Path(detector), device, dtype))
            found = self._detector[1]
        key = str(folder.resolve())
        if self._estimator is None or self._estimator[0] != key:
            self._estimator = None
            self._estimator = (key, load_pose_estimator(folder, device, dtype))
            self.load_count += 1
        estimator = self._estimator[1]
        estimator.detector = found
        return estimator


def _rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        from sfumato.inference.request import RequestError

        raise RequestError(f"a pose needs a uint8 (H, W, 3) picture, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array[..., :3])

"""Where the preprocessor models are found: depth estimators ("Depth from Image"), pose
estimators and person detectors ("Pose from Image").

They are transformers folders (a ``config.json`` whose ``model_type`` names the model and
a ``preprocessor_config.json``), and for Depth Anything also the original checkpoints that
comfyui_controlnet_aux and sd-webui-controlnet download (``depth_anything_v2_vits.pth``,
:func:`~sfumato.inference.detect.is_original_depth_anything`). One search serves them all
(:func:`_find`): the configured ``model_paths`` first (the first found wins), then the
preprocessor folders of :func:`annotator_dirs` and the Hugging Face cache's matching
snapshots (unless ``SFUMATO_NO_SYSTEM_MODEL_DIRS`` is set), ranked where a kind has a
preference. Nothing is downloaded: a missing model is the caller's typed error, which
names the ``*_DOWNLOAD`` folder and the ``*_FOLDER`` to put it in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sfumato.inference.catalog import home_dir, hub_cache_dir, system_dirs_enabled
from sfumato.inference.detect import is_original_depth_anything
from sfumato.vocabulary.config import Config, load_config, read_json

__all__ = [
    "DEPTH_ESTIMATOR_DOWNLOAD",
    "DEPTH_ESTIMATOR_FOLDER",
    "PERSON_DETECTOR_DOWNLOAD",
    "POSE_ESTIMATOR_DOWNLOAD",
    "POSE_ESTIMATOR_FOLDER",
    "annotator_dirs",
    "find_depth_estimator",
    "find_person_detector",
    "find_pose_estimator",
]

#: what to download for "depth from the picture" when no estimator is installed
DEPTH_ESTIMATOR_DOWNLOAD = "depth-anything/Depth-Anything-V2-Small-hf"
#: where to put it (one of the folders :func:`find_depth_estimator` searches)
DEPTH_ESTIMATOR_FOLDER = "~/ComfyUI/models/annotators"
#: what to download for "Pose from Image" when no pose estimator is installed
POSE_ESTIMATOR_DOWNLOAD = "usyd-community/vitpose-base-simple"
#: where to put it (one of the folders :func:`find_pose_estimator` searches)
POSE_ESTIMATOR_FOLDER = "~/ComfyUI/models/annotators"
#: the person detector that finds the boxes VitPose reads (optional)
PERSON_DETECTOR_DOWNLOAD = "PekingU/rtdetr_r50vd_coco_o365"

_DEPTH_TYPES = ("depth_anything", "dpt")
_POSE_TYPES = ("vitpose",)
_DETECTOR_TYPES = ("rt_detr", "rt_detr_v2")


def annotator_dirs(home: Path | None = None) -> list[Path]:
    """The preprocessor folders searched (existing or not): ComfyUI's ``models/annotators``
    and comfyui_controlnet_aux's ``ckpts``, A1111's sd-webui-controlnet
    ``annotator/downloads`` and Forge's ``models/ControlNetPreprocessor``."""
    home = home_dir() if home is None else home
    comfy = home / "ComfyUI"
    dirs = [comfy / "models" / "annotators", comfy / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts"]
    for webui in ("stable-diffusion-webui", "stable-diffusion-webui-forge"):
        dirs.append(home / webui / "extensions" / "sd-webui-controlnet" / "annotator" / "downloads")
        dirs.append(home / webui / "models" / "ControlNetPreprocessor")
    return dirs


def _folders(root: Path, types: tuple[str, ...], files: Callable[[Path], bool] | None, depth: int = 4) -> Iterator[Path]:
    """The models in ``root``, ``depth`` levels down: transformers folders whose
    ``config.json`` has one of the ``model_type``s ``types`` and that hold a
    ``preprocessor_config.json``, and (with ``files``) the single files it accepts."""
    try:
        if root.is_file():
            if files is not None and files(root):
                yield root
            return
        if not root.is_dir():
            return
        config = read_json(root / "config.json")
        if config is not None:
            if config.get("model_type") in types and (root / "preprocessor_config.json").is_file():
                yield root
            return
        if depth <= 0:
            return
        children = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.name.lower())
    except OSError:
        return
    for child in children:
        yield from _folders(child, types, files, depth - 1)


def _find(
    types: tuple[str, ...],
    hub_words: tuple[str, ...],
    config: Config | None,
    home: Path | None,
    *,
    files: Callable[[Path], bool] | None = None,
    rank: Callable[[Path], Any] | None = None,
) -> Path | None:
    """The module docstring's search for models of ``types`` (Hugging Face snapshots of
    repositories whose names hold one of ``hub_words``), best by ``rank`` (smallest) where
    given, else the first found."""

    def best(found: list[Path]) -> Path | None:
        if rank is not None:
            found = sorted(found, key=rank)
        return found[0] if found else None

    config = load_config() if config is None else config
    for raw in config.model_paths:
        chosen = best(list(_folders(Path(raw).expanduser(), types, files)))
        if chosen is not None:
            return chosen
    if not system_dirs_enabled() and home is None:
        return None
    candidates: list[Path] = []
    for root in annotator_dirs(home):
        candidates += _folders(root, types, files)
    hub = hub_cache_dir() if home is None else home / ".cache" / "huggingface" / "hub"
    with contextlib.suppress(OSError):
        for repo in sorted(hub.glob("models--*")):
            name = repo.name.lower().replace("_", "").replace("-", "")
            if any(word in name for word in hub_words):
                candidates += _folders(repo / "snapshots", types, files, depth=1)
    return best(candidates)


def _depth_rank(found: Path) -> tuple[bool, int, bool]:
    """``(metric, model, original)``, smallest first: relative depth before metric; Depth
    Anything V2, then V1, then DPT; a transformers folder before an original checkpoint."""
    text = str(found).lower().replace("_", "-")
    if found.is_file():
        return "metric" in text, 0 if "v2" in text else 1, True
    config = read_json(found / "config.json") or {}
    metric = config.get("depth_estimation_type") == "metric"
    if config.get("model_type") == "depth_anything":
        return metric, 0 if "v2" in text else 1, False
    return metric, 2, False


def find_depth_estimator(*, config: Config | None = None, home: Path | None = None) -> Path | None:
    """The installed depth estimator for "depth from the picture", or ``None``: a Depth
    Anything (V1/V2) or DPT transformers folder, or an original Depth Anything checkpoint
    (which :mod:`.depth` also reads). Depth Anything V2 is preferred over V1 and DPT,
    relative depth over metric, and a transformers folder over an original checkpoint of
    the same rank (the configured folders still win)."""
    return _find(_DEPTH_TYPES, ("depth", "dpt"), config, home, files=is_original_depth_anything, rank=_depth_rank)


def find_pose_estimator(*, config: Config | None = None, home: Path | None = None) -> Path | None:
    """The installed VitPose folder for "Pose from Image", or ``None``. A folder counts by
    its ``config.json`` (``model_type: "vitpose"``) and its ``preprocessor_config.json``,
    whatever its name (``vitpose-base-simple`` or ``usyd-community/vitpose-base-simple``)."""
    return _find(_POSE_TYPES, ("vitpose",), config, home)


def find_person_detector(*, config: Config | None = None, home: Path | None = None) -> Path | None:
    """The installed person detector (RT-DETR, ``model_type`` ``rt_detr``/``rt_detr_v2``,
    e.g. ``PekingU/rtdetr_r50vd_coco_o365``) that finds the boxes VitPose reads, or
    ``None``; searched where :func:`find_pose_estimator` searches."""
    return _find(_DETECTOR_TYPES, ("rtdetr",), config, home)

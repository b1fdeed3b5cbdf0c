"""Pose from the picture: a tiny VitPose built here, never downloaded; the COCO-17 →
OpenPose-18 mapping checked on heatmaps we choose."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sfumato.inference.annotators import (
    POSE_ESTIMATOR_DOWNLOAD,
    POSE_ESTIMATOR_FOLDER,
    find_person_detector,
    find_pose_estimator,
)
from sfumato.inference.cancel import CancelToken
from sfumato.inference.errors import (
    CancelledError,
    CorruptModelError,
    MissingPoseEstimatorError,
    UnsupportedModeError,
)
from sfumato.inference.pose_estimation import (
    KEYPOINT_THRESHOLD,
    WHOLE_PICTURE_NOTE,
    estimate_pose,
    load_pose_estimator,
)
from sfumato.inference.request import ModelRef
from sfumato.vocabulary.config import Config
from tinypose import INPUT_SIZE, tiny_pose_model

pytest.importorskip("transformers")

#: heatmap size of the tiny model: input / 8-px patches × 4 (the simple decoder's upsampling)
HEAT_H, HEAT_W = INPUT_SIZE[0] // 2, INPUT_SIZE[1] // 2

#: COCO-17's order, as the VitPose model card lists it
COCO = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
#: OpenPose body-18's order, as OpenPose's output documentation lists it
OPENPOSE = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
            "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
            "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear"]  # fmt: skip


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pose_model(tmp_path_factory.mktemp("pose"))


def _picture(h: int = 64, w: int = 48) -> np.ndarray:
    return (np.random.default_rng(5).random((h, w, 3)) * 255).astype(np.uint8)


def test_one_person_of_18_slots_in_the_pictures_pixels(pose_model: Path) -> None:
    picture = _picture(70, 50)
    estimate = estimate_pose(picture, pose_model)
    assert estimate.note == WHOLE_PICTURE_NOTE  # no detector: the whole picture, said so
    assert len(estimate.people) == 1
    person = estimate.people[0]
    assert person.box == (0.0, 0.0, 50.0, 70.0)
    assert len(person.keypoints) == 18
    present = [p for p in person.keypoints if p is not None]
    assert len(present) == 18  # the tiny model is confident everywhere (tinypose)
    # Within the window VitPose read: the picture widened to 3:4 and padded by 1.25.
    w, h = 70 * 0.75 * 1.25, 70 * 1.25
    for x, y in present:
        assert 25 - w / 2 - 1e-6 <= x <= 25 + w / 2 + 1e-6 and 35 - h / 2 - 1e-6 <= y <= 35 + h / 2 + 1e-6
    # Deterministic, and the picture matters.
    assert estimate_pose(picture, pose_model) == estimate
    assert estimate_pose(picture[::-1].copy(), pose_model).people[0].keypoints != person.keypoints


def _stub_heatmaps(estimator, peaks: dict[int, tuple[int, int, float]]) -> None:  # noqa: ANN001
    """Make the model return heatmaps that are 0 but for COCO keypoint ``k``'s single
    peak at heatmap ``(row, col)`` of height ``value``."""
    maps = torch.zeros(1, 17, HEAT_H, HEAT_W)
    for k, (row, col, value) in peaks.items():
        maps[0, k, row, col] = value
    estimator.model = _Stub(estimator.model.config, maps)


class _Stub:
    def __init__(self, config, maps: torch.Tensor) -> None:  # noqa: ANN001
        self.config, self.maps = config, maps

    def __call__(self, pixel_values: torch.Tensor, **_: object) -> SimpleNamespace:
        assert tuple(pixel_values.shape[1:]) == (3, *INPUT_SIZE)
        return SimpleNamespace(heatmaps=self.maps.expand(pixel_values.shape[0], -1, -1, -1))


def test_coco_keypoints_land_in_openposes_slots_with_the_neck_between_the_shoulders(pose_model: Path) -> None:
    estimator = load_pose_estimator(pose_model)
    # A 48×64 picture has the model's 3:4 aspect: the window is the picture padded by 1.25,
    # 60×80 from (-6, -8); heatmap column j of 12 is x = -6 + j·60/11, row i of 16 y = -8 + i·80/15.
    peaks = {k: (1 + k % 14, 1 + (k * 5) % 10, 0.9) for k in range(17)}  # inner cells: no quarter shift
    _stub_heatmaps(estimator, peaks)

    def where(name: str) -> tuple[float, float]:
        row, col, _ = peaks[COCO.index(name)]
        return -6 + col * 60 / 11, -8 + row * 80 / 15

    person = estimator(_picture(64, 48)).people[0]
    for slot, name in enumerate(OPENPOSE):
        if name == "neck":
            (lx, ly), (rx, ry) = where("left_shoulder"), where("right_shoulder")
            expected = ((lx + rx) / 2, (ly + ry) / 2)
        else:
            expected = where(name)
        assert person.keypoints[slot] == pytest.approx(expected, abs=1e-6), name


def test_unsure_keypoints_are_absent_and_the_neck_needs_both_shoulders(pose_model: Path) -> None:
    estimator = load_pose_estimator(pose_model)
    peaks = {k: (3, 3, 0.9) for k in range(17)}
    peaks[COCO.index("left_shoulder")] = (3, 3, KEYPOINT_THRESHOLD / 2)
    peaks[COCO.index("right_ankle")] = (3, 3, 0.1)
    _stub_heatmaps(estimator, peaks)
    keypoints = estimator(_picture(64, 48)).people[0].keypoints
    absent = {OPENPOSE[slot] for slot, p in enumerate(keypoints) if p is None}
    assert absent == {"left_shoulder", "right_ankle", "neck"}


def test_a_peak_between_unequal_neighbours_moves_a_quarter_cell_towards_the_larger(pose_model: Path) -> None:
    estimator = load_pose_estimator(pose_model)
    maps = torch.zeros(1, 17, HEAT_H, HEAT_W)
    maps[0, :, 4, 5] = 0.9
    maps[0, :, 4, 6] = 0.5  # right neighbour larger: x moves right
    maps[0, :, 3, 5] = 0.5  # upper neighbour larger: y moves up
    estimator.model = _Stub(estimator.model.config, maps)
    nose = estimator(_picture(64, 48)).people[0].keypoints[0]
    assert nose == pytest.approx((-6 + 5.25 * 60 / 11, -8 + 3.75 * 80 / 15))


def test_the_catalog_finds_vitpose_by_its_config_in_the_annotators_folder(pose_model: Path, tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "home"
    assert find_pose_estimator(config=Config(), home=home) is None
    target = home / "ComfyUI" / "models" / "annotators" / "usyd-community" / "vitpose-base-simple"
    shutil.copytree(pose_model, target)
    assert find_pose_estimator(config=Config(), home=home) == target
    assert find_person_detector(config=Config(), home=home) is None
    configured = tmp_path / "mine"
    shutil.copytree(pose_model, configured / "vitpose-base-simple")
    assert find_pose_estimator(config=Config(model_paths=[str(configured)]), home=home) == configured / "vitpose-base-simple"


def test_no_estimator_is_a_typed_error_naming_the_folder(tmp_path: Path) -> None:
    from sfumato.inference.engine import Engine

    engine = Engine(device="cpu", models_root=tmp_path)
    with pytest.raises(MissingPoseEstimatorError) as caught:
        engine.estimate_pose(_picture())  # the test session has no system folders, no model paths
    text = caught.value.user_message
    assert POSE_ESTIMATOR_DOWNLOAD in text and "vitpose-base-simple" in text
    assert POSE_ESTIMATOR_FOLDER in text and "annotators" in text
    assert caught.value.expected == POSE_ESTIMATOR_DOWNLOAD and caught.value.folder == POSE_ESTIMATOR_FOLDER


def test_the_engine_keeps_the_estimator_loaded_and_stops_when_cancelled(pose_model: Path, tmp_path: Path) -> None:
    from sfumato.inference.engine import Engine

    engine = Engine(device="cpu", dtype="float32", models_root=tmp_path)
    picture = _picture()
    first = engine.estimate_pose(picture, ModelRef(str(pose_model)))
    assert first == estimate_pose(picture, pose_model)
    engine.estimate_pose(picture, ModelRef(str(pose_model / "config.json")))
    assert engine._pose_models.load_count == 1  # noqa: SLF001 - kept loaded
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        engine.estimate_pose(picture, ModelRef(str(pose_model)), token)
    assert engine.estimate_pose(picture, ModelRef(str(pose_model))) == first  # still usable


def test_other_folders_are_refused_with_what_to_use(pose_model: Path, tmp_path: Path) -> None:
    from tinydepth import tiny_depth_model

    with pytest.raises(UnsupportedModeError, match="vitpose-base-simple"):
        load_pose_estimator(tiny_depth_model(tmp_path))
    with pytest.raises(CorruptModelError):
        load_pose_estimator(tmp_path)  # no config.json
    with pytest.raises(Exception, match="uint8"):
        estimate_pose(np.zeros((4, 4), np.float32), pose_model)


def test_a_person_detector_gives_one_skeleton_per_person_box(pose_model: Path, tmp_path: Path) -> None:
    from sfumato.inference.pose_estimation import load_person_detector, padded_window
    from tinypose import tiny_person_detector

    detector_dir = tiny_person_detector(tmp_path)
    picture = _picture(60, 80)
    boxes = load_person_detector(detector_dir)(picture)
    assert len(boxes) > 1, "the tiny detector's queries are all confident people"
    assert all(score >= 0.5 for _, score in boxes)
    estimate = estimate_pose(picture, pose_model, detector_dir)
    assert estimate.note is None
    assert [p.box for p in estimate.people] == [box for box, _ in boxes]
    assert all(len(p.keypoints) == 18 for p in estimate.people)
    # Each skeleton was read in its own box's window.
    for person in estimate.people:
        x0, y0, w, h = padded_window(person.box, INPUT_SIZE[1], INPUT_SIZE[0])
        for p in person.keypoints:
            if p is not None:
                assert x0 - 1e-6 <= p[0] <= x0 + w + 1e-6 and y0 - 1e-6 <= p[1] <= y0 + h + 1e-6
    # A detector that finds nobody: no people, and the note says why.
    nobody = estimate_pose(picture, pose_model, tiny_person_detector(tmp_path, people=False))
    assert nobody.people == () and "nobody" in (nobody.note or "")


def test_the_engine_uses_the_installed_person_detector(pose_model: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import sfumato.inference.annotators as annotators
    from sfumato.inference.engine import Engine
    from tinypose import tiny_person_detector

    home = tmp_path / "home"
    detector_dir = tiny_person_detector(home / "ComfyUI" / "models" / "annotators" / "PekingU")
    assert annotators.find_person_detector(config=Config(), home=home) == detector_dir
    monkeypatch.setattr(annotators, "find_person_detector", lambda: detector_dir)
    engine = Engine(device="cpu", dtype="float32", models_root=tmp_path)
    picture = _picture(60, 80)
    estimate = engine.estimate_pose(picture, ModelRef(str(pose_model)))
    assert estimate == estimate_pose(picture, pose_model, detector_dir)
    assert len(estimate.people) >= 1 and estimate.note is None

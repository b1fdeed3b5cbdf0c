"""Pose from Image in the window: the visible picture through the worker's engine and a
tiny VitPose, into the pose layer's skeleton (and its drawn pixels) as one undo step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.model.geometry import Rect
from sfumato.desktop import layer_actions
from tinypose import tiny_pose_model

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pose_model(tmp_path_factory.mktemp("pose"))


@pytest.fixture
def pose_window(window, tmp_path: Path):  # noqa: ANN001, ANN201
    """The window with a worker and "Pose from Image" wired as the window wires it: the
    Layers dock's From image on a pose layer runs a :class:`PoseFromImage`."""
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.pose_action import PoseFromImage
    from sfumato.inference.engine import Engine

    controller = install_generation(window, lambda: Engine(device="cpu", dtype="float32", models_root=tmp_path))
    if not isinstance(getattr(window, "pose_job", None), PoseFromImage):  # a window that does not wire it yet
        job = PoseFromImage(lambda: controller.worker, window)
        window.layers_dock.pose_requested.connect(lambda: job.run(window.document, window.document.active))
        window.pose_job = job
    yield window
    controller.shutdown()


def _picture(doc) -> None:  # noqa: ANN001
    h, w = doc.height, doc.width
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    rgba[..., 1] = 90
    rgba[40:160, 100:140, :3] = 230  # a figure-ish bar
    rgba[..., 3] = 255
    paint = next(layer for layer in doc.pixel_layers() if layer.name == "Paint")
    editing.put_pixels(doc, paint, rgba, 0, 0)


def _pose(layer):  # noqa: ANN001, ANN202
    return layer.control.pose


def test_pose_from_image_sets_the_skeleton_in_one_undo_step(pose_window, pose_model: Path, qtbot) -> None:  # noqa: ANN001
    from sfumato.inference.pose_estimation import estimate_pose
    from sfumato.planner.pose import pose_layer_pixels

    window = pose_window
    doc = window.document
    _picture(doc)
    layer = layer_actions.add_pose_layer(doc)
    editing.set_offset(doc, layer, 7, -5)  # keypoints are stored in the layer's own pixels
    old_pose = _pose(layer)
    old_bounds = layer.surface.bounds()
    old_pixels = layer.surface.read(old_bounds).copy()
    steps = doc.history.undo_count
    picture = layer_actions.visible_picture(doc)  # what the job reads

    window.pose_job.model = str(pose_model)
    with qtbot.waitSignal(window.pose_job.placed, timeout=60_000):
        window.layers_dock.properties.from_image.click()

    assert doc.history.undo_count == steps + 1
    assert doc.history.undo_label == "Pose from Image"
    expected = estimate_pose(picture, pose_model).people
    pose = _pose(layer)
    assert len(pose.people) == 1 and len(pose.people[0].keypoints) == 18
    for got, want in zip(pose.people[0].keypoints, expected[0].keypoints, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            assert got == pytest.approx((want[0] - 7, want[1] + 5))  # document → layer pixels
    # The layer's pixels are the new skeleton drawn (at the layer's offset).
    rgba, x, y = pose_layer_pixels(pose)
    area = Rect(x, y, rgba.shape[1], rgba.shape[0])  # surface space
    assert np.array_equal(layer.surface.read(area), rgba)
    assert area.contains(layer.surface.bounds())  # nothing else: the old skeleton is gone

    window.actions["undo"].trigger()
    assert _pose(layer) == old_pose
    assert layer.surface.bounds() == old_bounds
    assert np.array_equal(layer.surface.read(old_bounds), old_pixels)


def test_without_an_estimator_the_message_names_what_to_put_where(pose_window, qtbot) -> None:  # noqa: ANN001
    from sfumato.inference.annotators import POSE_ESTIMATOR_DOWNLOAD, POSE_ESTIMATOR_FOLDER

    window = pose_window
    doc = window.document
    shown: list[str] = []
    window.pose_job.message.connect(shown.append)
    layer_actions.add_pose_layer(doc)
    steps = doc.history.undo_count
    window.pose_job.model = None  # the catalog's: the test session has none
    window.layers_dock.properties.from_image.click()
    qtbot.waitUntil(lambda: not window.pose_job.busy, timeout=60_000)
    assert "failed" in shown[-1]
    assert POSE_ESTIMATOR_DOWNLOAD in shown[-1] and POSE_ESTIMATOR_FOLDER in shown[-1]
    assert doc.history.undo_count == steps


def test_pose_from_image_refuses_other_layers(pose_window) -> None:  # noqa: ANN001
    window = pose_window
    doc = window.document
    shown: list[str] = []
    window.pose_job.message.connect(shown.append)
    window.pose_job.run(doc, doc.active)  # the paint layer
    assert "pose layer" in shown[-1]
    layer = layer_actions.add_pose_layer(doc)
    editing.set_property(doc, layer, "locked", True)
    window.pose_job.run(doc, layer)
    assert "locked" in shown[-1]
    assert not window.pose_job.busy

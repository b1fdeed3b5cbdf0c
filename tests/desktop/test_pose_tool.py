"""The Pose tool in the window: a new pose layer, dragging a joint (one undo step), adding,
deleting and mirroring a person, its keys, and the pixels kept in step with the skeleton."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from qtinput import mouse_drag
from sfumato.canvas.model.layers import PixelLayer, Role, document_offset
from sfumato.canvas.model.pose import Pose
from sfumato.desktop import layer_actions
from sfumato.desktop.tool_settings import ToolKind
from sfumato.planner.pose import pose_layer_pixels

NECK = 1
R_WRIST = 4
L_WRIST = 7


def _w(window, x: float, y: float) -> tuple[float, float]:  # noqa: ANN001
    p = window.view.map_from_document(x, y)
    return p.x(), p.y()


def _pose(layer: PixelLayer) -> Pose:
    assert layer.control is not None and layer.control.pose is not None
    return layer.control.pose


def _json(window, layer: PixelLayer) -> str:  # noqa: ANN001
    ox, oy = document_offset(layer)
    return _pose(layer).to_text(window.document.width, window.document.height, ox, oy)


def _pixels_match_skeleton(layer: PixelLayer) -> bool:
    drawn = pose_layer_pixels(_pose(layer))
    assert drawn is not None
    rgba, x, y = drawn
    bounds = layer.surface.bounds()
    return bool(np.array_equal(layer.surface.read(bounds), rgba[bounds.slices(x, y)]))


@pytest.fixture
def pose_layer(window) -> PixelLayer:  # noqa: ANN001
    window.actions["add_pose"].trigger()
    layer = window.document.active
    assert layer_actions.is_pose_layer(layer) and isinstance(layer, PixelLayer)
    assert window.tools.pose_mode and window.actions["pose_tool"].isChecked()
    window.view.update()
    QTest.qWait(1)
    return layer


def test_new_pose_layer_holds_a_standing_person_drawn_in_its_pixels(window, pose_layer) -> None:  # noqa: ANN001
    assert len(_pose(pose_layer).people) == 1
    assert pose_layer.role is Role.CONTROL
    assert _pixels_match_skeleton(pose_layer)
    window.document.undo()  # one step: the layer goes
    assert pose_layer not in list(window.document.pixel_layers())


def test_dragging_a_joint_changes_the_json_once_and_undo_restores_it(window, pose_layer) -> None:  # noqa: ANN001
    before = _json(window, pose_layer)
    steps = window.document.history.undo_count
    wrist = _pose(pose_layer).people[0].keypoints[R_WRIST]
    assert wrist is not None
    path = [(wrist[0], wrist[1]), (wrist[0] - 10, wrist[1] + 3), (wrist[0] - 25, wrist[1] + 9)]
    mouse_drag(window.view, [_w(window, x, y) for x, y in path])
    moved = _pose(pose_layer).people[0].keypoints[R_WRIST]
    assert moved is not None
    assert moved == pytest.approx((wrist[0] - 25, wrist[1] + 9), abs=0.6)
    assert _json(window, pose_layer) != before
    assert [p for i, p in enumerate(_pose(pose_layer).people[0].keypoints) if i != R_WRIST] == [
        p for i, p in enumerate(Pose.from_text(before).people[0].keypoints) if i != R_WRIST]
    assert _pixels_match_skeleton(pose_layer)
    assert window.document.history.undo_count == steps + 1
    assert window.document.history.undo_label == "Move Joint"
    window.actions["undo"].trigger()
    assert _json(window, pose_layer) == before
    assert _pixels_match_skeleton(pose_layer)
    window.actions["redo"].trigger()
    assert _pose(pose_layer).people[0].keypoints[R_WRIST] == moved


def test_a_press_away_from_joints_changes_nothing(window, pose_layer) -> None:  # noqa: ANN001
    before = _json(window, pose_layer)
    mouse_drag(window.view, [_w(window, 5, 5), _w(window, 30, 30)])
    assert _json(window, pose_layer) == before


def test_add_delete_and_mirror_people(window, pose_layer) -> None:  # noqa: ANN001
    first = _pose(pose_layer).people[0]
    window.actions["pose_add_person"].trigger()
    people = _pose(pose_layer).people
    assert len(people) == 2 and people[0] == first
    assert window.tools.pose_tool.selected == 1
    # a standing person is symmetric: raise its right wrist so mirroring shows
    wrist = people[1].keypoints[R_WRIST]
    assert wrist is not None
    layer_actions.set_pose(window.document, pose_layer,
                           _pose(pose_layer).replaced(1, people[1].moved(R_WRIST, (wrist[0], wrist[1] - 40))))
    people = _pose(pose_layer).people
    box = people[1].bounds()
    assert box is not None
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    seen = window.view.visible_document_rect()
    first_box = first.bounds()
    assert first_box is not None
    assert abs(cy - (first_box[1] + first_box[3]) / 2) < 2  # in the view's middle, beside the first
    assert cx - (first_box[0] + first_box[2]) / 2 == pytest.approx(0.35 * min(seen.h, 240), rel=0.05)
    assert _pixels_match_skeleton(pose_layer)

    # mirror the new (selected) person with M on the canvas: one undo step
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_M)
    mirrored = _pose(pose_layer).people[1]
    assert mirrored == people[1].mirrored() and mirrored != people[1]
    assert window.tool_settings.tool is not ToolKind.MASK  # M went to the pose, not the mask brush
    assert window.document.history.undo_label == "Mirror Person"
    window.actions["undo"].trigger()
    assert _pose(pose_layer).people[1] == people[1]

    # select the first person by clicking its neck, then Delete removes it
    neck = first.keypoints[NECK]
    assert neck is not None
    mouse_drag(window.view, [_w(window, *neck)])
    assert window.tools.pose_tool.selected == 0
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    assert _pose(pose_layer).people == (people[1],)
    assert _pixels_match_skeleton(pose_layer)
    window.actions["undo"].trigger()
    assert _pose(pose_layer).people == people

    # the menu entries do the same through the window
    window.tools.pose_tool.selected = 1
    window.actions["pose_mirror"].trigger()
    assert _pose(pose_layer).people[1] == people[1].mirrored()
    window.actions["pose_delete_person"].trigger()
    assert _pose(pose_layer).people == (first,)


def test_choosing_another_tool_leaves_the_pose_tool(window, pose_layer) -> None:  # noqa: ANN001
    window.actions["tool_brush"].trigger()
    assert not window.tools.pose_mode and not window.actions["pose_tool"].isChecked()
    window.actions["pose_tool"].trigger()
    assert window.tools.pose_mode


def test_pose_tool_on_another_layer_says_what_to_do(window) -> None:  # noqa: ANN001
    messages: list[str] = []
    window.tools.message.connect(messages.append)
    window.view.tool_failed.connect(messages.append)
    window.actions["pose_tool"].trigger()
    before = window.document.history.undo_count
    mouse_drag(window.view, [_w(window, 50, 50), _w(window, 60, 60)])
    assert any("pose layer" in m for m in messages)
    assert window.document.history.undo_count == before


def test_pose_from_image_asks_the_engine_and_says_when_there_is_none(window, pose_layer) -> None:  # noqa: ANN001
    """The menu entry and the dock's From image both run Pose from Image on the active pose
    layer (tests/desktop/test_pose_from_image.py runs it with a tiny estimator); a window
    without the engine says so and changes nothing."""
    shown: list[str] = []
    window.statusBar().messageChanged.connect(shown.append)
    before = window.document.history.undo_count
    window.actions["pose_from_image"].trigger()
    assert any("needs the inference engine" in m for m in shown), shown
    shown.clear()
    window.statusBar().clearMessage()  # the same text again is no change otherwise
    window.layers_dock.properties.from_image.click()
    assert any("needs the inference engine" in m for m in shown), shown
    assert window.document.history.undo_count == before


def test_the_entries_are_in_the_menus(window) -> None:  # noqa: ANN001
    layer_menu = window.menus["layer"].actions()
    for name in ("add_pose", "pose_add_person", "pose_delete_person", "pose_mirror",
                 "pose_from_image", "depth_from_image"):
        assert window.actions[name] in layer_menu, name
    assert window.actions["pose_tool"] in window.menus["tools"].actions()
    assert window.actions["pose_tool"].shortcut().toString() == "P"

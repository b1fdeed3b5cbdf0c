"""A pose layer's skeleton as OpenPose's colour map: pixel for pixel what controlnet_aux's
``draw_bodypose`` draws, and what the planner hands the ControlNet."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import ControlSettings, GroupLayer, PixelLayer, Role
from sfumato.canvas.model.pose import COUNT, Person, Pose
from sfumato.planner.controls import plan_controls
from sfumato.planner.pose import draw_pose, pose_layer_pixels
from sfumato.planner.sizing import Size
from sfumato.vocabulary.kinds import ControlKind

# Written from the reference's description (ControlNet 1.0's annotator as first shipped in
# controlnet_aux): 1-based limb pairs, every limb of every person drawn in its full colour,
# then the whole canvas multiplied by 0.6, then every joint drawn at full colour, radius 4.
# On a black canvas this equals drawing each limb at int(0.6 * colour), which the newer
# controlnet_aux does (the two differ only where a later limb covers an earlier joint).
REF_LIMBS = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11],
             [2, 12], [12, 13], [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18]]
REF_COLORS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0],
              [85, 255, 0], [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255],
              [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255], [170, 0, 255],
              [255, 0, 255], [255, 0, 170], [255, 0, 85]]


def reference_map(people: list[list[tuple[float, float] | None]], h: int, w: int) -> np.ndarray:
    canvas = np.zeros((h, w, 3), np.uint8)
    for i in range(17):
        for kps in people:
            a, b = kps[REF_LIMBS[i][0] - 1], kps[REF_LIMBS[i][1] - 1]
            if a is None or b is None:
                continue
            ys = [a[0], b[0]]  # the reference names x "Y" and y "X"
            xs = [a[1], b[1]]
            m_x, m_y = float(np.mean(xs)), float(np.mean(ys))
            length = ((xs[0] - xs[1]) ** 2 + (ys[0] - ys[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(xs[0] - xs[1], ys[0] - ys[1]))
            poly = cv2.ellipse2Poly((int(m_y), int(m_x)), (int(length / 2), 4), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, REF_COLORS[i])
    canvas = (canvas * 0.6).astype(np.uint8)
    for i in range(18):
        for kps in people:
            p = kps[i]
            if p is not None:
                cv2.circle(canvas, (int(p[0]), int(p[1])), 4, REF_COLORS[i], thickness=-1)
    return canvas


HAND_MADE: list[tuple[float, float] | None] = [
    (60.4, 30.2), (60.0, 52.7), (44.9, 54.0), (38.2, 80.6), (35.5, 104.1),
    (75.3, 53.8), (83.7, 79.9), (90.1, 101.2), (50.5, 110.0), (48.8, 150.3),
    (47.0, 188.6), (70.2, 109.6), (73.9, 149.1), (None), (55.1, 25.8),
    (65.7, 25.9), (49.6, 28.8), None,
]
OTHER: list[tuple[float, float] | None] = [
    None if p is None else (p[0] + 120.3, p[1] - 7.6) for p in HAND_MADE
]
OTHER[3] = None
OTHER[13] = (190.5, 185.5)


def test_hand_made_skeletons_match_openpose_pixel_for_pixel() -> None:
    pose = Pose((Person(tuple(HAND_MADE)), Person(tuple(OTHER))))
    got = draw_pose(pose, 240, 200)
    want = reference_map([HAND_MADE, OTHER], 200, 240)
    assert got.dtype == np.uint8 and got.shape == (200, 240, 3)
    assert np.array_equal(got, want), f"{int((got != want).any(axis=2).sum())} pixels differ"
    # the convention's landmarks: a joint in full colour, a limb at 0.6, black elsewhere
    assert tuple(got[30, 60]) == (255, 0, 0)  # the nose
    assert tuple(got[92, 37]) == (153, 153, 0)  # right forearm (limb 3: 255, 255, 0)
    assert tuple(got[5, 230]) == (0, 0, 0)


def test_absent_joints_draw_nothing_of_theirs() -> None:
    only_neck_and_nose: list[tuple[float, float] | None] = [None] * COUNT
    only_neck_and_nose[0], only_neck_and_nose[1] = (20.0, 10.0), (20.0, 30.0)
    got = draw_pose(Pose((Person(tuple(only_neck_and_nose)),)), 40, 40)
    assert np.array_equal(got, reference_map([only_neck_and_nose], 40, 40))
    colours = {tuple(c) for c in got.reshape(-1, 3)}
    assert colours <= {(0, 0, 0), (255, 0, 0), (255, 85, 0), (0, 0, 153)}  # nose, neck, limb 12


def test_planner_draws_the_skeleton_at_generation_size_not_the_pixels() -> None:
    pose = Pose((Person(tuple(HAND_MADE)),))
    doc = Document(256, 256)
    layer = PixelLayer("Pose", role=Role.CONTROL,
                       control=ControlSettings(ControlKind.POSE, strength=0.7, pose=pose), x=10, y=4)
    layer.surface.write(0, 0, np.full((256, 256, 4), 255, np.uint8))  # white pixels: ignored
    doc.root.append(GroupLayer("G", [layer], x=3, y=2))
    area = Rect(8, 0, 128, 256)  # the skeleton's left part of the canvas
    controls, notes = plan_controls(doc, area, Size(256, 512))
    assert not notes and len(controls) == 1
    spec = controls[0].spec
    assert spec.kind is ControlKind.POSE and spec.strength == 0.7
    scaled = [None if p is None else ((p[0] + 13 - 8) * 2.0, (p[1] + 6) * 2.0) for p in HAND_MADE]
    assert spec.image.shape == (512, 256, 3)
    assert np.array_equal(spec.image, reference_map([scaled], 512, 256))


def test_a_pose_layer_without_people_is_skipped_with_a_note() -> None:
    doc = Document(64, 64)
    doc.root.append(PixelLayer("Empty pose", role=Role.CONTROL,
                               control=ControlSettings(ControlKind.POSE, pose=Pose())))
    controls, notes = plan_controls(doc, Rect(0, 0, 64, 64), Size(64, 64))
    assert controls == [] and "no people" in notes[0]


def test_layer_pixels_are_the_map_on_transparency() -> None:
    pose = Pose((Person(tuple(HAND_MADE)),))
    drawn = pose_layer_pixels(pose)
    assert drawn is not None
    rgba, x, y = drawn
    full = draw_pose(pose, 240, 220)
    assert x < 35 and y < 25
    region = full[y: y + rgba.shape[0], x: x + rgba.shape[1]]
    assert np.array_equal(rgba[..., :3], region)
    assert np.array_equal(rgba[..., 3] > 0, region.any(axis=2))
    assert full.any(axis=2).sum() == (rgba[..., 3] > 0).sum()  # nothing drawn outside
    assert pose_layer_pixels(Pose()) is None


@pytest.mark.parametrize("size", [(64, 48), (300, 100)])
def test_draw_pose_shapes(size: tuple[int, int]) -> None:
    img = draw_pose(Pose(), *size)
    assert img.shape == (size[1], size[0], 3) and not img.any()

"""A pose layer's skeleton drawn as OpenPose's colour map, the picture a pose ControlNet
was trained on.

The convention is controlnet_aux's ``draw_bodypose`` (ControlNet 1.1's OpenPose
annotator), reproduced here:

- black background, keypoints in the map's pixels;
- each of the 17 limbs (:data:`~sfumato.canvas.model.pose.LIMBS`, in that order) whose two
  keypoints are present is a filled ellipse polygon (``cv2.ellipse2Poly`` with
  1° steps, then ``cv2.fillConvexPoly``) centred on the truncated midpoint of the limb,
  half-axes ``(int(length / 2), 4)``, turned by ``int(degrees(atan2(dy, dx)))``, in the
  limb's colour scaled by 0.6 and truncated (``int(c * 0.6)``: 255 → 153);
- then each present keypoint is a filled circle of radius 4 at its truncated position in
  the keypoint's full colour (:data:`COLORS`, one per keypoint; limb *i* uses colour *i*).

People are drawn one after another, each with its limbs then its joints (later people
over earlier ones). Drawing is in RGB order.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.pose import LIMBS, Person, Pose

__all__ = ["COLORS", "STICK_WIDTH", "draw_pose", "pose_layer_pixels", "render_pose_control"]

#: OpenPose's 18 colours (RGB): keypoint *i* and limb *i*
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
STICK_WIDTH = 4  # the limbs' half-thickness, px
JOINT_RADIUS = 4
LIMB_SHADE = 0.6


def _draw_person(canvas: np.ndarray, person: Person, dx: float, dy: float, sx: float, sy: float) -> None:
    pts = [None if p is None else ((p[0] + dx) * sx, (p[1] + dy) * sy) for p in person.keypoints]
    for (a, b), color in zip(LIMBS, COLORS, strict=False):
        pa, pb = pts[a], pts[b]
        if pa is None or pb is None:
            continue
        mx, my = (pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2
        length = math.hypot(pa[0] - pb[0], pa[1] - pb[1])
        angle = math.degrees(math.atan2(pa[1] - pb[1], pa[0] - pb[0]))
        polygon = np.asarray(
            cv2.ellipse2Poly((int(mx), int(my)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1), np.int32
        )
        cv2.fillConvexPoly(canvas, polygon, tuple(int(c * LIMB_SHADE) for c in color))
    for p, color in zip(pts, COLORS, strict=True):
        if p is not None:
            cv2.circle(canvas, (int(p[0]), int(p[1])), JOINT_RADIUS, color, thickness=-1)


def draw_pose(pose: Pose, width: int, height: int, *, dx: float = 0.0, dy: float = 0.0,
              sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    """``pose`` as OpenPose's colour map: uint8 RGB ``(height, width, 3)``. Keypoint
    ``(x, y)`` lands at ``((x + dx) * sx, (y + dy) * sy)`` in the map."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for person in pose.people:
        _draw_person(canvas, person, dx, dy, sx, sy)
    return canvas


def render_pose_control(pose: Pose, origin: tuple[int, int], area: Rect, size: tuple[int, int]) -> np.ndarray:
    """The ControlNet image of a pose layer: ``pose`` (layer space; the layer's surface
    origin at document ``origin``) over the document ``area``, scaled to generation
    ``size`` (width, height) so the limbs are as thick as the ControlNet expects."""
    w, h = size
    return draw_pose(pose, w, h, dx=origin[0] - area.x, dy=origin[1] - area.y,
                     sx=w / area.w, sy=h / area.h)


PIXEL_MARGIN = 2 * STICK_WIDTH + JOINT_RADIUS  # around the keypoints' bounds


def pose_layer_pixels(pose: Pose) -> tuple[np.ndarray, int, int] | None:
    """What a pose layer shows: ``(rgba, x, y)`` in the layer's surface space, the colour
    map over the skeleton's bounds (plus a margin), transparent where the map is black;
    ``None`` when there is no keypoint to draw. At the layer's own scale, so it matches
    what the planner draws for a generation at the document's size."""
    box = pose.bounds()
    if box is None:
        return None
    x0 = math.floor(box[0]) - PIXEL_MARGIN
    y0 = math.floor(box[1]) - PIXEL_MARGIN
    x1 = math.ceil(box[2]) + PIXEL_MARGIN + 1
    y1 = math.ceil(box[3]) + PIXEL_MARGIN + 1
    rgb = draw_pose(pose, x1 - x0, y1 - y0, dx=-x0, dy=-y0)
    alpha = np.where(rgb.any(axis=2), 255, 0).astype(np.uint8)
    return np.dstack([rgb, alpha]), x0, y0

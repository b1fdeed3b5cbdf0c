"""An editable body pose: OpenPose's 18 body keypoints for each person (the COCO-18 order).

A :class:`Pose` is held by a pose control layer (``ControlSettings.pose``) and is what the
planner draws as the ControlNet's colour map (:mod:`sfumato.planner.pose`). Keypoints are
floats in the **layer's surface space**: document pixels less the layer's document offset
(:func:`~sfumato.canvas.model.layers.document_offset`), so moving the layer, or growing or
cropping the canvas (which moves every layer), moves the skeleton with the picture. A new
pose layer sits at (0, 0), where surface space *is* document space.

Files hold the OpenPose JSON convention (``{"people": [{"pose_keypoints_2d": [x, y, c,
...]}], "canvas_width", "canvas_height"}``) in document pixels: :meth:`Pose.to_json` and
:meth:`Pose.from_json` take the offset between the two spaces. An absent keypoint is
``0, 0, 0`` (OpenPose's convention); a keypoint is present when its confidence ``c`` is
above 0; Sfumato writes ``c = 1``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KEYPOINT_NAMES",
    "LIMBS",
    "MIRRORED",
    "Person",
    "Point",
    "Pose",
    "PoseError",
]

#: OpenPose body-18 (COCO-18) keypoints, in file order.
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right shoulder", "right elbow", "right wrist",
    "left shoulder", "left elbow", "left wrist",
    "right hip", "right knee", "right ankle",
    "left hip", "left knee", "left ankle",
    "right eye", "left eye", "right ear", "left ear",
)
COUNT = len(KEYPOINT_NAMES)

#: the 17 limbs OpenPose draws, as pairs of keypoint indices (0-based), in drawing order
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

#: each keypoint's left↔right counterpart (nose and neck are their own)
MIRRORED: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

MAX_PEOPLE = 1000  # a file holding more is refused (a hostile file, not a painting)
MAX_COORDINATE = float(1 << 24)  # |x|, |y|, as for layer offsets

Point = tuple[float, float]


class PoseError(ValueError):
    """A pose that cannot be read: the message says what is wrong (not JSON, a wrong
    number of values, a value that is not a finite number)."""


def _point(x: float, y: float) -> Point:
    fx, fy = float(x), float(y)
    if not (math.isfinite(fx) and math.isfinite(fy)) or max(abs(fx), abs(fy)) > MAX_COORDINATE:
        raise PoseError(f"a keypoint must be finite and within ±{MAX_COORDINATE:.0f} px, got ({x!r}, {y!r})")
    return fx, fy


@dataclass(frozen=True)
class Person:
    """One skeleton: :data:`COUNT` keypoints (``(x, y)`` in layer pixels, or ``None`` when absent)."""

    keypoints: tuple[Point | None, ...]

    def __post_init__(self) -> None:
        if len(self.keypoints) != COUNT:
            raise PoseError(f"a person has {COUNT} keypoints, got {len(self.keypoints)}")
        object.__setattr__(
            self, "keypoints", tuple(None if p is None else _point(*p) for p in self.keypoints)
        )

    @classmethod
    def standing(cls, cx: float, cy: float, height: float) -> Person:
        """A person standing upright facing the viewer, ``height`` px tall from the top of
        the head to the ankles, centred on ``(cx, cy)`` (the person's right is on the
        picture's left, as OpenPose sees a person facing the camera)."""
        u = height / 8.0  # about a head
        rel: list[Point] = [
            (0.0, -3.4), (0.0, -2.6),  # nose, neck
            (-0.9, -2.5), (-1.1, -1.3), (-1.2, -0.2),  # right arm (picture's left)
            (0.9, -2.5), (1.1, -1.3), (1.2, -0.2),  # left arm
            (-0.5, 0.0), (-0.55, 1.9), (-0.6, 3.8),  # right leg
            (0.5, 0.0), (0.55, 1.9), (0.6, 3.8),  # left leg
            (-0.15, -3.6), (0.15, -3.6), (-0.35, -3.5), (0.35, -3.5),  # eyes, ears
        ]
        return cls(tuple((cx + dx * u, cy + dy * u) for dx, dy in rel))

    def present(self) -> list[tuple[int, Point]]:
        return [(i, p) for i, p in enumerate(self.keypoints) if p is not None]

    def bounds(self) -> tuple[float, float, float, float] | None:
        """``(x0, y0, x1, y1)`` of the present keypoints, or ``None`` when none is."""
        pts = [p for _, p in self.present()]
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)

    def moved(self, index: int, point: Point | None) -> Person:
        """This person with keypoint ``index`` at ``point`` (``None`` removes it)."""
        kps = list(self.keypoints)
        kps[index] = point
        return Person(tuple(kps))

    def translated(self, dx: float, dy: float) -> Person:
        return Person(tuple(None if p is None else (p[0] + dx, p[1] + dy) for p in self.keypoints))

    def scaled(self, sx: float, sy: float) -> Person:
        return Person(tuple(None if p is None else (p[0] * sx, p[1] * sy) for p in self.keypoints))

    def mirrored(self) -> Person:
        """Left and right swapped: each keypoint takes its counterpart's place, reflected
        about the vertical line through the middle of the person's bounds (so the person
        stays where it was)."""
        box = self.bounds()
        if box is None:
            return self
        axis = box[0] + box[2]  # x' = axis - x reflects about (x0 + x1) / 2
        kps = [self.keypoints[MIRRORED[i]] for i in range(COUNT)]
        return Person(tuple(None if p is None else (axis - p[0], p[1]) for p in kps))


@dataclass(frozen=True)
class Pose:
    """The people of a pose layer, in drawing order."""

    people: tuple[Person, ...] = ()

    def translated(self, dx: float, dy: float) -> Pose:
        return Pose(tuple(p.translated(dx, dy) for p in self.people))

    def scaled(self, sx: float, sy: float) -> Pose:
        return Pose(tuple(p.scaled(sx, sy) for p in self.people))

    def with_person(self, person: Person) -> Pose:
        return Pose((*self.people, person))

    def without_person(self, index: int) -> Pose:
        return Pose(self.people[:index] + self.people[index + 1:])

    def replaced(self, index: int, person: Person) -> Pose:
        return Pose(self.people[:index] + (person,) + self.people[index + 1:])

    def bounds(self) -> tuple[float, float, float, float] | None:
        boxes = [b for p in self.people if (b := p.bounds()) is not None]
        if not boxes:
            return None
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    # -- OpenPose JSON -------------------------------------------------------------------
    def to_json(self, width: int, height: int, dx: float = 0.0, dy: float = 0.0) -> dict[str, Any]:
        """OpenPose JSON for a ``width``×``height`` canvas; ``(dx, dy)`` is added to every
        keypoint (the layer's document offset: files hold document pixels)."""
        people = []
        for person in self.people:
            flat: list[float] = []
            for p in person.keypoints:
                flat.extend((0.0, 0.0, 0.0) if p is None else (p[0] + dx, p[1] + dy, 1.0))
            people.append({"pose_keypoints_2d": flat})
        return {"people": people, "canvas_width": int(width), "canvas_height": int(height)}

    def to_text(self, width: int, height: int, dx: float = 0.0, dy: float = 0.0) -> str:
        data = self.to_json(width, height, dx, dy)
        for person in data["people"]:  # whole pixels as integers: shorter, exact
            person["pose_keypoints_2d"] = [int(v) if float(v).is_integer() else v
                                           for v in person["pose_keypoints_2d"]]
        return json.dumps(data, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, data: Any, dx: float = 0.0, dy: float = 0.0) -> Pose:
        """Read OpenPose JSON (``people[i].pose_keypoints_2d``: 18 × ``x, y, c``; other
        keys — hands, face, canvas size — are ignored); ``(dx, dy)`` is added to every
        keypoint. Raises :class:`PoseError` saying what is wrong."""
        if not isinstance(data, dict):
            raise PoseError("the pose must be a JSON object with a \"people\" list")
        people = data.get("people", [])
        if not isinstance(people, list):
            raise PoseError("\"people\" must be a list")
        if len(people) > MAX_PEOPLE:
            raise PoseError(f"{len(people)} people; at most {MAX_PEOPLE} are read")
        out = []
        for n, entry in enumerate(people, 1):
            values = entry.get("pose_keypoints_2d") if isinstance(entry, dict) else None
            if not isinstance(values, list):
                raise PoseError(f"person {n} has no \"pose_keypoints_2d\" list")
            if len(values) != 3 * COUNT:
                raise PoseError(
                    f"person {n} has {len(values)} values in \"pose_keypoints_2d\"; "
                    f"expected {3 * COUNT} ({COUNT} keypoints × x, y, confidence)"
                )
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise PoseError(f"person {n}: every keypoint value must be a number")
            try:
                kps = tuple(_keypoint(values[3 * i: 3 * i + 3], dx, dy) for i in range(COUNT))
                out.append(Person(kps))
            except PoseError as exc:
                raise PoseError(f"person {n}: {exc}") from None
        return cls(tuple(out))

    @classmethod
    def from_text(cls, text: str, dx: float = 0.0, dy: float = 0.0) -> Pose:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise PoseError(f"not valid JSON ({exc})") from None
        return cls.from_json(data, dx, dy)


def _keypoint(xyc: Sequence[float], dx: float, dy: float) -> Point | None:
    x, y, c = (float(v) for v in xyc)
    if not math.isfinite(c):
        raise PoseError(f"confidence {c!r} is not a finite number")
    if c <= 0:
        return None
    return _point(x + dx, y + dy)

"""Pose layers in the document: the skeleton's data, its .ora attribute (read strictly),
the journal, its undoable edit, and how canvas changes and layer moves carry it."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.edits.canvas_size import CanvasMargins, resize_canvas
from sfumato.canvas.edits.commands import LayerLockedError
from sfumato.canvas.edits.pose_commands import set_pose
from sfumato.canvas.files.file_errors import BadAttributeError
from sfumato.canvas.files.ora import load_ora, save_ora
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import (
    ControlSettings,
    ControlSource,
    GroupLayer,
    PixelLayer,
    Role,
    document_offset,
)
from sfumato.canvas.model.pose import COUNT, MIRRORED, Person, Pose, PoseError
from sfumato.canvas.recovery.journal import Journal
from sfumato.canvas.recovery.recovery import recover
from sfumato.vocabulary.kinds import ControlKind


def _person(seed: int, missing: tuple[int, ...] = ()) -> Person:
    rng = np.random.default_rng(seed)
    pts = [None if i in missing else (float(rng.integers(0, 200)) + 0.5 * (i % 2), float(rng.integers(0, 150)))
           for i in range(COUNT)]
    return Person(tuple(pts))


def _pose_doc(pose: Pose, x: int = 0, y: int = 0) -> tuple[Document, PixelLayer]:
    doc = Document(200, 150)
    layer = PixelLayer("Pose", role=Role.CONTROL,
                       control=ControlSettings(ControlKind.POSE, 0.8, 0.1, 0.9, pose=pose), x=x, y=y)
    layer.surface.write(0, 0, np.full((4, 4, 4), 200, np.uint8))
    doc.root.append(layer)
    return doc, layer


def _stack_xml(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read("stack.xml").decode()


def _rewrite_attr(src: Path, dst: Path, old: str, new: str) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "stack.xml":
                text = data.decode()
                assert old in text
                data = text.replace(old, new).encode()
            zout.writestr(info, data)


# -- data --------------------------------------------------------------------------------------
def test_json_convention_absent_joints_and_offset() -> None:
    pose = Pose((_person(1, missing=(3, 17)),))
    data = pose.to_json(200, 150, dx=10, dy=-5)
    assert data["canvas_width"] == 200 and data["canvas_height"] == 150
    flat = data["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 54
    assert flat[9:12] == [0.0, 0.0, 0.0]  # keypoint 3 absent
    p0 = pose.people[0].keypoints[0]
    assert p0 is not None and flat[0:3] == [p0[0] + 10, p0[1] - 5, 1.0]
    assert Pose.from_json(data, dx=-10, dy=5) == pose


def test_mirror_swaps_sides_and_reflects_about_the_centre() -> None:
    person = Person.standing(100, 80, 120)
    mirrored = person.mirrored()
    box, mbox = person.bounds(), mirrored.bounds()
    assert box is not None and mbox is not None
    assert mbox == pytest.approx(box)
    axis = box[0] + box[2]
    for i in range(COUNT):
        p, q = person.keypoints[MIRRORED[i]], mirrored.keypoints[i]
        assert p is not None and q is not None
        assert q == pytest.approx((axis - p[0], p[1]))
    # the right shoulder (2) is where the left one (5) was, reflected
    assert mirrored.keypoints[2] == pytest.approx((axis - person.keypoints[5][0], person.keypoints[5][1]))  # type: ignore[index]
    assert mirrored.mirrored() == person


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 1]}]}', "expected 54"),
    ('{"people": [{"pose_keypoints_2d": ' + json.dumps(["a"] * 54) + "}]}", "must be a number"),
    ('{"people": {"a": 1}}', "must be a list"),
    ('{"people": [{"pose_keypoints_2d": ' + json.dumps([1e300, 1, 1] * 18) + "}]}", "within"),
])
def test_bad_pose_text_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(PoseError, match=words):
        Pose.from_text(text)


# -- .ora --------------------------------------------------------------------------------------
def test_ora_round_trip_several_people_absent_joints(tmp_path: Path) -> None:
    pose = Pose((_person(1, missing=(0, 14, 15)), _person(2), _person(3, missing=tuple(range(8, 14)))))
    doc, layer = _pose_doc(pose)
    layer.control = replace(layer.control, source=ControlSource.CANVAS)  # type: ignore[arg-type]
    save_ora(doc, tmp_path / "p.ora")
    xml = _stack_xml(tmp_path / "p.ora")
    assert 'sfumato:pose="' in xml and 'sfumato:source="canvas"' in xml
    back = load_ora(tmp_path / "p.ora")
    got = next(back.pixel_layers(Role.CONTROL))
    assert got.control is not None
    assert got.control.pose == pose
    assert got.control.source is ControlSource.CANVAS
    assert (got.control.kind, got.control.strength, got.control.start, got.control.end) == (
        ControlKind.POSE, 0.8, 0.1, 0.9)


def test_file_holds_document_pixels_for_a_moved_layer_in_a_moved_group(tmp_path: Path) -> None:
    """The model keeps layer pixels, the file document pixels; reading puts the layer at
    its group's origin, so the skeleton lands where it was on the picture."""
    pose = Pose((_person(4),))
    doc = Document(200, 150)
    layer = PixelLayer("Pose", role=Role.CONTROL,
                       control=ControlSettings(ControlKind.POSE, pose=pose), x=7, y=-3)
    group = GroupLayer("G", [layer], x=20, y=11)
    doc.root.append(group)
    save_ora(doc, tmp_path / "g.ora")
    xml = _stack_xml(tmp_path / "g.ora")
    text = xml.split('sfumato:pose="')[1].split('"')[0].replace("&quot;", '"')
    on_file = Pose.from_text(text)
    assert on_file == pose.translated(27, 8)  # document pixels
    back = load_ora(tmp_path / "g.ora")
    got = next(back.pixel_layers(Role.CONTROL))
    ox, oy = document_offset(got)
    assert got.control is not None and got.control.pose is not None
    assert got.control.pose.translated(ox, oy) == pose.translated(27, 8)


@pytest.mark.parametrize("bad", [
    '{&quot;people&quot;: [',  # not JSON
    '{&quot;people&quot;: [{&quot;pose_keypoints_2d&quot;: [1, 2, 1]}]}',  # wrong count
])
def test_bad_pose_attribute_is_refused_by_layer_name(tmp_path: Path, bad: str) -> None:
    doc, _ = _pose_doc(Pose((_person(5),)))
    doc.root.children[0].name = "Dancer"
    save_ora(doc, tmp_path / "ok.ora")
    xml = _stack_xml(tmp_path / "ok.ora")
    old = 'sfumato:pose="' + xml.split('sfumato:pose="')[1].split('"')[0] + '"'
    _rewrite_attr(tmp_path / "ok.ora", tmp_path / "bad.ora", old, f'sfumato:pose="{bad}"')
    with pytest.raises(BadAttributeError, match=r"layer 'Dancer'.*sfumato:pose"):
        load_ora(tmp_path / "bad.ora")
    lenient = load_ora(tmp_path / "bad.ora", strict=False)
    got = next(lenient.pixel_layers(Role.CONTROL))
    assert got.control is not None and got.control.pose is None and got.control.kind is ControlKind.POSE


def test_unknown_source_is_refused(tmp_path: Path) -> None:
    doc, layer = _pose_doc(Pose())
    layer.control = replace(layer.control, source=ControlSource.CANVAS)  # type: ignore[arg-type]
    save_ora(doc, tmp_path / "ok.ora")
    _rewrite_attr(tmp_path / "ok.ora", tmp_path / "bad.ora", 'sfumato:source="canvas"', 'sfumato:source="moon"')
    with pytest.raises(BadAttributeError, match="sfumato:source='moon'"):
        load_ora(tmp_path / "bad.ora")


# -- edits ---------------------------------------------------------------------------------------
def test_set_pose_is_one_undo_step_for_skeleton_and_pixels() -> None:
    before = Pose((_person(6),))
    doc, layer = _pose_doc(before)
    old_pixels = layer.surface.read(layer.surface.bounds())
    after = before.replaced(0, before.people[0].moved(2, (50.0, 60.0)))
    drawn = np.zeros((3, 5, 4), np.uint8)
    drawn[..., 0] = 9
    drawn[..., 3] = 255
    set_pose(doc, layer, after, drawn, 30, 40, label="Move Joint")
    assert layer.control is not None and layer.control.pose == after
    assert layer.control.strength == 0.8  # the other settings kept
    assert layer.surface.bounds() == Rect.from_bounds(30, 40, 35, 43)
    doc.undo()
    assert layer.control.pose == before
    assert np.array_equal(layer.surface.read(layer.surface.bounds()), old_pixels)
    doc.redo()
    assert layer.control.pose == after


def test_locked_pose_layer_refuses_the_edit() -> None:
    doc, layer = _pose_doc(Pose((_person(7),)))
    layer.locked = True
    with pytest.raises(LayerLockedError):
        set_pose(doc, layer, Pose(), None)
    assert layer.control is not None and layer.control.pose == Pose((_person(7),))


def test_canvas_size_and_layer_move_keep_the_skeleton_on_the_picture() -> None:
    pose = Pose((_person(8),))
    doc, layer = _pose_doc(pose)
    nose = pose.people[0].keypoints[0]
    assert nose is not None

    def nose_on_document() -> tuple[float, float]:
        assert layer.control is not None and layer.control.pose is not None
        p = layer.control.pose.people[0].keypoints[0]
        assert p is not None
        ox, oy = document_offset(layer)
        return p[0] + ox, p[1] + oy

    resize_canvas(doc, CanvasMargins(left=30, top=-10, right=0, bottom=5))
    assert nose_on_document() == (nose[0] + 30, nose[1] - 10)
    editing.set_offset(doc, layer, layer.x + 5, layer.y + 6)
    assert nose_on_document() == (nose[0] + 35, nose[1] - 4)
    doc.undo()
    doc.undo()
    assert nose_on_document() == nose


def test_image_size_scales_the_skeleton_with_the_picture() -> None:
    from sfumato.canvas.edits.canvas_size import scale_image

    pose = Pose((_person(8),))
    doc, layer = _pose_doc(pose)
    editing.set_offset(doc, layer, 10, 4)  # an offset layer: its keypoints are in its own pixels
    before = layer.control.pose.people[0].keypoints  # type: ignore[union-attr]
    width, height = doc.width, doc.height
    scale_image(doc, width * 2, height * 2)
    after = layer.control.pose.people[0].keypoints  # type: ignore[union-attr]
    ox, oy = document_offset(layer)
    assert (ox, oy) == (20, 8)
    for old, new in zip(before, after, strict=True):
        assert (old is None) == (new is None)
        if old is not None and new is not None:  # the same place on the (doubled) picture
            assert new[0] + ox == pytest.approx((old[0] + 10) * 2) and new[1] + oy == pytest.approx((old[1] + 4) * 2)
    doc.undo()
    assert layer.control.pose.people[0].keypoints == before  # type: ignore[union-attr]


def test_journal_recovers_the_pose(tmp_path: Path) -> None:
    doc = Document(120, 90)
    journal = Journal(doc, tmp_path / "j", name="doc")
    layer = PixelLayer("Pose", role=Role.CONTROL, control=ControlSettings(ControlKind.POSE))
    editing.add_layer(doc, layer, doc.root, 0)
    pose = Pose((_person(9, missing=(5,)), _person(10)))
    set_pose(doc, layer, pose, None)
    editing.set_property(doc, layer, "control",
                         replace(layer.control, source=ControlSource.CANVAS))  # type: ignore[type-var]
    assert journal.flush()
    journal.close()
    got = recover(tmp_path / "j")
    back = next(got.doc.pixel_layers(Role.CONTROL))
    assert back.control is not None
    assert back.control.pose == pose and back.control.source is ControlSource.CANVAS
    got.doc.undo()
    got.doc.undo()
    assert back.control.pose is None

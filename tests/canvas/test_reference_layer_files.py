"""Reference layers in the canvas: every attribute through OpenRaster, bad values refused
by name, hidden for other programs (ORA, PSD), out of the picture (flatten, PNG), through
the recovery journal, and their settings as undoable, checked edits."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from orazip import png_bytes, solid, write_ora_zip
from PIL import Image
from psd_tools import PSDImage
from sfumato.canvas import editing
from sfumato.canvas.edits.commands import InvalidEditError
from sfumato.canvas.files.file_errors import BadAttributeError
from sfumato.canvas.files.imageio import export_png
from sfumato.canvas.files.ora import SFUMATO_NS, load_ora, save_ora
from sfumato.canvas.files.psd import save_psd
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import GroupLayer, PixelLayer, ReferenceSettings, Role, copy_layer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.recovery.journal import Journal
from sfumato.canvas.recovery.recovery import recover
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.kinds import ReferenceKind

S = "{" + SFUMATO_NS + "}"
NS = f'xmlns:sfumato="{SFUMATO_NS}"'
RED = png_bytes(solid(2, 2, (255, 0, 0, 255)))


def _block(w: int, h: int, rgb: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out


def _document() -> Document:
    """A grey paint layer under a red reference layer (style, 1.25, 0.1..0.6) and, in a
    group, a hidden blue one with default settings."""
    doc = Document(32, 24)
    doc.root.append(PixelLayer(
        "look", TiledSurface.from_array(_block(20, 10, (255, 0, 0))), role=Role.REFERENCE, x=3, y=4,
        reference=ReferenceSettings(ReferenceKind.STYLE, 1.25, 0.1, 0.6),
    ))
    doc.root.append(GroupLayer("Sky", [PixelLayer(
        "face", TiledSurface.from_array(_block(8, 8, (0, 0, 255))), role=Role.REFERENCE, visible=False,
    )]))
    doc.root.append(PixelLayer("paint", TiledSurface.from_array(_block(32, 24, (90, 90, 90)))))
    return doc


def _reference(doc: Document, name: str) -> PixelLayer:
    layer = doc.find(name)
    assert isinstance(layer, PixelLayer)
    return layer


@pytest.mark.parametrize("kind", list(ReferenceKind))
def test_every_reference_attribute_round_trips(tmp_path: Path, kind: ReferenceKind) -> None:
    doc = _document()
    look = _reference(doc, "look")
    look.reference = ReferenceSettings(kind, 1.25, 0.1, 0.6)
    save_ora(doc, tmp_path / "r.ora")
    back = load_ora(tmp_path / "r.ora")
    got = _reference(back, "look")
    assert got.role is Role.REFERENCE and got.visible
    assert got.reference == ReferenceSettings(kind, 1.25, 0.1, 0.6)
    assert got.control is None and got.generation is None
    face = _reference(back, "face")
    assert face.role is Role.REFERENCE and not face.visible and face.reference == ReferenceSettings()
    assert np.array_equal(got.surface.read(got.surface.bounds()), _block(20, 10, (255, 0, 0)))
    assert (got.document_bounds().x, got.document_bounds().y) == (3, 4)
    assert _reference(back, "paint").reference is None


def test_stack_xml_spells_the_reference_attributes_and_hides_the_layer_for_others(tmp_path: Path) -> None:
    save_ora(_document(), tmp_path / "r.ora")
    with zipfile.ZipFile(tmp_path / "r.ora") as z:
        root = ET.fromstring(z.read("stack.xml"))
    look = next(e for e in root.iter("layer") if e.get("name") == "look")
    assert look.get(S + "role") == "reference"
    assert look.get(S + "reference") == "style"
    assert (look.get(S + "strength"), look.get(S + "start"), look.get(S + "end")) == ("1.25", "0.1", "0.6")
    assert look.get(S + "control") is None
    # Krita, GIMP and MyPaint open it with the layer in their list, not drawn over the
    # painting; Sfumato keeps its own visibility
    assert look.get("visibility") == "hidden" and look.get(S + "visible") == "true"
    face = next(e for e in root.iter("layer") if e.get("name") == "face")
    assert face.get("visibility") == "hidden" and face.get(S + "visible") == "false"
    # the merged image is the picture only: the red reference is not in it
    with zipfile.ZipFile(tmp_path / "r.ora") as z, z.open("mergedimage.png") as f:
        merged = np.asarray(Image.open(f).convert("RGBA"))
    assert (merged[..., :3] == 90).all()


def test_reference_role_without_attributes_reads_with_defaults(tmp_path: Path) -> None:
    xml = f'<image w="8" h="8" {NS}><stack><layer name="l" src="a.png" sfumato:role="reference"/></stack></image>'
    doc = load_ora(write_ora_zip(tmp_path / "d.ora", xml, {"a.png": RED}))
    assert _reference(doc, "l").reference == ReferenceSettings()


BAD_REFERENCE_ATTRIBUTES = [
    ('sfumato:reference="telepathy"', "sfumato:reference"),
    ('sfumato:strength="strong"', "sfumato:strength"),
    ('sfumato:start="nan"', "sfumato:start"),
    ('sfumato:start="0.8" sfumato:end="0.2"', "sfumato:start"),
]


@pytest.mark.parametrize(("attrs", "needle"), BAD_REFERENCE_ATTRIBUTES)
def test_bad_reference_values_are_refused_by_name(tmp_path: Path, attrs: str, needle: str) -> None:
    xml = (f'<image w="8" h="8" {NS}><stack><layer name="l" src="a.png" sfumato:role="reference" '
           f"{attrs}/></stack></image>")
    path = write_ora_zip(tmp_path / "bad.ora", xml, {"a.png": RED})
    with pytest.raises(BadAttributeError) as info:
        load_ora(path)
    assert needle in str(info.value) and "'l'" in str(info.value) and str(path) in str(info.value)
    # read leniently, the layer opens with the bad value replaced by its default
    layer = _reference(load_ora(path, strict=False), "l")
    assert layer.role is Role.REFERENCE and layer.reference is not None
    assert 0.0 <= layer.reference.start < layer.reference.end <= 1.0


def test_out_of_range_reference_numbers_are_clamped(tmp_path: Path) -> None:
    xml = (f'<image w="8" h="8" {NS}><stack><layer name="l" src="a.png" sfumato:role="reference" '
           'sfumato:reference="FACE" sfumato:strength="7" sfumato:end="0.5"/></stack></image>')
    layer = _reference(load_ora(write_ora_zip(tmp_path / "c.ora", xml, {"a.png": RED})), "l")
    assert layer.reference == ReferenceSettings(ReferenceKind.FACE, 2.0, 0.0, 0.5)


def test_psd_keeps_reference_layers_hidden(tmp_path: Path) -> None:
    save_psd(_document(), tmp_path / "r.psd")
    psd = PSDImage.open(tmp_path / "r.psd")
    layers = {layer.name: layer for layer in psd.descendants()}
    assert not layers["look"].visible and not layers["face"].visible
    assert layers["paint"].visible
    composite = np.asarray(psd.composite().convert("RGB"))
    assert (np.abs(composite.astype(int) - 90) <= 1).all()  # no red from the reference


def test_flatten_and_png_export_leave_reference_layers_out(tmp_path: Path) -> None:
    doc = _document()
    assert (flatten(doc)[..., :3] == 90).all()
    export_png(doc, tmp_path / "p.png")
    png = np.asarray(Image.open(tmp_path / "p.png").convert("RGBA"))
    assert (png[..., :3] == 90).all() and (png[..., 3] == 255).all()
    # the same pixels as a paint layer would show: the test can see a leak
    _reference(doc, "look").role = Role.PAINT
    assert (flatten(doc)[4:14, 3:23, :3] == (255, 0, 0)).all()


def test_reference_settings_are_undoable_checked_edits() -> None:
    doc = _document()
    paint = _reference(doc, "paint")
    editing.set_property(doc, paint, "role", Role.REFERENCE)
    assert paint.reference == ReferenceSettings()  # the role brings default settings
    assert doc.history.undo_label == "Layer Role"
    new = ReferenceSettings(ReferenceKind.COMPOSITION, 0.5, 0.2, 0.9)
    editing.set_property(doc, paint, "reference", new)
    assert paint.reference == new and doc.history.undo_label == "Reference Settings"
    doc.undo()
    assert paint.reference == ReferenceSettings()
    doc.undo()
    assert paint.role is Role.PAINT and paint.reference is None
    doc.redo()
    doc.redo()
    assert paint.reference == new
    for bad in (
        ReferenceSettings(strength=2.5),
        ReferenceSettings(start=0.7, end=0.3),
        ReferenceSettings(end=1.5),
        "style",
    ):
        with pytest.raises(InvalidEditError, match="reference"):
            editing.set_property(doc, paint, "reference", bad)
    assert paint.reference == new
    copy = copy_layer(paint)
    assert isinstance(copy, PixelLayer) and copy.reference == new and copy.role is Role.REFERENCE


def test_recovery_journal_keeps_reference_settings(tmp_path: Path) -> None:
    doc = _document()
    journal = Journal(doc, tmp_path / "j", name="doc")
    paint = _reference(doc, "paint")
    editing.set_property(doc, paint, "role", Role.REFERENCE)
    editing.set_property(doc, paint, "reference", ReferenceSettings(ReferenceKind.FACE, 0.75, 0.0, 0.5))
    assert journal.flush()
    journal.close()
    got = recover(tmp_path / "j").doc
    back = _reference(got, "paint")
    assert back.role is Role.REFERENCE
    assert back.reference == ReferenceSettings(ReferenceKind.FACE, 0.75, 0.0, 0.5)
    assert _reference(got, "look").reference == ReferenceSettings(ReferenceKind.STYLE, 1.25, 0.1, 0.6)
    got.undo()
    assert _reference(got, "paint").reference == ReferenceSettings()
    got.undo()
    assert _reference(got, "paint").reference is None and _reference(got, "paint").role is Role.PAINT

"""OpenRaster round trips, the file's structure, reading other programs' files, atomic saves."""

from __future__ import annotations

import io
import logging
import os
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orazip import png_bytes, solid, write_ora_zip
from PIL import Image
from sfumato.canvas.files import ora_write
from sfumato.canvas.files.file_errors import SaveError
from sfumato.canvas.files.ora import SFUMATO_NS, load_ora, save_ora
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import ControlSettings, GroupLayer, Layer, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.kinds import ControlKind

S = "{" + SFUMATO_NS + "}"


def noise(w: int, h: int, seed: int, alpha: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if not alpha:
        pixels[..., 3] = 255
    pixels[pixels[..., 3] == 0, 3] = 1  # every pixel present, so bounds are the full block
    return pixels


def layer_of(pixels: np.ndarray, name: str, sx: int = 0, sy: int = 0, **kw: object) -> PixelLayer:
    """A layer holding ``pixels`` at ``(sx, sy)`` of its surface; ``kw`` are layer properties."""
    return PixelLayer(name, TiledSurface.from_array(pixels, sx, sy), **kw)  # type: ignore[arg-type]


def doc_pixels(layer: PixelLayer, rect: Rect) -> np.ndarray:
    """``layer``'s pixels over ``rect`` in document space (its own and its groups' offsets)."""
    ox, oy = layer.x, layer.y
    for group in layer.ancestors():
        if group.parent is not None:
            ox, oy = ox + group.x, oy + group.y
    return layer.surface.read(rect.translate(-ox, -oy))


def roundtrip(doc: Document, tmp_path: Path) -> Document:
    path = tmp_path / "doc.ora"
    save_ora(doc, path)
    return load_ora(path)


def by_name(doc: Document, name: str) -> Layer:
    layer = doc.find(name)
    assert layer is not None, name
    return layer


def pixel(doc: Document, name: str) -> PixelLayer:
    layer = by_name(doc, name)
    assert isinstance(layer, PixelLayer)
    return layer


# -- round trips ---------------------------------------------------------------------------
def test_every_role_and_its_attributes_round_trip(tmp_path: Path) -> None:
    doc = Document(40, 30)
    generation = {"mode": "inpaint", "seed": 7, "prompt": "a café, \"quoted\"", "regions": [{"prompt": "x"}], "cfg": 7.5}
    layers = [
        layer_of(noise(4, 4, 1), "paint"),
        layer_of(noise(4, 4, 2), "mask", role=Role.INPAINT_MASK),
        layer_of(noise(4, 4, 3), "region", role=Role.REGION, prompt="a red barn, evening", negative="fog"),
        layer_of(
            noise(4, 4, 4), "control", role=Role.CONTROL,
            control=ControlSettings(ControlKind.LINEART, strength=1.25, start=0.1, end=0.75),
        ),
        layer_of(noise(4, 4, 5), "generated", role=Role.GENERATED, generation=generation),
    ]
    for layer in layers:
        doc.root.append(layer)
    back = roundtrip(doc, tmp_path)
    assert [layer.name for layer in back.layers()] == [layer.name for layer in layers]
    assert [pixel(back, layer.name).role for layer in layers] == [layer.role for layer in layers]
    region = pixel(back, "region")
    assert (region.prompt, region.negative) == ("a red barn, evening", "fog")
    assert pixel(back, "control").control == ControlSettings(ControlKind.LINEART, 1.25, 0.1, 0.75)
    assert pixel(back, "generated").generation == generation
    assert pixel(back, "paint").control is None and pixel(back, "paint").generation is None


@pytest.mark.parametrize("kind", list(ControlKind))
def test_every_control_kind_round_trips(tmp_path: Path, kind: ControlKind) -> None:
    doc = Document(8, 8)
    doc.root.append(layer_of(noise(2, 2, 0), "c", role=Role.CONTROL, control=ControlSettings(kind, 0.5, 0.0, 1.0)))
    control = pixel(roundtrip(doc, tmp_path), "c").control
    assert control is not None and control.kind is kind and control.strength == 0.5


def test_recipe_round_trips(tmp_path: Path) -> None:
    recipe = Recipe(
        prompt="a lighthouse\nat night, \"stormy\" & <loud>",
        negative="blurry\tlowres",
        model="models/sd15.safetensors",
        seed=2**63 - 1,
        steps=30,
        cfg=6.5,
        strength=0.35,
        sampler="dpmpp_2m_karras",
    )
    doc = Document(16, 16, recipe=recipe)
    assert roundtrip(doc, tmp_path).recipe == recipe


def test_unset_recipe_writes_no_sfumato_image_attributes(tmp_path: Path) -> None:
    doc = Document(16, 16)
    save_ora(doc, tmp_path / "a.ora")
    image = ET.fromstring(zipfile.ZipFile(tmp_path / "a.ora").read("stack.xml"))
    assert not [k for k in image.attrib if k.startswith(S)]
    assert load_ora(tmp_path / "a.ora").recipe == Recipe()


def test_groups_nesting_order_and_properties_round_trip(tmp_path: Path) -> None:
    doc = Document(64, 64)
    inner = GroupLayer("inner", [layer_of(noise(5, 5, 1), "deep", 3, 4)], opacity=0.25, blend=BlendMode.SCREEN, x=2, y=-3)
    outer = GroupLayer(
        "outer",
        [layer_of(noise(6, 6, 2), "top"), inner, layer_of(noise(6, 6, 3), "bottom")],
        visible=False,
        locked=True,
    )
    doc.root.append(layer_of(noise(8, 8, 4), "above all", blend=BlendMode.MULTIPLY))
    doc.root.append(outer)
    doc.active = inner
    back = roundtrip(doc, tmp_path)
    assert [(layer.name, layer.is_group) for layer in back.layers()] == [
        ("above all", False), ("outer", True), ("top", False), ("inner", True), ("deep", False), ("bottom", False)
    ]
    b_inner, b_outer = by_name(back, "inner"), by_name(back, "outer")
    assert isinstance(b_inner, GroupLayer) and b_inner.parent is b_outer
    assert (b_inner.opacity, b_inner.blend, b_inner.x, b_inner.y) == (0.25, BlendMode.SCREEN, 2, -3)
    assert (b_outer.visible, b_outer.locked) == (False, True)
    assert back.active is b_inner
    assert pixel(back, "above all").blend is BlendMode.MULTIPLY
    np.testing.assert_array_equal(flatten(back), flatten(doc))


def test_pixels_round_trip_exactly_with_offsets(tmp_path: Path) -> None:
    doc = Document(300, 280)
    big = noise(270, 260, 9)  # spans several 256-px tiles
    layers = [
        layer_of(big, "big", 5, 7),
        layer_of(noise(30, 20, 1), "shifted", 2, 3, x=40, y=-10),  # layer offset + surface offset
        layer_of(noise(20, 20, 2), "off canvas", -12, 275),  # partly outside the document
    ]
    group = GroupLayer("g", [layers[1]], x=-5, y=9)
    doc.root.append(layers[0])
    doc.root.append(group)
    doc.root.append(layers[2])
    back = roundtrip(doc, tmp_path)
    everywhere = Rect(-50, -50, 420, 420)
    for layer in layers:
        np.testing.assert_array_equal(doc_pixels(pixel(back, layer.name), everywhere), doc_pixels(layer, everywhere))
    # Layer PNGs are cropped to the content: the big one is exactly its block.
    stack = ET.fromstring(zipfile.ZipFile(tmp_path / "doc.ora").read("stack.xml"))
    big_el = next(el for el in stack.iter("layer") if el.get("name") == "big")
    assert (big_el.get("x"), big_el.get("y")) == ("5", "7")
    with zipfile.ZipFile(tmp_path / "doc.ora") as zf:
        assert Image.open(io.BytesIO(zf.read(big_el.get("src", "")))).size == (270, 260)


def test_opacity_visibility_and_lock_round_trip(tmp_path: Path) -> None:
    doc = Document(8, 8)
    for i, opacity in enumerate([0.0, 0.1, 1 / 3, 0.999, 1.0]):
        doc.root.append(layer_of(noise(2, 2, i), f"l{i}", opacity=opacity, visible=i % 2 == 0, locked=i == 3))
    back = roundtrip(doc, tmp_path)
    for original in doc.pixel_layers():
        loaded = pixel(back, original.name)
        assert (loaded.opacity, loaded.visible, loaded.locked) == (original.opacity, original.visible, original.locked)


@pytest.mark.parametrize("mode", list(BlendMode))
def test_every_blend_mode_round_trips(tmp_path: Path, mode: BlendMode) -> None:
    doc = Document(8, 8)
    doc.root.append(layer_of(noise(3, 3, 0), "l", blend=mode))
    doc.root.append(GroupLayer("g", [], blend=mode))
    back = roundtrip(doc, tmp_path)
    assert by_name(back, "l").blend is mode and by_name(back, "g").blend is mode


def test_active_layer_is_saved_as_selected(tmp_path: Path) -> None:
    doc = Document(8, 8)
    a, b = layer_of(noise(2, 2, 0), "a"), layer_of(noise(2, 2, 1), "b")
    doc.root.append(a)
    doc.root.append(b)
    doc.active = b
    back = roundtrip(doc, tmp_path)
    assert back.active is by_name(back, "b")
    stack = ET.fromstring(zipfile.ZipFile(tmp_path / "doc.ora").read("stack.xml"))
    assert [el.get("selected") for el in stack.iter("layer")] == [None, "true"]


def test_empty_layer_stays_an_empty_layer(tmp_path: Path) -> None:
    doc = Document(8, 8)
    doc.root.append(PixelLayer("empty", role=Role.INPAINT_MASK))
    back = roundtrip(doc, tmp_path)
    layer = pixel(back, "empty")
    assert layer.surface.is_empty() and layer.role is Role.INPAINT_MASK


def test_text_with_newlines_quotes_and_unicode_round_trips(tmp_path: Path) -> None:
    text = "line one\nline two\r\n\ttabbed & <tag> \"q\" 'a' — 猫 🐈"
    doc = Document(8, 8, recipe=Recipe(prompt=text))
    doc.root.append(layer_of(noise(2, 2, 0), "名前 & <x>", role=Role.REGION, prompt=text, negative=text))
    back = roundtrip(doc, tmp_path)
    assert back.recipe.prompt == text
    layer = pixel(back, "名前 & <x>")
    assert (layer.prompt, layer.negative) == (text, text)


def test_control_characters_xml_cannot_hold_are_dropped(tmp_path: Path) -> None:
    doc = Document(8, 8, recipe=Recipe(prompt="bell\x07 and nul\x00 end"))
    assert roundtrip(doc, tmp_path).recipe.prompt == "bell and nul end"


# -- the file's structure ------------------------------------------------------------------
def sample_doc() -> Document:
    doc = Document(600, 300, recipe=Recipe(prompt="p", seed=3))
    doc.root.append(layer_of(noise(100, 80, 1), "a", 10, 20, blend=BlendMode.DIFFERENCE))
    doc.root.append(layer_of(solid(600, 300, (10, 120, 200, 255)), "bg"))
    doc.root.append(layer_of(solid(50, 50, (255, 0, 0, 255)), "mask", role=Role.INPAINT_MASK))
    return doc


def test_mimetype_is_first_stored_and_exact(tmp_path: Path) -> None:
    save_ora(sample_doc(), tmp_path / "a.ora")
    with zipfile.ZipFile(tmp_path / "a.ora") as zf:
        first = zf.infolist()[0]
        assert first.filename == "mimetype"
        assert first.compress_type == zipfile.ZIP_STORED
        assert zf.read("mimetype") == b"image/openraster"
        assert first.extra == b""
    # Readers that sniff the magic look at byte 30 onwards of the file.
    assert (tmp_path / "a.ora").read_bytes()[30:54] == b"mimetypeimage/openraster"


def test_entry_order_and_merged_image_parameters(tmp_path: Path) -> None:
    save_ora(sample_doc(), tmp_path / "a.ora")
    with zipfile.ZipFile(tmp_path / "a.ora") as zf:
        names = zf.namelist()
        merged = Image.open(io.BytesIO(zf.read("mergedimage.png")))
        merged.load()
    assert names[:2] == ["mimetype", "stack.xml"]
    assert names[2:] == ["data/layer0001.png", "data/layer0002.png", "data/layer0003.png", "mergedimage.png", "Thumbnails/thumbnail.png"]
    assert "Seed: 3" in merged.text["parameters"]  # tools that read only the merged image see the recipe


def test_merged_image_and_thumbnail_are_present(tmp_path: Path) -> None:
    doc = sample_doc()
    save_ora(doc, tmp_path / "a.ora")
    with zipfile.ZipFile(tmp_path / "a.ora") as zf:
        merged = np.asarray(Image.open(io.BytesIO(zf.read("mergedimage.png"))).convert("RGBA"))
        thumb = Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png")))
    np.testing.assert_array_equal(merged, flatten(doc))  # the mask layer is left out
    assert max(thumb.size) <= 256 and thumb.size == (256, 128)


def test_stack_xml_shape(tmp_path: Path) -> None:
    save_ora(sample_doc(), tmp_path / "a.ora")
    raw = zipfile.ZipFile(tmp_path / "a.ora").read("stack.xml")
    assert b'xmlns:sfumato="urn:sfumato:1"' in raw
    image = ET.fromstring(raw)
    assert (image.tag, image.get("version"), image.get("w"), image.get("h")) == ("image", "0.0.6", "600", "300")
    assert image.get(S + "prompt") == "p" and image.get(S + "seed") == "3"
    stacks = list(image)
    assert len(stacks) == 1 and stacks[0].tag == "stack" and stacks[0].attrib == {}
    names = [el.get("name") for el in stacks[0]]
    assert names == ["a", "bg", "mask"]  # top first
    a = stacks[0][0]
    assert a.get("composite-op") == "svg:difference" and a.get("visibility") == "visible"
    assert stacks[0][2].get(S + "role") == "inpaint-mask"
    assert stacks[0][0].get(S + "role") is None  # paint is the default and not written


# -- files other programs write --------------------------------------------------------------
def test_reads_minimal_files_as_krita_mypaint_and_gimp_write_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    red, blue = solid(4, 3, (255, 0, 0, 255)), solid(2, 2, (0, 0, 255, 128))
    xml = """<?xml version='1.0' encoding='UTF-8'?>
<image w="20" h="10" xres="72" yres="72" xmlns:krita="http://krita.org/namespaces/svg/krita">
 <stack>
  <layer name="no attrs" src="data/a.png"/>
  <layer name="mypaint" src="data/b.png" x="5" y="6" opacity="0.5" visibility="hidden"
         composite-op="svg:overlay" selected="true" edit-locked="true" krita:thing="1" mypaint:x="y"
         xmlns:mypaint="http://mypaint.org/ns/openraster"/>
  <stack name="gimp group" isolation="auto" composite-op="krita:unknown-op" x="1" y="2">
   <layer name="odd op" src="data/a.png" composite-op="svg:fancy-new-op" x="3.0" y="-1"/>
  </stack>
 </stack>
</image>"""
    path = write_ora_zip(tmp_path / "k.ora", xml, {"data/a.png": png_bytes(red), "data/b.png": png_bytes(blue)})
    with caplog.at_level(logging.WARNING):
        doc = load_ora(path)
    assert (doc.width, doc.height) == (20, 10)
    plain = pixel(doc, "no attrs")
    assert (plain.opacity, plain.visible, plain.blend, plain.role) == (1.0, True, BlendMode.NORMAL, Role.PAINT)
    np.testing.assert_array_equal(doc_pixels(plain, Rect(0, 0, 4, 3)), red)
    mp = pixel(doc, "mypaint")
    assert (mp.opacity, mp.visible, mp.blend, mp.locked) == (0.5, False, BlendMode.OVERLAY, True)
    np.testing.assert_array_equal(doc_pixels(mp, Rect(5, 6, 2, 2)), blue)
    assert doc.active is mp
    group = by_name(doc, "gimp group")
    assert group.blend is BlendMode.NORMAL and (group.x, group.y) == (1, 2)
    odd = pixel(doc, "odd op")
    assert odd.blend is BlendMode.NORMAL
    np.testing.assert_array_equal(doc_pixels(odd, Rect(4, 1, 4, 3)), red)  # group (1,2) + (3,-1)
    assert "svg:fancy-new-op" in caplog.text
    # Unknown <image> attributes are kept and written back.
    assert doc.extra_attributes == {"xres": "72", "yres": "72"}
    save_ora(doc, tmp_path / "again.ora")
    again = ET.fromstring(zipfile.ZipFile(tmp_path / "again.ora").read("stack.xml"))
    assert (again.get("xres"), again.get("yres")) == ("72", "72")
    # ... and so are other programs' attributes on layers and stacks, with their namespaces
    krita, mypaint = "{http://krita.org/namespaces/svg/krita}", "{http://mypaint.org/ns/openraster}"
    assert mp.extra_attributes == {krita + "thing": "1", mypaint + "x": "y"}
    assert group.extra_attributes == {} and plain.extra_attributes == {}
    saved = {e.get("name"): e for e in again.iter() if e.tag in ("layer", "stack")}
    assert (saved["mypaint"].get(krita + "thing"), saved["mypaint"].get(mypaint + "x")) == ("1", "y")
    assert saved["gimp group"].get("isolation") == "isolate"  # ours, not a kept copy of "auto"
    assert pixel(load_ora(tmp_path / "again.ora"), "mypaint").extra_attributes == mp.extra_attributes


def test_reads_file_without_mimetype_entry(tmp_path: Path) -> None:
    xml = '<image w="4" h="4"><stack><layer src="a.png"/></stack></image>'
    path = write_ora_zip(tmp_path / "m.ora", xml, {"a.png": png_bytes(solid(1, 1, (1, 2, 3, 4)))}, mimetype=None)
    assert len(list(load_ora(path).layers())) == 1


def test_hand_written_recipe_with_a1111_sampler_label(tmp_path: Path) -> None:
    xml = f"""<image w="64" h="64" xmlns:sfumato="{SFUMATO_NS}" sfumato:prompt="a fox"
        sfumato:sampler="DPM++ 2M Karras" sfumato:steps=" 12 " sfumato:cfg="5">
      <stack><layer src="r.png" name="r" sfumato:role="region" sfumato:prompt="snow"/>
             <layer src="r.png" name="c" sfumato:role="control"/></stack></image>"""
    path = write_ora_zip(tmp_path / "h.ora", xml, {"r.png": png_bytes(solid(2, 2, (0, 0, 0, 255)))})
    doc = load_ora(path)
    assert doc.recipe == Recipe(prompt="a fox", sampler="dpmpp_2m_karras", steps=12, cfg=5.0)
    assert pixel(doc, "r").prompt == "snow"
    assert pixel(doc, "c").control == ControlSettings()  # defaults: scribble, 1, 0..1


def test_out_of_range_control_numbers_are_clamped(tmp_path: Path) -> None:
    xml = f"""<image w="8" h="8" xmlns:sfumato="{SFUMATO_NS}"><stack>
      <layer src="r.png" name="c" sfumato:role="control" sfumato:control="depth"
             sfumato:strength="5" sfumato:start="-1" sfumato:end="0.5"/></stack></image>"""
    path = write_ora_zip(tmp_path / "c.ora", xml, {"r.png": png_bytes(solid(2, 2, (0, 0, 0, 255)))})
    assert pixel(load_ora(path), "c").control == ControlSettings(ControlKind.DEPTH, 2.0, 0.0, 0.5)


# -- atomic saving ---------------------------------------------------------------------------
def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "work.ora"
    save_ora(sample_doc(), path)
    before = path.read_bytes()
    calls = {"n": 0}
    real = ora_write.encode_png

    def failing(*args: object, **kwargs: object) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:  # after the first layer PNG went into the zip
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ora_write, "encode_png", failing)
    changed = sample_doc()
    changed.root.append(layer_of(noise(5, 5, 5), "new"))
    with pytest.raises(SaveError, match="No space left on device") as info:
        save_ora(changed, path)
    assert info.value.path == path
    assert calls["n"] >= 2  # it failed part-way (other encodes may have been in flight)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["work.ora"]
    monkeypatch.undo()
    assert [layer.name for layer in load_ora(path).layers()] == ["a", "bg", "mask"]


def test_save_keeps_the_file_mode_and_replaces_content(tmp_path: Path) -> None:
    path = tmp_path / "work.ora"
    save_ora(Document(8, 8), path)
    os.chmod(path, 0o640)
    doc = Document(8, 8)
    doc.root.append(layer_of(noise(2, 2, 0), "x"))
    save_ora(doc, path)
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert [layer.name for layer in load_ora(path).layers()] == ["x"]


def test_save_into_missing_folder_is_a_save_error(tmp_path: Path) -> None:
    with pytest.raises(SaveError):
        save_ora(Document(8, 8), tmp_path / "nope" / "a.ora")
    assert os.listdir(tmp_path) == []


def test_generation_with_numpy_values_and_enums_is_saved_as_json(tmp_path: Path) -> None:
    generation = {"seed": np.int64(5), "cfg": np.float32(7.5), "sampler": BlendMode.SCREEN, "size": (512, 768)}
    doc = Document(8, 8)
    doc.root.append(layer_of(noise(2, 2, 0), "g", role=Role.GENERATED, generation=generation))
    assert pixel(roundtrip(doc, tmp_path), "g").generation == {
        "seed": 5, "cfg": 7.5, "sampler": "svg:screen", "size": [512, 768]
    }


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": object()}])
def test_generation_that_is_not_json_is_a_save_error_and_keeps_the_old_file(tmp_path: Path, bad: dict) -> None:
    path = tmp_path / "doc.ora"
    save_ora(Document(8, 8), path)
    before = path.read_bytes()
    doc = Document(8, 8)
    doc.root.append(layer_of(noise(2, 2, 0), "g", role=Role.GENERATED, generation=bad))
    with pytest.raises(SaveError, match="'g'.*JSON"):
        save_ora(doc, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["doc.ora"]


# -- property: any layer tree round-trips ----------------------------------------------------
xml_text = st.text(st.characters(exclude_categories=("Cc", "Cs", "Cn")) | st.sampled_from("\n\t\r"), max_size=6)


@st.composite
def layer_trees(draw: st.DrawFn, depth: int = 0) -> list[Layer]:
    layers: list[Layer] = []
    for i in range(draw(st.integers(0 if depth else 1, 3))):
        props = {
            "opacity": draw(st.floats(0, 1)),
            "visible": draw(st.booleans()),
            "locked": draw(st.booleans()),
            "blend": draw(st.sampled_from(list(BlendMode))),
            "x": draw(st.integers(-20, 20)),
            "y": draw(st.integers(-20, 20)),
        }
        name = f"{depth}-{i}-{draw(xml_text)}"
        if depth < 2 and draw(st.booleans()):
            layers.append(GroupLayer(name, draw(layer_trees(depth + 1)), **props))  # type: ignore[arg-type]
            continue
        w, h = draw(st.integers(1, 9)), draw(st.integers(1, 9))
        pixels = np.asarray(draw(st.lists(st.integers(0, 255), min_size=w * h * 4, max_size=w * h * 4)), np.uint8)
        role = draw(st.sampled_from(list(Role)))
        layers.append(
            layer_of(
                pixels.reshape(h, w, 4), name, draw(st.integers(-5, 30)), draw(st.integers(-5, 30)),
                role=role,
                prompt=draw(xml_text) if role is Role.REGION else "",
                **props,
            )
        )
    return layers


def tree_signature(layer: Layer, rect: Rect) -> tuple[object, ...]:
    common = (layer.name, layer.opacity, layer.visible, layer.locked, layer.blend)
    if isinstance(layer, GroupLayer):
        return (*common, layer.x, layer.y, tuple(tree_signature(c, rect) for c in layer.children))
    assert isinstance(layer, PixelLayer)
    pixels = doc_pixels(layer, rect)
    pixels[pixels[..., 3] == 0] = 0  # colour under alpha 0 outside the content is not kept
    return (*common, layer.role, layer.prompt, pixels.tobytes())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trees=layer_trees())
def test_any_layer_tree_round_trips(tmp_path: Path, trees: list[Layer]) -> None:
    doc = Document(32, 24)
    for layer in trees:
        doc.root.append(layer)
    back = roundtrip(doc, tmp_path)
    rect = Rect(-80, -80, 200, 200)
    assert [tree_signature(c, rect) for c in back.root.children] == [tree_signature(c, rect) for c in doc.root.children]
    np.testing.assert_array_equal(flatten(back), flatten(doc))

"""What other programs see in Sfumato's .ora: the painting, never a mask, a region block or
a sketch drawn over it (issue 17: Krita drew an opaque white region over the picture).

``plain_reader_composite`` reads the file as any OpenRaster reader does — only the
standard ``src``/``x``/``y``/``opacity``/``visibility`` attributes, "over" blending — so the
test does not depend on Sfumato's reader. When Krita is installed, its own ``--export``
is checked too.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sfumato.canvas.files.ora import SFUMATO_NS, load_ora, save_ora
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.kinds import ControlKind

S = "{" + SFUMATO_NS + "}"
W, H = 48, 32


def solid(rgb: tuple[int, int, int], alpha: int = 255, w: int = W, h: int = H) -> np.ndarray:
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = alpha
    return out


def painting_with_ai_layers(control_visible: bool = False) -> Document:
    doc = Document(W, H)
    doc.root.append(PixelLayer("Mask", TiledSurface.from_array(solid((0, 0, 0), 255, 20, 12), 4, 4),
                               role=Role.INPAINT_MASK))
    doc.root.append(PixelLayer("Sky", TiledSurface.from_array(solid((255, 255, 255))), role=Role.REGION,
                               prompt="a green triangle"))
    control = PixelLayer("Sketch", TiledSurface.from_array(solid((10, 10, 10))), role=Role.CONTROL,
                         control=ControlSettings(ControlKind.SCRIBBLE))
    control.visible = control_visible
    doc.root.append(control)
    doc.root.append(PixelLayer("Paint", TiledSurface.from_array(solid((200, 40, 30), 255, 16, 16), 30, 10)))
    doc.root.append(PixelLayer("Background", TiledSurface.from_array(solid((20, 60, 200)))))
    return doc


def painting_only(doc: Document) -> np.ndarray:
    return flatten(doc)  # the image layers only (paint, generated, groups)


def plain_reader_composite(path: Path) -> np.ndarray:
    """Straight RGBA uint8: the visible layers over each other, bottom first."""
    with zipfile.ZipFile(path) as zf:
        root = ET.fromstring(zf.read("stack.xml"))
        acc = np.zeros((int(root.get("h")), int(root.get("w")), 4), np.float64)
        for element in reversed(list(root.find("stack"))):
            assert element.tag == "layer"
            if element.get("visibility", "visible") == "hidden":
                continue
            with Image.open(io.BytesIO(zf.read(element.get("src")))) as image:
                px = np.asarray(image.convert("RGBA"), np.float64) / 255.0
            x, y = int(element.get("x", 0)), int(element.get("y", 0))
            px[..., 3] *= float(element.get("opacity", 1))
            dst = acc[y : y + px.shape[0], x : x + px.shape[1]]
            a = px[..., 3:4] + dst[..., 3:4] * (1 - px[..., 3:4])
            rgb = (px[..., :3] * px[..., 3:4] + dst[..., :3] * dst[..., 3:4] * (1 - px[..., 3:4])) / np.maximum(a, 1e-9)
            dst[..., :3], dst[..., 3:4] = rgb, a
    return np.rint(acc * 255).astype(np.uint8)


def test_other_programs_see_the_painting_and_sfumato_keeps_its_own_visibility(tmp_path: Path) -> None:
    doc = painting_with_ai_layers(control_visible=False)
    path = tmp_path / "doc.ora"
    save_ora(doc, path)

    with zipfile.ZipFile(path) as zf:
        layers = {e.get("name"): e for e in ET.fromstring(zf.read("stack.xml")).iter("layer")}
        with Image.open(io.BytesIO(zf.read("mergedimage.png"))) as merged:
            merged_pixels = np.asarray(merged.convert("RGBA"))
    for name, own in (("Mask", "true"), ("Sky", "true"), ("Sketch", "false")):
        assert layers[name].get("visibility") == "hidden", name
        assert layers[name].get(S + "visible") == own, name
    for name in ("Paint", "Background"):
        assert layers[name].get("visibility") == "visible" and layers[name].get(S + "visible") is None

    picture = painting_only(doc)
    assert np.array_equal(plain_reader_composite(path), picture), "another program draws an AI layer"
    assert np.array_equal(merged_pixels, picture), "mergedimage.png is not the painting alone"

    back = load_ora(path)
    assert [back.find(n).visible for n in ("Mask", "Sky", "Sketch", "Paint")] == [True, True, False, True]
    assert np.array_equal(painting_only(back), picture)


def test_files_written_before_sfumato_visible_keep_their_visibility(tmp_path: Path) -> None:
    doc = painting_with_ai_layers(control_visible=True)
    path = tmp_path / "old.ora"
    save_ora(doc, path)
    # Rewrite the file as older versions did: real visibility, no sfumato:visible.
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    root = ET.fromstring(members["stack.xml"])
    for element in root.iter("layer"):
        own = element.attrib.pop(S + "visible", None)
        if own is not None:
            element.set("visibility", "visible" if own == "true" else "hidden")
    root.find("stack")[0].set("visibility", "hidden")  # the mask was hidden
    members["stack.xml"] = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED)
    back = load_ora(path)
    assert [back.find(n).visible for n in ("Mask", "Sky", "Sketch")] == [False, True, True]


def _x_display() -> tuple[dict[str, str], subprocess.Popen[bytes] | None]:
    """An environment with an X display for Krita (it runs on xcb only): the session's,
    else a private Xvfb (skips when there is neither)."""
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)
    if env.get("DISPLAY"):
        return env, None
    if shutil.which("Xvfb") is None:
        pytest.skip("Krita needs an X display and Xvfb is not installed")
    number = next(n for n in range(140, 200) if not Path(f"/tmp/.X{n}-lock").exists())
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "640x480x24"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            break
        time.sleep(0.1)
    env["DISPLAY"] = f":{number}"
    return env, server


@pytest.mark.skipif(shutil.which("krita") is None, reason="Krita is not installed here")
def test_krita_exports_the_painting_without_ai_layers(tmp_path: Path) -> None:  # pragma: no cover - needs Krita
    doc = painting_with_ai_layers()
    path = tmp_path / "doc.ora"
    save_ora(doc, path)
    out = tmp_path / "krita.png"
    env, server = _x_display()
    try:
        subprocess.run(["krita", "--export", "--export-filename", str(out), str(path)], check=True, timeout=300,
                       capture_output=True, env=env)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    with Image.open(out) as image:
        exported = np.asarray(image.convert("RGBA"))
    assert np.abs(exported.astype(int) - painting_only(doc).astype(int)).max() <= 1

"""The PSD layer-record walk (canvas/files/psd_records.py) agrees with the group tree psd-tools
builds, and refuses a file nested too deep before psd-tools parses it."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostilefiles import PsdLayer, nested_groups, psd, raw_layer
from psd_tools import PSDImage
from sfumato.canvas.files.file_errors import ImageTooLargeError
from sfumato.canvas.files.psd import MAX_DEPTH, load_psd, save_psd
from sfumato.canvas.files.psd_records import group_depth
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer
from sfumato.canvas.model.tiles import TiledSurface


def depth_of(data: bytes) -> int | None:
    return group_depth(io.BytesIO(data), int.from_bytes(data[4:6], "big"), len(data))


def tree_depth(node: Any, level: int = 0) -> int:
    return max([tree_depth(item, level + 1) for item in node if item.is_group()], default=level)


def pixel(name: str) -> PixelLayer:
    return PixelLayer(name, TiledSurface.from_array(np.full((2, 2, 4), 200, np.uint8), 0, 0))


def chain(depth: int) -> Layer:
    layer: Layer = pixel("bottom")
    for i in range(depth):
        layer = GroupLayer(f"g{i}", [layer, pixel(f"p{i}")] if i % 2 else [layer])
    return layer


def divider(kind: int) -> PsdLayer:
    return PsdLayer("</Layer group>" if kind == 3 else "group", (0, 0, 0, 0),
                    {i: (0, b"") for i in (-1, 0, 1, 2)}, divider=kind)


@pytest.mark.parametrize("depth", [0, 1, 3, 7])
def test_files_psd_tools_writes_give_the_depth_of_its_tree(tmp_path: Path, depth: int) -> None:
    doc = Document(8, 8)
    doc.root.append(pixel("top"))
    doc.root.append(chain(depth))
    doc.root.append(chain(max(depth - 1, 0)))
    path = tmp_path / "saved.psd"
    save_psd(doc, path)
    data = path.read_bytes()
    assert depth_of(data) == tree_depth(PSDImage.open(path)) == depth


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("block", [None, b"Lr16"])
def test_generated_files_psd_and_psb_and_lr16(version: int, block: bytes | None) -> None:
    layers = nested_groups(5)
    layers[5] = raw_layer("pixel", 0, 0, 2, 2, depth=16 if block else 8)
    data = psd(8, 8, layers, version=version, block=block, depth=16 if block else 8)
    assert depth_of(data) == tree_depth(PSDImage.open(io.BytesIO(data))) == 5


def test_unpaired_dividers_are_not_groups_as_in_psd_tools(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 3 group records with nothing to close, then 100 group ends that no group record
    # closes under one real group: psd-tools reads the 103 as plain (empty) layers, so the
    # file nests 1 deep and must open (counting every divider would say 101).
    layers = [divider(1)] * 3 + [divider(3)] * 100 + [divider(3), raw_layer("pixel", 0, 0, 2, 2), divider(1)]
    data = psd(8, 8, layers)
    assert depth_of(data) == tree_depth(PSDImage.open(io.BytesIO(data))) == 1
    path = tmp_path / "unpaired.psd"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING):
        doc = load_psd(path)
    assert any(isinstance(layer, GroupLayer) for layer in doc.root.children)


def test_the_limit_itself_opens_and_one_more_is_refused(tmp_path: Path) -> None:
    inside = tmp_path / "inside.psd"
    inside.write_bytes(psd(8, 8, nested_groups(MAX_DEPTH)))
    load_psd(inside)
    beyond = tmp_path / "beyond.psd"
    beyond.write_bytes(psd(8, 8, nested_groups(MAX_DEPTH + 1)))
    assert depth_of(beyond.read_bytes()) == MAX_DEPTH + 1
    with pytest.raises(ImageTooLargeError, match=f"nested deeper than {MAX_DEPTH}"):
        load_psd(beyond)


@pytest.mark.parametrize(("version", "block"), [(1, None), (2, None), (1, b"Lr16"), (2, b"Lr32")])
def test_ten_thousand_deep_is_refused_in_under_a_second(tmp_path: Path, version: int, block: bytes | None) -> None:
    path = tmp_path / "deep.psd"
    path.write_bytes(psd(8, 8, nested_groups(10_000), version=version, block=block))
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_psd(path)
    assert time.perf_counter() - start < 1.0  # psd-tools alone parses for ~6 s before it can tell


def test_records_that_do_not_add_up_are_left_to_the_parser() -> None:
    data = bytearray(psd(8, 8, nested_groups(3)))
    good = depth_of(bytes(data))
    assert good == 3
    # The first record's extra data length (after rect, channels, 4 channel infos, blend
    # fields) made to run past the layer info: the walk gives up instead of guessing.
    start = 26 + 4 + 4 + 4 + 4 + 2
    extra = start + 16 + 2 + 4 * 6 + 12
    data[extra : extra + 4] = (1 << 30).to_bytes(4, "big")
    assert depth_of(bytes(data)) is None
    assert depth_of(bytes(data[:40])) is None  # cut inside the section lengths

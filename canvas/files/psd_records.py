"""A PSD's layer records walked by hand, to learn how deeply its groups nest before
psd-tools parses anything.

psd-tools builds every layer record into objects before a reader can see the group
tree: a file of 20,000 tiny records (groups nested 10,000 deep) takes seconds to reach
the nesting limit that way. :func:`group_depth` reads only what decides the nesting, each
record's section divider, and skips every other field by its declared length; it decodes
no pixel data (the channel data follows the records; at most a 64 KiB read-ahead of it
is read).

The layout (Adobe's *Photoshop File Formats Specification*; psd-tools 1.26 as the
reference for the details that decide what it builds):

- header (26 bytes), colour mode data and image resources (a 4-byte length each), then
  the layer and mask information section: its length, then the layer info: its length,
  the layer count (signed 16-bit; negative means the first alpha channel is
  transparency), the layer records, the channel data. Lengths of these two are 8 bytes
  in a PSB (version 2).
- a layer record: rectangle (16 bytes), channel count (2), 6 bytes a channel (10 in a
  PSB), blend signature and key (8), opacity, clipping, flags, filler (4), the extra
  data length (4) and the extra data: layer mask data and blending ranges (a 4-byte
  length each), the name (a Pascal string padded to 4 bytes), then additional layer
  info blocks (``8BIM`` or ``8B64``, a key, a length, unpadded here; a few keys have
  8-byte lengths in a PSB).
- after the layer info: optional global layer mask info (a 4-byte length) and global
  additional layer info blocks, padded to 4 bytes. 16- and 32-bit files may keep their
  layer info in an ``Lr16`` or ``Lr32`` block there, which psd-tools reads instead.

A record's divider is its ``lsdk`` block if it has one, else its ``lsct`` block; the
first 4 bytes are the type: 1 or 2 (an open or closed folder) ends a group, 3 (the
bounding section divider) starts one, as records are stored bottom first. Dividers that
do not pair up are read by psd-tools as plain layers, and so they are ignored here: the
depth is that of the tree psd-tools will build.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["group_depth"]

_SIGNATURES = (b"8BIM", b"8B64")
# Keys whose block length is 8 bytes in a PSB: psd-tools' list (Adobe's, and a few more).
_BIG_KEYS = frozenset({
    b"Alph", b"FELS", b"FEid", b"FMsk", b"FXid", b"LMsk", b"Layr", b"Lr16", b"Lr32",
    b"Mt16", b"Mt32", b"Mtrn", b"PxSD", b"artd", b"cinf", b"extd", b"extn", b"lnk2",
    b"lnk3", b"lnkE", b"pths",
})  # fmt: skip
_OPEN_FOLDER, _CLOSED_FOLDER, _BOUNDING_DIVIDER = 1, 2, 3
_WINDOW = 64 << 10


class _Malformed(Exception):
    """The structure does not add up; psd-tools and the checks after it will say how."""


class _Reader:
    """Reads fields at absolute positions, each bounded by an end, through a window of
    the file (the records are read in order, so a few large reads serve them all)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.base = 0
        self.window = b""

    def bytes(self, position: int, count: int, end: int) -> bytes:
        if position < 0 or position + count > min(end, self.size):
            raise _Malformed
        offset = position - self.base
        if offset < 0 or offset + count > len(self.window):
            self.handle.seek(position)
            self.window = self.handle.read(max(count, min(_WINDOW, end - position)))
            self.base, offset = position, 0
            if len(self.window) < count:
                raise _Malformed
        return self.window[offset : offset + count]

    def number(self, position: int, width: int, end: int) -> int:
        raw = self.bytes(position, width, end)
        return int.from_bytes(raw, "big")


def group_depth(handle: BinaryIO, version: int, size: int) -> int | None:
    """How deeply the layer groups of the PSD (or PSB, ``version`` 2) open on ``handle``
    nest, as psd-tools will build them: 0 without groups, 1 for groups at the top level.

    ``size`` is the file's length. ``None`` when the records cannot be walked (a length
    past its section, a field cut short): such a file is left to the parser.
    """
    try:
        return _nesting(_divider_types(_Reader(handle, size), version == 2))
    except _Malformed:
        return None


def _divider_types(reader: _Reader, wide: bool) -> list[int]:
    """The divider type of each layer record (0 for none), in file order."""
    length = 8 if wide else 4
    position = 26
    for _ in ("colour mode data", "image resources"):
        position += 4 + reader.number(position, 4, reader.size)
    section_end = position + length + reader.number(position, length, reader.size)
    position += length
    info_end = position + length + reader.number(position, length, section_end)
    position += length
    if info_end > section_end:
        raise _Malformed
    types = _records(reader, position, info_end, wide) if info_end > position else []
    layers = _global_layer_info(reader, info_end, section_end, wide)
    if layers is not None:
        types = _records(reader, *layers, wide)
    return types


def _records(reader: _Reader, position: int, end: int, wide: bool) -> list[int]:
    count = abs(struct.unpack(">h", reader.bytes(position, 2, end))[0])
    position += 2
    channel_info = 10 if wide else 6
    types = []
    for _ in range(count):
        channels = reader.number(position + 16, 2, end)
        position += 18 + channels * channel_info + 12  # to the extra data length
        extra_end = position + 4 + reader.number(position, 4, end)
        if extra_end > end:
            raise _Malformed
        types.append(_divider(reader, position + 4, extra_end, wide))
        position = extra_end
    return types


def _divider(reader: _Reader, position: int, end: int, wide: bool) -> int:
    """The divider type in one record's extra data (``position`` .. ``end``)."""
    for _ in ("mask data", "blending ranges"):
        position += 4 + reader.number(position, 4, end)
    position += (1 + reader.number(position, 1, end) + 3) // 4 * 4  # the name, padded to 4
    found = {
        key: reader.number(start, 4, end)
        for key, start, length in _tagged_blocks(reader, position, end, wide, pad=False)
        if key in (b"lsct", b"lsdk") and length >= 4
    }
    kind = found.get(b"lsdk", found.get(b"lsct", 0))
    return kind if kind in (_OPEN_FOLDER, _CLOSED_FOLDER, _BOUNDING_DIVIDER) else 0


def _tagged_blocks(
    reader: _Reader, position: int, end: int, wide: bool, *, pad: bool
) -> Iterator[tuple[bytes, int, int]]:
    """``(key, data start, length)`` of the ``8BIM``/``8B64`` tagged blocks from
    ``position`` until ``end`` or the first thing that is not one (psd-tools stops there
    too); global blocks are padded to 4 bytes (``pad``), a record's are not."""
    while position + 8 <= end:
        head = reader.bytes(position, 8, end)
        if head[:4] not in _SIGNATURES:
            return
        key = head[4:]
        width = 8 if wide and key in _BIG_KEYS else 4
        length = reader.number(position + 8, width, end)
        position += 8 + width
        if position + length > end:
            raise _Malformed
        yield key, position, length
        position += length + (-length % 4 if pad else 0)


def _global_layer_info(reader: _Reader, position: int, end: int, wide: bool) -> tuple[int, int] | None:
    """Where an ``Lr16`` (else ``Lr32``) block's layer info lies, if the file has one."""
    if position + 4 <= end and reader.bytes(position, 4, end) not in _SIGNATURES:
        position += 4 + reader.number(position, 4, end)  # global layer mask info
    blocks = {
        key: (start, start + length)
        for key, start, length in _tagged_blocks(reader, position, end, wide, pad=True)
        if key in (b"Lr16", b"Lr32")
    }
    return blocks.get(b"Lr16", blocks.get(b"Lr32"))


def _nesting(types: list[int]) -> int:
    """The deepest group in the tree the divider ``types`` (file order) make.

    A bounding divider opens a group and the next folder record closes it. Openers never
    closed stay at the bottom of the stack for good and are not groups (psd-tools ignores
    them), so a group's depth is the stack's height less the unclosed openers below it.
    """
    stack: list[int] = []
    closes: list[tuple[int, int]] = []  # (record index, stack height) at each closing record
    for index, kind in enumerate(types):
        if kind == _BOUNDING_DIVIDER:
            stack.append(index)
        elif kind in (_OPEN_FOLDER, _CLOSED_FOLDER) and stack:
            closes.append((index, len(stack)))
            stack.pop()
    unclosed = stack  # ascending record indices
    return max((height - bisect_left(unclosed, index) for index, height in closes), default=0)

"""Small generators of hostile files (issue 19): a few KB each, never committed as binaries.

``psd()`` writes a minimal Photoshop file by hand (header, layer records, channel data,
merged image), so tests can declare sizes, nesting and lengths that no well-behaved
writer produces. ``png()`` writes a PNG whose IHDR may declare any size.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, *, colour: int = 6, depth: int = 8, palette: bool = False,
        rows: bytes | None = None, text: dict[str, str] | None = None) -> bytes:
    """A PNG declaring ``width``×``height``. Without ``rows`` the pixels are all zero,
    compressed as they stream (a 16384² paletted image is ~30 KB)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = 1 + (width * channels * depth + 7) // 8
    if rows is None:
        compressor = zlib.compressobj(9)
        zero = bytes(row)
        parts = [compressor.compress(zero) for _ in range(height)]
        idat = b"".join(parts) + compressor.flush()
    else:
        idat = zlib.compress(rows)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    if colour == 3 or palette:
        body += chunk(b"PLTE", bytes(range(3)) * 1)
    for key, value in (text or {}).items():
        body += chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    return body + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header declares ``width``×``height``."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (8, 8)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@dataclass
class PsdLayer:
    name: str = "layer"
    rect: tuple[int, int, int, int] = (0, 0, 4, 4)  # top, left, bottom, right
    channels: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # id -> (compression, data)
    divider: int | None = None  # 1 open folder, 3 bounding divider
    blocks: list[tuple[bytes, bytes]] = field(default_factory=list)


def raw_layer(name: str, top: int, left: int, h: int, w: int, value: int = 200, *, depth: int = 8) -> PsdLayer:
    size = w * h * depth // 8
    channel = (0, bytes([value]) * size) if depth == 8 else (0, bytes(size))
    return PsdLayer(name, (top, left, top + h, left + w), {i: channel for i in (-1, 0, 1, 2)})


def _pascal(name: str) -> bytes:
    raw = name.encode("latin-1", "replace")[:255]
    data = bytes([len(raw)]) + raw
    return data + bytes(-len(data) % 4)


def psd(width: int, height: int, layers: list[PsdLayer], *, depth: int = 8, version: int = 1,
        merged: bytes | None = None, block: bytes | None = None) -> bytes:
    """A Photoshop file (RGB, ``depth`` bits) holding ``layers`` (bottom first, as PSD stores them).

    With ``block`` (``b"Lr16"`` or ``b"Lr32"``) the layer info is kept in that global
    tagged block, as Photoshop writes 16- and 32-bit files, and the layer info proper is empty."""
    records: list[bytes] = []
    data: list[bytes] = []
    for layer in layers:
        channel_data = []
        for cid, (compression, body) in layer.channels.items():
            blob = struct.pack(">H", compression) + body
            channel_data.append((cid, blob))
            data.append(blob)
        record = struct.pack(">iiiiH", *layer.rect, len(channel_data))
        for cid, blob in channel_data:
            record += struct.pack(">hI" if version == 1 else ">hQ", cid, len(blob))
        record += b"8BIMnorm" + bytes([255, 0, 0, 0])
        extra = struct.pack(">I", 0) + struct.pack(">I", 0) + _pascal(layer.name)
        blocks = list(layer.blocks)
        if layer.divider is not None:
            blocks.append((b"lsct", struct.pack(">I", layer.divider)))
        for key, body in blocks:
            extra += b"8BIM" + key + struct.pack(">I", len(body)) + body + bytes(len(body) % 2)
        record += struct.pack(">I", len(extra)) + extra
        records.append(record)
    info = struct.pack(">h", len(layers)) + b"".join(records) + b"".join(data)
    info += bytes(len(info) % 2)
    length = ">I" if version == 1 else ">Q"
    if block is None:
        section = struct.pack(length, len(info)) + info + struct.pack(">I", 0)
    else:  # an empty layer info, an empty global mask info, then the block (padded to 4 bytes)
        section = struct.pack(length, 0) + struct.pack(">I", 0) + b"8BIM" + block
        section += struct.pack(length, len(info)) + info + bytes(-len(info) % 4)
    if merged is None:
        merged = struct.pack(">H", 0) + bytes(3 * width * height * depth // 8)
    return (
        b"8BPS" + struct.pack(">H", version) + bytes(6) + struct.pack(">HIIHH", 3, height, width, depth, 3)
        + struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(length, len(section)) + section + merged
    )


def _rle_zeros(height: int, width: int, channels: int = 1) -> bytes:
    row = b""
    left = width
    while left > 0:
        run = min(left, 128)
        row += bytes([257 - run if run > 1 else 0, 0])
        left -= run
    rows = height * channels
    return struct.pack(f">{rows}H", *([len(row)] * rows)) + row * rows


def rle_layer(name: str, height: int, width: int) -> PsdLayer:
    """A layer of ``width``×``height`` zeros in RLE: a few bytes a row."""
    body = _rle_zeros(height, width)
    return PsdLayer(name, (0, 0, height, width), {i: (1, body) for i in (-1, 0, 1, 2)})


def rle_merged(height: int, width: int) -> bytes:
    """The merged image section of an RGB file, all zeros in RLE."""
    return struct.pack(">H", 1) + _rle_zeros(height, width, 3)


def nested_groups(depth: int) -> list[PsdLayer]:
    """``depth`` groups inside each other, one pixel layer at the bottom (PSD order)."""
    layers = [PsdLayer("</Layer group>", (0, 0, 0, 0), {i: (0, b"") for i in (-1, 0, 1, 2)}, divider=3)
              for _ in range(depth)]
    layers.append(raw_layer("pixel", 0, 0, 2, 2))
    layers += [PsdLayer(f"group {i}", (0, 0, 0, 0), {i: (0, b"") for i in (-1, 0, 1, 2)}, divider=1)
               for i in range(depth)]
    return layers


def ora(path: Path, width: int, height: int, layers: list[tuple[str, int, int]], members: dict[str, bytes]) -> Path:
    """An .ora with ``layers`` as ``(src, x, y)``, top first, and the zip ``members``."""
    import zipfile

    xml = f"<image w='{width}' h='{height}'><stack>" + "".join(
        f"<layer src='{src}' x='{x}' y='{y}'/>" for src, x, y in layers
    ) + "</stack></image>"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "image/openraster")
        zf.writestr("stack.xml", xml, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def safetensors(header: object, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data

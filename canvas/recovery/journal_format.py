"""The recovery journal's file format: framed, checksummed records of document state.

A journal file is ``MAGIC`` + a little-endian ``u16`` format version, then records. Each
record is ``u32 payload length`` + ``u32 CRC-32 of the payload`` + the payload; the
payload is ``u32 header length`` + a UTF-8 JSON header + the binary blobs the header
names (``"blobs"``: their lengths, in order). A record cut short by a crash, or whose
checksum does not match, ends the readable journal: it and anything after it are
dropped, and :func:`read_journal` says so.

Headers (see :mod:`sfumato.canvas.recovery.journal` for what writes them):

- ``"a"``: what happened — ``"snapshot"`` (the whole document; replay starts afresh),
  ``"execute"``, ``"merge"`` (folded into the previous step), ``"undo"``, ``"redo"``,
  ``"clean"`` (saved);
- ``"label"``, ``"t"`` (seconds since the epoch);
- ``"tiles"``: ``[layer id, tx, ty, blob index or -1 for "no tile"]`` per changed tile;
  a blob is the tile's ``TILE × TILE × 4`` straight RGBA bytes, zlib-compressed;
- ``"structure"`` (the layer tree and every layer's properties), ``"recipe"``,
  ``"selection"`` (``{"shape": [h, w], "blob": i}`` of float32 coverage, or ``null``),
  ``"size"``: present only when they changed;
- snapshot records also carry ``"clean"`` (whether that state was saved).

Imports numpy only; the numbers are little-endian on every machine.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"SFUMATO-JOURNAL\n"
FORMAT_VERSION = 1
_FRAME = struct.Struct("<II")
_U32 = struct.Struct("<I")
_VERSION = struct.Struct("<H")
HEADER_BYTES = len(MAGIC) + _VERSION.size


class JournalFormatError(ValueError):
    """The file is not a journal this version can read (the message says why)."""


@dataclass
class Record:
    header: dict[str, Any]
    blobs: list[bytes] = field(default_factory=list)


def file_header() -> bytes:
    return MAGIC + _VERSION.pack(FORMAT_VERSION)


def encode_record(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    """One framed record: the header gets the blob lengths, the frame a checksum."""
    header = dict(header, blobs=[len(b) for b in blobs])
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    payload = b"".join([_U32.pack(len(head)), head, *blobs])
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def compress_array(array: np.ndarray) -> bytes:
    """A tile's (or the selection's) bytes, zlib level 1: fast, and tiles compress well."""
    return zlib.compress(np.ascontiguousarray(array).tobytes(), 1)


def decompress_array(blob: bytes, shape: tuple[int, ...], dtype: np.dtype[Any] | type) -> np.ndarray:
    data = zlib.decompress(blob)
    array = np.frombuffer(data, dtype=dtype)
    if array.size != int(np.prod(shape)):
        raise JournalFormatError(f"a journal blob holds {array.size} values, expected {shape}")
    return array.reshape(shape).copy()


@dataclass
class JournalContents:
    records: list[Record]
    torn: bool  # a damaged or incomplete record was dropped at the end
    valid_bytes: int  # where the readable part ends


def read_journal(path: Path) -> JournalContents:
    """Every intact record of ``path``, stopping at the first torn or damaged one.

    Raises :class:`JournalFormatError` for a file that is not a journal, or a journal of
    another format version (never misread).
    """
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise JournalFormatError(f"{path} is not a Sfumato recovery journal")
    if len(data) < HEADER_BYTES:
        raise JournalFormatError(f"{path} is cut short before its version")
    (version,) = _VERSION.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise JournalFormatError(
            f"{path} is a recovery journal of format {version}; this Sfumato reads format "
            f"{FORMAT_VERSION}. Open it with the version of Sfumato that wrote it."
        )
    records: list[Record] = []
    pos = HEADER_BYTES
    torn = False
    while pos < len(data):
        if pos + _FRAME.size > len(data):
            torn = True
            break
        length, crc = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        payload = data[start : start + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            torn = True
            break
        try:
            records.append(_decode_payload(payload))
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalFormatError(f"{path}: a record passed its checksum but cannot be read ({exc})") from exc
        pos = start + length
    return JournalContents(records, torn, pos)


def _decode_payload(payload: bytes) -> Record:
    (head_len,) = _U32.unpack_from(payload, 0)
    header = json.loads(payload[_U32.size : _U32.size + head_len].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the record header is not an object")
    blobs: list[bytes] = []
    pos = _U32.size + head_len
    for size in header.pop("blobs"):
        blobs.append(payload[pos : pos + int(size)])
        pos += int(size)
    if pos != len(payload):
        raise ValueError("the blob lengths do not add up to the record")
    return Record(header, blobs)

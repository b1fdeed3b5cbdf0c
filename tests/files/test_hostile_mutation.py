"""Structure-aware mutation of PSD and PNG headers (issue 19): hypothesis rewrites one
declared field at a time (sizes, depths, colour types, section and channel lengths, layer
rectangles) with ordinary and extreme values. Every result opens or raises a
:class:`FileFormatError`, quickly: nothing else escapes, nothing runs away with memory.

Seeded (``derandomize``) and bounded: well under a minute.
"""

from __future__ import annotations

import contextlib
import struct
import time
import warnings
from pathlib import Path

import pytest
from hostilefiles import png, psd, raw_layer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sfumato.canvas.files.file_errors import FileFormatError
from sfumato.canvas.files.imageio import image_to_rgba
from sfumato.canvas.files.psd import load_psd

EXTREMES = st.sampled_from([0, 1, 2, 3, 4, 7, 8, 16, 32, 255, 256, 65535, 65536, 2**24, 2**31 - 1, 2**31, 2**32 - 1])
VALUES = st.one_of(EXTREMES, st.integers(0, 2**32 - 1))

BASE_PSD = psd(16, 12, [raw_layer("bg", 0, 0, 12, 16), raw_layer("spot", 2, 3, 4, 5, 90)])
BASE_PNG = png(6, 5, colour=6, rows=(b"\0" + b"\x80" * 24) * 5)

# (offset, struct format) of the fields worth lying about
_LAYER_INFO = 26 + 4 + 4 + 4  # after header, colour data, resources, layer section length
PSD_FIELDS = [
    (4, ">H"), (12, ">H"), (14, ">I"), (18, ">I"), (22, ">H"), (24, ">H"),  # version, channels, h, w, depth, mode
    (26, ">I"), (30, ">I"), (34, ">I"), (_LAYER_INFO, ">I"), (_LAYER_INFO + 4, ">h"),  # lengths, layer count
    (_LAYER_INFO + 6, ">i"), (_LAYER_INFO + 10, ">i"), (_LAYER_INFO + 14, ">i"), (_LAYER_INFO + 18, ">i"),  # rect
    (_LAYER_INFO + 22, ">H"), (_LAYER_INFO + 26, ">I"),  # channel count, first channel length
]
PNG_FIELDS = [(8, ">I"), (16, ">I"), (20, ">I"), (24, ">B"), (25, ">B"), (26, ">B"), (28, ">B"), (33, ">I")]


def mutate(data: bytes, field: tuple[int, str], value: int) -> bytes:
    offset, fmt = field
    size = struct.calcsize(fmt)
    limit = 1 << (8 * size)
    value %= limit
    if fmt.endswith(("h", "i")) and value >= limit // 2:
        value -= limit
    return data[:offset] + struct.pack(fmt, value) + data[offset + size :]


def opens_or_refuses(load: object, path: Path) -> None:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy overflow on the way
        with contextlib.suppress(FileFormatError):
            load(path)  # type: ignore[operator]
    assert time.perf_counter() - start < 5


@pytest.fixture(autouse=True)
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFUMATO_MEMORY_BUDGET", "32M")


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(PSD_FIELDS), value=VALUES, cut=st.one_of(st.none(), st.integers(0, len(BASE_PSD))))
def test_mutated_psd_headers_open_or_are_refused(tmp_path: Path, field: tuple[int, str], value: int, cut: int | None) -> None:
    path = tmp_path / "m.psd"
    path.write_bytes(mutate(BASE_PSD, field, value)[:cut])
    opens_or_refuses(load_psd, path)


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(PNG_FIELDS), value=VALUES, cut=st.one_of(st.none(), st.integers(0, len(BASE_PNG))))
def test_mutated_png_headers_open_or_are_refused(tmp_path: Path, field: tuple[int, str], value: int, cut: int | None) -> None:
    path = tmp_path / "m.png"
    path.write_bytes(mutate(BASE_PNG, field, value)[:cut])
    opens_or_refuses(image_to_rgba, path)

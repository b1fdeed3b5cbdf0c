"""A save that fails (a full disk) never destroys the last good file or its backup (issue 18).

The disk is a real 4 MiB tmpfs where this machine lets the test mount one (root in a
container), otherwise the same budget enforced by a file wrapper that raises ENOSPC the
way the kernel does; both run the same checks.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.files.file_errors import SaveError
from sfumato.canvas.files.ora import save_ora
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.vocabulary import atomic_file

DISK_BYTES = 4 * 1024 * 1024


class _Limited:
    """A binary file that refuses to grow past what the "disk" has left."""

    def __init__(self, handle, left: list[int]) -> None:  # noqa: ANN001
        self._handle = handle
        self._left = left

    def write(self, data) -> int:  # noqa: ANN001
        if len(data) > self._left[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left[0] -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._handle, name)

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


class _FullDiskOs:
    def __init__(self, left: list[int]) -> None:
        self._left = left

    def fdopen(self, fd: int, mode: str):  # noqa: ANN201
        return _Limited(os.fdopen(fd, mode), self._left)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(os, name)


@pytest.fixture(params=["tmpfs", "wrapper"])
def small_disk(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:  # noqa: ANN001
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
        if not mounted:  # no privilege here: the wrapper variant below runs the same checks
            pytest.skip("cannot mount a tmpfs on this machine; covered by the wrapper variant")
        try:
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=False)
        return
    monkeypatch.setattr(atomic_file, "os", _FullDiskOs([DISK_BYTES]))
    yield folder


def _document(side: int, seed: int) -> Document:
    doc = Document(side, side)
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 4), np.uint8)
    pixels[..., 3] = 255
    layer = PixelLayer("noise")
    editing.add_layer(doc, layer)
    editing.put_pixels(doc, layer, pixels)
    return doc


def test_a_save_that_fills_the_disk_leaves_the_file_and_its_backup(small_disk: Path) -> None:
    path = small_disk / "painting.ora"
    save_ora(_document(300, 1), path, backup=True)
    first = path.read_bytes()
    save_ora(_document(300, 2), path, backup=True)
    second = path.read_bytes()
    assert (small_disk / "painting.ora~").read_bytes() == first  # the backup is the previous save

    with pytest.raises(SaveError, match="No space left"):
        save_ora(_document(1400, 3), path, backup=True)  # ~7.5 MiB of noise: does not fit
    assert path.read_bytes() == second
    assert (small_disk / "painting.ora~").read_bytes() == first
    assert sorted(p.name for p in small_disk.iterdir()) == ["painting.ora", "painting.ora~"]  # no temp file

    save_ora(_document(300, 4), path, backup=True)  # and saving works again once it fits
    assert (small_disk / "painting.ora~").read_bytes() == second

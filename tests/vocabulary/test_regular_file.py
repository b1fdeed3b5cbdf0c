"""open_regular: regular files open; folders, pipes and missing files are refused at once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sfumato.vocabulary.regular_file import NotRegularFileError, open_regular, special_kind


def test_a_regular_file_opens_for_reading(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    with open_regular(path) as handle:
        assert handle.read() == b"abc"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(NotRegularFileError) as caught:
        open_regular(pipe)
    assert caught.value.kind == "a named pipe"
    assert caught.value.filename == str(pipe)


def test_a_folder_and_a_missing_file_raise_what_a_room_can_word(tmp_path: Path) -> None:
    with pytest.raises(OSError) as folder:
        open_regular(tmp_path)
    # Linux opens a folder read-only and fstat tells; elsewhere os.open refuses it.
    assert isinstance(folder.value, IsADirectoryError | PermissionError) or (
        isinstance(folder.value, NotRegularFileError) and folder.value.kind == "a folder"
    )
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing")


def test_special_kinds_in_words() -> None:
    assert special_kind(stat.S_IFDIR) == "a folder"
    assert special_kind(stat.S_IFIFO) == "a named pipe"
    assert special_kind(stat.S_IFCHR) == "a device"
    assert special_kind(stat.S_IFBLK) == "a device"
    assert special_kind(stat.S_IFSOCK) == "a socket"

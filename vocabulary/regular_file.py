"""How every file we read is opened: regular files only, never waiting on a named pipe.

A path a user gives may name a named pipe, a device or a socket; ``open`` on a pipe waits
for a writer forever. :func:`open_regular` opens non-blocking first and checks the open
descriptor with ``fstat`` (so a file swapped for a pipe in between is caught too). Each
room turns the plain errors raised here into its own: the document's file errors, the
engine's model errors.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["NotRegularFileError", "open_regular", "special_kind"]


class NotRegularFileError(OSError):
    """``path`` exists but is not a regular file; ``kind`` says what it is ("a folder",
    "a named pipe", "a device", "a socket" or "not a regular file")."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(f"{path} is {kind}")
        self.filename = str(path)
        self.kind = kind


def special_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words, when it is no regular file:
    "a folder", "a named pipe", "a device", "a socket" or "not a regular file"."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything but a regular file.

    Raises :class:`NotRegularFileError` for a folder, a pipe, a device or a socket, and
    the ``OSError`` of ``os.open`` (``FileNotFoundError``, ``PermissionError``, ...) as it is.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(path, special_kind(mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise

"""Atomic file replacement: write a temporary file next to the target, fsync, rename.

A reader (or a crash) sees either the complete old file or the complete new one, never a
half-written file, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(path: str | Path, backup: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` when the ``with`` block ends normally.

    With ``backup``, the file ``path`` held until then becomes ``path~`` (the backup file,
    as Krita keeps one) just before the new one takes its place; see :func:`keep_backup`.

    The temporary file lives in the target's folder (``os.replace`` is atomic only within
    one file system) and gets the mode the target had, or the usual mode for new files
    (0666 minus the umask). If the block raises, the temporary file is removed and the
    exception propagates; ``path`` is untouched.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if backup:
            keep_backup(target)
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + "~")


def keep_backup(target: Path) -> None:
    """Make the current ``target`` the backup ``target~``, replacing the older backup
    atomically; nothing happens when ``target`` does not exist yet.

    A hard link costs no space (the old file's data stays where it is when ``target`` is
    replaced); where links are refused, a copy is written next to it and renamed. If that
    fails (a full disk) the error propagates before ``target`` is touched, so the old
    file and the old backup both stay.
    """
    if not target.exists():
        return
    backup = backup_path(target)
    tmp = target.parent / f".{backup.name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            os.link(target, tmp)
        except OSError:
            import shutil

            shutil.copy2(target, tmp)
        os.replace(tmp, backup)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on a folder
        log.debug("fsync of folder %s failed: %s", folder, exc)
    finally:
        os.close(fd)

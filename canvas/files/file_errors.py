"""Typed errors for reading and writing files (OpenRaster, PNG/JPEG/WebP).

Every error names the file and the problem, and says what to do next where there is
something to do. All derive from :class:`FileFormatError`, so a caller that only wants
"could not open/save this file" catches one type; tests and the window can tell the
cases apart by subclass.
"""

from __future__ import annotations

from pathlib import Path


class FileFormatError(Exception):
    """A file could not be read or written; ``path`` is the file, ``problem`` the reason."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(where + problem)


class NotAnArchiveError(FileFormatError):
    """Not a zip file at all, or a truncated/damaged one."""


class MissingEntryError(FileFormatError):
    """A required part is missing (``stack.xml``, or a layer's ``src`` not in the zip)."""


class UnsafePathError(FileFormatError):
    """A zip entry or ``src`` name that could escape a folder (absolute, ``..``, ``\\``, ``C:``)."""


class MalformedXmlError(FileFormatError):
    """``stack.xml`` is not well-formed, uses DTDs/entities, or has the wrong structure."""


class CorruptImageError(FileFormatError):
    """An embedded or imported image is not what it claims to be, or cannot be decoded."""


class ImageTooLargeError(FileFormatError):
    """Dimensions or sizes beyond the safety limits (decompression and zip bombs)."""


class BadAttributeError(FileFormatError):
    """A ``sfumato:`` attribute (or another value we must understand) is not valid."""


class UnsupportedFormatError(FileFormatError):
    """A file type we do not read or write (the message lists the ones we do)."""


class SaveError(FileFormatError):
    """Writing failed; the previous file at the path is left as it was."""


# The name the OpenRaster reader's callers may know it by.
OraError = FileFormatError

"""The OpenRaster container: its names, the zip read within safety budgets, stack.xml parsed safely.

Below the reader (:mod:`sfumato.canvas.files.ora_read`) and the writer
(:mod:`sfumato.canvas.files.ora_write`): they speak of layers and attributes; this module speaks
of zip members and XML. Reading trusts nothing: member names that could escape a folder,
encrypted or duplicate members, archives that unpack beyond :data:`MAX_TOTAL_BYTES`,
DTDs and entity declarations, XML nested deeper than :data:`MAX_DEPTH` or holding more than
:data:`MAX_ELEMENTS` elements are all refused with a
:class:`~sfumato.canvas.files.file_errors.FileFormatError` that names the file. Nothing is ever
extracted to disk: members are read by name into memory.

The budgets (documented in ``docs/file-format.md``) are module globals read at call time,
so a test may lower them with ``monkeypatch.setattr(ora_archive, "MAX_ENTRIES", 5)``.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from xml.parsers import expat

from sfumato.canvas.files.file_errors import (
    ImageTooLargeError,
    MalformedXmlError,
    MissingEntryError,
    NotAnArchiveError,
    UnsafePathError,
)
from sfumato.canvas.files.imageio import png_header
from sfumato.canvas.files.limits import open_regular

log = logging.getLogger(__name__)

ORA_MIMETYPE = "image/openraster"
ORA_VERSION = "0.0.6"
SFUMATO_NS = "urn:sfumato:1"
#: Sfumato's attribute names in ElementTree's ``{namespace}name`` spelling: ``SFUMATO + "role"``
SFUMATO = "{" + SFUMATO_NS + "}"
ET.register_namespace("sfumato", SFUMATO_NS)

# Safety budgets for reading (documented in docs/file-format.md).
MAX_ENTRIES = 10_000  # zip members
MAX_STACK_XML_BYTES = 16 << 20  # 16 MiB of XML
MAX_ENTRY_BYTES = 1 << 30  # one member, uncompressed
MAX_TOTAL_BYTES = 4 << 30  # all members we read, uncompressed
MAX_DEPTH = 64  # nesting of stacks
MAX_ELEMENTS = 20_000  # XML elements in stack.xml

_ENTRY_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)
_DRIVE = re.compile(r"^[A-Za-z]:")


# -- reading -------------------------------------------------------------------------------
@contextmanager
def open_archive(path: Path) -> Iterator[OraArchive]:
    """Open ``path`` as an OpenRaster zip, its members' names, sizes and mimetype checked."""
    handle = open_regular(path)  # a named pipe or a device is refused, never waited on
    try:
        zf = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        handle.close()
        raise NotAnArchiveError(
            path,
            "is not an OpenRaster file: it is not a zip archive, or it is truncated or "
            f"damaged ({exc})",
        ) from exc
    with handle, zf:
        archive = OraArchive(path, zf)
        archive.check_entries()
        archive.check_mimetype()
        yield archive


@dataclass
class OraArchive:
    """An open .ora zip; every member read through it counts against the budgets."""

    path: Path
    zf: zipfile.ZipFile
    bytes_read: int = 0
    entries: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    headers: dict[str, tuple[int, int, int, int] | None] = field(default_factory=dict)

    def check_entries(self) -> None:
        infos = self.zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ImageTooLargeError(
                self.path, f"has {len(infos)} zip entries; at most {MAX_ENTRIES} are accepted"
            )
        total = 0
        for info in infos:
            check_member_name(info.filename, self.path)
            if info.filename in self.entries:
                raise NotAnArchiveError(self.path, f"has two zip entries named {info.filename!r}")
            self.entries[info.filename] = info
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ImageTooLargeError(
                self.path,
                f"unpacks to {total:,} bytes, more than the {MAX_TOTAL_BYTES:,} byte limit "
                "(a zip bomb, or a document too large to open)",
            )

    def check_mimetype(self) -> None:
        if "mimetype" not in self.entries:
            log.warning("%s has no mimetype entry; reading it anyway", self.path)
            return
        value = self.member("mimetype", limit=1024).decode("ascii", "replace").strip()
        if value != ORA_MIMETYPE:
            raise NotAnArchiveError(
                self.path, f"is a zip archive but not OpenRaster (its mimetype is {value!r})"
            )

    def stack_xml(self) -> ET.Element:
        """``stack.xml``, parsed (its root element, normally ``<image>``)."""
        if "stack.xml" not in self.entries:
            raise MissingEntryError(
                self.path, "has no stack.xml, so it is not an OpenRaster file (or it is damaged)"
            )
        return parse_xml(self.member("stack.xml", limit=MAX_STACK_XML_BYTES), self.path)

    def member(self, name: str, *, limit: int | None = None) -> bytes:
        """The bytes of member ``name`` (at most ``limit``, default :data:`MAX_ENTRY_BYTES`)."""
        limit = MAX_ENTRY_BYTES if limit is None else limit
        info = self.entries[name]
        if info.file_size > limit:
            raise ImageTooLargeError(
                self.path, f"entry {name!r} unpacks to {info.file_size:,} bytes (limit {limit:,})"
            )
        if info.flag_bits & 0x1:
            raise NotAnArchiveError(self.path, f"entry {name!r} is encrypted; OpenRaster files are not")
        self.bytes_read += info.file_size
        if self.bytes_read > MAX_TOTAL_BYTES:
            raise ImageTooLargeError(self.path, "the layers unpack to more than the size limit")
        try:
            # ZipExtFile never returns more than the declared file_size and checks the CRC.
            with self.zf.open(info) as member:
                data = member.read(info.file_size + 1)
        except RuntimeError as exc:  # encrypted
            raise NotAnArchiveError(self.path, f"entry {name!r} cannot be read: {exc}") from exc
        except _ENTRY_READ_ERRORS as exc:
            raise NotAnArchiveError(
                self.path, f"entry {name!r} is damaged or truncated ({exc})"
            ) from exc
        if len(data) > info.file_size:  # pragma: no cover - zipfile enforces it
            raise ImageTooLargeError(self.path, f"entry {name!r} is larger than it declares")
        return data

    def png_header(self, src: str) -> tuple[int, int, int, int] | None:
        """The IHDR of a layer PNG, read from its first bytes only (cached per entry)."""
        if src not in self.headers:
            info = self.entries[src]
            if info.flag_bits & 0x1:
                raise NotAnArchiveError(self.path, f"entry {src!r} is encrypted; OpenRaster files are not")
            try:
                with self.zf.open(info) as member:
                    head = member.read(33)
            except RuntimeError as exc:  # encrypted
                raise NotAnArchiveError(self.path, f"entry {src!r} cannot be read: {exc}") from exc
            except _ENTRY_READ_ERRORS as exc:
                raise NotAnArchiveError(self.path, f"entry {src!r} is damaged or truncated ({exc})") from exc
            self.headers[src] = png_header(head)
        return self.headers[src]


# -- writing -------------------------------------------------------------------------------
def write_entry(
    zf: zipfile.ZipFile, name: str, data: bytes, stamp: tuple[int, ...], *, stored: bool
) -> None:
    """Add member ``name`` (``stored``: uncompressed, as the mimetype and PNGs are)."""
    info = zipfile.ZipInfo(name, date_time=stamp)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


# -- names and XML -------------------------------------------------------------------------
class _FatalXml(Exception):
    """Raised from inside expat callbacks to stop parsing."""


def check_member_name(name: str, path: Path, what: str = "zip entry") -> None:
    """Refuse names that could escape a folder if anyone ever extracted them."""
    problem = None
    if not name:
        problem = "is empty"
    elif "\x00" in name:
        problem = "contains a NUL character"
    elif "\\" in name:
        problem = "contains a backslash"
    elif name.startswith("/"):
        problem = "is an absolute path"
    elif _DRIVE.match(name):
        problem = "starts with a drive letter"
    elif ".." in name.split("/"):
        problem = "contains '..'"
    if problem is not None:
        raise UnsafePathError(path, f"{what} {name!r} {problem}; refusing to read this file")


def parse_xml(data: bytes, path: Path) -> ET.Element:
    """Parse stack.xml with expat, refusing DTDs and entity declarations outright.

    Equivalent to defusedxml's protections for our needs: no DOCTYPE (so no entity
    expansion, billion laughs or external entities), bounded size, depth and element count.

    A file that uses a namespace prefix without declaring it (hand-written files often
    forget ``xmlns:sfumato``) is read again without namespace processing, with the
    ``sfumato:`` prefix mapped to its namespace and a warning.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MalformedXmlError(
            path, "stack.xml declares a DTD or entities, which are refused for safety"
        )
    try:
        return _parse_xml_once(data, namespaces=True)
    except _FatalXml as exc:
        raise MalformedXmlError(path, str(exc)) from None
    except expat.ExpatError as exc:
        if exc.code != expat.errors.codes[expat.errors.XML_ERROR_UNBOUND_PREFIX]:
            raise MalformedXmlError(path, f"stack.xml is not well-formed XML ({exc})") from None
        log.warning(
            "%s: stack.xml uses a namespace prefix it does not declare (%s); reading "
            "'sfumato:' as %s. Declare xmlns:sfumato=\"%s\" on <image>.",
            path, exc, SFUMATO_NS, SFUMATO_NS,
        )
    except (ValueError, AssertionError, LookupError) as exc:  # unbalanced input, unknown encoding
        raise MalformedXmlError(path, f"stack.xml is not well-formed XML ({exc})") from None
    try:
        return _parse_xml_once(data, namespaces=False)
    except _FatalXml as exc:
        raise MalformedXmlError(path, str(exc)) from None
    except (expat.ExpatError, ValueError, AssertionError, LookupError) as exc:
        raise MalformedXmlError(path, f"stack.xml is not well-formed XML ({exc})") from None


def _parse_xml_once(data: bytes, *, namespaces: bool) -> ET.Element:
    builder = ET.TreeBuilder()
    state = {"depth": 0, "count": 0}
    name = _clark if namespaces else _prefixed

    def refuse(*_: object) -> NoReturn:
        raise _FatalXml("stack.xml declares a DTD or entities, which are refused for safety")

    def start(tag: str, attrs: dict[str, str]) -> None:
        state["depth"] += 1
        state["count"] += 1
        if state["depth"] > MAX_DEPTH + 2:
            raise _FatalXml(f"stack.xml is nested deeper than {MAX_DEPTH} levels")
        if state["count"] > MAX_ELEMENTS:
            raise _FatalXml(f"stack.xml has more than {MAX_ELEMENTS} elements")
        builder.start(name(tag), {name(k): v for k, v in attrs.items() if not k.startswith("xmlns")})

    def end(tag: str) -> None:
        state["depth"] -= 1
        builder.end(name(tag))

    parser = expat.ParserCreate(namespace_separator=" ") if namespaces else expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(data, True)
    return builder.close()


def _prefixed(name: str) -> str:
    """Without namespace processing: ``sfumato:x`` → ``{urn:sfumato:1}x``; others as written."""
    prefix, sep, local = name.partition(":")
    return SFUMATO + local if sep and prefix == "sfumato" else name


def _clark(name: str) -> str:
    """expat's ``"uri local"`` → ElementTree's ``"{uri}local"``."""
    uri, sep, local = name.rpartition(" ")
    return "{" + uri + "}" + local if sep else name


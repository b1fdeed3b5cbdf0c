"""OpenRaster 0.0.6 (.ora) with Sfumato's AI recipe attributes: :func:`load_ora`, :func:`save_ora`.

The file is a zip: first entry ``mimetype`` (stored, exactly ``image/openraster``), then
``stack.xml``, one PNG per layer under ``data/``, ``mergedimage.png`` (the flattened
image) and ``Thumbnails/thumbnail.png`` (at most 256 px a side). ``stack.xml`` holds
``<image w h version>`` → one root ``<stack>`` → layers and nested stacks, **top first**.
The AI recipe lives in attributes of the namespace ``urn:sfumato:1`` (prefix
``sfumato``), which Krita, GIMP and MyPaint ignore; the full schema is in
``docs/file-format.md``.

Coordinates: each ``<layer>``'s PNG is cropped to the layer's content; its ``x``/``y``
are the crop's position relative to the enclosing stack (document space at the top
level).

This module is the format's public face; the work is done in three modules:

- :mod:`sfumato.canvas.files.ora_read` — ``stack.xml`` and the layer PNGs → a document; lenient
  about what other programs write, strict about safety; its budgets are the document's
  (``MAX_LAYER_PIXELS``, ``MAX_OFFSET``).
- :mod:`sfumato.canvas.files.ora_write` — a document → the zip, atomically, PNGs encoded on a
  few threads.
- :mod:`sfumato.canvas.files.ora_archive` — the container below both: the names (mimetype,
  version, namespace), the zip read within its budgets (``MAX_ENTRIES``,
  ``MAX_TOTAL_BYTES``, ``MAX_ELEMENTS``, ...) and ``stack.xml`` parsed without DTDs.

The budgets are not re-exported here: a test that lowers one sets it on the module that
owns it (``monkeypatch.setattr(ora_archive, "MAX_ENTRIES", 5)``), where the code reads it.
"""

from __future__ import annotations

from sfumato.canvas.files.ora_archive import ORA_MIMETYPE, ORA_VERSION, SFUMATO_NS
from sfumato.canvas.files.ora_read import load_ora
from sfumato.canvas.files.ora_write import THUMBNAIL_SIZE, save_ora

__all__ = ["ORA_MIMETYPE", "ORA_VERSION", "SFUMATO_NS", "THUMBNAIL_SIZE", "load_ora", "save_ora"]

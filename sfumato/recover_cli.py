"""``sfumato recover``: list and recover documents a crash left behind, without the window.

The same journals the window offers on start (:mod:`sfumato.canvas.recovery.recovery`), for an
artist whose window will not start, and for scripts::

    sfumato recover --list            # one line per document: ID, changes, time, name, path
    sfumato recover ID -o OUT.ora     # the document as it was at its last change
    sfumato recover ID --discard      # forget it
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sfumato.cli import CliError


def add_recover_parser(subparsers: Any) -> None:
    recover = subparsers.add_parser(
        "recover",
        help="list or recover documents left unsaved by a crash",
        description="Sfumato journals every change of an open document. After a crash, "
        "--list shows what can be recovered; 'recover ID -o OUT.ora' writes that document "
        "as it was at its last change (the original file is never touched).",
    )
    recover.add_argument("id", nargs="?", metavar="ID", help="a document's ID from --list")
    recover.add_argument("--list", action="store_true", help="list recoverable documents")
    recover.add_argument("-o", "--output", metavar="OUT.ora", type=Path, help="where to write the document")
    recover.add_argument("--discard", action="store_true", help="delete the journal of ID")
    recover.set_defaults(handler=run_recover)


def run_recover(args: argparse.Namespace) -> int:
    from sfumato.canvas.recovery.recovery import discard, list_recoverable, recover
    from sfumato.vocabulary.config import recovery_dir

    entries = list_recoverable(recovery_dir())
    if args.list or args.id is None:
        if args.output is not None or args.discard:
            raise CliError("name the document's ID (see 'sfumato recover --list')")
        for e in entries:
            state = f"cannot be recovered: {e.error}" if e.error else (
                f"{e.changes_since_save} change(s) since saved" + (", last record torn" if e.torn else "")
            )
            print(f"{e.id}\t{e.when}\t{e.name}\t{e.path or '(never saved)'}\t{state}")
        if not entries:
            print("nothing to recover")
        return 0
    entry = next((e for e in entries if e.id == args.id or e.id.startswith(args.id)), None)
    if entry is None:
        raise CliError(f"no recoverable document with ID {args.id!r} (see 'sfumato recover --list')")
    if args.discard:
        discard(entry.folder)
        print(f"discarded {entry.id} ({entry.name})")
        return 0
    if args.output is None:
        raise CliError("say where to write it: sfumato recover ID -o OUT.ora")
    if args.output.suffix.lower() != ".ora":
        raise CliError("recovered documents are written as OpenRaster: give OUT a .ora name")
    if entry.path and args.output.resolve() == Path(entry.path).resolve():
        raise CliError("write the recovered document to a new file; the original stays as it was")
    from sfumato.canvas.files.ora import save_ora

    recovered = recover(entry.folder)
    save_ora(recovered.doc, args.output)
    torn = " (its last, torn record was dropped)" if recovered.torn else ""
    print(f"recovered {entry.name}: {recovered.records - 1} change(s) replayed{torn} -> {args.output}")
    return 0

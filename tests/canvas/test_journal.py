"""The recovery journal: what is committed survives a kill, byte for byte (issue 18)."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from journalscript import RECORDED, _child, fingerprint, new_document, run_script
from sfumato.canvas import editing
from sfumato.canvas.model.history import HistoryChanged
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.recovery import journal as journal_module
from sfumato.canvas.recovery.journal import JOURNAL_FILE, Journal
from sfumato.canvas.recovery.journal_format import MAGIC, JournalFormatError, read_journal
from sfumato.canvas.recovery.recovery import list_recoverable, recover


def _undo_all(doc) -> None:  # type: ignore[no-untyped-def]
    while doc.history.can_undo:
        doc.undo()


@pytest.mark.parametrize("seed", range(6))
def test_recovery_equals_the_document_and_undo_steps_back_through_it(tmp_path: Path, seed: int) -> None:
    doc = new_document()
    journal = Journal(doc, tmp_path / "j", name="doc")
    run_script(doc, seed, 40)
    assert journal.flush()
    journal.close()
    got = recover(tmp_path / "j")
    assert fingerprint(got.doc) == fingerprint(doc)
    assert not got.torn
    # the rebuilt history is the artist's: same labels, and undo walks back the same way
    for _ in range(3):
        doc.undo()
        got.doc.undo()
        assert fingerprint(got.doc) == fingerprint(doc)
    _undo_all(doc)
    _undo_all(got.doc)
    assert fingerprint(got.doc) == fingerprint(doc)


def test_compaction_keeps_the_result(tmp_path: Path) -> None:
    doc = new_document()
    journal = Journal(doc, tmp_path / "j", name="doc", compact_records=7)
    run_script(doc, 11, 60)
    journal.flush()
    journal.close()
    contents = read_journal(tmp_path / "j" / JOURNAL_FILE)
    assert contents.records[0].header["a"] == "snapshot"
    assert len(contents.records) <= 7  # the file was started afresh from snapshots
    got = recover(tmp_path / "j")
    want = fingerprint(doc)
    have = fingerprint(got.doc)
    # history before the last snapshot is not replayed; everything else is identical
    assert {k: v for k, v in have.items() if k not in ("undo", "redo")} == {
        k: v for k, v in want.items() if k not in ("undo", "redo")
    }
    assert have["undo"] == want["undo"][: len(have["undo"])]


def _write_with_version(path: Path, version: int) -> None:
    path.write_bytes(MAGIC + struct.pack("<H", version))


def test_another_format_version_is_refused_not_misread(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    folder.mkdir()
    _write_with_version(folder / JOURNAL_FILE, 2)
    with pytest.raises(JournalFormatError, match="format 2; this Sfumato reads format 1"):
        recover(folder)
    (folder / JOURNAL_FILE).write_bytes(b"PK\x03\x04 not a journal")
    with pytest.raises(JournalFormatError, match="not a Sfumato recovery journal"):
        recover(folder)
    entries = list_recoverable(tmp_path)
    assert [e.error is not None for e in entries] == [True]  # listed with its reason


def test_listing_skips_live_journals_and_drops_saved_ones(tmp_path: Path) -> None:
    live_doc = new_document()
    live = Journal(live_doc, tmp_path / "live", name="open")
    run_script(live_doc, 1, 5)
    live.flush()
    saved_doc = new_document()
    saved = Journal(saved_doc, tmp_path / "saved", name="saved")
    run_script(saved_doc, 2, 5)
    saved_doc.history.mark_clean()
    saved.flush()
    saved.close()
    crashed_doc = new_document()
    crashed = Journal(crashed_doc, tmp_path / "crashed", name="crashed", path=Path("/art/fox.ora"))
    run_script(crashed_doc, 3, 8)
    crashed.flush()
    crashed.close()
    entries = list_recoverable(tmp_path)
    assert [(e.id, e.name, e.path) for e in entries] == [("crashed", "crashed", "/art/fox.ora")]
    assert entries[0].changes_since_save > 0
    assert not (tmp_path / "saved").exists()  # nothing unsaved: removed
    live.discard()
    assert not (tmp_path / "live").exists()


def test_a_torn_last_record_is_dropped_and_reported(tmp_path: Path) -> None:
    doc = new_document()
    journal = Journal(doc, tmp_path / "j", name="doc")
    run_script(doc, 5, 20)
    journal.flush()
    before = fingerprint(doc)
    journal.close()
    path = tmp_path / "j" / JOURNAL_FILE
    whole = path.read_bytes()
    doc2 = new_document()  # one more record, cut in half by "the crash"
    j2 = Journal(doc2, tmp_path / "k", name="doc")
    layer = next(doc2.pixel_layers())
    editing.put_pixels(doc2, layer, np.full((40, 40, 4), 7, np.uint8))
    j2.flush()
    j2.close()
    extra = read_journal(tmp_path / "k" / JOURNAL_FILE)
    tail = (tmp_path / "k" / JOURNAL_FILE).read_bytes()[extra_offset(extra):]
    path.write_bytes(whole + tail[: len(tail) // 2])
    got = recover(tmp_path / "j")
    assert got.torn
    assert fingerprint(got.doc) == before
    assert {e.id: e.torn for e in list_recoverable(tmp_path)} == {"j": True, "k": False}


def extra_offset(contents) -> int:  # type: ignore[no-untyped-def]
    """Where the last record of a journal starts."""
    from sfumato.canvas.recovery.journal_format import HEADER_BYTES, encode_record

    pos = HEADER_BYTES
    for record in contents.records[:-1]:
        pos += len(encode_record(record.header, record.blobs))
    return pos


def test_a_full_disk_shows_an_error_and_painting_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []
    doc = new_document()
    journal = Journal(doc, tmp_path / "j", name="doc", on_status=errors.append)
    layer = next(doc.pixel_layers())
    real_encode = journal_module._encode
    full = [True]

    def enospc(*args):  # type: ignore[no-untyped-def]
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "j" / JOURNAL_FILE))
        return real_encode(*args)

    monkeypatch.setattr(journal_module, "_encode", enospc)
    editing.put_pixels(doc, layer, np.full((30, 30, 4), 9, np.uint8))
    journal.flush()
    assert errors and "No space left on device" in str(errors[0])
    assert journal.error is not None
    editing.put_pixels(doc, layer, np.full((30, 30, 4), 200, np.uint8), 100, 100)  # painting goes on
    full[0] = False  # space again: the next commit starts a fresh snapshot and all is kept
    editing.put_pixels(doc, layer, np.full((30, 30, 4), 90, np.uint8), 300, 100)
    journal.flush()
    assert journal.error is None
    assert errors[-1] is None  # told that the journal is written again
    journal.close()
    got = recover(tmp_path / "j")
    assert {k: v for k, v in fingerprint(got.doc).items() if k not in ("undo", "redo")} == {
        k: v for k, v in fingerprint(doc).items() if k not in ("undo", "redo")
    }


def test_the_gui_thread_only_freezes_tiles(tmp_path: Path) -> None:
    """A commit hands frozen tile references to the writer; painting on copies them."""
    doc = new_document()
    journal = Journal(doc, tmp_path / "j", name="doc")
    layer = next(doc.pixel_layers())
    assert isinstance(layer, PixelLayer)
    tile = layer.surface.tile((0, 0))
    assert not layer.surface.frozen_tile((0, 0)).flags.writeable  # type: ignore[union-attr]
    editing.put_pixels(doc, layer, np.zeros((10, 10, 4), np.uint8))
    assert not np.array_equal(layer.surface.tile((0, 0)), tile)  # the frozen one is untouched
    journal.discard()


# -- killed for real --------------------------------------------------------------------
def _fork_child(folder: Path, seed: int, n: int, mode: str, at: float) -> list[tuple[int, int]]:
    """Run the scripted painter in a forked process that SIGKILLs itself; its progress lines."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_fd)
            sys.stdout = os.fdopen(write_fd, "w", buffering=1)
            _child(str(folder), seed, n, mode, at)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.close(write_fd)
    with os.fdopen(read_fd) as out:
        lines = out.read().split("\n")
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return [(int(p[1]), int(p[2])) for p in (line.split() for line in lines) if p and p[0] == "committed"]


class _Reached(Exception):
    pass


def _state_after_records(seed: int, n: int, records: int) -> dict[str, object]:
    """The uncrashed script's state after its first ``records`` journal records (the
    snapshot is the first): fingerprinted at that history event, the script then stopped."""
    doc = new_document()
    if records == 1:
        return fingerprint(doc)
    seen = [1]
    found: list[dict[str, object]] = []

    def on_change(event: HistoryChanged) -> None:
        if event.action in RECORDED:
            seen[0] += 1
            if seen[0] == records:
                found.append(fingerprint(doc))

    def after(_: int) -> None:
        if found:
            raise _Reached

    doc.history.changed.connect(on_change)
    with contextlib.suppress(_Reached):
        run_script(doc, seed, n, after)
    assert found, f"the script makes fewer than {records} records"
    return found[0]


@pytest.fixture
def kill_dir(tmp_path: Path) -> Iterator[Path]:
    """Memory-backed where there is one: a SIGKILL leaves the page cache to the kernel, so
    fsync adds nothing to what this test can see, only seconds."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="sfumato-kill-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _kill_trials(tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    modes = {"after": 0, "torn": 0, "timer": 0}
    for trial in range(trials):
        mode = rng.choice(list(modes))
        modes[mode] += 1
        script, n = rng.randrange(1 << 20), rng.randrange(5, 30)
        at = rng.uniform(0.0, 0.4) if mode == "timer" else rng.randrange(0, n)
        folder = tmp_path / f"t{trial}"
        progress = _fork_child(folder, script, n, mode, at)
        written = progress[-1][1] if progress else 1
        if not (folder / JOURNAL_FILE).exists():
            assert mode == "timer" and not progress  # killed before the journal began
            continue
        got = recover(folder)
        where = f"trial {trial}: {mode} at {at} of script {script} (n={n})"
        assert got.records >= written, f"{where}: {written} records were on disk, {got.records} recovered"
        if mode == "after":
            assert got.records == written, where
        if mode == "torn" and progress and progress[-1][0] < n:
            assert got.torn, where
        assert fingerprint(got.doc) == _state_after_records(script, n, got.records), where
    assert all(modes.values()), modes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked process")
def test_killed_at_random_points_recovery_is_the_committed_prefix(kill_dir: Path) -> None:
    _kill_trials(kill_dir, 100, seed=2026)


@pytest.mark.soak
@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked process")
def test_killed_at_random_points_many_trials(kill_dir: Path) -> None:
    _kill_trials(kill_dir, 1000, seed=int.from_bytes(os.urandom(4), "little"))

"""Undo/redo: a bounded stack of commands (in the manner of MyPaint's ``lib/command.py``).

Every user-visible change to a document is a :class:`Command` executed through the
document's :class:`History`. A command knows how to ``redo`` (apply) and ``undo`` itself,
how much memory it holds (``nbytes``) and whether a following command of the same kind
can be folded into it (``merge_with``: dragging an opacity slider is one undo step).

The history is bounded: when the commands it holds exceed ``max_steps`` or
``max_bytes`` the oldest are dropped (the newest one is always kept, so the last action
can be undone however big it is).

Clean state ("no unsaved changes") is tracked by serial numbers: each command pushed or
merged gets a fresh serial; the state is clean when the serial of the command on top of
the undo stack equals the one recorded by :meth:`History.mark_clean`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from sfumato.canvas.model.events import Emitter

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_STEPS = 200


class HistoryBusyError(RuntimeError):
    """Raised when the history is used while a transaction (a stroke) is open."""


class Command(ABC):
    """One undoable change. Subclasses hold what they need to go both ways.

    ``redo`` applies the change (the first call does the work), ``undo`` reverts it. A
    command must validate in ``redo`` *before* mutating anything, so a refused command
    leaves the document untouched.
    """

    label: str = "Edit"

    @abstractmethod
    def redo(self) -> None: ...

    @abstractmethod
    def undo(self) -> None: ...

    def merge_with(self, other: Command) -> bool:
        """Fold ``other`` (already applied) into this command; True if it was absorbed."""
        return False

    def nbytes(self) -> int:
        """Memory this command holds for undo/redo, in bytes (pixels and arrays)."""
        return 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


class MacroCommand(Command):
    """Several commands as one undo step (undone in reverse order)."""

    def __init__(self, label: str, commands: list[Command]) -> None:
        self.label = label
        self.commands = list(commands)

    def redo(self) -> None:
        for command in self.commands:
            command.redo()

    def undo(self) -> None:
        for command in reversed(self.commands):
            command.undo()

    def nbytes(self) -> int:
        return sum(c.nbytes() for c in self.commands)


class HistoryAction(Enum):
    EXECUTE = "execute"
    MERGE = "merge"
    UNDO = "undo"
    REDO = "redo"
    CLEAN = "clean"
    CLEAR = "clear"
    TRIM = "trim"


@dataclass(frozen=True)
class HistoryChanged:
    """Emitted on :attr:`History.changed` after every change of the stacks or clean state."""

    action: HistoryAction
    command: Command | None = None


_serials = itertools.count(1)


class History:
    """The undo and redo stacks of one document."""

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, max_steps: int = DEFAULT_MAX_STEPS
    ) -> None:
        if max_steps < 1 or max_bytes < 0:
            raise ValueError("history needs max_steps >= 1 and max_bytes >= 0")
        self._max_bytes = max_bytes
        self._max_steps = max_steps
        self._undo: list[tuple[int, Command]] = []  # (serial, command), oldest first
        self._redo: list[tuple[int, Command]] = []  # next to redo last
        self._base_serial = 0  # serial of the state below the oldest undoable command
        self._clean_serial: int | None = 0  # a new document is clean
        # bytes each command held when last pushed, merged, undone or redone (a command's
        # size changes only then), so bounding the memory costs O(1) per change, not O(n)
        self._sizes: dict[int, int] = {}
        self._total = 0
        self._holder: object | None = None
        self._busy = False
        self._group: list[Command] | None = None
        self.changed: Emitter[HistoryChanged] = Emitter()

    # -- configuration ---------------------------------------------------------------------
    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def max_steps(self) -> int:
        return self._max_steps

    def configure(self, *, max_bytes: int | None = None, max_steps: int | None = None) -> None:
        """Change the bounds; commands beyond the new bounds are dropped, oldest first."""
        if max_bytes is not None:
            if max_bytes < 0:
                raise ValueError("max_bytes must be >= 0")
            self._max_bytes = max_bytes
        if max_steps is not None:
            if max_steps < 1:
                raise ValueError("max_steps must be >= 1")
            self._max_steps = max_steps
        self._trim()

    # -- transactions ---------------------------------------------------------------------
    def hold(self, owner: object) -> None:
        """Refuse execute/undo/redo until ``release(owner)`` (an open stroke holds it)."""
        if self._holder is not None and self._holder is not owner:
            raise HistoryBusyError("another edit is in progress; finish or cancel it first")
        self._holder = owner

    def release(self, owner: object) -> None:
        if self._holder is owner:
            self._holder = None

    @property
    def busy(self) -> bool:
        return self._holder is not None or self._busy

    def _check_free(self) -> None:
        if self._holder is not None:
            raise HistoryBusyError(
                "a stroke is still in progress; end or abort it before undoing or editing"
            )
        if self._busy:
            raise HistoryBusyError("a command tried to run while another one was running")

    def _check_no_group(self) -> None:
        if self._group is not None:
            raise HistoryBusyError("cannot undo or redo inside a history group; finish the group first")

    # -- the stacks -----------------------------------------------------------------------
    def execute(self, command: Command) -> Command:
        """Apply ``command`` and push it (or merge it into the top command).

        Returns the command now on top (``command`` itself, or the one it merged into).
        If ``redo`` raises, nothing is pushed and the error propagates.
        """
        self._check_free()
        self._busy = True
        try:
            command.redo()
        finally:
            self._busy = False
        if self._group is not None:
            self._group.append(command)
            return command
        return self._push(command)

    def record(self, command: Command, owner: object | None = None) -> Command:
        """Push a command whose effect is already applied (a stroke at pen-up)."""
        if owner is not None:
            self.release(owner)
        self._check_free()
        if self._group is not None:
            self._group.append(command)
            return command
        return self._push(command)

    @contextlib.contextmanager
    def group(self, label: str) -> Iterator[None]:
        """Make every command executed inside the block one undo step named ``label``.

        If the block raises, the commands it ran are undone and the error propagates.
        Nested groups join the outer one.
        """
        if self._group is not None:
            yield
            return
        collected: list[Command] = []
        self._group = collected
        try:
            yield
        except BaseException:
            self._group = None
            for command in reversed(collected):
                command.undo()
            raise
        self._group = None
        if collected:
            self._push(collected[0] if len(collected) == 1 else MacroCommand(label, collected))

    def _push(self, command: Command) -> Command:
        for serial, _ in self._redo:
            self._forget_size(serial)
        self._redo.clear()
        if self._undo:
            serial, top = self._undo[-1]
            if serial != self._clean_serial and top.merge_with(command):
                new_serial = next(_serials)
                self._undo[-1] = (new_serial, top)
                self._forget_size(serial)
                self._note_size(new_serial, top)
                self._trim()
                self.changed.emit(HistoryChanged(HistoryAction.MERGE, top))
                return top
        serial = next(_serials)
        self._undo.append((serial, command))
        self._note_size(serial, command)
        self._trim()
        self.changed.emit(HistoryChanged(HistoryAction.EXECUTE, command))
        return command

    def undo(self) -> Command | None:
        """Undo the newest command; returns it, or None when there is nothing to undo."""
        self._check_free()
        self._check_no_group()
        if not self._undo:
            return None
        serial, command = self._undo.pop()
        self._busy = True
        try:
            command.undo()
        except Exception:
            self._undo.append((serial, command))
            raise
        finally:
            self._busy = False
        self._redo.append((serial, command))
        self._note_size(serial, command)
        self.changed.emit(HistoryChanged(HistoryAction.UNDO, command))
        return command

    def redo(self) -> Command | None:
        """Redo the most recently undone command; returns it, or None."""
        self._check_free()
        self._check_no_group()
        if not self._redo:
            return None
        serial, command = self._redo.pop()
        self._busy = True
        try:
            command.redo()
        except Exception:
            self._redo.append((serial, command))
            raise
        finally:
            self._busy = False
        self._undo.append((serial, command))
        self._note_size(serial, command)
        self.changed.emit(HistoryChanged(HistoryAction.REDO, command))
        return command

    def clear(self) -> None:
        """Forget every command (after loading a file); the current state becomes clean."""
        self._undo.clear()
        self._redo.clear()
        self._sizes.clear()
        self._total = 0
        self._base_serial = next(_serials)
        self._clean_serial = self._base_serial
        self.changed.emit(HistoryChanged(HistoryAction.CLEAR))

    # -- queries --------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        """Label of the command ``undo`` would revert ("Undo <label>" in a menu)."""
        return self._undo[-1][1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1][1].label if self._redo else None

    def undo_labels(self) -> list[str]:
        """Labels of the undoable commands, newest first (for a history panel)."""
        return [c.label for _, c in reversed(self._undo)]

    def redo_labels(self) -> list[str]:
        """Labels of the redoable commands, next first."""
        return [c.label for _, c in reversed(self._redo)]

    def __len__(self) -> int:
        return len(self._undo) + len(self._redo)

    @property
    def undo_count(self) -> int:
        return len(self._undo)

    @property
    def redo_count(self) -> int:
        return len(self._redo)

    def nbytes(self) -> int:
        """Memory held by every command on both stacks, in bytes (as each command last
        reported it: when it was pushed, merged, undone or redone)."""
        return self._total

    def _note_size(self, serial: int, command: Command) -> None:
        size = command.nbytes()
        self._total += size - self._sizes.get(serial, 0)
        self._sizes[serial] = size

    def _forget_size(self, serial: int) -> None:
        self._total -= self._sizes.pop(serial, 0)

    # -- clean state ----------------------------------------------------------------------
    def _current_serial(self) -> int:
        return self._undo[-1][0] if self._undo else self._base_serial

    def mark_clean(self) -> None:
        """Record the current state as saved."""
        self._clean_serial = self._current_serial()
        self.changed.emit(HistoryChanged(HistoryAction.CLEAN))

    def mark_unsaved(self) -> None:
        """Record that no state reachable by undo/redo is the saved one (a recovered
        document whose file is older than its contents)."""
        self._clean_serial = None
        self.changed.emit(HistoryChanged(HistoryAction.CLEAN))

    @property
    def is_clean(self) -> bool:
        """True when the document is in the state last marked clean (nothing unsaved)."""
        return self._current_serial() == self._clean_serial

    # -- bounds ---------------------------------------------------------------------------
    def _trim(self) -> None:
        dropped = 0
        while len(self._undo) + len(self._redo) > self._max_steps and len(self._undo) > 1:
            self._drop_oldest()
            dropped += 1
        while self._total > self._max_bytes and len(self._undo) > 1:
            self._drop_oldest()
            dropped += 1
        if dropped:
            log.debug("history dropped %d oldest command(s)", dropped)
            self.changed.emit(HistoryChanged(HistoryAction.TRIM))

    def _drop_oldest(self) -> None:
        serial, _command = self._undo.pop(0)
        self._base_serial = serial
        self._forget_size(serial)

"""Live painting's scheduling: when to start a frame, when to cancel one, what changed.

The live mode re-renders the picture as the artist paints. Its decisions live here, outside
Qt, as a small state machine fed with what happened and when (``now`` in seconds, from any
monotonic clock) and answering with what to do (:class:`Start`, :class:`Cancel`,
:class:`Clear`). The window adapts it: document events → :meth:`LiveScheduler.changed`,
the worker's events → :meth:`job_step` / :meth:`job_done`, and one single-shot timer set to
:meth:`LiveScheduler.deadline` (no polling). A test drives it with a fake clock.

The rules:

- **Event-driven, debounced.** A change marks the picture dirty and arms a start
  ``debounce`` seconds later; each further change re-arms it, so a burst of strokes starts
  one frame after the burst. The debounce adapts to the measured frame time (a tenth of it,
  between :data:`MIN_DEBOUNCE_S` and :data:`MAX_DEBOUNCE_S`): a fast model follows the
  brush closely, a slow one waits for the artist to pause.
- **Provisional changes** (the dabs of a stroke still in progress) start a frame only when
  nothing runs and the last start is at least a frame time ago (a bounded rate); they never
  cancel a running frame. Pen-up is an ordinary change.
- **At most one job.** A change while a job runs either cancels it — only when that pays:
  the job still needs more than half a frame and more than one step, measured — or waits
  as the single pending frame (later changes fold into it). After a cancel nothing starts
  until the worker says the job stopped (within one step), so two jobs never overlap.
- **Latest wins.** Every start carries the revision (a count of changes) it renders; the
  frame of the last start reflects the last change.
- A failed job starts nothing by itself (no retry loop); the next change tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfumato.canvas.model.document import (
    ActiveLayerChanged,
    LayerPropertyChanged,
    PixelsChanged,
)
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import Role

__all__ = [
    "Cancel",
    "Clear",
    "LiveScheduler",
    "Start",
    "affects_picture",
    "changed_rect",
]

#: Debounce bounds, in seconds (the debounce is a tenth of the measured frame time).
MIN_DEBOUNCE_S = 0.03
MAX_DEBOUNCE_S = 0.3
#: The frame time assumed before anything was measured.
FIRST_FRAME_S = 1.0
#: Weight of the newest measurement in the running averages.
SMOOTHING = 0.5
#: A running job is cancelled only when it needs more than this share of a frame to finish.
CANCEL_SHARE = 0.5
#: Layer properties that do not change the picture (renaming, locking, the record of how a
#: result was made).
NEUTRAL_PROPERTIES = frozenset({"name", "locked", "generation"})


def affects_picture(event: Any) -> bool:
    """Whether a document event can change what the model would make of the document.

    Pixels of a hidden layer, renames, locks, the active layer: no. Pixels of any visible
    layer (paint, masks, regions, controls), visibility, opacity, blend, offsets, roles and
    their prompts, the tree, the selection, the recipe, a reset: yes.
    """
    if isinstance(event, ActiveLayerChanged):
        return False
    if isinstance(event, LayerPropertyChanged):
        return event.name not in NEUTRAL_PROPERTIES
    if isinstance(event, PixelsChanged):
        return bool(event.layer.effectively_visible())
    return True


def changed_rect(event: Any) -> Rect | None:
    """The document rectangle an event changed, or ``None`` for "anywhere". Pixels of a
    reference layer are a picture the whole generation follows, wherever they lie: they
    change "anywhere" (the live window stays where it was)."""
    if isinstance(event, PixelsChanged) and event.layer.role is not Role.REFERENCE:
        return event.rect
    return None


@dataclass(frozen=True)
class Start:
    """Start a frame rendering the document as of ``revision``.

    ``dirty`` is the union of the rectangles changed since the last finished frame
    (``None``: anywhere); ``latest`` the rectangle of the newest change (the brush).
    """

    job: int
    revision: int
    dirty: Rect | None
    latest: Rect | None


@dataclass(frozen=True)
class Cancel:
    job: int


@dataclass(frozen=True)
class Clear:
    """Live mode ended: remove the live frame from the canvas."""


Action = Start | Cancel | Clear


@dataclass
class _Running:
    start: Start
    started_at: float
    steps_done: int = 0
    steps_total: int = 0
    last_step_at: float | None = None
    cancelling: bool = False


class LiveScheduler:
    """The live loop's decisions (see the module docstring). Not thread-safe: one caller."""

    def __init__(self) -> None:
        self.enabled = False
        self.revision = 0  # changes seen
        self.frame_s = FIRST_FRAME_S  # measured time of a whole frame
        self._measured = False  # whether frame_s is measured or still the first guess
        self.step_s: float | None = None  # measured time of one step
        self.started = 0  # frames started (for the statistics)
        self.cancelled = 0  # frames cancelled
        self._next_job = 1
        self._running: _Running | None = None
        self._rendered = 0  # revision of the last frame started and not cancelled
        self._due: float | None = None  # when the pending change may start
        self._provisional = False  # the pending change is a stroke in progress
        self._last_start: float | None = None
        self._dirty: Rect | None = None
        self._dirty_all = False
        self._latest: Rect | None = None

    # -- queries -------------------------------------------------------------------------
    @property
    def debounce_s(self) -> float:
        return min(MAX_DEBOUNCE_S, max(MIN_DEBOUNCE_S, self.frame_s / 10))

    @property
    def busy(self) -> bool:
        """Whether a frame is being rendered (or stopping)."""
        return self._running is not None

    @property
    def pending(self) -> bool:
        """Whether the picture changed since the last frame started."""
        return self.enabled and self.revision > self._rendered

    @property
    def running_job(self) -> int | None:
        return None if self._running is None else self._running.start.job

    def deadline(self) -> float | None:
        """When :meth:`tick` should next be called, or ``None`` if nothing waits on time."""
        if not self.pending or self._running is not None:
            return None
        due = self._due if self._due is not None else 0.0
        if self._provisional and self._last_start is not None:
            due = max(due, self._last_start + self.frame_s)
        return due

    # -- inputs --------------------------------------------------------------------------
    def enable(self, now: float) -> list[Action]:
        """Turn live mode on: the first frame renders the document as it is."""
        if self.enabled:
            return []
        self.enabled = True
        self._rendered = self.revision
        self._mark(now, None, provisional=False)
        self._due = now
        return self.tick(now)

    def disable(self, now: float) -> list[Action]:
        """Turn live mode off: cancel what runs, forget what waits, clear the frame."""
        if not self.enabled:
            return []
        self.enabled = False
        actions: list[Action] = []
        if self._running is not None and not self._running.cancelling:
            self._running.cancelling = True
            self.cancelled += 1
            actions.append(Cancel(self._running.start.job))
        self._due = None
        self._rendered = self.revision
        self._reset_dirty()
        actions.append(Clear())
        return actions

    def changed(self, now: float, rect: Rect | None = None, *, provisional: bool = False) -> list[Action]:
        """The picture changed at ``rect`` (``None``: anywhere); ``provisional`` while a
        stroke is still being painted."""
        if not self.enabled:
            return []
        # A stroke in progress keeps the start it armed (a dab every few milliseconds would
        # otherwise push it back for as long as the stroke lasts); the rate bounds it.
        keep_due = provisional and self.pending and self._provisional and self._due is not None
        self._mark(now, rect, provisional=provisional)
        if not keep_due:
            self._due = now + self.debounce_s
        return self.tick(now)

    def tick(self, now: float) -> list[Action]:
        """Time passed: start the pending frame if it is due, or cancel what runs if that
        pays."""
        if not self.pending:
            return []
        running = self._running
        if running is not None:
            if self._provisional or running.cancelling or not self._cancel_pays(running, now):
                return []
            running.cancelling = True
            self.cancelled += 1
            return [Cancel(running.start.job)]
        deadline = self.deadline()
        if deadline is not None and now + 1e-9 < deadline:
            return []
        return [self._start(now)]

    def job_step(self, job: int, now: float, step: int, total: int) -> list[Action]:
        """The worker finished step ``step`` (1-based) of ``total`` of ``job``."""
        running = self._running
        if running is None or running.start.job != job:
            return []
        previous = running.last_step_at if running.last_step_at is not None else running.started_at
        # The first step also carries the job's setup (encoding, model warm-up): it still
        # counts, as that time is paid again by a fresh job.
        self.step_s = self._smooth(self.step_s, now - previous)
        running.steps_done, running.steps_total, running.last_step_at = step, total, now
        return self.tick(now)

    def job_done(self, job: int, now: float, *, finished: bool) -> list[Action]:
        """``job`` ended: it ``finished`` with a frame, or it was cancelled or failed."""
        running = self._running
        if running is None or running.start.job != job:
            return []
        self._running = None
        if finished:
            frame_s = now - running.started_at
            self.frame_s = self._smooth(self.frame_s if self._measured else None, frame_s)
            self._measured = True
            if running.start.revision == self.revision:
                self._reset_dirty()
        elif running.cancelling:
            self._rendered = min(self._rendered, running.start.revision - 1)
        if not self.enabled:
            return []
        return self.tick(now)

    # -- internals -----------------------------------------------------------------------
    def _mark(self, now: float, rect: Rect | None, *, provisional: bool) -> None:
        self.revision += 1
        if self.revision - 1 == self._rendered:
            self._provisional = provisional  # the first change of a new pending frame
        else:
            self._provisional = self._provisional and provisional
        if rect is None:
            self._dirty_all = True
        else:
            self._dirty = rect if self._dirty is None else self._dirty.union(rect)
        self._latest = rect

    def _reset_dirty(self) -> None:
        self._dirty, self._dirty_all, self._latest = None, False, None

    def _start(self, now: float) -> Start:
        start = Start(
            job=self._next_job,
            revision=self.revision,
            dirty=None if self._dirty_all else self._dirty,
            latest=self._latest,
        )
        self._next_job += 1
        self._running = _Running(start, started_at=now)
        self._rendered = self.revision
        self._last_start = now
        self._due = None
        self.started += 1
        return start

    def _cancel_pays(self, running: _Running, now: float) -> bool:
        """Whether stopping ``running`` now gives the artist the new frame sooner by a
        margin worth the frame thrown away: it needs more than half a frame and more than
        one step to finish (estimated from the measured step and frame times)."""
        if self._due is not None and now + 1e-9 < self._due:
            return False  # the change is still settling: decide when it is due
        elapsed = now - running.started_at
        if running.steps_total and self.step_s is not None:
            remaining = (running.steps_total - running.steps_done) * self.step_s
        else:
            remaining = self.frame_s - elapsed
        one_step = self.step_s if self.step_s is not None else 0.0
        return remaining > CANCEL_SHARE * self.frame_s and remaining > one_step

    @staticmethod
    def _smooth(old: float | None, new: float) -> float:
        new = max(new, 0.0)
        return new if old is None else (1 - SMOOTHING) * old + SMOOTHING * new

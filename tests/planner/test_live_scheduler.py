"""The live loop's decisions, driven by a fake clock and a simulated worker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from sfumato.canvas.model.document import (
    ActiveLayerChanged,
    Document,
    LayerPropertyChanged,
    PixelsChanged,
    RecipeChanged,
    SelectionChanged,
    StructureChanged,
)
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer
from sfumato.planner.live import (
    MAX_DEBOUNCE_S,
    MIN_DEBOUNCE_S,
    Cancel,
    Clear,
    LiveScheduler,
    Start,
    affects_picture,
    changed_rect,
)

DT = 0.001  # the simulation's clock resolution, seconds


@dataclass
class _Job:
    start: Start
    next_step_at: float
    step: int = 0
    cancelling: bool = False


@dataclass
class Sim:
    """A worker that takes ``step_s`` a step and ``steps`` steps a frame, and stops at the
    next step boundary when cancelled — driven as the window drives it: every action is
    carried out, ticks happen only at the scheduler's deadline and on worker events."""

    step_s: float
    steps: int
    sched: LiveScheduler = field(default_factory=LiveScheduler)
    now: float = 0.0
    job: _Job | None = None
    starts: list[tuple[float, Start]] = field(default_factory=list)
    frames: list[tuple[float, int]] = field(default_factory=list)  # (time, revision)
    cancels: list[int] = field(default_factory=list)
    clears: int = 0
    ticks: int = 0

    def apply(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Start):
                assert self.job is None, "two jobs at once"
                self.starts.append((self.now, action))
                self.job = _Job(action, self.now + self.step_s)
            elif isinstance(action, Cancel):
                assert self.job is not None and self.job.start.job == action.job
                self.job.cancelling = True
                self.cancels.append(action.job)
            elif isinstance(action, Clear):
                self.clears += 1

    def run_until(self, end: float, changes: list[tuple[float, Rect | None, bool]] = ()) -> None:
        pending = sorted(changes, key=lambda c: c[0])
        while self.now < end - 1e-12:
            self.now = round(self.now + DT, 6)
            while pending and pending[0][0] <= self.now + 1e-9:
                _, rect, provisional = pending.pop(0)
                self.apply(self.sched.changed(self.now, rect, provisional=provisional))
            job = self.job
            if job is not None and self.now + 1e-9 >= job.next_step_at:
                job.step += 1
                job.next_step_at = self.now + self.step_s
                if job.cancelling:
                    self.job = None
                    self.apply(self.sched.job_done(job.start.job, self.now, finished=False))
                elif job.step == self.steps:
                    self.job = None
                    self.frames.append((self.now, job.start.revision))
                    self.apply(self.sched.job_done(job.start.job, self.now, finished=True))
                else:
                    self.apply(self.sched.job_step(job.start.job, self.now, job.step, self.steps))
            deadline = self.sched.deadline()
            if deadline is not None and self.now + 1e-9 >= deadline:
                self.ticks += 1
                self.apply(self.sched.tick(self.now))


def _warm(sim: Sim) -> None:
    """Turn live on and let the first frame finish, so the times are measured."""
    sim.apply(sim.sched.enable(sim.now))
    sim.run_until(sim.now + sim.step_s * sim.steps * 3)
    assert len(sim.frames) == 1 and sim.sched.step_s is not None


@pytest.mark.parametrize("step_s, steps", [(0.05, 8), (0.2, 4), (0.01, 20)])
def test_a_burst_of_strokes_starts_at_most_two_frames_after_it_and_ends_on_the_last(step_s: float, steps: int) -> None:
    sim = Sim(step_s, steps)
    _warm(sim)
    t0 = sim.now
    burst = [(t0 + 0.05 * i, Rect(10 * i, 0, 8, 8), False) for i in range(10)]
    end_of_burst = burst[-1][0]
    sim.run_until(end_of_burst + step_s * steps * 4, burst)
    after = [s for t, s in sim.starts if t > end_of_burst + 1e-9]
    assert len(after) <= 2
    assert sim.frames[-1][1] == sim.sched.revision  # the last frame shows the last stroke
    assert sim.job is None and not sim.sched.pending


def test_a_change_that_cannot_affect_the_picture_starts_nothing() -> None:
    doc = Document(64, 64)
    layer = PixelLayer("paint")
    hidden = PixelLayer("hidden", visible=False)
    doc.root.append(layer)
    doc.root.append(hidden)
    neutral = [
        LayerPropertyChanged(layer, "name"),
        LayerPropertyChanged(layer, "locked"),
        ActiveLayerChanged(layer),
        PixelsChanged(hidden, Rect(0, 0, 4, 4)),
    ]
    picture = [
        PixelsChanged(layer, Rect(0, 0, 4, 4)),
        LayerPropertyChanged(layer, "opacity"),
        LayerPropertyChanged(layer, "visible"),
        LayerPropertyChanged(layer, "blend"),
        LayerPropertyChanged(layer, "prompt"),
        StructureChanged(layer),
        SelectionChanged(),
        RecipeChanged(),
    ]
    assert [affects_picture(e) for e in neutral] == [False] * len(neutral)
    assert [affects_picture(e) for e in picture] == [True] * len(picture)
    assert changed_rect(picture[0]) == Rect(0, 0, 4, 4) and changed_rect(picture[1]) is None

    # Through the scheduler as the window feeds it: only picture events reach ``changed``.
    sim = Sim(0.05, 4)
    _warm(sim)
    starts = len(sim.starts)
    for event in neutral:
        if affects_picture(event):
            sim.apply(sim.sched.changed(sim.now, changed_rect(event)))
    sim.run_until(sim.now + 2.0)
    assert len(sim.starts) == starts and not sim.sched.pending


def test_a_job_about_to_finish_is_not_cancelled_the_change_waits_for_it() -> None:
    sim = Sim(0.1, 10)
    _warm(sim)
    sim.apply(sim.sched.changed(sim.now, Rect(0, 0, 4, 4)))
    sim.run_until(sim.now + 0.2)  # started
    running = sim.job
    assert running is not None
    # 8 of 10 steps done: 0.2 s left of a 1 s frame — not worth throwing away.
    sim.run_until(running.next_step_at + 0.1 * 7 - 0.01)
    assert running.step == 8
    sim.run_until(sim.now + 0.02, [(sim.now + 0.01, Rect(5, 5, 4, 4), False)])
    assert sim.cancels == []
    sim.run_until(sim.now + 3.0)
    assert sim.cancels == []
    assert [rev for _, rev in sim.frames][-2:] == [sim.sched.revision - 1, sim.sched.revision]


def test_a_job_just_started_is_cancelled_within_one_step_when_the_picture_changes() -> None:
    sim = Sim(0.1, 10)
    _warm(sim)
    sim.apply(sim.sched.changed(sim.now, Rect(0, 0, 4, 4)))
    sim.run_until(sim.now + 0.15)
    first = sim.job
    assert first is not None and first.step <= 1
    changed_at = sim.now + 0.01
    sim.run_until(sim.now + 0.5, [(changed_at, Rect(5, 5, 4, 4), False)])
    assert sim.cancels == [first.start.job]
    # Stopped within one step of the decision, and the next frame started right after.
    restart = [t for t, s in sim.starts if s.job > first.start.job][0]
    assert restart - changed_at <= sim.sched.debounce_s + 2 * sim.step_s + 2 * DT
    sim.run_until(sim.now + 3.0)
    assert sim.frames[-1][1] == sim.sched.revision


def test_strokes_in_progress_render_at_a_bounded_rate_and_never_cancel() -> None:
    sim = Sim(0.05, 4)  # 0.2 s frames
    _warm(sim)
    t0 = sim.now
    dabs = [(t0 + 0.01 * i, Rect(i, 0, 4, 4), True) for i in range(1, 200)]  # a 2 s stroke
    sim.run_until(t0 + 2.0, dabs)
    during = [t for t, _ in sim.starts if t > t0]
    assert sim.cancels == []
    assert 3 <= len(during) <= 2.0 / sim.sched.frame_s + 1  # follows, but not faster than frames
    gaps = np.diff(during)
    assert gaps.min() >= sim.sched.frame_s * 0.9
    # Pen-up: an ordinary change; the last frame shows the finished stroke.
    sim.run_until(sim.now + 1.0, [(sim.now + 0.001, Rect(0, 0, 4, 4), False)])
    assert sim.frames[-1][1] == sim.sched.revision


def test_toggling_off_cancels_the_running_frame_and_clears_and_starts_nothing_more() -> None:
    sim = Sim(0.1, 10)
    _warm(sim)
    sim.apply(sim.sched.changed(sim.now, None))
    sim.run_until(sim.now + 0.1)
    running = sim.job
    assert running is not None
    sim.apply(sim.sched.changed(sim.now, Rect(0, 0, 2, 2)))  # pending too
    sim.apply(sim.sched.disable(sim.now))
    assert sim.cancels == [running.start.job] and sim.clears == 1
    starts = len(sim.starts)
    sim.run_until(sim.now + 2.0, [(sim.now + 0.5, Rect(0, 0, 2, 2), False)])
    assert len(sim.starts) == starts and sim.job is None
    assert not sim.sched.busy and not sim.sched.pending
    # On again: one frame of the document as it is now.
    sim.apply(sim.sched.enable(sim.now))
    sim.run_until(sim.now + 3.0)
    assert len(sim.starts) == starts + 1 and sim.frames[-1][1] == sim.sched.revision


def test_the_debounce_follows_the_measured_frame_time() -> None:
    fast, slow = Sim(0.01, 4), Sim(0.5, 8)
    _warm(fast)
    _warm(slow)
    assert fast.sched.debounce_s == pytest.approx(MIN_DEBOUNCE_S)
    assert slow.sched.debounce_s == pytest.approx(MAX_DEBOUNCE_S)
    assert fast.sched.frame_s == pytest.approx(0.04, abs=0.005)


def test_starts_carry_the_changed_rectangles_and_the_latest_one() -> None:
    sim = Sim(0.05, 4)
    _warm(sim)
    t = sim.now
    sim.run_until(t + 1.0, [(t + 0.001, Rect(0, 0, 4, 4), False), (t + 0.002, Rect(20, 20, 4, 4), False)])
    start = sim.starts[-1][1]
    assert start.dirty == Rect(0, 0, 24, 24) and start.latest == Rect(20, 20, 4, 4)
    t = sim.now
    sim.run_until(t + 1.0, [(t + 0.001, None, False)])
    assert sim.starts[-1][1].dirty is None  # "anywhere"


def test_a_failed_frame_is_not_retried_until_the_next_change() -> None:
    sched = LiveScheduler()
    (start,) = sched.enable(0.0)
    assert isinstance(start, Start)
    assert sched.job_done(start.job, 0.5, finished=False) == []
    assert sched.deadline() is None and not sched.busy
    (again,) = sched.changed(1.0, Rect(0, 0, 1, 1)) or sched.tick(1.0 + sched.debounce_s)
    assert isinstance(again, Start) and again.job != start.job

"""The generation worker's contract, without a window or a model (a scripted engine):
its signals carry only the planner's and the engine's values, it runs one job at a time
on one engine, latest wins, and any one job can be cancelled by its id."""

from __future__ import annotations

import ast
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from genfixtures import FakeEngine
from PySide6.QtCore import QObject
from sfumato.desktop.worker import FailureKind, GenerationWorker, PlanInput
from sfumato.inference.events import Progress
from sfumato.planner.plan import Plan
from sfumato.planner.recipe import GenerationSettings
from windowdocs import small_document

TIMEOUT = 10_000
SIGNALS = (
    "planned", "started_job", "loading", "engine_ready", "progress", "preview", "finished", "failed", "cancelled",
)


class Recorder(QObject):
    """Lives on the GUI thread: records every signal of a worker as (name, args, thread)."""

    def __init__(self, worker: GenerationWorker) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...], threading.Thread]] = []
        for name in SIGNALS:
            getattr(worker, name).connect(getattr(self, f"on_{name}"))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("on_") and attr[3:] in SIGNALS:
            return lambda *args: self.calls.append((attr[3:], args, threading.current_thread()))
        raise AttributeError(attr)

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [args for signal, args, _ in self.calls if signal == name]

    def ids(self, name: str) -> list[int]:
        return [args[0] for args in self.args(name)]


class CountingEngine(FakeEngine):
    """A scripted engine that counts the runs going on at once, the model loads and the
    steps it reports after its cancel token was set."""

    def __init__(self, step_delay: float = 0.0) -> None:
        super().__init__(step_delay)
        self.active = 0
        self.most = 0
        self.lock = threading.Lock()
        self.cache = self  # the worker loads a new model ahead of a run through engine.cache.get
        self.loads: list[str] = []
        self.steps_after_cancel = 0

    def get(self, model: Any) -> None:
        self.loads.append(model.source)

    def run(self, request: Any, on_event: Any, cancel: Any) -> None:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        def counted(event: Any) -> None:
            if isinstance(event, Progress) and cancel.is_set():
                self.steps_after_cancel += 1
            on_event(event)

        try:
            super().run(request, counted, cancel)
        finally:
            with self.lock:
                self.active -= 1


def settings(**changes: Any) -> GenerationSettings:
    values: dict[str, Any] = {"prompt": "a cat", "model": "fake-model", "seed": 3, "steps": 2}
    values.update(changes)
    return GenerationSettings(**values)


@pytest.fixture
def engine() -> CountingEngine:
    return CountingEngine()


@pytest.fixture
def made() -> list[threading.Thread]:
    return []


@pytest.fixture
def worker(qtbot: Any, engine: CountingEngine, made: list[threading.Thread]) -> Any:
    def factory() -> CountingEngine:
        made.append(threading.current_thread())
        return engine

    worker = GenerationWorker(factory)  # type: ignore[arg-type]
    yield worker
    assert worker.shutdown(), "the worker thread did not stop"


def _plain(value: Any) -> bool:
    """A value of the planner, the engine or Python: no Qt object, no desktop object
    (the worker's own :class:`FailureKind` enum aside)."""
    if value is None or isinstance(value, bool | int | float | str | np.ndarray | np.generic | FailureKind):
        return True
    if isinstance(value, tuple | list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return type(value).__module__.startswith(("sfumato.planner.", "sfumato.inference.", "sfumato.vocabulary."))


def test_signals_carry_only_planner_and_engine_values(worker: Any, engine: CountingEngine, qtbot: Any) -> None:
    recorder = Recorder(worker)
    doc = small_document()
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        job = worker.submit(PlanInput(doc, settings(batch=2)))
    with qtbot.waitSignal(worker.failed, timeout=TIMEOUT):  # a plan error: no model chosen
        failing = worker.submit(PlanInput(doc, settings(model=None)))
    qtbot.waitUntil(lambda: len(recorder.args("failed")) == 1, timeout=TIMEOUT)

    names = {name for name, _, _ in recorder.calls}
    assert {"planned", "started_job", "progress", "preview", "finished", "failed"} <= names, names
    for name, args, thread in recorder.calls:
        assert thread is threading.main_thread(), f"{name} reached the GUI on another thread"
        assert all(_plain(value) for value in args), (name, [type(value) for value in args])

    ((planned_job, planned),) = recorder.args("planned")
    assert planned_job == job and isinstance(planned, Plan)
    assert recorder.calls.index(next(c for c in recorder.calls if c[0] == "planned")) < recorder.calls.index(
        next(c for c in recorder.calls if c[0] == "started_job")
    ), "the plan comes before the job starts"
    assert planned.request is engine.requests[0], "the engine runs the request the worker planned"
    for preview_job, rgb in recorder.args("preview"):
        assert preview_job == job and rgb.dtype == np.uint8 and rgb.ndim == 3
    ((finished_job, images, metadata),) = recorder.args("finished")
    assert finished_job == job and isinstance(images, tuple) and len(images) == 2
    assert all(image.shape == (planned.size.height, planned.size.width, 3) for image in images)
    assert metadata == {"seeds": [3, 4], "seconds": 0.01}
    ((failed_job, message, kind),) = recorder.args("failed")
    assert failed_job == failing and kind is FailureKind.PLAN and "model" in message
    assert len(engine.requests) == 1, "a job that cannot be planned never reaches the engine"


def test_jobs_share_one_engine_and_the_model_loads_once(
    worker: Any, engine: CountingEngine, made: list[threading.Thread], qtbot: Any
) -> None:
    for seed in (1, 2, 3):
        with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
            worker.submit(PlanInput(small_document(), settings(seed=seed)))
    assert len(made) == 1 and made[0] is not threading.main_thread()
    assert engine.loads == ["fake-model"], "the model was loaded again between jobs"
    assert [request.seed for request in engine.requests] == [1, 2, 3]


def test_latest_wins_and_one_job_runs_at_a_time(worker: Any, engine: CountingEngine, qtbot: Any) -> None:
    recorder = Recorder(worker)
    engine.step_delay = 0.02
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT):
        first = worker.submit(PlanInput(small_document(), settings(steps=200)))
    second = worker.submit(PlanInput(small_document(), settings(steps=200)))
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        third = worker.submit(PlanInput(small_document(), settings(steps=2, prompt="third")))
    qtbot.waitUntil(lambda: {first, second} <= set(recorder.ids("cancelled")), timeout=TIMEOUT)
    assert recorder.ids("finished") == [third]
    assert engine.most == 1, "two jobs ran at once"
    assert second not in recorder.ids("started_job"), "a replaced job that was still waiting never starts"
    assert engine.requests[-1].prompt == "third"


def test_cancel_stops_the_given_job_within_a_step(worker: Any, engine: CountingEngine, qtbot: Any) -> None:
    recorder = Recorder(worker)
    engine.step_delay = 0.02
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT):
        job = worker.submit(PlanInput(small_document(), settings(steps=500)))
    assert not worker.cancel(job + 1), "no such job: nothing is cancelled"
    with qtbot.waitSignal(worker.progress, timeout=TIMEOUT):
        pass  # the job still runs
    assert worker.cancel(job)
    qtbot.waitUntil(lambda: recorder.ids("cancelled") == [job], timeout=TIMEOUT)
    assert engine.steps_after_cancel <= 1, "the run went on after its cancel"
    assert not recorder.args("finished") and not worker.busy
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):  # the worker serves the next job
        worker.submit(PlanInput(small_document(), settings()))


def test_the_worker_runs_no_desktop_code() -> None:
    """The worker thread runs the planner and the engine only: worker.py imports no other
    desktop module (its signals' values are made elsewhere, see the controller)."""
    import sfumato.desktop.worker as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    desktop = sorted(name for name in imported if name.startswith("sfumato.desktop"))
    assert not desktop, desktop


def test_submit_takes_a_request_or_something_to_plan(worker: Any) -> None:
    with pytest.raises(TypeError):
        worker.submit(object())  # type: ignore[arg-type]
    assert not worker.isRunning(), "nothing was started"

"""A window action that runs an estimator (depth, pose) over the visible picture on the
generation worker and puts its result in the active layer as one undo step.

The picture is flattened on the GUI thread (copy-on-write, fast) and sent to the worker,
which owns the engine; the job shares the worker's queue with generation (latest wins). A
subclass says which layers it serves (:meth:`EstimatorAction.problem`), what job it sends
(:meth:`EstimatorAction.work`), which worker signal brings the result back
(:meth:`EstimatorAction.result_signal`) and how the result is placed
(:meth:`EstimatorAction.place`). A result for a canvas that changed size meanwhile is
dropped with a message; a missing estimator fails with the engine's message, which says
what to download and where to put it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import Layer, PixelLayer
from sfumato.desktop.worker import FailureKind, GenerationWorker

__all__ = ["EstimatorAction"]


class EstimatorAction(QObject):
    """See the module docstring. ``message(text)`` is for the status bar; ``placed(layer)``
    after the result is in the layer; ``model`` optionally names the estimator folder
    (else the engine finds the installed one)."""

    message = Signal(str)
    placed = Signal(object)

    #: the action's name, as menus and messages say it
    label = ""
    #: what the status bar says while it runs
    working = ""

    def __init__(self, worker: Callable[[], GenerationWorker | None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._connected: GenerationWorker | None = None
        self._job: tuple[int, Document, PixelLayer, tuple[int, int]] | None = None
        self.model: str | None = None

    # -- what a subclass says --------------------------------------------------------------
    def problem(self, layer: Layer | None) -> str | None:
        """Why ``layer`` cannot take the result, or ``None`` when it can."""
        raise NotImplementedError

    def work(self, doc: Document) -> Any:
        """The worker job for ``doc``'s visible picture."""
        raise NotImplementedError

    def result_signal(self, worker: GenerationWorker) -> Any:
        """The worker's signal ``(job, result)`` that brings the result back."""
        raise NotImplementedError

    def place(self, doc: Document, layer: PixelLayer, result: Any) -> str | None:
        """Put ``result`` in ``layer`` (one undo step); the message to show when done, or
        ``None`` when nothing was placed (having said why through :attr:`message`)."""
        raise NotImplementedError

    # -- the job ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._job is not None

    def run(self, doc: Document | None, layer: Layer | None) -> int | None:
        """Start the estimator for ``layer``; the job id, or ``None`` when it cannot start
        (the reason goes to ``message``)."""
        if doc is None:
            return None
        problem = self.problem(layer)
        if problem is not None:
            self.message.emit(problem)
            return None
        assert isinstance(layer, PixelLayer)
        worker = self._worker()
        if worker is None:
            self.message.emit(f"{self.label} needs the inference engine, which is not set up in this window.")
            return None
        self._connect(worker)
        job = worker.submit(self.work(doc))
        self._job = (job, doc, layer, (doc.width, doc.height))
        self.message.emit(self.working)
        return job

    def _connect(self, worker: GenerationWorker) -> None:
        if self._connected is worker:
            return
        self.result_signal(worker).connect(self._on_result)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._connected = worker

    def _take(self, job: int) -> tuple[Document, PixelLayer, tuple[int, int]] | None:
        """This action's job ``job`` (forgotten as it is taken), else ``None``."""
        if self._job is None or self._job[0] != job:
            return None
        _, doc, layer, size = self._job
        self._job = None
        return doc, layer, size

    def _on_result(self, job: int, result: Any) -> None:
        taken = self._take(job)
        if taken is None:
            return
        doc, layer, size = taken
        if size != (doc.width, doc.height):
            self.message.emit(f"{self.label}: the canvas changed size meanwhile; try again.")
            return
        try:
            done = self.place(doc, layer, result)
        except Exception as exc:  # noqa: BLE001 - a refused edit (layer gone, locked) is a message
            self.message.emit(f"{self.label}: cannot place the result: {exc}")
            return
        if done is not None:
            self.message.emit(done)
            self.placed.emit(layer)

    def _on_failed(self, job: int, text: str, _kind: FailureKind) -> None:
        if self._take(job) is not None:
            self.message.emit(f"{self.label} failed: {text}")

    def _on_cancelled(self, job: int) -> None:
        if self._take(job) is not None:
            self.message.emit(f"{self.label} was cancelled.")

"""The background inference thread: it owns the :class:`~sfumato.inference.engine.Engine`.

Threading contract
------------------
- :class:`GenerationWorker` is a ``QThread``. The engine is created lazily *inside* the
  thread on the first request, so ``torch`` and ``diffusers`` are imported there, never
  on the GUI thread, and never before the user first generates.
- Requests go in through :meth:`GenerationWorker.submit` (callable from the GUI thread):
  a single pending slot guarded by a condition variable, **latest wins** — submitting
  while a job runs cancels the running one, and a request still waiting is replaced.
  This is what a live mode needs: only the newest document state is worth generating.
- Events come out as Qt signals emitted from the worker thread; receivers on the GUI
  thread get them as queued calls. Every signal carries the ``job`` id that
  :meth:`submit` returned, so a receiver can drop late events of a superseded job.
- :meth:`cancel` sets the running job's cancel flag; the engine checks it before every
  denoising step, so the run ends within one step with a ``cancelled`` signal.
- Every failure (out of memory, no model, bad model file, the engine failing to start)
  becomes one ``failed`` signal; the thread keeps serving requests afterwards.
- :meth:`shutdown` cancels, stops the loop and joins the thread (call it on window close).

Images in signals are numpy ``uint8`` RGB ``(h, w, 3)`` arrays owned by the receiver
(the engine hands over fresh arrays); preview ``rect`` is ``(x, y, w, h)`` in request
pixels (see :mod:`sfumato.inference.events`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal
from sfumato.inference.cancel import CancelToken
from sfumato.inference.request import GenerationRequest

if TYPE_CHECKING:
    from sfumato.inference.engine import Engine

log = logging.getLogger(__name__)

__all__ = ["EngineFactory", "FailureKind", "GenerationWorker", "failure_kind"]

#: Makes the engine, called once on the worker thread (tests pass a CPU engine on tiny models).
EngineFactory = Callable[[], "Engine"]


class FailureKind(Enum):
    """What went wrong, so the window can choose its words and offer the next step."""

    OUT_OF_MEMORY = "out_of_memory"
    MODEL_NOT_FOUND = "model_not_found"
    BAD_MODEL = "bad_model"
    UNSUPPORTED = "unsupported"
    OFFLINE = "offline"
    INVALID_REQUEST = "invalid_request"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    OTHER = "other"


def failure_kind(error: BaseException) -> FailureKind:
    """Classify an engine error by its type (no torch needed: the errors module is pure)."""
    from sfumato.inference import errors

    table: tuple[tuple[type[BaseException], FailureKind], ...] = (
        (errors.OutOfMemoryError, FailureKind.OUT_OF_MEMORY),
        (errors.ModelNotFoundError, FailureKind.MODEL_NOT_FOUND),
        (errors.CorruptModelError, FailureKind.BAD_MODEL),
        (errors.UnsafeModelError, FailureKind.BAD_MODEL),
        (errors.UnsupportedModeError, FailureKind.UNSUPPORTED),
        (errors.NetworkUnavailableError, FailureKind.OFFLINE),
        (errors.InvalidRequestError, FailureKind.INVALID_REQUEST),
    )
    for cls, kind in table:
        if isinstance(error, cls):
            return kind
    return FailureKind.OTHER


def default_engine() -> Engine:
    """The engine with automatic device choice (imports torch: worker thread only)."""
    from sfumato.inference.engine import Engine

    return Engine()


@dataclass(frozen=True)
class _Job:
    id: int
    request: GenerationRequest
    cancel: CancelToken


class GenerationWorker(QThread):
    """See the module docstring. Signals (all carry the job id first):

    - ``started_job(job)``: the job left the queue and runs now;
    - ``progress(job, step, total)``;
    - ``preview(job, rgb, rect)``: ``rgb`` uint8 (h, w, 3), ``rect`` (x, y, w, h) request px;
    - ``finished(job, images, metadata)``: ``images`` a tuple of uint8 (H, W, 3);
    - ``failed(job, message, kind)``: ``kind`` a :class:`FailureKind`;
    - ``cancelled(job)``.
    """

    started_job = Signal(int)
    progress = Signal(int, int, int)
    preview = Signal(int, object, object)
    finished = Signal(int, object, object)
    failed = Signal(int, str, object)
    cancelled = Signal(int)

    def __init__(self, engine_factory: EngineFactory | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sfumatoGenerationWorker")
        self._factory = engine_factory or default_engine
        self._engine: Engine | None = None
        self._cond = threading.Condition(threading.RLock())
        self._pending: _Job | None = None
        self._running: _Job | None = None
        self._stopping = False
        self._next_id = 0

    # -- GUI-thread API --------------------------------------------------------------------
    @property
    def engine(self) -> Engine | None:
        """The engine once the worker made it (``None`` before the first request)."""
        return self._engine

    def submit(self, request: GenerationRequest) -> int:
        """Queue ``request`` (latest wins: a waiting one is dropped, a running one
        cancelled); starts the thread on first use; returns the job id."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("the generation worker has been shut down")
            self._next_id += 1
            job = _Job(self._next_id, request, CancelToken())
            dropped = self._pending
            self._pending = job
            if self._running is not None:
                self._running.cancel.cancel()
            self._cond.notify_all()
        if dropped is not None:
            log.debug("job %d replaced by job %d before it started", dropped.id, job.id)
            self.cancelled.emit(dropped.id)
        if not self.isRunning():
            self.start()
        return job.id

    def cancel(self) -> bool:
        """Cancel the running and the waiting job; True when there was one."""
        with self._cond:
            had = self._running is not None or self._pending is not None
            dropped, self._pending = self._pending, None
            if self._running is not None:
                self._running.cancel.cancel()
        if dropped is not None:
            self.cancelled.emit(dropped.id)
        return had

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or self._pending is not None

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything, stop the loop and join the thread; True when it ended.

        A run is cancelled within one denoising step; loading a model cannot be
        interrupted, so the wait is bounded by ``timeout_ms``.
        """
        with self._cond:
            self._stopping = True
            self._pending = None
            if self._running is not None:
                self._running.cancel.cancel()
            self._cond.notify_all()
        if not self.isRunning():
            return True
        ended = self.wait(timeout_ms)
        if not ended:
            log.warning("the generation worker did not stop within %d ms", timeout_ms)
        return bool(ended)

    # -- worker thread ---------------------------------------------------------------------
    def run(self) -> None:  # noqa: D401 - QThread API
        log.debug("generation worker started")
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
                job = self._pending
                assert job is not None
                self._pending = None
                self._running = job
            try:
                self._run_job(job)
            except Exception as error:  # noqa: BLE001 - the thread must survive anything
                log.exception("generation job %d crashed", job.id)
                self.failed.emit(job.id, f"Generation failed: {error}", FailureKind.OTHER)
            finally:
                with self._cond:
                    self._running = None
        self._engine = None
        log.debug("generation worker stopped")

    def _ensure_engine(self, job: _Job) -> Engine | None:
        if self._engine is not None:
            return self._engine
        try:
            self._engine = self._factory()
        except Exception as error:  # noqa: BLE001 - torch missing, broken install, bad device
            log.exception("the inference engine cannot start")
            self.failed.emit(
                job.id,
                f"The inference engine cannot start ({error}). Check that PyTorch is installed "
                "for this computer, then try again.",
                FailureKind.ENGINE_UNAVAILABLE,
            )
            return None
        return self._engine

    def _run_job(self, job: _Job) -> None:
        from sfumato.inference.events import Cancelled, Failed, Finished, Preview, Progress

        if job.cancel.is_set():
            self.cancelled.emit(job.id)
            return
        self.started_job.emit(job.id)
        engine = self._ensure_engine(job)
        if engine is None:
            return

        def on_event(event: Any) -> None:
            if isinstance(event, Progress):
                self.progress.emit(job.id, event.step, event.total)
            elif isinstance(event, Preview):
                self.preview.emit(job.id, event.rgb, event.rect.as_tuple())
            elif isinstance(event, Finished):
                self.finished.emit(job.id, tuple(event.images), dict(event.metadata))
            elif isinstance(event, Failed):
                self.failed.emit(job.id, event.error.user_message, failure_kind(event.error))
            elif isinstance(event, Cancelled):
                self.cancelled.emit(job.id)

        engine.run(job.request, on_event, job.cancel)

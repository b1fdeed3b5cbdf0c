"""The background inference thread: it owns the :class:`~sfumato.inference.engine.Engine`.

Threading contract
------------------
- :class:`GenerationWorker` is a ``QThread``. The engine is created lazily *inside* the
  thread on the first job, so ``torch`` and ``diffusers`` are imported there, never on
  the GUI thread, and never before the user first generates. The engine (and the models
  its cache holds) lives as long as the worker: jobs never reload a model.
- A job is a :class:`GenerationRequest`, or a :class:`PlanInput` (a document snapshot and
  settings) that the worker plans with :func:`~sfumato.planner.plan.plan` first. The
  worker runs only that pure planner and the engine: no desktop code, no callbacks.
- Jobs go in through :meth:`GenerationWorker.submit` (callable from the GUI thread),
  which returns the job's id: a single pending slot guarded by a condition variable,
  **latest wins** — submitting while a job runs cancels the running one, and a job still
  waiting is replaced (and reported cancelled). One job runs at a time. This is what a
  live mode needs: only the newest document state is worth generating.
- Events come out as Qt signals emitted from the worker thread; receivers on the GUI
  thread get them as queued calls. Every signal carries the job id first, so a receiver
  can drop late events of a superseded job. The values are the planner's and the
  engine's own (a :class:`~sfumato.planner.plan.Plan`, numpy images, the engine's
  metadata dict, a :class:`FailureKind`): turning them into pictures is the receiver's
  job, done once, on its thread.
- :meth:`cancel` sets a job's cancel token; the engine checks it before every denoising
  step, so the run ends within one step with a ``cancelled`` signal.
- Every failure (a plan the document cannot satisfy, out of memory, no model, bad model
  file, the engine failing to start) becomes one ``failed`` signal; the thread keeps
  serving jobs afterwards.
- :meth:`shutdown` cancels, stops the loop and joins the thread (call it on window close).

Images in signals are numpy ``uint8`` RGB ``(h, w, 3)`` arrays owned by the receiver
(the engine hands over fresh arrays); a preview shows the whole request (see
:mod:`sfumato.inference.events`).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import GroupLayer, copy_layer
from sfumato.inference.cancel import CancelToken
from sfumato.inference.request import GenerationRequest
from sfumato.planner.errors import PlanError
from sfumato.planner.plan import Plan, plan
from sfumato.planner.recipe import GenerationSettings
from sfumato.vocabulary.families import BUILTIN

if TYPE_CHECKING:
    from sfumato.inference.engine import Engine

log = logging.getLogger(__name__)

__all__ = [
    "DepthInput", "EngineFactory", "FailureKind", "GenerationWorker", "PlanInput", "PoseInput", "UpscaleInput",
    "Work",
    "failure_kind",
]

#: Makes the engine, called once on the worker thread (tests pass a CPU engine on tiny models).
EngineFactory = Callable[[], "Engine"]


@dataclass(frozen=True, eq=False)
class PlanInput:
    """A job the worker plans before running it: ``document`` is a snapshot nobody edits
    any more (see :func:`snapshot_document`),
    ``settings`` what to generate. A :class:`~sfumato.planner.errors.PlanError` from
    planning becomes a ``failed`` signal of kind :attr:`FailureKind.PLAN`."""

    document: Document
    settings: GenerationSettings
    #: The planner function to call (live mode passes one that renders its window).
    planner: Callable[[Document, GenerationSettings], Plan] = plan


def snapshot_document(doc: Document) -> Document:
    """A copy of ``doc`` for planning on another thread while the user keeps painting.

    Cheap: layers are copied with their pixels shared copy-on-write (the live document
    copies a tile before writing to it), so this costs a dict copy per layer, not pixels.
    The selection array is shared (edits replace it, never write into it).
    """
    root = copy_layer(doc.root)
    assert isinstance(root, GroupLayer)
    return Document(doc.width, doc.height, root=root, recipe=doc.recipe, selection=doc.selection)



@dataclass(frozen=True, eq=False)
class DepthInput:
    """A job that makes a depth map instead of a picture ("Depth from Image"): ``image``
    is uint8 RGB ``(H, W, 3)`` (the visible picture), ``model`` a depth estimator folder
    (``None``: the catalog's). The result comes back as ``estimated(job, depth)``, uint8
    ``(H, W)`` with near = 255; failures and cancels as for a generation."""

    image: np.ndarray
    model: str | None = None


@dataclass(frozen=True, eq=False)
class PoseInput:
    """A job that finds the people's poses in a picture ("Pose from Image"): ``image`` is
    uint8 RGB ``(H, W, 3)`` (the visible picture), ``model`` a VitPose folder (``None``:
    the catalog's). The result comes back as ``posed(job, estimate)``, the engine's
    :class:`~sfumato.inference.pose_estimation.PoseEstimate` (OpenPose body-18 keypoints in
    the picture's pixels); failures and cancels as for a generation."""

    image: np.ndarray
    model: str | None = None


@dataclass(frozen=True, eq=False)
class UpscaleInput:
    """A job that makes a picture larger ("Upscale…"): ``picture`` uint8 RGB at
    ``plan.source``, ``plan`` the planner's :class:`~sfumato.planner.upscale.UpscalePlan`
    (with a refine when it has a model), ``upscaler`` a super-resolution file (``None``:
    Lanczos). The loop is the planner's :func:`~sfumato.planner.upscale.upscale_picture`,
    each tile one engine run with the job's cancel token. Progress comes as
    ``progress(job, permille, 1000)`` over the whole refine and, for each tile's steps, as
    ``upscale_tile(job, UpscaleProgress)``; the engine's step previews of a tile as
    ``tile_preview(job, rgb, tile)`` (the planner's :class:`~sfumato.planner.tiles.Tile`,
    in the result's pixels); the result as ``finished(job, (picture,), metadata)``."""

    picture: np.ndarray
    plan: Any
    upscaler: str | None = None


#: What :meth:`GenerationWorker.submit` takes: a ready request, a document to plan, a
#: picture to estimate depth from, or one to upscale.
Work: TypeAlias = GenerationRequest | PlanInput | DepthInput | PoseInput | UpscaleInput


class FailureKind(Enum):
    """What went wrong, so the window can choose its words and offer the next step."""

    PLAN = "plan"  # the document cannot be generated as it is (the message says why)
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


def warm_imports() -> None:
    """Import what the first model load and run will need (diffusers pipelines and
    models, the CLIP text encoders, the schedulers) and build the shipped CLIP
    tokenizers single-file checkpoints use, so that cost is paid by
    :meth:`GenerationWorker.preload` rather than by the first generation. Best effort."""
    import importlib

    for module, names in (
        ("diffusers", ("DiffusionPipeline", "StableDiffusionPipeline", "StableDiffusionXLPipeline",
                       "AutoencoderKL", "UNet2DConditionModel", "EulerDiscreteScheduler",
                       "DPMSolverMultistepScheduler")),
        ("transformers", ("CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer")),
        ("sfumato.inference.preview", ()),
        ("sfumato.inference.schedulers", ()),
    ):
        try:
            loaded = importlib.import_module(module)
            for name in names:
                getattr(loaded, name)
        except Exception as error:  # noqa: BLE001 - only a head start; the run reports errors
            log.debug("warm import of %s failed: %s", module, error)
    try:  # the shipped CLIP tokenizers: building one holds the GIL 0.1-0.4 s (see load_clip_tokenizer)
        from sfumato.inference.single_file import load_clip_tokenizer

        load_clip_tokenizer()
        load_clip_tokenizer(pad_token="!")
    except Exception as error:  # noqa: BLE001 - only a head start
        log.debug("building the CLIP tokenizers ahead failed: %s", error)


def leave_a_core_for_the_gui(engine: Any) -> None:
    """On a CPU engine, run torch's intra-op pool on all cores but one: its OpenMP threads
    spin between ops, and on a small machine they would take every core from the GUI
    thread (the brush would stutter while generating). No-op for GPU engines."""
    import os

    device = getattr(engine, "device", None)
    if getattr(device, "type", None) != "cpu":
        return
    import torch

    cores = os.cpu_count() or 1
    wanted = max(1, min(torch.get_num_threads(), cores - 1))
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)
        log.info("CPU generation uses %d of %d cores (one left for the window)", wanted, cores)


@dataclass
class _Pause:
    modules: int
    freeze: bool = False


@contextmanager
def collections_paused() -> Iterator[_Pause]:
    """Run a burst of allocation (imports, a model load) without full garbage
    collections, then freeze what it made.

    While thousands of modules or a model's objects are being created, CPython runs
    repeated full (generation 2) collections; with torch, diffusers and transformers
    loaded each one walks millions of objects and takes up to a second — holding the
    GIL, so the window freezes (measured: 0.1–1.0 s stalls during the first import and
    the first model load on a 2-core CPU). ``gc.freeze()`` afterwards moves everything
    alive into the permanent generation, so later collections skip it. It happens only
    when the block imported many modules or the caller sets ``pause.freeze`` (a model
    was loaded). The price: cyclic garbage made inside the block is never collected
    (imports and loads make little).
    """
    pause = _Pause(len(sys.modules))
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield pause
    finally:
        if pause.freeze or len(sys.modules) - pause.modules > _MANY_MODULES:
            gc.freeze()
        if was_enabled:
            gc.enable()


_MANY_MODULES = 50


#: How much nicer than the GUI the worker thread runs (Linux per-thread nice; the
#: engine's own CPU threads are created from it and inherit it): the brush always wins.
WORKER_NICENESS = 5


def lower_thread_priority(increment: int) -> None:
    """Make the calling thread ``increment`` nicer (Linux: nice is per thread); a no-op
    where the platform has no per-thread nice or refuses it."""
    import os

    if not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except OSError as error:
        log.debug("cannot lower the worker thread's priority: %s", error)


def model_label(source: str) -> str:
    """A short name for a model source, for the busy bar: the file or folder name."""
    if source == BUILTIN:
        return "the built-in demo model"
    name = source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name or source


def default_engine() -> Engine:
    """The engine with automatic device choice (imports torch: worker thread only)."""
    from sfumato.inference.engine import Engine

    return Engine()


@dataclass(eq=False)
class _Job:
    id: int
    work: Work | None  # dropped once planned: the request holds what the run needs
    cancel: CancelToken


class GenerationWorker(QThread):
    """See the module docstring. Signals (all carry the job id first; the types are the
    planner's and the engine's, never a desktop or Qt object):

    - ``planned(job, plan)``: a :class:`PlanInput` job was planned (a
      :class:`~sfumato.planner.plan.Plan`); comes before ``started_job``;
    - ``started_job(job)``: the job left the queue, its request is made, it runs now;
    - ``loading(job, text)``: it waits for something slow before the first step (the
      engine starting, a model loading); ``text`` says what, for the busy bar;
    - ``engine_ready(ok)``: after :meth:`preload` made (or failed to make) the engine;
    - ``progress(job, step, total)``;
    - ``preview(job, rgb)``: uint8 ``(h, w, 3)`` showing the whole request;
    - ``finished(job, images, metadata)``: ``images`` a tuple of uint8 ``(H, W, 3)`` at
      the request's size, ``metadata`` the engine's ``Finished.metadata`` dict;
    - ``failed(job, message, kind)``: ``message`` for the user, ``kind`` a :class:`FailureKind`;
    - ``cancelled(job)``;
    - ``estimated(job, depth)``: a :class:`DepthInput` job's map, uint8 ``(H, W)``;
    - ``posed(job, estimate)``: a :class:`PoseInput` job's people (a ``PoseEstimate``);
    - ``upscale_tile(job, progress)``: an :class:`UpscaleInput` refine's tile and step (an
      ``UpscaleProgress``), after its ``progress``;
    - ``tile_preview(job, rgb, tile)``: a step preview of the tile being refined (a
      ``Tile``, in the result's pixels).

    Tuples and dicts travel as ``object`` (a ``dict`` signal type would pass through a
    ``QVariantMap`` and lose its key order).
    """

    planned = Signal(int, Plan)
    started_job = Signal(int)
    loading = Signal(int, str)
    engine_ready = Signal(bool)  # after preload(): whether the engine could be made
    progress = Signal(int, int, int)
    preview = Signal(int, np.ndarray)
    finished = Signal(int, object, object)  # tuple[np.ndarray, ...], dict[str, Any]
    failed = Signal(int, str, FailureKind)
    cancelled = Signal(int)
    estimated = Signal(int, np.ndarray)
    posed = Signal(int, object)  # PoseEstimate
    upscale_tile = Signal(int, object)  # UpscaleProgress of a refine
    tile_preview = Signal(int, np.ndarray, object)  # a tile's step preview and its Tile

    def __init__(self, engine_factory: EngineFactory | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sfumatoGenerationWorker")
        self._factory = engine_factory or default_engine
        self._engine: Engine | None = None
        self._cond = threading.Condition(threading.RLock())
        self._pending: _Job | None = None
        self._running: _Job | None = None
        self._stopping = False
        self._preload = False
        self._loaded: set[str] = set()  # model sources loaded with collections paused
        self._next_id = 0

    # -- GUI-thread API --------------------------------------------------------------------
    @property
    def engine(self) -> Engine | None:
        """The engine once the worker made it (``None`` before the first job)."""
        return self._engine

    def submit(self, work: Work) -> int:
        """Queue ``work`` and return its job id (latest wins: a waiting job is dropped and
        reported cancelled, a running one cancelled); starts the thread on first use."""
        if not isinstance(work, GenerationRequest | PlanInput | DepthInput | PoseInput | UpscaleInput):
            raise TypeError(
                "submit takes a GenerationRequest, a PlanInput, a DepthInput, a PoseInput or an UpscaleInput, "
                f"not {type(work).__name__}"
            )
        with self._cond:
            if self._stopping:
                raise RuntimeError("the generation worker has been shut down")
            self._next_id += 1
            job = _Job(self._next_id, work, CancelToken())
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

    def preload(self) -> None:
        """Make the engine now (imports torch and diffusers on the worker thread) so the
        first generation does not wait for it; no-op when it exists. Failures are only
        logged here: the next run reports them."""
        with self._cond:
            if self._stopping or self._engine is not None:
                return
            self._preload = True
            self._cond.notify_all()
        if not self.isRunning():
            self.start()

    def cancel(self, job: int | None = None) -> bool:
        """Cancel job ``job`` (default: the running and the waiting job); True when there
        was such a job. A waiting job is reported ``cancelled`` at once; a running one
        when the engine sees its token (within one step)."""
        with self._cond:
            running, pending = self._running, self._pending
            if running is not None and job is not None and running.id != job:
                running = None
            if pending is not None and (job is None or pending.id == job):
                self._pending = None
            else:
                pending = None
            if running is not None:
                running.cancel.cancel()
        if pending is not None:
            self.cancelled.emit(pending.id)
        return running is not None or pending is not None

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or self._pending is not None

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything, stop the loop and join the thread; True when it ended.

        A run is cancelled within one denoising step. Loading a model cannot be
        interrupted: after ``timeout_ms`` a warning is logged and the wait goes on (a
        running ``QThread`` must never be destroyed).
        """
        with self._cond:
            self._stopping = True
            self._pending = None
            if self._running is not None:
                self._running.cancel.cancel()
            self._cond.notify_all()
        if not self.isRunning():
            return True
        if self.wait(timeout_ms):
            return True
        # Loading a model cannot be interrupted; destroying a running QThread would abort
        # the program, so wait for the load to end (it then sees the stop flag).
        log.warning("the generation worker is still loading a model after %d ms; waiting", timeout_ms)
        return bool(self.wait())

    # -- worker thread ---------------------------------------------------------------------
    def run(self) -> None:  # noqa: D401 - QThread API
        log.debug("generation worker started")
        lower_thread_priority(WORKER_NICENESS)
        while True:
            with self._cond:
                while self._pending is None and not self._stopping and not self._preload:
                    self._cond.wait()
                if self._stopping:
                    break
                preload, self._preload = self._preload, False
                job = self._pending
                self._pending = None
                self._running = job
            if job is None:
                if preload and self._engine is None:
                    with collections_paused():
                        if self._ensure_engine(None) is not None:
                            warm_imports()
                    self.engine_ready.emit(self._engine is not None)
                continue
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

    def _ensure_engine(self, job: _Job | None) -> Engine | None:
        if self._engine is not None:
            return self._engine
        try:
            self._engine = self._factory()
            leave_a_core_for_the_gui(self._engine)
        except Exception as error:  # noqa: BLE001 - torch missing, broken install, bad device
            log.exception("the inference engine cannot start")
            if job is not None:
                self.failed.emit(
                    job.id,
                    f"The inference engine cannot start ({error}). Check that PyTorch is installed "
                    "for this computer, then try again.",
                    FailureKind.ENGINE_UNAVAILABLE,
                )
            return None
        return self._engine

    def _load_model(self, engine: Any, request: GenerationRequest) -> None:
        """Load the request's model the first time it is used, with full collections
        paused (see :func:`collections_paused`). Errors are left for ``engine.run`` to
        report in its usual way (it loads again and fails the same)."""
        cache = getattr(engine, "cache", None)
        source = request.model.source
        if cache is None or not hasattr(cache, "get") or source in self._loaded:
            return
        try:
            with collections_paused() as pause:
                loads = getattr(cache, "load_count", None)
                cache.get(request.model)
                pause.freeze = loads is None or getattr(cache, "load_count", None) != loads
        except Exception as error:  # noqa: BLE001 - reported by the run itself
            log.debug("model %s did not load ahead of the run: %s", source, error)
            return
        self._loaded.add(source)

    def _request(self, job: _Job) -> GenerationRequest | None:
        """The job's request: planned here for a :class:`PlanInput` (``planned`` is
        emitted; a plan error becomes ``failed``), else the request it came with."""
        work, job.work = job.work, None  # the snapshot's pixels are in the request now
        if isinstance(work, GenerationRequest):
            return work
        assert isinstance(work, PlanInput)
        try:
            planned = work.planner(work.document, work.settings)
        except PlanError as error:
            self.failed.emit(job.id, f"Cannot generate: {error}", FailureKind.PLAN)
            return None
        self.planned.emit(job.id, planned)
        return planned.request

    def _run_job(self, job: _Job) -> None:
        from sfumato.inference.events import Cancelled, Failed, Finished, Preview, Progress

        if job.cancel.is_set():
            self.cancelled.emit(job.id)
            return
        if isinstance(job.work, DepthInput):
            self._run_depth(job, job.work)
            return
        if isinstance(job.work, PoseInput):
            self._run_pose(job, job.work)
            return
        if isinstance(job.work, UpscaleInput):
            self._run_upscale(job, job.work)
            return
        request = self._request(job)
        if request is None:
            return
        if job.cancel.is_set():
            self.cancelled.emit(job.id)
            return
        self.started_job.emit(job.id)
        engine = self._engine_ready(job)
        if engine is None:
            return
        if job.cancel.is_set():  # cancelled while the engine started: the next job may want another model
            self.cancelled.emit(job.id)
            return
        if request.model.source not in self._loaded:
            self.loading.emit(job.id, f"Loading {model_label(request.model.source)}…")
        self._load_model(engine, request)
        if job.cancel.is_set():  # cancelled while loading: the model stays loaded for the next run
            self.cancelled.emit(job.id)
            return

        def on_event(event: Any) -> None:
            if isinstance(event, Progress):
                self.progress.emit(job.id, event.step, event.total)
            elif isinstance(event, Preview):
                if not job.cancel.is_set():  # else nobody wants it any more
                    self.preview.emit(job.id, event.rgb)
            elif isinstance(event, Finished):
                self.finished.emit(job.id, tuple(event.images), dict(event.metadata))
            elif isinstance(event, Failed):
                self.failed.emit(job.id, event.error.user_message, failure_kind(event.error))
            elif isinstance(event, Cancelled):
                self.cancelled.emit(job.id)

        engine.run(request, on_event, job.cancel)

    def _run_upscale(self, job: _Job, work: UpscaleInput) -> None:
        """The planner's upscale loop with this thread's engine: a super-resolution file
        on the engine's device, then one engine run per tile (see :class:`UpscaleInput`)."""
        from sfumato.inference.errors import CancelledError, EngineError
        from sfumato.inference.events import Preview, Progress
        from sfumato.planner.upscale import UpscaleProgress, upscale_picture

        job.work = None
        self.started_job.emit(job.id)
        plan = work.plan
        tiles = plan.grid.tiles if plan.refine else ()
        current = [0]  # the tile being refined (raster index)
        engine = None
        if plan.refine or work.upscaler:
            engine = self._engine_ready(job)
            if engine is None:
                return
        try:
            super_resolve = None
            if work.upscaler:
                from sfumato.inference.upscalers import load_upscaler

                self.loading.emit(job.id, f"Loading {model_label(work.upscaler)}…")
                assert engine is not None  # started above for an upscaler file
                upscaler = load_upscaler(work.upscaler, device=engine.device, dtype=engine.dtype)

                def super_resolve(picture: np.ndarray) -> np.ndarray:
                    return upscaler.upscale(picture, cancel=job.cancel)

            def run_tile(request: GenerationRequest, on_step: Callable[[int, int], None]) -> np.ndarray:
                assert engine is not None  # started above for a refine
                if request.model.source not in self._loaded:
                    self.loading.emit(job.id, f"Loading {model_label(request.model.source)}…")
                    self._load_model(engine, request)

                def on_event(event: Any) -> None:
                    if isinstance(event, Progress):
                        on_step(event.step, event.total)
                    elif isinstance(event, Preview) and not job.cancel.is_set() and current[0] < len(tiles):
                        self.tile_preview.emit(job.id, event.rgb, tiles[current[0]])

                result = engine.run(request, on_event, job.cancel)
                if result.error is not None:
                    raise result.error
                if result.cancelled:
                    raise CancelledError()
                return result.images[0]

            def on_progress(progress: UpscaleProgress) -> None:
                if progress.stage == "enlarge":
                    self.loading.emit(job.id, "Enlarging…")
                else:
                    current[0] = progress.tile
                    self.progress.emit(job.id, round(1000 * progress.fraction), 1000)
                    self.upscale_tile.emit(job.id, progress)

            picture = upscale_picture(work.picture, plan, super_resolve=super_resolve,
                                      run_tile=run_tile if plan.refine else None,
                                      on_progress=on_progress, cancel=job.cancel)  # fmt: skip
        except CancelledError:
            self.cancelled.emit(job.id)
            return
        except EngineError as error:
            self.failed.emit(job.id, error.user_message, failure_kind(error))
            return
        metadata = {"upscale": plan.scale, "width": plan.size.width, "height": plan.size.height,
                    "upscaler": work.upscaler, "refined": bool(plan.refine)}  # fmt: skip
        self.finished.emit(job.id, (picture,), metadata)

    def _run_depth(self, job: _Job, work: DepthInput) -> None:
        from sfumato.inference.request import ModelRef

        model = None if work.model is None else ModelRef(work.model)
        self._run_estimate(job, "Estimating depth…", lambda engine: engine.estimate_depth(work.image, model, job.cancel),
                           self.estimated)  # fmt: skip

    def _run_pose(self, job: _Job, work: PoseInput) -> None:
        from sfumato.inference.request import ModelRef

        model = None if work.model is None else ModelRef(work.model)
        self._run_estimate(job, "Finding the pose…", lambda engine: engine.estimate_pose(work.image, model, job.cancel),
                           self.posed)  # fmt: skip

    def _run_estimate(self, job: _Job, doing: str, estimate: Callable[[Engine], Any], done: Any) -> None:
        """One estimator job (depth, pose) on this thread's engine: ``done`` gets its result;
        a cancel or an engine error is reported as for a generation."""
        from sfumato.inference.errors import CancelledError, EngineError

        job.work = None
        self.started_job.emit(job.id)
        engine = self._engine_ready(job)
        if engine is None:
            return
        self.loading.emit(job.id, doing)
        try:
            result = estimate(engine)
        except CancelledError:
            self.cancelled.emit(job.id)
            return
        except EngineError as error:
            self.failed.emit(job.id, error.user_message, failure_kind(error))
            return
        done.emit(job.id, result)

    def _engine_ready(self, job: _Job) -> Engine | None:
        """This thread's engine, started (and said so) the first time a job needs it;
        ``None`` when it could not start (the failure is already reported)."""
        if self._engine is None:
            self.loading.emit(job.id, "Starting the engine (PyTorch)…")
            with collections_paused():
                self._ensure_engine(job)
        return self._engine

"""The engine: one :class:`GenerationRequest` in, images and events out.

The engine runs its own denoise loop over the diffusers components (UNet, VAE, text
encoders, ControlNets, a fresh scheduler per run) instead of calling a stock pipeline,
because that is what lets every mode combine in one pass per step:

- **txt2img / img2img**: start from noise, or from the init image's latents noised to the
  level of the first step run (:mod:`.steps`: ``start = round(steps·(1−strength))``, with a
  minimum of ``min(steps, 4)`` effective steps at low strength).
- **inpaint**: before each step, latent pixels that have not yet joined the denoising
  (differential diffusion: a pixel of mask value ``m`` joins for the last ``m`` fraction
  of the steps) are reset to the original noised to that step's level (:mod:`.inpaint`);
  9-channel inpainting UNets also get the mask and the masked image. The engine returns
  the whole decoded picture: placing it (through the planner's paste mask, so pixels
  where the mask is 0 keep their bytes) is the planner's job, done once.
- **regions**: all prompts concatenated along the token axis (:mod:`.text_conditioning`
  encodes and lays them out), masked cross-attention (:mod:`.regions`); still one UNet
  pass per step.
- **ControlNet**: any number of controls, each with its own model, strength and
  ``[start, end)`` fraction of the run's steps; residuals are summed. The controls on one
  SDXL union ControlNet run as one call with their images and control types
  (:mod:`.controlnets`).
- **guidance**: classifier-free guidance doubles the UNet batch (unconditional and
  conditional halves, :mod:`.text_conditioning`); an LCM-distilled UNet whose config has a
  ``time_cond_proj_dim`` instead takes the scale as an embedding (``timestep_cond`` on
  every call) in a single, unguided pass.
- **schedulers**: a fresh one per run from the model's config, the sampler and the
  request's scheduler tweaks (:mod:`.schedulers`); LCM and TCD schedule at most their
  distillation schedule's 50 steps, which the step plan respects (:mod:`.steps`).
- **previews**: the predicted clean latents (x0) of the first image after every step,
  through the family's linear latent→RGB map (or TAESD).

Sizes: the engine generates at exactly ``request.width × request.height`` — every input
of the request is already at that size. Which part of a document goes through the model
and at what size (context around a mask, the family's native resolution) is decided once,
by the planner (:mod:`sfumato.planner.area`, :mod:`sfumato.planner.sizing`).

Batches: image ``k`` of a batch uses seed ``seed + k`` (its own CPU ``torch.Generator``
for the initial noise and for stochastic samplers), so any batch image can be
regenerated alone with its seed; all images run through the UNet as one batch.

Determinism: the same request on the same device gives the same pixels (CPU generators,
no non-deterministic ops chosen by us).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sfumato.inference.cancel import CancelFlag
from sfumato.inference.denoise import ControlInput, DenoiseJob
from sfumato.inference.denoisers import make_denoiser
from sfumato.inference.devices import (
    EngineOptions,
    PreviewMode,
    choose_device,
    is_oom_error,
    release_memory,
)
from sfumato.inference.embeddings import EmbeddingLibrary, find_embeddings
from sfumato.inference.errors import (
    CancelledError,
    EngineError,
    InvalidRequestError,
    OutOfMemoryError,
    UnsupportedModeError,
)
from sfumato.inference.events import (
    Cancelled,
    Event,
    Failed,
    Finished,
    ModelInfo,
    Preview,
    Progress,
    Result,
)
from sfumato.inference.inpaint import apply_fill, join_thresholds
from sfumato.inference.latents import NoiseLevels, initial_sigma
from sfumato.inference.memory import Placement, next_setting, wants_vae_tiling
from sfumato.inference.model_cache import LoadedModel, ModelCache
from sfumato.inference.modes import request_modes
from sfumato.inference.preview import LatentPreviewer, TaesdPreviewer
from sfumato.inference.regions import latent_masks
from sfumato.inference.request import GenerationRequest, ModelRef, RequestError
from sfumato.inference.schedulers import make_scheduler, schedule_limit
from sfumato.inference.steps import StepPlan, plan_steps
from sfumato.inference.text_conditioning import (
    condition_text,
    embedded_guidance_dim,
    guidance_embedding,
    is_guided,
    prompt_pairs,
)

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class Engine:
    """Runs generation requests; reusable after cancels and errors; one run at a time.

    ``device``/``dtype`` override the automatic choice (see :mod:`.devices`);
    ``models_root`` is where ``builtin`` models live (default ``resources/models``);
    ``single_file_configs`` maps a family to a diffusers config folder that replaces the
    shipped one when loading single-file checkpoints (custom architectures).
    """

    def __init__(
        self,
        device: str | None = None,
        dtype: str | None = None,
        options: EngineOptions | None = None,
        *,
        models_root: Path | None = None,
        single_file_configs: dict[str, Path] | None = None,
    ) -> None:
        self.options = options or EngineOptions()
        self.choice = choose_device(device or self.options.device, dtype or self.options.dtype)
        self.cache = ModelCache(self.choice, self.options, models_root, single_file_configs)
        #: where textual-inversion files are looked for; ``None``: the usual folders
        #: (:func:`~sfumato.inference.embeddings.embedding_dirs`), read at each generation
        self.embedding_dirs: list[Path] | None = None
        #: where the current model's weights live (for an out-of-memory error's advice)
        self._placement: Placement | None = None
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self.choice.device

    @property
    def dtype(self) -> torch.dtype:
        return self.choice.dtype

    # ------------------------------------------------------------------ public

    def run(
        self,
        request: GenerationRequest,
        on_event: Callable[[Event], None] | None = None,
        cancel: CancelFlag | None = None,
    ) -> Result:
        """Run ``request``, emitting events to ``on_event`` (on the calling thread).

        Never raises for run failures: they are reported as a :class:`Failed` event (or
        :class:`Cancelled`) and in the returned :class:`Result`. The last event is always
        one of ``Finished``, ``Failed``, ``Cancelled``.
        """
        emit = on_event or _ignore
        started = time.perf_counter()
        try:
            with self._lock:
                images, metadata = self._run(request, emit, cancel)
        except CancelledError:
            release_memory(self.device)
            _emit_last(emit, Cancelled())
            return Result(cancelled=True)
        except Exception as raw:  # every failure becomes a typed, user-facing error
            error = self._as_engine_error(raw)
            release_memory(self.device)
            _emit_last(emit, Failed(error))
            return Result(error=error)
        metadata["seconds"] = round(time.perf_counter() - started, 4)
        _emit_last(emit, Finished(tuple(images), metadata))
        return Result(images=tuple(images), metadata=metadata)

    def generate(self, request: GenerationRequest, on_event: Callable[[Event], None] | None = None) -> tuple[np.ndarray, ...]:
        """Like :meth:`run` but returns the images and raises the :class:`EngineError`."""
        result = self.run(request, on_event)
        if result.error is not None:
            raise result.error
        if result.cancelled:
            raise CancelledError()
        return result.images

    def load(self, model: ModelRef) -> ModelInfo:
        """Load ``model`` now (e.g. at start-up, on the worker thread) and describe it.

        Raises the typed :class:`EngineError` when it cannot be loaded.
        """
        try:
            with self._lock:
                loaded = self.cache.get(model)
        except Exception as raw:
            raise self._as_engine_error(raw) from raw
        min_side, max_long = loaded.family.side_limits(loaded.native_side)
        return ModelInfo(
            source=model.source,
            family=loaded.family.name,
            label=loaded.family.label,
            native_side=loaded.native_side,
            min_side=min_side,
            max_long_side=max_long,
            inpaint_model=loaded.is_inpaint_model,
            memory="" if loaded.memory is None else f"{loaded.memory.placement.value}: {loaded.memory.reason}",
        )

    def estimate_depth(
        self, image: np.ndarray, model: ModelRef | None = None, cancel: CancelFlag | None = None
    ) -> np.ndarray:
        """A depth map of ``image`` (uint8 ``(H, W, 3)``): uint8 ``(H, W)``, near = 255, the
        size of the picture (:mod:`.depth`). ``model`` names a depth estimator folder, else
        the catalog's (:func:`~sfumato.inference.annotators.find_depth_estimator`). The
        estimator stays loaded for the next call.

        Runs on the engine's device, one job at a time with generations (call it from the
        worker thread). Raises the typed :class:`EngineError` (a missing estimator is a
        :class:`~sfumato.inference.errors.MissingDepthEstimatorError` naming what to put
        where) and :class:`CancelledError` when ``cancel`` is set before the map is made;
        the engine stays usable either way.
        """
        try:
            _check_cancel(cancel)
            with self._lock:
                _check_cancel(cancel)
                estimator = self.cache.depth_estimator(model)
                _check_cancel(cancel)
                depth = estimator(image)
        except CancelledError:
            raise
        except Exception as raw:
            release_memory(self.device)
            raise self._as_engine_error(raw) from raw
        _check_cancel(cancel)
        return depth

    def estimate_pose(self, image: np.ndarray, model: ModelRef | None = None, cancel: CancelFlag | None = None) -> Any:
        """The people in ``image`` (uint8 ``(H, W, 3)``) as a
        :class:`~sfumato.inference.pose_estimation.PoseEstimate`: OpenPose body-18 keypoints
        in image pixels. ``model`` names a VitPose folder, else the catalog's
        (:func:`~sfumato.inference.annotators.find_pose_estimator`); the catalog's person
        detector finds the boxes (none: the whole picture is one person, and the estimate's
        note says so). Both stay loaded for the next call.

        Like :meth:`estimate_depth`: one job at a time with generations, typed errors (a
        missing estimator is a :class:`~sfumato.inference.errors.MissingPoseEstimatorError`
        naming what to put where), :class:`CancelledError` when ``cancel`` is set first.
        """
        from sfumato.inference.pose_estimation import PoseModels

        try:
            _check_cancel(cancel)
            with self._lock:
                folder = None if model is None else self.cache.resolve(model.source)
                models = self.__dict__.setdefault("_pose_models", PoseModels())  # kept loaded
                estimator = models.get(folder, self.device, self.dtype)
                _check_cancel(cancel)
                estimate = estimator(image, lambda: _check_cancel(cancel))
        except CancelledError:
            raise
        except Exception as raw:
            release_memory(self.device)
            raise self._as_engine_error(raw) from raw
        _check_cancel(cancel)
        return estimate

    # ------------------------------------------------------------------ errors

    def _as_engine_error(self, raw: BaseException) -> EngineError:
        if isinstance(raw, EngineError):
            return raw
        if isinstance(raw, RequestError):
            return InvalidRequestError(str(raw))
        if is_oom_error(raw):
            return OutOfMemoryError("The device ran out of memory while generating.", next_setting(self._placement))
        log.exception("generation failed", exc_info=raw)
        return EngineError(f"Generation failed: {raw}", "This is a bug; please report it with the log.")

    # ------------------------------------------------------------------ the run

    def _run(
        self, request: GenerationRequest, emit: Callable[[Event], None], cancel: CancelFlag | None
    ) -> tuple[list[np.ndarray], dict[str, Any]]:
        request.validate()
        _check_cancel(cancel)
        model = self.cache.get(request.model)
        modes = request_modes(request)
        missing = modes - model.family.supported_modes
        if missing:
            names = ", ".join(sorted(m.value for m in missing))
            raise UnsupportedModeError(f"{model.family.label} models cannot do {names}.")
        if request.references and not model.family.takes_references:
            raise UnsupportedModeError(f"{model.family.label} models take no reference pictures.")
        latents_references = model.family.takes_references and model.family.reference_adapter is None
        if request.edit and not (model.family.edits or latents_references):
            raise UnsupportedModeError(
                f"{model.family.label} models do not edit by instruction; choose an edit model "
                "(FLUX.1 Kontext, Qwen-Image-Edit or FLUX.2 Klein)."
            )
        self._apply_loras(model, request)
        strength = request.strength if request.init is not None else 1.0
        scheduler = make_scheduler(
            request.sampler, dict(model.pipe.scheduler.config), request.scheduler_tweaks, model.family
        )
        limit = schedule_limit(scheduler)
        steps = plan_steps(request.steps, strength, max_total=limit)
        if limit is not None and request.steps > limit:
            log.info("%s schedules at most %d steps; running %d of the %d asked for",
                     type(scheduler).__name__, limit, steps.effective, request.steps)  # fmt: skip
        metadata = request.summary()
        metadata.update(
            seeds=[request.seed + k for k in range(request.batch)],
            family=model.family.name,
            device=str(self.choice),
        )
        self._placement = None if model.memory is None else model.memory.placement
        if model.memory is not None:
            metadata.update(memory=model.memory.placement.value)
        if steps.effective == 0:
            # Strength 0: nothing to denoise; the init image is the result, byte for byte.
            assert request.init is not None
            emit(Progress(0, 0))
            metadata.update(steps_run=0)
            return [np.array(request.init.image) for _ in range(request.batch)], metadata
        job = self._prepare(model, request, scheduler, steps)
        if job.adapters:
            metadata.update(reference_adapters=[reference.adapter.name for reference in job.adapters])
        _check_cancel(cancel)
        latents = self._denoise(model, request, job, emit, cancel)
        with self._vae_tiling(model, request):
            decoded = model.family.decode_latents(model.pipe, latents)
        images = [np.ascontiguousarray(image) for image in decoded]
        metadata.update(
            steps_run=steps.effective,
            schedule=steps.total,
            gen_width=job.gen[0],
            gen_height=job.gen[1],
            seconds_per_step=round(job.step_seconds, 5),
        )
        return images, metadata

    @contextmanager
    def _vae_tiling(self, model: LoadedModel, request: GenerationRequest) -> Iterator[None]:
        """Decode through the tiled VAE when the area would not fit the free GPU memory
        (always, when the options say so: then tiling was set at load time)."""
        vae = model.vae
        automatic = (
            not self.options.vae_tiling
            and self.device.type == "cuda"
            and hasattr(vae, "enable_tiling")
            and wants_vae_tiling(request.width, request.height, int(torch.cuda.mem_get_info(self.device)[0]),
                                 torch.empty((), dtype=self.dtype).element_size())  # fmt: skip
        )
        if automatic:
            log.info("decoding %dx%d through the tiled VAE to fit the free memory", request.width, request.height)
            vae.enable_tiling()
        try:
            yield
        finally:
            if automatic:
                vae.disable_tiling()

    def _apply_loras(self, model: LoadedModel, request: GenerationRequest) -> None:
        if model.loras == request.loras:
            return
        import sfumato.inference.lora as lora

        if model.loras:
            lora.remove_loras(model.pipe)
            model.loras = ()
        model.prompt_cache.clear()  # LoRAs may change the text encoders
        if request.loras:
            lora.apply_loras(model.pipe, request.loras)
            model.loras = request.loras

    # ------------------------------------------------------------------ preparation

    def _prepare(
        self, model: LoadedModel, request: GenerationRequest, scheduler: Any, steps: StepPlan
    ) -> DenoiseJob:
        """Everything the denoise loop needs, at the request's size, step by step."""
        gen = (request.width, request.height)
        lat_size = _latent_size(model, request)
        embed_dim = embedded_guidance_dim(model.denoiser)
        timestep_cond = None
        if embed_dim is not None:
            # The UNet learnt the guided prediction: the scale goes in, one unguided pass.
            timestep_cond = guidance_embedding(
                request.cfg, embed_dim, request.batch, device=self.device, dtype=self.dtype
            )
        text = condition_text(
            model,
            prompt_pairs(request),
            guided=is_guided(request.cfg) and embed_dim is None and not model.family.embeds_guidance(model.pipe),
            batch=request.batch,
            device=self.device,
            dtype=self.dtype,
            embeddings=EmbeddingLibrary(find_embeddings(dirs=self.embedding_dirs)),
            pictures=_edit_pictures(request),
        )
        init_latents, denoise_mask, inpaint_extra = self._image_inputs(model, request, lat_size, text.copies)
        return DenoiseJob(
            gen=gen,
            lat_size=lat_size,
            channels=model.family.latent_channels(model.pipe),
            scheduler=scheduler,
            steps=steps,
            batch=request.batch,
            cfg=request.cfg,
            text=text,
            unet_kwargs=model.family.extra_unet_kwargs(model.pipe, text.pooled, gen_size=gen),
            timestep_cond=timestep_cond,
            init_latents=init_latents,
            denoise_mask=denoise_mask,
            inpaint_extra=inpaint_extra,
            region_masks=self._region_masks(request, lat_size),
            controls=self._controls(model, request, text.copies),
            references=self._edit_context(model, request) + self._references(model, request),
            edit=request.edit,
            adapters=self._reference_adapters(model, request, text.guided),
        )

    def _edit_context(self, model: LoadedModel, request: GenerationRequest) -> list[torch.Tensor]:
        """An edit's picture (the init image as given, no fill) as latents ``(1, C, h, w)``:
        the first of the job's references, which the family's denoiser shows the model."""
        if not request.edit:
            return []
        assert request.init is not None
        image = np.ascontiguousarray(request.init.image)
        return [model.family.encode_images(model.pipe, [image], self.device).to(self.dtype)]

    def _references(self, model: LoadedModel, request: GenerationRequest) -> list[torch.Tensor]:
        """Each reference picture's latents ``(1, C, h, w)``, in the engine's dtype (the
        families that take references as latents; IP-Adapter families: none)."""
        if model.family.reference_adapter is not None:
            return []
        multiple = max(model.vae_scale, model.family.size_multiple)
        latents = []
        for i, reference in enumerate(request.references):
            h, w = reference.image.shape[:2]
            if h % multiple or w % multiple:
                raise RequestError(
                    f"reference {i + 1} is {w}x{h}; this model takes sides that are multiples of {multiple} "
                    "(the planner chooses such sizes)"
                )
            image = np.ascontiguousarray(reference.image)
            latents.append(model.family.encode_images(model.pipe, [image], self.device).to(self.dtype))
        return latents

    def _reference_adapters(self, model: LoadedModel, request: GenerationRequest, guided: bool) -> list[Any]:
        """Each reference picture through its IP-Adapter's image encoder (SD 1.x, SDXL):
        :class:`~sfumato.inference.reference_adapters.ReferenceInput` in the UNet batch's layout."""
        if model.family.reference_adapter is None or not request.references:
            return []
        if model.family.reference_adapter == "redux":
            return self._redux_references(model, request)
        from sfumato.inference.reference_adapters import ReferenceInput, reference_embeds

        inputs = []
        for reference in request.references:
            if reference.kind not in model.family.reference_kinds:
                raise UnsupportedModeError(f"{model.family.label} models take no {reference.kind.value} references.")
            adapter = self.cache.reference_adapter(reference.model, reference.kind, model)
            cond, uncond = adapter.encoder.encode(reference.image, adapter.reads_hidden_states, self.device)
            embeds = reference_embeds(cond.to(self.dtype), uncond.to(self.dtype), request.batch, guided)
            mask = None
            if reference.mask is not None:
                mask = torch.from_numpy(np.array(reference.mask))[None, None].to(device=self.device, dtype=self.dtype)
            inputs.append(ReferenceInput(adapter, embeds, reference.strength, reference.kind, reference.start,
                                         reference.end, mask, model.family))  # fmt: skip
        return inputs

    def _redux_references(self, model: LoadedModel, request: GenerationRequest) -> list[Any]:
        """Each reference picture through FLUX.1 Redux (:mod:`.redux`): its tokens in T5's
        space and its strength (an attention bias, :mod:`.denoisers.flux`); references at
        strength 0 are left out."""
        import sfumato.inference.catalog as catalog
        from sfumato.inference.redux import ReduxCache, ReduxInput

        cache = self.__dict__.setdefault("_redux", ReduxCache())  # kept loaded, like adapters
        inputs = []
        for reference in request.references:
            if reference.strength == 0:
                continue
            if reference.model is not None:
                target = self.cache.resolve(reference.model.source)
            else:
                found = catalog.find_reference_adapter(model.family.name, reference.kind)
                target = None if found is None else found.path
            if not isinstance(target, Path):
                raise UnsupportedModeError(
                    f"No FLUX.1 Redux is installed for {model.family.label}: reference pictures need one.",
                    "Put flux1-redux-dev.safetensors in ComfyUI/models/style_models and "
                    "sigclip_vision_patch14_384.safetensors in ComfyUI/models/clip_vision "
                    "(or the FLUX.1-Redux-dev folder in a models folder added in the settings).",
                )
            encoders = [e.path for e in catalog.list_models(catalog.WeightsKind.CLIP_VISION)
                        if e.problem is None and e.path is not None]  # fmt: skip
            redux = cache.get(target, encoders, self.device, self.dtype)
            tokens = redux.encode(np.ascontiguousarray(reference.image), self.device, self.dtype)
            inputs.append(ReduxInput(redux, tokens, reference.strength, reference.start, reference.end,
                                     None if reference.mask is None else np.array(reference.mask)))  # fmt: skip
        return inputs

    def _image_inputs(
        self, model: LoadedModel, request: GenerationRequest, lat_size: tuple[int, int], copies: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """``(init latents, denoise mask, inpaint extra)``: the init image (with the fill
        applied under the mask) encoded, the mask at latent size, a 9-channel UNet's extras."""
        device, dtype, batch = self.device, self.dtype, request.batch
        init_latents = None
        denoise_mask = None
        inpaint_extra = None
        init: np.ndarray | None = None
        mask: np.ndarray | None = None
        if request.init is not None:
            init = np.ascontiguousarray(request.init.image)
            if request.inpaint is not None:
                mask = np.ascontiguousarray(request.inpaint.mask, dtype=np.float32)
                init = apply_fill(init, mask, request.inpaint.fill, seed=request.seed)
            init_latents = model.family.encode_images(model.pipe, [init], device).to(dtype).expand(batch, -1, -1, -1)
        if mask is not None:
            mask_t = torch.from_numpy(np.array(mask))[None, None]
            denoise_mask = torch.nn.functional.adaptive_avg_pool2d(mask_t, lat_size).to(device=device, dtype=dtype)
        if model.is_inpaint_model:
            gen = (request.width, request.height)
            hard, masked = _inpaint_model_inputs(init, mask, gen)
            inpaint_extra = model.family.inpaint_model_input(model.pipe, hard, masked, lat_size, device, dtype)
            inpaint_extra = inpaint_extra.expand(batch * copies, *inpaint_extra.shape[1:])
        return init_latents, denoise_mask, inpaint_extra

    def _region_masks(self, request: GenerationRequest, lat_size: tuple[int, int]) -> torch.Tensor | None:
        """The regions' masks at latent resolution, ``(R, h, w)``; ``None`` without regions."""
        if not request.regions:
            return None
        return latent_masks([np.ascontiguousarray(r.mask) for r in request.regions], lat_size, device=self.device)

    def _controls(self, model: LoadedModel, request: GenerationRequest, copies: int) -> list[ControlInput]:
        """The ControlNet for each control, with its image at generation size in [0, 1]."""
        controls: list[ControlInput] = []
        for spec in request.controls:
            net = self.cache.controlnet(spec.model, spec.kind, model)
            tensor = torch.from_numpy(np.array(spec.image)).permute(2, 0, 1).float().div(255.0)[None]
            tensor = tensor.to(device=self.device, dtype=self.dtype).expand(request.batch * copies, -1, -1, -1)
            mode = model.family.control_mode(net, spec.kind)
            controls.append(ControlInput(net, tensor, spec.strength, spec.start, spec.end, mode))
        return controls

    # ------------------------------------------------------------------ the loop

    def _denoise(
        self,
        model: LoadedModel,
        request: GenerationRequest,
        job: DenoiseJob,
        emit: Callable[[Event], None],
        cancel: CancelFlag | None,
    ) -> torch.Tensor:
        device, dtype = self.device, self.dtype
        scheduler = job.scheduler
        model.family.set_timesteps(scheduler, job.steps.total, job.lat_size, device)
        order = int(getattr(scheduler, "order", 1))
        first = job.steps.start * order
        timesteps = scheduler.timesteps[first:]
        if first and hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(first)
        levels = NoiseLevels(scheduler, first)
        n = len(timesteps)

        generators = [torch.Generator("cpu").manual_seed(request.seed + k) for k in range(job.batch)]
        noise = torch.cat(
            [torch.randn((1, job.channels, *job.lat_size), generator=g, dtype=torch.float32) for g in generators]
        ).to(device=device, dtype=dtype)
        if job.init_latents is None or (job.steps.start == 0 and request.strength >= 1.0):
            latents = noise * initial_sigma(scheduler)
        else:
            latents = levels.noised(job.init_latents, noise, 0)

        step_kwargs: dict[str, Any] = {"return_dict": False}
        if "generator" in inspect.signature(scheduler.step).parameters:
            step_kwargs["generator"] = generators  # stochastic samplers: per-image noise
        thresholds = join_thresholds(n) if job.denoise_mask is not None else []
        previewer = self._previewer(model)
        denoiser = make_denoiser(model, job)
        try:
            with torch.inference_mode():
                loop_start = time.perf_counter()
                for j, t in enumerate(timesteps):
                    _check_cancel(cancel)
                    if job.denoise_mask is not None:
                        assert job.init_latents is not None
                        free = (job.denoise_mask > thresholds[j]).to(dtype)
                        known = levels.noised(job.init_latents, noise, j)
                        latents = known + (latents - known) * free
                    out = denoiser(latents, t, j, n)
                    if previewer is not None:
                        x0 = levels.predict_x0(latents[:1], out[:1], j)
                    latents = scheduler.step(out, t, latents, **step_kwargs)[0]
                    job.step_seconds = (time.perf_counter() - loop_start) / (j + 1)
                    emit(Progress(j + 1, n))
                    if previewer is not None:
                        emit(Preview(previewer(x0[0]), step=j + 1, index=0))
            if job.denoise_mask is not None:
                assert job.init_latents is not None
                # Where the mask is 0 the latents end as the original's, exactly.
                latents = torch.where(job.denoise_mask <= 0.0, job.init_latents, latents)
        except Exception as error:
            if is_oom_error(error) and not isinstance(error, EngineError):
                raise OutOfMemoryError(
                    "The device ran out of memory while generating.", next_setting(self._placement)
                ) from error
            raise
        finally:
            denoiser.close()
        return latents

    def _previewer(self, model: LoadedModel) -> Callable[[torch.Tensor], np.ndarray] | None:
        mode = self.options.preview
        if mode is PreviewMode.OFF:
            return None
        if mode is PreviewMode.TAESD and model.taesd is not None:
            return TaesdPreviewer(model.taesd, float(model.vae.config.scaling_factor))
        return LatentPreviewer(model.preview, self.device, torch.float32)


def _ignore(event: Event) -> None:
    return None


def _emit_last(emit: Callable[[Event], None], event: Event) -> None:
    """Emit the final event; a failing callback is logged, never raised out of ``run``."""
    try:
        emit(event)
    except Exception:
        log.exception("the event callback failed on %s", type(event).__name__)


def _edit_pictures(request: GenerationRequest) -> tuple[np.ndarray, ...]:
    """An edit's pictures, in the order the model is shown them: the picture to edit (the
    init), then the references; none for other requests."""
    if not request.edit or request.init is None:
        return ()
    return (np.ascontiguousarray(request.init.image), *(np.ascontiguousarray(r.image) for r in request.references))


def _inpaint_model_inputs(
    init: np.ndarray | None, mask: np.ndarray | None, gen: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(hard mask (H, W) float32, masked image (H, W, 3) uint8)``: what an inpainting model
    (a 9-channel UNet, FLUX Fill) is given beside the latents.

    The mask is made hard at half its peak; hidden pixels become mid-grey (0 in [-1, 1]) as
    in diffusers' pipelines. Without an inpaint mask (txt2img/img2img on an inpainting
    model) the mask is all ones and the masked image all grey, which is how these models
    were trained for unconditional generation.
    """
    if mask is not None and init is not None:
        hard = (mask >= 0.5 * float(mask.max())).astype(np.float32)
        masked = np.where(hard[..., None] > 0, np.uint8(128), init).astype(np.uint8)
    else:
        hard = np.ones((gen[1], gen[0]), np.float32)
        masked = np.full((gen[1], gen[0], 3), 128, np.uint8)
    return hard, masked


def _latent_size(model: LoadedModel, request: GenerationRequest) -> tuple[int, int]:
    """``(h, w)`` of the request's latents; refuses sides that are not multiples of the VAE's factor."""
    scale = model.vae_scale
    multiple = max(scale, model.family.size_multiple)
    if request.width % multiple or request.height % multiple:
        raise RequestError(
            f"the request is {request.width}x{request.height}; this model generates sizes that "
            f"are multiples of {multiple} (the planner chooses such sizes)"
        )
    return request.height // scale, request.width // scale


def _check_cancel(cancel: CancelFlag | None) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError()


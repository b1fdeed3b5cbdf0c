"""Loaded models, cached and shared across every mode.

One :class:`LoadedModel` per model source holds the diffusers pipeline (its components:
UNet, VAE, text encoders, tokenizers, scheduler config), the family plugin and the
preview map. The engine's own denoise loop uses the components directly, so switching
txt2img → img2img → inpaint → ControlNet → regions never reloads anything. ControlNets
are cached separately, and so are IP-Adapters (made ready for one model's UNet) and the
CLIP vision encoders they read pictures with (:mod:`.reference_adapters`).

Model references (``ModelRef.source``):

- ``"builtin"`` → ``resources/models/builtin/`` (a diffusers folder or one checkpoint);
- a ``.safetensors`` / ``.ckpt`` file → single-file loading, fully offline, with the
  configs and tokenizers shipped in ``resources/configs`` (:mod:`.single_file`);
- a diffusers folder (``model_index.json``);
- a hub id ``owner/name`` → the local Hugging Face cache; downloaded only when a network
  is allowed (``HF_HUB_OFFLINE`` unset), else :class:`NetworkUnavailableError`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sfumato.inference.devices import DeviceChoice, EngineOptions, release_memory
from sfumato.inference.errors import (
    CorruptModelError,
    EngineError,
    ModelNotFoundError,
    NetworkUnavailableError,
    OutOfMemoryError,
    UnsupportedModeError,
)
from sfumato.inference.families import Family, family_for_diffusers, get_family
from sfumato.inference.families.base import PreviewFactors
from sfumato.inference.memory import (
    MemoryPlan,
    Placement,
    activation_bytes,
    component_bytes,
    plan_placement,
)
from sfumato.inference.request import LoraSpec, ModelRef
from sfumato.vocabulary.config import read_json
from sfumato.vocabulary.families import BUILTIN, BUILTIN_CONTROLNET, SDXL, models_folder
from sfumato.vocabulary.kinds import ControlKind, ReferenceKind

__all__ = ["LoadedModel", "ModelCache"]

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CHECKPOINT_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".pth", ".bin"}




@dataclass
class LoadedModel:
    """A loaded model: pipeline components plus what the engine derived from them."""

    key: str
    family: Family
    pipe: Any  # a diffusers DiffusionPipeline (SD/SDXL, or their Inpaint variants)
    native_side: int
    vae_scale: int
    preview: PreviewFactors
    loras: tuple[LoraSpec, ...] = ()
    prompt_cache: OrderedDict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor | None]] = field(
        default_factory=OrderedDict
    )
    taesd: Any = None
    #: where the weights live on a GPU and why (``None`` on a CPU)
    memory: MemoryPlan | None = None

    @property
    def denoiser(self) -> Any:
        """The module that denoises: the UNet, or the family's transformer."""
        return getattr(self.pipe, self.family.denoiser_component)

    @property
    def unet(self) -> Any:
        """The UNet of a UNet family (SD 1.x, SD 2.x, SDXL); other families have none."""
        return self.pipe.unet

    @property
    def vae(self) -> Any:
        return self.pipe.vae

    @property
    def in_channels(self) -> int:
        return int(self.denoiser.config.in_channels)

    @property
    def is_inpaint_model(self) -> bool:
        """A model that takes a mask and the masked image (a 9-channel UNet, FLUX Fill)."""
        return self.family.is_inpaint_model(self.pipe)


class ModelCache:
    """Loads models on first use and keeps up to ``options.max_models`` of them."""

    def __init__(
        self,
        choice: DeviceChoice,
        options: EngineOptions,
        models_root: Path | None = None,
        single_file_configs: dict[str, Path] | None = None,
    ) -> None:
        self.choice = choice
        self.options = options
        self.models_root = models_root or models_folder()
        #: family → diffusers-format config folder used instead of the shipped one for
        #: single-file checkpoints (custom architectures; the tests' tiny models)
        self.single_file_configs = dict(single_file_configs or {})
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._controlnets: OrderedDict[str, tuple[Any, str]] = OrderedDict()
        self._adapters: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._encoders: OrderedDict[str, Any] = OrderedDict()
        self._depth: tuple[str, Any] | None = None
        self._lock = threading.RLock()
        #: how many pipelines / ControlNets were loaded from disk (tests count reloads)
        self.load_count = 0
        self.controlnet_load_count = 0
        self.adapter_load_count = 0
        self.depth_load_count = 0

    # ------------------------------------------------------------------ resolve

    def resolve(self, source: str) -> Path | str:
        """A local path for ``source``, or the hub id itself when it is one."""
        text = source.strip()
        if text == BUILTIN:
            path = self.models_root / BUILTIN
            if not path.exists():
                raise ModelNotFoundError(
                    f"The built-in model is not installed (expected at {path}).",
                    "Reinstall Sfumato, or choose a model file in the model picker.",
                )
            return path
        path = Path(os.path.expanduser(text))
        if path.exists():
            if not path.is_dir():
                from sfumato.inference.detect import open_model_file

                open_model_file(path).close()  # a named pipe or a device is refused here
            return path
        if _HUB_ID.match(text) and not text.endswith(tuple(_CHECKPOINT_SUFFIXES)):
            return text
        raise ModelNotFoundError(f"Model not found: {text}.")

    # ------------------------------------------------------------------ models

    def get(self, ref: ModelRef) -> LoadedModel:
        """The loaded model for ``ref`` (loading it on first use)."""
        with self._lock:
            adopted = self._models.get(ref.source.strip())
            if adopted is not None:
                self._models.move_to_end(ref.source.strip())
                return adopted
            target = self.resolve(ref.source)
            key = str(target)
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            while len(self._models) >= max(1, self.options.max_models):
                _, dropped = self._models.popitem(last=False)
                log.info("unloading %s", dropped.key)
                del dropped
                release_memory(self.choice.device)
            model = self._load(key, target, ref.family)
            self._models[key] = model
            self.load_count += 1
            return model

    def adopt(self, source: str, pipe: Any, family: str | None = None) -> LoadedModel:
        """Register an already-built diffusers pipeline under the name ``source``.

        Requests naming ``source`` then use it as if it had been loaded (benchmarks with
        randomly initialised full-size models, applications embedding the engine). It is
        moved to the engine's device and dtype; it counts against ``max_models``.
        """
        with self._lock:
            if family:
                fam = get_family(family)
            else:
                index: dict[str, Any] = {"_class_name": type(pipe).__name__}
                for name in ("text_encoder", "text_encoder_2"):
                    if getattr(pipe, name, None) is not None:
                        index[name] = ["transformers", type(getattr(pipe, name)).__name__]
                fam = family_for_diffusers(index, _denoiser_config(pipe))
            if next(getattr(pipe, fam.denoiser_component).parameters()).dtype != self.choice.dtype:
                pipe.to(dtype=self.choice.dtype)
            model = self._prepare(source, pipe, fam)
            self._models[source] = model
            return model

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._controlnets.clear()
            self._adapters.clear()
            self._encoders.clear()
            self._depth = None
            release_memory(self.choice.device)

    def _load(self, key: str, target: Path | str, family_hint: str | None) -> LoadedModel:
        log.info("loading model %s", key)
        try:
            if isinstance(target, str):
                pipe, family = self._load_hub(target)
            elif target.is_dir():
                pipe, family = self._load_dir(target, family_hint)
            else:
                pipe, family = self._load_file(target, family_hint)
        except EngineError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, MemoryError) as error:
            if _is_oom(error):
                raise OutOfMemoryError(
                    f"Ran out of memory while loading the model {key}.",
                    "The model is too large for this computer's memory, or its config declares "
                    "sizes its weights do not have.",
                ) from error
            raise CorruptModelError(f"Could not load the model {key}: {error}") from error
        return self._prepare(key, pipe, family)

    def _load_dir(self, path: Path, family_hint: str | None) -> tuple[Any, Family]:
        from sfumato.inference.model_files import check_model_folder

        check_model_folder(path)  # configs against their weights, before anything is built
        index = read_json(path / "model_index.json") or {}
        if not index:
            files = sorted(p for p in path.iterdir() if p.suffix in _CHECKPOINT_SUFFIXES)
            if len(files) == 1:
                return self._load_file(files[0], family_hint)
            main = _transformer_part_in(path)  # a transformer with its encoders and VAE beside it
            if main is not None:
                return self._load_file(main, family_hint)
            raise CorruptModelError(
                f"{path} is neither a diffusers model folder (no model_index.json) nor a folder "
                "holding one checkpoint file."
            )
        unet_config = read_json(path / "unet" / "config.json") or read_json(path / "transformer" / "config.json") or {}
        if not unet_config:
            raise CorruptModelError(f"{path} has neither unet/config.json nor transformer/config.json.")
        family = family_for_diffusers(index, unet_config)
        if family_hint and family_hint != family.name:
            log.warning("model %s says family %s but looks like %s", path, family_hint, family.name)
        inpaint = family.is_inpaint_config(unet_config)
        return family.load_folder(path, torch_dtype=self.choice.dtype, inpaint=inpaint), family

    def _load_transformer_file(self, path: Path) -> tuple[Any, Family] | None:
        """A transformer-family file (FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image, Qwen-Image: a
        transformer alone, its text encoders and VAE found in the folders around it, or a
        whole checkpoint; any key layout, fp8 or GGUF) as its pipeline and family plugin;
        ``None`` for any other file (a UNet checkpoint goes on to single-file loading)."""
        if path.suffix.lower() not in (".safetensors", ".gguf", ".sft"):
            return None
        from sfumato.inference.model_parts import Role, identify_part

        part = identify_part(path)
        if part is None or part.role not in (Role.TRANSFORMER, Role.CHECKPOINT) or part.family is None:
            return None
        family = get_family(part.model_family)  # a family without a plugin is refused before any loading
        from sfumato.inference.model_assembly import load_model_file

        pipe, _ = load_model_file(path, config=self.single_file_configs.get(part.family),
                                  torch_dtype=self.choice.dtype, device=self.choice.device)
        return pipe, family

    def _load_file(self, path: Path, family_hint: str | None) -> tuple[Any, Family]:
        transformer = self._load_transformer_file(path)
        if transformer is not None:
            return transformer
        if path.suffix.lower() not in _CHECKPOINT_SUFFIXES:
            raise CorruptModelError(f"{path.name} is not a model file (expected .safetensors or .ckpt).")
        try:
            from sfumato.inference.single_file import load_single_file
        except ImportError as error:  # pragma: no cover - during development only
            raise UnsupportedModeError("Single-file checkpoints cannot be loaded yet.") from error
        family_name = family_hint
        if family_name is None and path.suffix.lower() == ".safetensors" and self.single_file_configs:
            from sfumato.inference.detect import detect_family, read_safetensors_keys

            family_name = detect_family(read_safetensors_keys(path))
        config = self.single_file_configs.get(family_name) if family_name else None
        pipe = load_single_file(
            path, family_name, torch_dtype=self.choice.dtype, device=self.choice.device, config=config
        )
        unet_config = _denoiser_config(pipe)
        index: dict[str, Any] = {"_class_name": type(pipe).__name__}
        for name in ("text_encoder", "text_encoder_2"):
            if getattr(pipe, name, None) is not None:
                index[name] = ["transformers", type(getattr(pipe, name)).__name__]
        family = get_family(family_name) if family_name else family_for_diffusers(index, unet_config)
        return pipe, family

    def _load_hub(self, repo_id: str) -> tuple[Any, Family]:
        from diffusers import DiffusionPipeline

        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        try:
            folder = DiffusionPipeline.download(repo_id, local_files_only=True)
        except Exception as error:
            if offline:
                raise NetworkUnavailableError(
                    f"Model not found: {repo_id} is neither a local file or folder nor a "
                    "downloaded hub model, and downloading is off."
                ) from error
            try:
                folder = DiffusionPipeline.download(repo_id)
            except Exception as error2:
                text = str(error2).lower()
                if "connect" in text or "resolve" in text or "network" in text or "offline" in text:
                    raise NetworkUnavailableError(f"Could not download {repo_id}: no network.") from error2
                raise ModelNotFoundError(f"Could not download {repo_id}: {error2}") from error2
        return self._load_dir(Path(folder), None)

    def _prepare(self, key: str, pipe: Any, family: Family) -> LoadedModel:
        from sfumato.inference.preview import fit_latent_rgb_map, load_taesd

        device, dtype = self.choice.device, self.choice.dtype
        pipe.set_progress_bar_config(disable=True)
        vae_scale = family.vae_scale(pipe)
        native = family.loaded_native_side(pipe)
        if dtype != torch.float32 and getattr(pipe.vae.config, "force_upcast", False):
            pipe.vae.to(dtype=torch.float32)  # the SDXL VAE overflows in fp16
        memory = self._memory_plan(pipe, family, device, dtype)
        placement = None if memory is None else memory.placement
        if placement in (Placement.MODEL_OFFLOAD, Placement.SEQUENTIAL_OFFLOAD):
            log.info("%s: %s (%s)", key, placement.value if placement else "", memory.reason if memory else "")
            try:
                if placement is Placement.MODEL_OFFLOAD:
                    pipe.enable_model_cpu_offload(device=device)
                else:
                    pipe.enable_sequential_cpu_offload(device=device)
            except Exception as error:
                raise UnsupportedModeError(
                    f"{key} needs {placement.value if placement else 'offload'} to fit this GPU "
                    f"({memory.reason if memory else ''}), which is not available: {error}",
                    "Install the 'accelerate' package: pip install 'sfumato[gpu]'.",
                ) from error
        else:
            pipe.to(device)
        if self.options.vae_tiling:
            pipe.vae.enable_tiling()
        component = family.denoiser_component
        if self.options.channels_last and component == "unet":
            pipe.unet.to(memory_format=torch.channels_last)
        if self.options.compile:
            compiled = torch.compile(getattr(pipe, component), mode="max-autotune-no-cudagraphs", fullgraph=False)
            setattr(pipe, component, compiled)
        vae_config = dict(pipe.vae.config)
        if family.preview_factors is not None and family.preview_factors_fit(vae_config):
            preview = family.preview_factors
        else:
            # 64 px a side at the stock 8× VAE; more for a 16× one (FLUX.2), so that the fit
            # has far more latent pixels (samples) than unknowns.
            preview = fit_latent_rgb_map(pipe, family, size=64 * max(1, vae_scale // 8))
            log.info("fitted a latent→RGB preview map for %s", key)
        taesd = None
        from sfumato.inference.devices import PreviewMode

        if self.options.preview is PreviewMode.TAESD:
            taesd = load_taesd(self.models_root / ("taesdxl" if family.name == SDXL else "taesd"), device, dtype)
        return LoadedModel(key, family, pipe, native, vae_scale, preview, taesd=taesd, memory=memory)

    def _memory_plan(self, pipe: Any, family: Family, device: torch.device, dtype: torch.dtype) -> MemoryPlan | None:
        """Where the weights go (:mod:`sfumato.inference.memory`); ``None`` off CUDA."""
        forced = Placement.parse(self.options.offload)
        if self.options.cpu_offload and forced is None:
            forced = Placement.MODEL_OFFLOAD
        if device.type == "cpu":
            return None
        if forced is not None:
            return MemoryPlan(forced, "chosen in the settings")
        if device.type != "cuda" or not torch.cuda.is_available():
            return None
        free, _total = torch.cuda.mem_get_info(device)
        dtype_bytes = torch.empty((), dtype=dtype).element_size()
        working = activation_bytes(family.native_side, dtype_bytes)
        return plan_placement(component_bytes(pipe), int(free), working)

    # ------------------------------------------------------------------ ControlNets

    def controlnet(self, ref: ModelRef | None, kind: ControlKind, model: LoadedModel) -> Any:
        """The ControlNet for ``kind`` on ``model``'s family: ``ref`` or the family default."""
        with self._lock:
            if ref is None:
                target = self._default_controlnet(kind, model)
                family_hint = model.family.name
            else:
                target = self.resolve(ref.source)
                family_hint = ref.family or model.family.name
            key = str(target)
            cached = self._controlnets.get(key)
            if cached is not None:
                self._controlnets.move_to_end(key)
                net, family_name = cached
            else:
                net = self._load_controlnet(target, family_hint, model.family.controlnet_class, model.family.label,
                                            model.family.union_controlnet_class)  # fmt: skip
                family_name = family_hint
                while len(self._controlnets) >= max(1, self.options.max_controlnets):
                    self._controlnets.popitem(last=False)
                self._controlnets[key] = (net, family_name)
                self.controlnet_load_count += 1
            mismatch = model.family.controlnet_mismatch(net, model.pipe)
            if mismatch is not None:
                raise UnsupportedModeError(
                    f"The ControlNet {Path(key).name} is for another model family ({mismatch}).",
                    f"Choose a {model.family.label} ControlNet.",
                )
            return net

    # ------------------------------------------------------------------ depth

    def depth_estimator(self, ref: ModelRef | None) -> Any:
        """The depth estimator ``ref`` names (a transformers folder, a file in one, or an
        original Depth Anything checkpoint), else
        the installed one (:func:`~sfumato.inference.annotators.find_depth_estimator`), loaded on
        the engine's device; the last one stays loaded.

        Raises :class:`~sfumato.inference.errors.MissingDepthEstimatorError` when none is
        installed, naming what to download and where to put it.
        """
        from sfumato.inference.depth import depth_folder, load_depth_estimator

        with self._lock:
            if ref is None:
                import sfumato.inference.annotators as annotators
                from sfumato.inference.errors import MissingDepthEstimatorError

                found = annotators.find_depth_estimator()
                if found is None:
                    raise MissingDepthEstimatorError(annotators.DEPTH_ESTIMATOR_DOWNLOAD, annotators.DEPTH_ESTIMATOR_FOLDER)
                target = found
            else:
                resolved = self.resolve(ref.source)
                if isinstance(resolved, str):
                    raise ModelNotFoundError(
                        f"Depth estimator not found: {resolved} (hub ids are not read for depth estimators)."
                    )
                target = depth_folder(resolved)
            key = str(Path(target).resolve())
            if self._depth is not None and self._depth[0] == key:
                return self._depth[1]
            self._depth = None
            estimator = load_depth_estimator(Path(target), self.choice.device, self.choice.dtype)
            self._depth = (key, estimator)
            self.depth_load_count += 1
            return estimator

    # ------------------------------------------------------------------ IP-Adapters

    def reference_adapter(self, ref: ModelRef | None, kind: ReferenceKind, model: LoadedModel) -> Any:
        """The IP-Adapter for a reference of ``kind`` on ``model`` (``ref``, else the
        catalog's choice for the family), made ready for its UNet, with its image encoder
        (:class:`~sfumato.inference.reference_adapters.AdapterWeights`).

        Raises :class:`UnsupportedModeError` when none is installed (or it is FaceID, or
        of another family) and :class:`MissingImageEncoderError` naming the encoder file
        it needs and the folder to put it in.
        """
        from sfumato.inference.reference_adapters import load_adapter

        with self._lock:
            target = self._default_adapter(kind, model) if ref is None else self.resolve(ref.source)
            if isinstance(target, str):
                raise ModelNotFoundError(f"IP-Adapter not found: {target} (hub ids are not read for adapters).")
            cache_key = (str(target), model.key)
            adapter = self._adapters.get(cache_key)
            if adapter is not None:
                self._adapters.move_to_end(cache_key)
                return adapter
            device, dtype = self.choice.device, self.choice.dtype
            adapter = load_adapter(target, model.unet, model.family.label, device, dtype)
            adapter.encoder = self._image_encoder(adapter)
            while len(self._adapters) >= max(1, self.options.max_controlnets):
                self._adapters.popitem(last=False)
            self._adapters[cache_key] = adapter
            self.adapter_load_count += 1
            return adapter

    def _default_adapter(self, kind: ReferenceKind, model: LoadedModel) -> Path:
        import sfumato.inference.catalog as catalog

        found = catalog.find_reference_adapter(model.family.name, kind)
        if found is None or found.path is None:
            what = "face IP-Adapter (ip-adapter-plus-face or ip-adapter-full-face)" if kind is ReferenceKind.FACE else "IP-Adapter"
            example = "ip-adapter_sdxl_vit-h.safetensors" if model.family.name == SDXL else "ip-adapter_sd15.safetensors"
            raise UnsupportedModeError(
                f"No {what} is installed for {model.family.label}: reference pictures need one.",
                f"Put one (e.g. {example}) in ComfyUI/models/ipadapter, or pick one in the reference layer's settings.",
            )
        return found.path

    def _image_encoder(self, adapter: Any) -> Any:
        import sfumato.inference.catalog as catalog
        from sfumato.inference.errors import MissingImageEncoderError
        from sfumato.inference.reference_adapters import load_image_encoder

        path = catalog.find_image_encoder(adapter.info, adapter.path)
        if path is None:
            raise MissingImageEncoderError(adapter.path.name, adapter.info.encoder_file, "ComfyUI/models/clip_vision")
        key = str(path)
        encoder = self._encoders.get(key)
        if encoder is None:
            encoder = load_image_encoder(path, self.choice.device, self.choice.dtype)
            while len(self._encoders) >= 2:
                self._encoders.popitem(last=False)
            self._encoders[key] = encoder
        else:
            self._encoders.move_to_end(key)
        return encoder

    def _default_controlnet(self, kind: ControlKind, model: LoadedModel) -> Path | str:
        """An installed ControlNet for ``kind`` (the catalog's choice), else the built-in
        scribble ControlNet for sketch-like kinds when it fits the model."""
        family = model.family
        found = self._catalog_controlnet(kind, family)
        if found is not None:
            return found
        if kind in (ControlKind.SCRIBBLE, ControlKind.LINEART, ControlKind.SOFTEDGE):
            builtin = self.models_root / BUILTIN_CONTROLNET
            config = read_json(builtin / "config.json") or {}
            denoiser = model.denoiser.config
            if config and int(config.get("cross_attention_dim", 0)) == int(getattr(denoiser, "cross_attention_dim", -1)):
                return builtin
        raise UnsupportedModeError(
            f"No {kind.value} ControlNet is installed for {family.label}.",
            "Add one to your models folder, or pick one in the control layer's settings.",
        )

    def _catalog_controlnet(self, kind: ControlKind, family: Family) -> Path | str | None:
        try:
            import sfumato.inference.catalog as catalog
        except ImportError:
            return None
        finder = getattr(catalog, "find_controlnet", None)
        if finder is None:
            return None
        try:
            found = finder(kind, family.name)
        except Exception:
            log.warning("catalog lookup for a %s ControlNet failed", kind.value, exc_info=True)
            return None
        if found is None:
            return None
        path = getattr(found, "path", None)
        if path is not None and Path(path).exists():
            return Path(path)
        source = getattr(found, "source", None)
        return str(source) if source else None

    def _load_controlnet(
        self,
        target: Path | str,
        family: str,
        class_name: str = "ControlNetModel",
        label: str = "this model's family",
        union_class: str | None = None,
    ) -> Any:
        import diffusers

        device, dtype = self.choice.device, self.choice.dtype
        union = _is_union_controlnet(target)
        if union and union_class is None:
            raise UnsupportedModeError(
                f"The ControlNet {Path(str(target)).name} is an SDXL union ControlNet; {label} models take none.",
                f"Choose a {label} ControlNet.",
            )
        if union and union_class is not None:
            class_name = union_class
        ControlNetModel = getattr(diffusers, class_name)  # noqa: N806
        try:
            if union and isinstance(target, Path) and target.is_file():
                from sfumato.inference.controlnets import load_union_controlnet_file

                net = load_union_controlnet_file(target, torch_dtype=dtype, device=device)
            elif isinstance(target, str):
                net = ControlNetModel.from_pretrained(
                    target, torch_dtype=dtype, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1"
                )
            elif target.is_dir():
                if not (target / "config.json").is_file():
                    raise CorruptModelError(f"{target} is not a ControlNet folder (no config.json).")
                declared = str((read_json(target / "config.json") or {}).get("_class_name", ""))
                if declared.endswith("ControlNetModel") and declared != class_name and not union:
                    raise UnsupportedModeError(
                        f"The ControlNet {target.name} is a {declared}, for another model family "
                        f"(this model takes a {class_name}).",
                        f"Choose a {label} ControlNet.",
                    )
                from sfumato.inference.model_files import check_model_folder

                check_model_folder(target)
                net = ControlNetModel.from_pretrained(str(target), torch_dtype=dtype, local_files_only=True)
            else:
                from sfumato.inference.single_file import load_controlnet_file

                net = load_controlnet_file(target, family, torch_dtype=dtype, device=device)
        except EngineError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, MemoryError) as error:
            if _is_oom(error):
                raise OutOfMemoryError(
                    f"Ran out of memory while loading the ControlNet {target}.",
                    "It is too large for this computer's memory, or its config declares sizes "
                    "its weights do not have.",
                ) from error
            raise CorruptModelError(f"Could not load the ControlNet {target}: {error}") from error
        net.to(device)
        if self.options.channels_last:
            net.to(memory_format=torch.channels_last)
        return net


def _is_union_controlnet(target: Path | str) -> bool:
    """Whether the ControlNet at ``target`` is a union ControlNet (xinsir's Union/ProMax):
    by a folder's (or a cached hub id's) config, or a ``.safetensors`` file's tensor names."""
    from sfumato.inference.detect import (
        is_union_controlnet,
        is_union_controlnet_config,
        read_safetensors_keys,
    )

    try:
        if isinstance(target, str):
            import diffusers

            config = diffusers.ControlNetModel.load_config(target, local_files_only=True)
            return is_union_controlnet_config(config)
        if target.is_dir():
            return is_union_controlnet_config(read_json(target / "config.json") or {})
        if target.suffix.lower() == ".safetensors":
            return is_union_controlnet(read_safetensors_keys(target))
    except Exception:  # noqa: BLE001 - unreadable here: the loader says what is wrong
        return False
    return False


def _denoiser_config(pipe: Any) -> dict[str, Any]:
    """The config of a pipeline's UNet or transformer (what a family is recognised by)."""
    module = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    return dict(module.config) if module is not None else {}


def _transformer_part_in(folder: Path) -> Path | None:
    """The one transformer (or whole checkpoint) of a transformer family among a folder's
    files, when its text encoders and VAE lie beside it; ``None`` otherwise."""
    from sfumato.inference.model_parts import Role, identify_part_cached

    mains = [
        p for p in sorted(folder.iterdir())
        if p.suffix.lower() in (".safetensors", ".gguf") and p.is_file()
        and (part := identify_part_cached(p)) is not None and part.role in (Role.TRANSFORMER, Role.CHECKPOINT)
    ]
    return mains[0] if len(mains) == 1 else None


def _is_oom(error: BaseException) -> bool:
    from sfumato.inference.devices import is_oom_error

    return is_oom_error(error)

"""Model discovery for the model picker: which checkpoints, ControlNets and LoRAs exist.

Imports no torch (numpy-free even): labels and families come from file names, folder
configs and safetensors headers (:mod:`sfumato.inference.detect`), never from loading
weights. Places searched, in this order:

1. the built-in demo model ``resources/models/builtin/`` and its scribble ControlNet
   ``resources/models/builtin-controlnet-scribble/`` (when present);
2. the user's configured ``model_paths`` (:mod:`sfumato.vocabulary.config`): files, diffusers
   folders, or folders scanned a few levels deep;
3. ComfyUI's ``~/ComfyUI/models/{checkpoints,controlnet,loras,ipadapter,clip_vision}``;
4. AUTOMATIC1111 / Forge ``~/stable-diffusion-webui[-forge]/models/{Stable-diffusion,
   ControlNet,Lora,ipadapter,clip_vision}`` (sd-webui-controlnet keeps IP-Adapters among
   the ControlNets: they are told apart by their keys, or for a pickle by their name);
5. the Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or
   ``~/.cache/huggingface/hub``): ``models--org--name`` snapshots with a
   ``model_index.json`` (pipelines) or a ControlNet ``config.json``.

Setting ``SFUMATO_NO_SYSTEM_MODEL_DIRS=1`` skips 3–5 (the tests do, so a developer's
own models never leak into a test run).

An entry's ``source`` is what :class:`~sfumato.inference.request.ModelRef` takes: a
path, a hub id (``org/name``), or ``"builtin"``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from sfumato.inference.detect import (
    MISTOLINE_KINDS,
    SD2,
    SD15,
    SDXL,
    SUPPORTED_FAMILIES,
    IPAdapterInfo,
    WeightsKind,
    detect_weights_kind,
    guess_family,
    image_encoder_info,
    is_mistoline,
    is_union_controlnet,
    is_union_controlnet_config,
    read_safetensors_header,
    union_kinds,
)
from sfumato.inference.errors import EngineError
from sfumato.vocabulary.config import Config, load_config, read_json
from sfumato.vocabulary.families import (
    BUILTIN,
    PIPELINE_FAMILIES,
    builtin_controlnet_folder,
    builtin_model_folder,
    lora_family,
)
from sfumato.vocabulary.kinds import ControlKind, ReferenceKind

__all__ = [
    "BUILTIN_CONTROLNET_DIR",
    "BUILTIN_LABEL",
    "BUILTIN_MODEL_DIR",
    "BUILTIN_SOURCE",
    "ModelEntry",
    "Origin",
    "WeightsKind",
    "find_controlnet",
    "find_default_model",
    "find_image_encoder",
    "find_reference_adapter",
    "encoder_files",
    "find_loras",
    "home_dir",
    "hub_cache_dir",
    "list_models",
    "system_dirs_enabled",
    "system_model_dirs",
]

log = logging.getLogger(__name__)

BUILTIN_SOURCE = BUILTIN
BUILTIN_LABEL = "built-in demo model — shapes and colours; add a Stable Diffusion checkpoint for real work"
BUILTIN_CONTROLNET_LABEL = "built-in scribble ControlNet (demo model)"
BUILTIN_MODEL_DIR = builtin_model_folder()
BUILTIN_CONTROLNET_DIR = builtin_controlnet_folder()

_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
_SCAN_DEPTH = 3
_NO_SYSTEM_ENV = "SFUMATO_NO_SYSTEM_MODEL_DIRS"


class Origin(Enum):
    """Where an entry was found (the picker groups by it)."""

    BUILTIN = "builtin"
    CONFIGURED = "configured"
    COMFYUI = "comfyui"
    A1111 = "a1111"
    HUB = "hub"


_ORIGIN_ORDER = {origin: i for i, origin in enumerate(Origin)}


@dataclass(frozen=True)
class ModelEntry:
    """One model the user can pick.

    ``source`` goes into :class:`~sfumato.inference.request.ModelRef` (a path, a hub id
    or ``"builtin"``). ``location`` is where the files are on this computer when that
    differs from ``source`` (a hub entry's cached snapshot folder, the built-in model's
    folder); :attr:`path` gives the local file or folder either way. ``family`` is a
    cheap guess (``"sd15"``, ``"sdxl"``, ``"sd2"``, ... or ``None`` when unknown, e.g.
    for a ``.ckpt`` that cannot be read without unpickling).
    """

    kind: WeightsKind
    source: str
    label: str
    family: str | None
    origin: Origin
    location: str | None = None
    problem: str | None = None  # why the file cannot be used, when its header says so

    @property
    def path(self) -> Path | None:
        """The local file or folder; ``None`` only for a hub id that is not cached."""
        if self.location is not None:
            return Path(self.location)
        if self.origin is Origin.HUB or self.source == BUILTIN_SOURCE:
            return None
        return Path(self.source)

    @property
    def supported(self) -> bool:
        return self.problem is None and self.family in SUPPORTED_FAMILIES


# --------------------------------------------------------------------------- roots


def home_dir() -> Path:
    """The user's home, where ComfyUI's and A1111's folders are looked for."""
    return Path(os.path.expanduser("~"))


def system_model_dirs(home: Path | None = None) -> list[tuple[Path, Origin, WeightsKind]]:
    """The ComfyUI and A1111/Forge model folders under ``home`` (existing or not)."""
    home = home_dir() if home is None else home
    dirs: list[tuple[Path, Origin, WeightsKind]] = []
    comfy = home / "ComfyUI" / "models"
    dirs += [
        (comfy / "checkpoints", Origin.COMFYUI, WeightsKind.CHECKPOINT),
        # transformer-family models alone (FLUX, SD 3.5, ...); their text encoders and VAE
        # are found beside them, in text_encoders/ (clip/) and vae/ (model_parts)
        (comfy / "diffusion_models", Origin.COMFYUI, WeightsKind.CHECKPOINT),
        (comfy / "unet", Origin.COMFYUI, WeightsKind.CHECKPOINT),
        (comfy / "controlnet", Origin.COMFYUI, WeightsKind.CONTROLNET),
        (comfy / "loras", Origin.COMFYUI, WeightsKind.LORA),
        (comfy / "ipadapter", Origin.COMFYUI, WeightsKind.IP_ADAPTER),
        (comfy / "clip_vision", Origin.COMFYUI, WeightsKind.CLIP_VISION),
        (comfy / "style_models", Origin.COMFYUI, WeightsKind.REDUX),  # FLUX.1 Redux
    ]
    for webui in ("stable-diffusion-webui", "stable-diffusion-webui-forge"):
        models = home / webui / "models"
        dirs += [
            (models / "Stable-diffusion", Origin.A1111, WeightsKind.CHECKPOINT),
            (models / "ControlNet", Origin.A1111, WeightsKind.CONTROLNET),
            (models / "Lora", Origin.A1111, WeightsKind.LORA),
            (models / "ipadapter", Origin.A1111, WeightsKind.IP_ADAPTER),
            (models / "clip_vision", Origin.A1111, WeightsKind.CLIP_VISION),
        ]
    return dirs


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE``, ``HF_HOME``, or the default)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return home_dir() / ".cache" / "huggingface" / "hub"


def system_dirs_enabled() -> bool:
    """Whether ComfyUI's, A1111's and the hub's folders are searched
    (``SFUMATO_NO_SYSTEM_MODEL_DIRS`` turns them off; the tests do)."""
    return os.environ.get(_NO_SYSTEM_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------- sniffing

_header_cache: dict[tuple[str, int, int], tuple[WeightsKind | None, str | None, str | None]] = {}


def _sniff_file(path: Path) -> tuple[WeightsKind | None, str | None, str | None]:
    """(kind, family, problem) of a weights file from its safetensors header; cached by
    mtime/size. Never raises: a file that cannot be read comes back with its problem."""
    if path.suffix.lower() != ".safetensors":
        return None, None, None
    try:
        stat = path.stat()
    except OSError as error:
        return None, None, f"cannot be read: {error.strerror or error}"
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _header_cache:
        return _header_cache[key]
    try:
        header = read_safetensors_header(path)
        shapes = header.shapes
        result: tuple[WeightsKind | None, str | None, str | None] = (
            detect_weights_kind(shapes), guess_family(shapes, header.metadata), None
        )
    except EngineError as error:
        result = (None, None, error.message)
    except Exception as error:  # noqa: BLE001 - one bad file must not end the scan
        result = (None, None, f"{path.name} cannot be read ({type(error).__name__}: {error})")
    if result[2] is not None:
        log.info("cannot read %s: %s", path, result[2])
    _header_cache[key] = result
    return result


def _family_from_cross_attention(dim: Any) -> str | None:
    return {768: SD15, 2048: SDXL, 1024: SD2}.get(dim if isinstance(dim, int) else -1)


def _folder_entry(folder: Path, origin: Origin, source: str | None = None, label: str | None = None) -> ModelEntry | None:
    """A diffusers pipeline folder or a ControlNet folder as an entry; ``None`` otherwise.

    With ``source`` (a hub id, ``builtin``) the folder is kept as the entry's ``location``.
    """
    location = str(folder) if source is not None else None
    index = read_json(folder / "model_index.json") or {}
    if index:
        name = str(index.get("_class_name", ""))
        if name == "FluxPriorReduxPipeline":  # FLUX.1-Redux-dev: reference pictures for FLUX.1
            return ModelEntry(WeightsKind.REDUX, source or str(folder), label or folder.name, "flux", origin, location)
        unet = read_json(folder / "unet" / "config.json") or {}
        if "XL" in name:
            family: str | None = SDXL if "Refiner" not in name else "sdxl-refiner"
        elif name in PIPELINE_FAMILIES:
            family = PIPELINE_FAMILIES[name]
        elif name.startswith("StableDiffusion"):
            family = _family_from_cross_attention(unet.get("cross_attention_dim")) or SD15
        else:
            family = None
        return ModelEntry(WeightsKind.CHECKPOINT, source or str(folder), label or folder.name, family, origin, location)
    config = read_json(folder / "config.json") or {}
    if config.get("model_type") in ("siglip_vision_model", "siglip") and "SiglipVisionModel" in (config.get("architectures") or ()):
        return ModelEntry(WeightsKind.CLIP_VISION, source or str(folder), label or folder.name, None, origin, location)
    if "CLIPVisionModelWithProjection" in (config.get("architectures") or ()):
        return ModelEntry(WeightsKind.CLIP_VISION, source or str(folder), label or folder.name, None, origin, location)
    if config.get("_class_name") == "ControlNetModel" or is_union_controlnet_config(config):
        family = _family_from_cross_attention(config.get("cross_attention_dim"))
        if family is None and config.get("addition_embed_type") == "text_time":
            family = SDXL  # SDXL's ControlNets embed its size conditioning, whatever their width
        return ModelEntry(WeightsKind.CONTROLNET, source or str(folder), label or folder.name, family, origin, location)
    return None


def _part_entry(path: Path, origin: Origin) -> ModelEntry | None | bool:
    """A transformer-family file (FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image, Qwen-Image) as an
    entry whose problem names any text encoder or VAE missing from the folders around it
    (:mod:`.model_parts`); ``False`` for a text encoder or a VAE, which are parts of such a
    model rather than models to pick; ``None`` for any other file."""
    import importlib.util

    from sfumato.inference.model_parts import Role, group_transformer_file, identify_part_cached

    if path.suffix.lower() == ".gguf" and importlib.util.find_spec("gguf") is None:
        return ModelEntry(WeightsKind.CHECKPOINT, str(path), path.stem, None, origin,
                          problem="reading .gguf files needs the gguf package: pip install gguf")
    part = identify_part_cached(path)
    if part is None:
        return None
    if part.role in (Role.TEXT_ENCODER, Role.VAE):
        return False
    group = group_transformer_file(path, part)
    return ModelEntry(WeightsKind.CHECKPOINT, str(path), path.stem, part.model_family, origin,
                      problem=group.problem if group is not None else None)


def _file_entry(path: Path, origin: Origin, kind_hint: WeightsKind | None) -> ModelEntry | None:
    if path.suffix.lower() in (".safetensors", ".gguf", ".sft") and kind_hint in (None, WeightsKind.CHECKPOINT):
        entry = _part_entry(path, origin)
        if entry is not None:
            return entry or None
    kind, family, problem = _sniff_file(path)
    if kind is None or (kind_hint is not None and kind is WeightsKind.CHECKPOINT):
        # A header cannot tell a checkpoint from a file it fails to read; the folder can.
        kind = kind_hint or kind or WeightsKind.CHECKPOINT
        if kind is WeightsKind.CONTROLNET and _ADAPTER_NAME.search(path.name.lower()):
            kind = WeightsKind.IP_ADAPTER  # a pickled IP-Adapter among A1111's ControlNets
    if kind is WeightsKind.IP_ADAPTER and family is None:
        family = _family_from_name(path.name)
    return ModelEntry(kind, str(path), path.stem, family, origin, problem=problem)


def _scan(root: Path, origin: Origin, kind_hint: WeightsKind | None, depth: int = _SCAN_DEPTH) -> Iterator[ModelEntry]:
    """Entries in ``root`` (a file, a model folder, or a folder of them), ``depth`` levels down."""
    try:
        if root.is_file():
            if root.suffix.lower() in _FILE_SUFFIXES:
                entry = _file_entry(root, origin, kind_hint)
                if entry is not None:
                    yield entry
            return
        if not root.is_dir():
            if root.suffix.lower() in _FILE_SUFFIXES and root.exists():  # a pipe, a device
                problem = f"{root.name} is not a regular file (a named pipe or a device); not read"
                yield ModelEntry(kind_hint or WeightsKind.CHECKPOINT, str(root), root.stem, None, origin, problem=problem)
            return
    except OSError:
        return
    entry = _folder_entry(root, origin)
    if entry is not None:
        yield entry
        return
    if depth <= 0:
        return
    try:
        children = sorted(root.iterdir(), key=lambda p: p.name.lower())
    except OSError as error:
        log.info("cannot list %s: %s", root, error)
        return
    for child in children:
        if child.name.startswith("."):
            continue
        yield from _scan(child, origin, kind_hint, depth - 1)


def _scan_hub(cache: Path) -> Iterator[ModelEntry]:
    try:
        repos = sorted(p for p in cache.glob("models--*") if p.is_dir())
    except OSError:
        return
    for repo in repos:
        repo_id = repo.name[len("models--") :].replace("--", "/")
        snapshots = repo / "snapshots"
        ref = (repo / "refs" / "main")
        candidates: list[Path] = []
        try:
            if ref.is_file():
                candidates.append(snapshots / ref.read_text().strip())
            if snapshots.is_dir():
                candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            continue
        for snapshot in candidates:
            entry = _folder_entry(snapshot, Origin.HUB, source=repo_id, label=repo_id)
            if entry is not None:
                yield entry
                break


def _builtin_entries() -> Iterator[ModelEntry]:
    if BUILTIN_MODEL_DIR.is_dir():
        entry = _folder_entry(BUILTIN_MODEL_DIR, Origin.BUILTIN)
        family = entry.family if entry is not None else _first_family(BUILTIN_MODEL_DIR)
        yield ModelEntry(
            WeightsKind.CHECKPOINT, BUILTIN_SOURCE, BUILTIN_LABEL, family, Origin.BUILTIN, str(BUILTIN_MODEL_DIR)
        )
    if (BUILTIN_CONTROLNET_DIR / "config.json").is_file():
        entry = _folder_entry(BUILTIN_CONTROLNET_DIR, Origin.BUILTIN, label=BUILTIN_CONTROLNET_LABEL)
        if entry is not None:
            # Its text width fits no real family: it belongs to the built-in model only,
            # so no family search ever offers it to a real SD 1.x model.
            yield entry if entry.family is not None else replace(entry, family=BUILTIN_SOURCE)


def _first_family(folder: Path) -> str | None:
    for file in sorted(folder.glob("*.safetensors")):
        return _sniff_file(file)[1]
    return None


def _entries_safely(entries: Iterator[ModelEntry], where: str) -> Iterator[ModelEntry]:
    """``entries``, ending that source (with a log line) if scanning it fails unexpectedly,
    so one unreadable folder never hides the models found elsewhere."""
    try:
        yield from entries
    except Exception as error:  # noqa: BLE001
        log.warning("scanning %s stopped: %s: %s", where, type(error).__name__, error)


# --------------------------------------------------------------------------- public


def _all_entries(config: Config) -> Iterator[ModelEntry]:
    yield from _entries_safely(_builtin_entries(), "the built-in models")
    for raw in config.model_paths:
        yield from _entries_safely(_scan(Path(raw).expanduser(), Origin.CONFIGURED, None), str(raw))
    if not system_dirs_enabled():
        return
    for folder, origin, kind in system_model_dirs():
        yield from _entries_safely(_scan(folder, origin, kind), str(folder))
    yield from _entries_safely(_scan_hub(hub_cache_dir()), "the Hugging Face cache")


def list_models(kind: WeightsKind | None = None, *, config: Config | None = None) -> list[ModelEntry]:
    """Every model found (built-in first, then configured, ComfyUI, A1111, hub), deduplicated.

    ``kind`` filters to checkpoints, ControlNets or LoRAs. Within an origin, entries are
    sorted by label. Files whose header cannot be read are listed with ``family=None``
    and their ``problem``; a ``.ckpt`` (not readable without unpickling) is listed with
    ``family=None`` and no problem (the loader says what is wrong when it is picked).
    """
    config = load_config() if config is None else config
    seen: set[str] = set()
    entries: list[ModelEntry] = []
    for entry in _all_entries(config):
        key = entry.source
        if entry.path is not None:
            with contextlib.suppress(OSError):
                key = str(entry.path.resolve())
        if key in seen:
            continue
        seen.add(key)
        if kind is None or entry.kind is kind:
            entries.append(entry)
    entries.sort(key=lambda e: (_ORIGIN_ORDER[e.origin], e.kind.value, e.label.lower()))
    return entries


def builtin_entry() -> ModelEntry:
    """The built-in demo model's entry (whether or not its weights are installed yet)."""
    for entry in _builtin_entries():
        if entry.source == BUILTIN_SOURCE:
            return entry
    return ModelEntry(WeightsKind.CHECKPOINT, BUILTIN_SOURCE, BUILTIN_LABEL, None, Origin.BUILTIN)


def find_default_model(config: Config | None = None) -> ModelEntry:
    """The configured ``default_model`` when it still exists, else the built-in model."""
    config = load_config() if config is None else config
    default = config.default_model
    if not default or default == BUILTIN_SOURCE:
        return builtin_entry()
    path = Path(default).expanduser()
    if path.exists():
        for entry in _scan(path, Origin.CONFIGURED, WeightsKind.CHECKPOINT, depth=0):
            return entry
        log.warning("default model %s is neither a checkpoint file nor a model folder", path)
        return builtin_entry()
    if _looks_like_hub_id(default):
        return ModelEntry(WeightsKind.CHECKPOINT, default, default, None, Origin.HUB)
    log.warning("default model %s no longer exists; using the built-in model", default)
    return builtin_entry()


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and "\\" not in text


_CONTROL_WORDS: dict[ControlKind, tuple[str, ...]] = {
    ControlKind.SCRIBBLE: ("scribble", "sketch"),
    ControlKind.LINEART: ("lineart", "line_art", "line-art"),
    ControlKind.SOFTEDGE: ("softedge", "soft_edge", "soft-edge", "hed", "pidi"),
    ControlKind.CANNY: ("canny",),
    ControlKind.DEPTH: ("depth",),
    ControlKind.POSE: ("openpose", "pose"),
    ControlKind.SEGMENTATION: ("seg",),
}


def find_controlnet(
    kind: ControlKind, family: str, *, entries: Iterable[ModelEntry] | None = None
) -> ModelEntry | None:
    """The first installed ControlNet for ``kind`` and ``family``, judged by its name.

    Names are matched case-insensitively against words such as ``scribble``, ``canny``,
    ``softedge``/``hed``; a ControlNet of unknown family counts as a match only when no
    entry of the right family does (never the built-in demo ControlNet). The user's configured folders win over ComfyUI,
    A1111 and the hub. When no net is named for the kind: MistoLine (named ``mistoline``,
    SDXL) for every line kind (scribble, lineart, softedge, canny), then a union ControlNet
    of the family (xinsir's Union/ProMax: named ``union``, or recognised by its config or
    tensor names) for every kind its control types cover.
    """
    pool = [e for e in (list_models(WeightsKind.CONTROLNET) if entries is None else entries)
            if e.kind is WeightsKind.CONTROLNET and e.problem is None]  # fmt: skip
    words = _CONTROL_WORDS[kind]

    def named(entry: ModelEntry) -> bool:
        text = (entry.label + " " + Path(entry.source).name).lower()
        return any(word in text for word in words)

    found = _first_of_family([e for e in pool if named(e)], family)
    if found is not None:
        return found
    if kind in MISTOLINE_KINDS and family == SDXL:
        found = _first_of_family([e for e in pool if is_mistoline(e.label + " " + Path(e.source).name)], family)
        if found is not None:
            return found
    if kind in union_kinds(family):
        return _first_of_family([e for e in pool if _is_union_entry(e)], family)
    return None


def _first_of_family(matches: list[ModelEntry], family: str) -> ModelEntry | None:
    """The first of ``matches`` of ``family``, else the first of unknown family (never the
    built-in demo ControlNet, which stands last)."""
    # The built-in demo ControlNet only when nothing real is installed.
    matches = sorted(matches, key=lambda e: e.origin is Origin.BUILTIN)
    for entry in matches:
        if entry.family == family:
            return entry
    for entry in matches:  # e.g. a .pth whose family cannot be read cheaply
        if entry.family is None and entry.origin is not Origin.BUILTIN:
            return entry
    return None


_union_cache: dict[tuple[str, int, int], bool] = {}


def _is_union_entry(entry: ModelEntry) -> bool:
    """Whether a ControlNet entry is a union ControlNet: by its name (``union``), a
    folder's config, or a ``.safetensors`` file's tensor names (cached by mtime/size)."""
    if "union" in (entry.label + " " + Path(entry.source).name).lower():
        return True
    path = entry.path
    if path is None:
        return False
    try:
        if path.is_dir():
            return is_union_controlnet_config(read_json(path / "config.json") or {})
        if path.suffix.lower() != ".safetensors":
            return False
        stat = path.stat()
    except OSError:
        return False
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _union_cache:
        try:
            _union_cache[key] = is_union_controlnet(read_safetensors_header(path).shapes)
        except EngineError:
            _union_cache[key] = False
    return _union_cache[key]


_ADAPTER_NAME = re.compile(r"ip[-_]?adapter")


def _family_from_name(name: str) -> str | None:
    """An IP-Adapter's family from its file name (``ip-adapter_sd15``, ``..._sdxl_vit-h``)."""
    text = name.lower()
    if "sdxl" in text or "_xl" in text:
        return SDXL
    if "sd15" in text or "sd1.5" in text or "sd_15" in text:
        return SD15
    return None


def _adapter_words(entry: ModelEntry) -> str:
    return (entry.label + " " + Path(entry.source).name).lower()


def _is_faceid(entry: ModelEntry) -> bool:
    return "faceid" in _adapter_words(entry).replace("-", "").replace("_", "")


def _is_face(entry: ModelEntry) -> bool:
    return "face" in _adapter_words(entry) and not _is_faceid(entry)


def find_reference_adapter(
    family: str, kind: ReferenceKind | None = None, *, entries: Iterable[ModelEntry] | None = None
) -> ModelEntry | None:
    """The first installed IP-Adapter for ``family`` (``"sd15"``, ``"sdxl"``) that suits
    reference pictures of ``kind``, as :func:`find_controlnet` finds ControlNets; for
    ``"flux"`` the first FLUX.1 Redux (ComfyUI's ``style_models`` file or the diffusers
    ``FLUX.1-Redux-dev`` folder), whatever the kind.

    A face reference takes a face adapter (``ip-adapter-plus-face``, ``-full-face``: its
    name says ``face``); the other kinds take an adapter that is not one (a plain or plus
    adapter; ``plus`` is preferred, it reads the picture in more detail). FaceID adapters
    are never chosen (they need InsightFace, which Sfumato does not run). An adapter of
    unknown family counts only when none of the right family is installed.
    """
    if family == "flux":  # FLUX.1 reads every kind through Redux (the picture whole)
        reduxes = list(list_models(WeightsKind.REDUX) if entries is None else entries)
        return next((e for e in reduxes if e.kind is WeightsKind.REDUX and e.problem is None), None)
    pool = list(list_models(WeightsKind.IP_ADAPTER) if entries is None else entries)
    usable = [e for e in pool if e.kind is WeightsKind.IP_ADAPTER and e.problem is None and not _is_faceid(e)]
    if kind is ReferenceKind.FACE:
        usable = [e for e in usable if _is_face(e)]
    else:
        usable = [e for e in usable if not _is_face(e)]
    usable.sort(key=lambda e: "plus" not in _adapter_words(e))  # stable: origins keep their order
    for wanted in (family, None):
        for entry in usable:
            if entry.family == wanted:
                return entry
    return None


def find_image_encoder(
    adapter: IPAdapterInfo, adapter_path: Path | None = None, *, entries: Iterable[ModelEntry] | None = None
) -> Path | None:
    """The installed CLIP vision encoder that ``adapter`` reads pictures with: one whose
    widths fit it (:meth:`~sfumato.inference.detect.ImageEncoderInfo.serves`), looked for
    first beside the adapter (an ``image_encoder`` or ``clip_vision`` folder next to it or
    one level up: the h94/IP-Adapter repository's layout), then in the catalog's
    ``clip_vision`` folders. A pickled encoder (``.bin``/``.pth``) whose widths cannot be
    read counts when its name says the model (``vit-h``/``clip_h``, ``bigg``/``clip_g``)."""
    candidates: list[Path] = []
    if adapter_path is not None:
        for base in (adapter_path.parent, adapter_path.parent.parent):
            for name in ("image_encoder", "clip_vision"):
                candidates.append(base / name)
                candidates.append(base / "models" / name)
    pool = list(list_models(WeightsKind.CLIP_VISION) if entries is None else entries)
    candidates += [e.path for e in pool if e.kind is WeightsKind.CLIP_VISION and e.problem is None and e.path]
    for candidate in candidates:
        for path in encoder_files(candidate):
            if _encoder_serves(path, adapter):
                return path
    return None


def encoder_files(candidate: Path, suffixes: tuple[str, ...] = _FILE_SUFFIXES) -> list[Path]:
    """The image encoders ``candidate`` may hold: itself (a file, or a transformers
    folder with a ``config.json``), else the weight files in it (of ``suffixes``)."""
    try:
        if candidate.is_file():
            return [candidate]
        if not candidate.is_dir():
            return []
        if (candidate / "config.json").is_file():
            return [candidate]
        return sorted(p for p in candidate.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    except OSError:
        return []


def _encoder_serves(path: Path, adapter: IPAdapterInfo) -> bool:
    from sfumato.inference.detect import ImageEncoderInfo

    if path.is_dir():
        config = read_json(path / "config.json") or {}
        vision = config.get("vision_config", config)
        try:
            info = ImageEncoderInfo(int(vision["hidden_size"]), int(config.get("projection_dim", vision.get("projection_dim", 0))),
                                    int(vision.get("image_size", 224)), int(vision.get("patch_size", 14)), 0, 0)  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return False
        return info.serves(adapter)
    if path.suffix.lower() == ".safetensors":
        try:
            found = image_encoder_info(read_safetensors_header(path).shapes)
        except EngineError:
            return False
        return found is not None and found.serves(adapter)
    name = path.name.lower().replace("-", "").replace("_", "")
    big = "bigg" in name or "clipg" in name
    huge = "vith" in name or "cliph" in name
    return (big and adapter.encoder_width in (1280, 1664)) or (huge and adapter.encoder_width in (1024, 1280))


def find_loras(family: str | None = None, *, config: Config | None = None) -> list[ModelEntry]:
    """Installed LoRAs, optionally only those for ``family`` (unknown family included; an
    edit model's are its base model's: :func:`~sfumato.vocabulary.families.lora_family`)."""
    loras = list_models(WeightsKind.LORA, config=config)
    if family is None:
        return loras
    base = lora_family(family)
    return [e for e in loras if e.family in (base, None)]

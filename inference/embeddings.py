"""Textual-inversion embeddings: files of learnt token vectors used by name in a prompt.

**Files.** ``.safetensors`` (read directly), ``.pt`` / ``.bin`` (only through
``torch.load(weights_only=True)``: a pickle that needs anything but tensors and plain
containers is refused with :class:`~.errors.UnsafeModelError`). Layouts read:

- A1111 SD 1.x: ``emb_params`` ``(n, 768)``, or ``string_to_param`` ``{"*": (n, 768)}``
  (in a ``.pt``), or a file holding one tensor;
- SDXL: ``clip_l`` ``(n, 768)`` for the first text encoder and ``clip_g`` ``(n, 1280)``
  for the second.

**Where.** :func:`find_embeddings` (torch-free, names from file stems) lists an
``embeddings/`` folder inside each configured ``model_paths`` folder (or a configured
folder itself named ``embeddings``), then ComfyUI's ``~/ComfyUI/models/embeddings`` and
A1111/Forge's ``~/stable-diffusion-webui[-forge]/embeddings`` (skipped with
``SFUMATO_NO_SYSTEM_MODEL_DIRS=1``, as :mod:`.catalog` does). The first file of a name wins.

**Matching rule** (:func:`split_embeddings`), applied to each weighted span after the
attention syntax is read, so ``(NAME:1.3)`` weighs the embedding's vectors like any tokens:

- ``embedding:NAME`` (ComfyUI's form; ``NAME`` is a run of letters, digits, ``_``, ``-``
  and ``.``, an optional ``.safetensors``/``.pt``/``.bin`` dropped) is always an embedding;
  a name no file has is an :class:`EmbeddingNotFoundError`;
- a bare word equal to a file's stem, case-insensitively, is one too (A1111's way); a
  word is a maximal run of letters, digits, ``_`` and ``-``, so ``myemb,`` matches
  ``myemb`` while ``myemb2`` or ``my-emb-x`` do not. A bare word whose file is for another
  model family stays text (A1111 skips such files as well); ``embedding:`` reports it.

**How it is encoded.** The name becomes ``n`` placeholder tokens; while the text encoder
runs, a forward hook on its token-embedding layer writes the file's vectors at those
positions (:func:`sfumato.inference.families.clip.encode_chunks`), then is removed. The
alternative, adding tokens to the tokenizer and resizing the embedding matrix, would
change the loaded model (and every later prompt's cache entry would have to know about
it); the hook leaves the model exactly as it was and the ids of every other token
unchanged. Position embeddings, attention and the pooled output (found by the end
token, never a placeholder) work as usual. The model's prompt cache key gains the used
files' paths, sizes and modification times (:meth:`EmbeddingLibrary.fingerprint`), so a
replaced file is read again; a prompt that names no embedding keeps its old key and
encodes bit for bit as it did before embeddings existed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfumato.inference.errors import CorruptModelError, EngineError, UnsafeModelError
from sfumato.vocabulary.config import Config, load_config

if TYPE_CHECKING:
    import torch

__all__ = [
    "EMBEDDING_SUFFIXES",
    "EmbeddingLibrary",
    "EmbeddingLookup",
    "EmbeddingMismatchError",
    "EmbeddingNotFoundError",
    "EmbeddingRef",
    "embedding_dirs",
    "find_embeddings",
    "load_embedding",
    "split_embeddings",
]

log = logging.getLogger(__name__)

EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
_NO_SYSTEM_ENV = "SFUMATO_NO_SYSTEM_MODEL_DIRS"
_SCAN_DEPTH = 2

_EXPLICIT = re.compile(r"embedding:([\w.\-]+)", re.IGNORECASE)
_WORD = re.compile(r"[\w\-]+")


class EmbeddingNotFoundError(EngineError):
    """A prompt names ``embedding:NAME`` and no embedding file has that name."""

    default_hint = "Put NAME.safetensors in an embeddings/ folder of your models folder, or fix the name."


class EmbeddingMismatchError(EngineError):
    """An embedding file that does not fit the model's text encoder(s)."""

    default_hint = "Use an embedding trained for this model family (SD 1.x or SDXL)."


@dataclass(frozen=True)
class EmbeddingRef:
    """A name in a prompt that refers to an embedding file; ``explicit``: written as
    ``embedding:NAME`` (a missing or unfit file is then an error)."""

    name: str
    text: str  # the prompt text it replaces
    explicit: bool


# --------------------------------------------------------------------------- finding


def embedding_dirs(config: Config | None = None, home: Path | None = None) -> list[Path]:
    """The folders searched, in order (existing or not)."""
    config = load_config() if config is None else config
    dirs: list[Path] = []
    for raw in config.model_paths:
        root = Path(raw).expanduser()
        dirs.append(root if root.name.lower() == "embeddings" else root / "embeddings")
    if os.environ.get(_NO_SYSTEM_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return dirs
    home = Path(os.path.expanduser("~")) if home is None else home
    dirs.append(home / "ComfyUI" / "models" / "embeddings")
    dirs += [home / webui / "embeddings" for webui in ("stable-diffusion-webui", "stable-diffusion-webui-forge")]
    return dirs


def find_embeddings(config: Config | None = None, *, dirs: Iterable[Path] | None = None) -> dict[str, Path]:
    """Embedding files by lower-case file stem (the name a prompt uses); imports no torch.

    ``dirs`` replaces :func:`embedding_dirs`. Folders are searched a couple of levels deep;
    the first file of a name wins.
    """
    found: dict[str, Path] = {}
    for folder in embedding_dirs(config) if dirs is None else dirs:
        for path in _files(folder, _SCAN_DEPTH):
            found.setdefault(path.stem.lower(), path)
    return found


def _files(folder: Path, depth: int) -> list[Path]:
    try:
        children = sorted(folder.iterdir(), key=lambda p: p.name.lower())
    except OSError:
        return []
    files: list[Path] = []
    for child in children:
        if child.name.startswith("."):
            continue
        try:
            if child.is_file() and child.suffix.lower() in EMBEDDING_SUFFIXES:
                files.append(child)
            elif child.is_dir() and depth > 0:
                files += _files(child, depth - 1)
        except OSError:
            continue
    return files


# --------------------------------------------------------------------------- matching


def _matches(text: str, names: Mapping[str, Any] | set[str] | frozenset[str]) -> list[tuple[int, int, EmbeddingRef]]:
    found: list[tuple[int, int, EmbeddingRef]] = []
    taken: list[tuple[int, int]] = []
    for match in _EXPLICIT.finditer(text):
        name = match.group(1).rstrip(".")  # a sentence's full stop is no part of it
        lowered = name.lower()
        for suffix in EMBEDDING_SUFFIXES:
            if lowered.endswith(suffix):
                lowered = lowered[: -len(suffix)]
                break
        end = match.start(1) + len(name)
        found.append((match.start(), end, EmbeddingRef(lowered, text[match.start() : end], explicit=True)))
        taken.append((match.start(), end))
    if names:
        for match in _WORD.finditer(text):
            if any(s <= match.start() < e for s, e in taken):
                continue
            word = match.group(0)
            if word.lower() in names:
                found.append((match.start(), match.end(), EmbeddingRef(word.lower(), word, explicit=False)))
    found.sort(key=lambda f: f[0])
    return found


def split_embeddings(text: str, names: Mapping[str, Any] | set[str] | frozenset[str]) -> list[str | EmbeddingRef]:
    """``text`` as plain pieces and :class:`EmbeddingRef` (the module docstring's rule);
    ``names`` are the known lower-case stems. Text without a reference is ``[text]``."""
    pieces: list[str | EmbeddingRef] = []
    position = 0
    for start, end, ref in _matches(text, names):
        if start > position:
            pieces.append(text[position:start])
        pieces.append(ref)
        position = end
    if not pieces:
        return [text]
    if position < len(text):
        pieces.append(text[position:])
    return pieces


# --------------------------------------------------------------------------- loading

_loaded: dict[tuple[str, int, int], dict[str, torch.Tensor]] = {}


def load_embedding(path: Path) -> dict[str, torch.Tensor]:
    """The vectors in an embedding file by role: ``"sd1"``, ``"clip_l"``, ``"clip_g"``
    (each ``(n, D)`` float32 on the CPU); cached by path, size and modification time."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _loaded:
        _loaded[key] = _vectors(path, _read(path))
        while len(_loaded) > 32:
            _loaded.pop(next(iter(_loaded)))
    return _loaded[key]


def _read(path: Path) -> Any:
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # noqa: BLE001 - safetensors raises its own kinds
            raise CorruptModelError(f"The embedding {path.name} cannot be read ({error}).") from error
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeModelError(
            f"The embedding {path.name} is a pickle that needs more than tensors to load, so it "
            "was refused (a malicious .pt can take over the computer).",
            "Use the .safetensors version of this embedding instead.",
        ) from error
    except Exception as error:  # noqa: BLE001 - torch.load raises many kinds on bad bytes
        raise CorruptModelError(f"The embedding {path.name} cannot be read ({type(error).__name__}).") from error


def _vectors(path: Path, data: Any) -> dict[str, torch.Tensor]:
    import torch

    def as_2d(value: Any) -> torch.Tensor | None:
        if not isinstance(value, torch.Tensor) or value.dim() not in (1, 2) or not value.is_floating_point():
            return None
        return value.detach().reshape(-1, value.shape[-1]).float().cpu()

    out: dict[str, torch.Tensor] = {}
    if isinstance(data, Mapping):
        for role in ("clip_l", "clip_g"):
            if (tensor := as_2d(data.get(role))) is not None:
                out[role] = tensor
        params = data.get("string_to_param")
        if isinstance(params, Mapping) and params:
            first = params.get("*", next(iter(params.values())))
            if (tensor := as_2d(first)) is not None:
                out["sd1"] = tensor
        if (tensor := as_2d(data.get("emb_params"))) is not None:
            out["sd1"] = tensor
        if not out:
            tensors = [t for t in (as_2d(v) for v in data.values()) if t is not None]
            if len(tensors) == 1:
                out["sd1"] = tensors[0]
    elif (tensor := as_2d(data)) is not None:
        out["sd1"] = tensor
    if not out:
        raise CorruptModelError(f"{path.name} holds no textual-inversion vectors (emb_params, clip_l/clip_g).")
    return out


class EmbeddingLookup:
    """One text encoder's view of a library: the known names, and ``lookup(ref)`` → that
    encoder's vectors ``(n, D)`` for ``ref``, or ``None`` (the words stay text)."""

    def __init__(self, library: EmbeddingLibrary, roles: tuple[tuple[str, int], ...], index: int) -> None:
        self.names = library.files
        self._library, self._roles, self._index = library, roles, index

    def __call__(self, ref: EmbeddingRef) -> torch.Tensor | None:
        found = self._library.vectors(ref, self._roles)
        return None if found is None else found[self._index]


class EmbeddingLibrary:
    """The embedding files a generation may use, by lower-case stem (:func:`find_embeddings`)."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self.files = {name.lower(): Path(path) for name, path in files.items()}

    def lookups(self, roles: tuple[tuple[str, int], ...]) -> list[EmbeddingLookup]:
        """One :class:`EmbeddingLookup` per text encoder, in ``roles`` order."""
        return [EmbeddingLookup(self, roles, i) for i in range(len(roles))]

    def refs(self, prompt: str) -> list[EmbeddingRef]:
        """Every reference in ``prompt`` (whole text; brackets do not hide a name)."""
        return [p for p in split_embeddings(prompt, self.files) if isinstance(p, EmbeddingRef)]

    def fingerprint(self, prompt: str) -> tuple[tuple[str, str, int, int], ...]:
        """What the prompt cache key adds for ``prompt``: each used file's name, path,
        modification time and size; ``()`` for a prompt that names no embedding."""
        out = []
        for ref in self.refs(prompt):
            path = self.files.get(ref.name)
            if path is None:
                out.append((ref.name, "", 0, 0))
                continue
            try:
                stat = path.stat()
                out.append((ref.name, str(path), stat.st_mtime_ns, stat.st_size))
            except OSError:
                out.append((ref.name, str(path), 0, 0))
        return tuple(out)

    def vectors(self, ref: EmbeddingRef, roles: tuple[tuple[str, int], ...]) -> tuple[torch.Tensor, ...] | None:
        """The vectors of ``ref`` for each ``(role, width)`` of the model's text encoders
        (``("sd1", 768)`` for SD 1.x; ``("clip_l", 768), ("clip_g", 1280)`` for SDXL), all
        with the same count ``n``. ``None`` for a bare word whose file does not fit (it
        stays text); an explicit reference raises instead."""
        path = self.files.get(ref.name)
        if path is None:
            raise EmbeddingNotFoundError(f"No embedding named {ref.name!r} was found (from {ref.text!r}).")
        try:
            found = load_embedding(path)
        except OSError as error:
            raise EmbeddingNotFoundError(f"The embedding {path.name} cannot be opened: {error.strerror or error}.") from error
        picked: list[torch.Tensor] = []
        problem = ""
        for role, width in roles:
            tensor = found.get(role)
            if tensor is None:
                problem = f"it has no {role} vectors"
                break
            if tensor.shape[-1] != width:
                problem = f"its {role} vectors are {tensor.shape[-1]} wide, the text encoder takes {width}"
                break
            if picked and tensor.shape[0] != picked[0].shape[0]:
                problem = "its vector sets differ in length"
                break
            picked.append(tensor)
        if problem:
            if ref.explicit:
                raise EmbeddingMismatchError(f"The embedding {path.name} does not fit this model: {problem}.")
            log.info("bare word %r matches %s, which does not fit this model (%s): kept as text", ref.text, path, problem)
            return None
        return tuple(picked)

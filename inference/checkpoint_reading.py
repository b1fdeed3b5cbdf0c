"""Reading a checkpoint file's tensors safely.

``.safetensors`` loads directly (its header validated first: a truncated download is a
:class:`CorruptModelError`, not a crash deep inside torch); ``.ckpt``/``.pt``/``.pth``/
``.bin`` pickles load only through ``torch.load(weights_only=True)`` and only when the
pickle needs no code: one that would import anything beyond tensors is refused with
:class:`UnsafeModelError`. Every loader of single files (SD checkpoints, the transformer
families' parts, LoRAs, embeddings) reads through :func:`load_checkpoint_state_dict`;
:func:`release_file_pages` gives a read file's page cache back once its tensors are copied.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import sys
from pathlib import Path
from typing import Any

import torch
from sfumato.inference.detect import open_model_file, read_safetensors_header
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsafeModelError

__all__ = ["PICKLE_SUFFIXES", "load_checkpoint_state_dict", "release_file_pages"]

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

_MADV_DONTNEED = 4  # Linux


def release_file_pages(path: Path, tensors: dict[str, torch.Tensor]) -> bool:
    """Drop the pages of ``path``'s memory mapping behind ``tensors`` without holding the GIL.

    ``safetensors`` maps the whole file and its tensors are slices of that one mapping,
    unmapped when the last of them is freed: inside tensor deallocation, with the GIL
    held, 0.1-0.3 s for a 2 GB checkpoint whose pages were all read by the dtype casts
    (the window froze at the end of every load). ``madvise(MADV_DONTNEED)`` through
    ctypes (which lets go of the GIL) drops the pages first, so the unmapping finds
    nothing left to do. It only touches a mapping of ``path`` itself (checked in
    ``/proc/self/maps``): the pages are the file's, and a tensor still using them reads
    them from the file again, as after the kernel evicted them. Returns whether it did;
    a no-op off Linux and for tensors not mapped from ``path`` (pickles).
    """
    if not sys.platform.startswith("linux") or not tensors:
        return False
    spans = [(v.data_ptr(), v.data_ptr() + v.nbytes) for v in tensors.values() if v.device.type == "cpu" and v.nbytes]
    if not spans:
        return False
    low, high = min(a for a, _ in spans), max(b for _, b in spans)
    target = os.path.realpath(path)
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
            regions = [line.split(maxsplit=5) for line in handle]
    except OSError:
        return False
    mapped = sorted(
        (int(r[0].split("-")[0], 16), int(r[0].split("-")[1], 16))
        for r in regions if len(r) == 6 and r[5].strip() == target
    )
    # the tensors must lie in one contiguous run of mappings of this file
    start = next((a for a, b in mapped if a <= low < b), None)
    if start is None:
        return False
    end = start
    for a, b in mapped:
        if a <= end < b or a == end:
            end = max(end, b)
    if high > end:
        return False
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    begin = max(start, low - low % page)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = libc.madvise(ctypes.c_void_p(begin), ctypes.c_size_t(high - begin), _MADV_DONTNEED) == 0
    except (OSError, AttributeError):
        return False
    if not done:
        log.debug("madvise on %s failed (errno %d)", path.name, ctypes.get_errno())
    return done


def load_checkpoint_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a single-file checkpoint, on the CPU, without running any code.

    Raises :class:`ModelNotFoundError`, :class:`CorruptModelError` (truncated, not a
    checkpoint, unknown file type) or :class:`UnsafeModelError` (a pickle that needs
    more than tensors and plain containers).
    """
    return read_weights_file(
        path,
        missing="Model file not found: {path}",
        folder=("{path} is a folder, not a single-file checkpoint.",
                "Load it as a diffusers model folder, or choose a .safetensors file."),
        unknown=("{name} is not a model file Sfumato knows ({suffix}).", "Use a .safetensors checkpoint."),
    )  # fmt: skip


def read_weights_file(
    path: Path,
    *,
    missing: str,
    missing_hint: str | None = None,
    folder: tuple[str, str],
    unknown: tuple[str, str],
    wrappers: tuple[str, ...] = ("state_dict",),
    strip_prefix: str = "",
) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (``.safetensors``, or a pickle read with
    ``weights_only`` after a static look at it), on the CPU, unwrapped from the first of
    ``wrappers`` that holds a dictionary (repeatedly), keys without ``strip_prefix``.

    The messages name the file's kind for its callers (a checkpoint, an upscaler):
    ``missing`` (with ``{path}``) and its hint, ``folder`` and ``unknown`` (message and
    hint; ``{path}``, ``{name}``, ``{suffix}``). Raises :class:`ModelNotFoundError`,
    :class:`CorruptModelError` or :class:`UnsafeModelError`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelNotFoundError(missing.format(path=path), missing_hint)
    if path.is_dir():
        raise CorruptModelError(folder[0].format(path=path), folder[1])
    with open_model_file(path) as handle:  # a named pipe or device is refused, never read
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
    if size == 0:
        raise CorruptModelError(f"{path.name} is empty (0 bytes); the download or copy did not finish.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        read_safetensors_header(path)  # cheap validation: truncation, garbage
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise CorruptModelError(f"{path.name} cannot be read: {error}.") from error
    elif suffix in PICKLE_SUFFIXES:
        state = _load_pickle(path, head)
    else:
        raise CorruptModelError(unknown[0].format(path=path, name=path.name, suffix=suffix or "no extension"), unknown[1])
    unwrapped = True
    while unwrapped and isinstance(state, dict):  # e.g. {"state_dict": {...}, "global_step": …}
        unwrapped = False
        for wrapper in wrappers:
            if isinstance(state.get(wrapper), dict):
                state, unwrapped = state[wrapper], True
                break
    if not isinstance(state, dict):
        raise CorruptModelError(f"{path.name} does not contain a dictionary of weights.")
    tensors = {k.removeprefix(strip_prefix) if strip_prefix else k: v for k, v in state.items()
               if isinstance(k, str) and isinstance(v, torch.Tensor)}  # fmt: skip
    if not tensors:
        raise CorruptModelError(f"{path.name} contains no weights.")
    return tensors


_SAFE_IMPORTS = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.dict")
_MAX_PICKLE_SCAN = 64 << 20


def _load_pickle(path: Path, head: bytes) -> Any:
    """``torch.load(weights_only=True)``, after a static look at the pickle's opcodes
    (nothing runs) that tells a pickle importing code apart from bytes that are no pickle."""
    imports = _pickle_imports(path, head)
    if imports is None:
        raise CorruptModelError(
            f"{path.name} is not a PyTorch checkpoint: it is neither a zip archive (what "
            "torch.save writes) nor a valid pickle (it may be damaged, or another kind of file).",
        )
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = [name for name in imports if not name.startswith(_SAFE_IMPORTS)]
        if unsafe or _needs_code(str(error)):
            what = f" (it imports {unsafe[0]})" if unsafe else ""
            raise UnsafeModelError(
                f"{path.name} is a pickle file that needs to run code to load{what}, so it was "
                "refused (a malicious .ckpt can take over the computer).",
            ) from error
        raise CorruptModelError(f"{path.name} cannot be read: {_reason(error)}.") from error
    except (EOFError, RuntimeError, OSError, ValueError, KeyError, AttributeError, IndexError,
            TypeError, struct.error, RecursionError, MemoryError) as error:
        raise CorruptModelError(f"{path.name} cannot be read: {_reason(error)}.") from error


def _pickle_imports(path: Path, head: bytes) -> list[str] | None:
    """The ``module.name`` globals a checkpoint's pickle imports, read with
    :mod:`pickletools` (no code runs); ``None`` when it is no pickle at all.

    A torch zip checkpoint's pickle is its ``data.pkl`` entry; a legacy file starts
    with one.
    """
    import pickletools
    import zipfile

    try:
        if head.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(path) as archive:
                names = [i for i in archive.infolist() if i.filename.endswith("data.pkl")]
                if not names or names[0].file_size > _MAX_PICKLE_SCAN:
                    return None if not names else []
                data = archive.read(names[0])
        else:
            with open_model_file(path) as handle:
                data = handle.read(_MAX_PICKLE_SCAN)
        imports: list[str] = []
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                imports.append(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL":
                imports.append(".".join(strings[-2:]))
            elif isinstance(arg, str):
                strings.append(arg)
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, struct.error, RecursionError, KeyError):
        return None
    except CorruptModelError:
        return None
    return imports


def _needs_code(text: str) -> bool:
    """Whether torch's weights-only refusal is about a callable the pickle imports (code
    it would run), rather than about bytes that are no valid pickle at all."""
    lowered = text.lower()
    if "weights only" not in lowered and "weights_only" not in text:
        return False
    return any(word in lowered for word in ("global", "reduce", "build", "newobj", "inst", "obj"))


def _reason(error: BaseException) -> str:
    """The error's text, or its kind when it has none (an empty file's ``EOFError``)."""
    text = " ".join(str(error).split())
    if "WeightsUnpickler error:" in text:  # torch's long advice around the one useful line
        detail = text.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation")[0].strip()
        return f"its pickle data is damaged ({detail})"
    first = text.split(". ")[0] if len(text) > 300 else text
    return f"{type(error).__name__}: {first}" if first else f"{type(error).__name__} (the file ends early)"



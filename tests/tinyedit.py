"""Tiny instruction-edit folders, made from ``tinyflow``'s: FLUX.1 Kontext and Qwen-Image-Edit
(-Plus) have their base models' parts exactly (Kontext's transformer has FLUX.1 dev's keys,
Qwen-Image-Edit's has Qwen-Image's), so each is a copy of the base folder that declares the
edit pipeline — plus, for Qwen-Image-Edit, the ``processor`` folder that reads the picture
through Qwen2.5-VL's vision tower (written here, offline: ``tinyflow.qwen_tokenizer`` and a
``Qwen2VLImageProcessor`` with the real patch 14, merge 2 and temporal patch 2)::

    from tinyedit import tiny_edit_model
    path = tiny_edit_model("kontext")         # one build per test process
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyflow import qwen_tokenizer, tiny_flow_model

__all__ = ["EDIT_KINDS", "build_tiny_kontext", "build_tiny_qwenimage_edit", "tiny_edit_model", "tiny_image_processor"]


def _declare(base: Path, path: Path, class_name: str, **entries: list[str | None]) -> Path:
    """A copy of the folder ``base`` whose ``model_index.json`` names ``class_name`` (and ``entries``)."""
    if (path / "model_index.json").is_file():
        return path
    scratch = path.with_name(path.name + ".part")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(base, scratch)
    index = json.loads((scratch / "model_index.json").read_text())
    index["_class_name"] = class_name
    index.update(entries)
    (scratch / "model_index.json").write_text(json.dumps(index, indent=2))
    scratch.rename(path)
    return path


def build_tiny_kontext(path: Path) -> Path:
    """A tiny FLUX.1 Kontext folder: ``tinyflow``'s dev-like FLUX declaring ``FluxKontextPipeline``."""
    return _declare(tiny_flow_model("flux"), Path(path), "FluxKontextPipeline")


def tiny_image_processor() -> Any:
    """Qwen2.5-VL's image processor with the real patch 14, merge 2, temporal patch 2, and
    at most 64 merged patches a picture (the real one allows 16384)."""
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=56 * 56,
                                 max_pixels=28 * 28 * 64)  # fmt: skip


def _write_processor(folder: Path) -> None:
    """A ``Qwen2VLProcessor`` folder's files (image processor, tokenizer) in ``folder``.
    Written part by part: transformers 5 builds no ``Qwen2VLProcessor`` without torchvision."""
    tiny_image_processor().save_pretrained(str(folder))
    qwen_tokenizer().save_pretrained(str(folder))


def build_tiny_qwenimage_edit(path: Path, *, plus: bool = False) -> Path:
    """A tiny Qwen-Image-Edit folder (``QwenImageEditPipeline``; ``plus``:
    ``QwenImageEditPlusPipeline``): ``tinyflow``'s Qwen-Image (whose Qwen2.5-VL has a
    one-block vision tower) with a ``processor`` folder."""
    path = Path(path)
    if (path / "model_index.json").is_file():
        return path
    base = tiny_flow_model("qwenimage")
    staged = path.with_name(path.name + ".base")
    if not (staged / "processor").is_dir():
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(base, staged)
        _write_processor(staged / "processor")
    cls = "QwenImageEditPlusPipeline" if plus else "QwenImageEditPipeline"
    _declare(staged, path, cls, processor=["transformers", "Qwen2VLProcessor"])
    return path


_KINDS: dict[str, Callable[[Path], Path]] = {
    "kontext": build_tiny_kontext,
    "qwenimage-edit": build_tiny_qwenimage_edit,
    "qwenimage-edit-plus": lambda p: build_tiny_qwenimage_edit(p, plus=True),
}
EDIT_KINDS = tuple(_KINDS)


def tiny_edit_model(kind: str) -> Path:
    """The tiny edit model ``kind`` (one of :data:`EDIT_KINDS`), built once per process beside
    ``tinyflow``'s models (removed at exit with them)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown tiny edit model {kind!r}; known: {', '.join(_KINDS)}")
    return _KINDS[kind](tiny_flow_model("flux").parent / kind)

"""Fixtures of the semantic tests: the built-in model, one shared engine, one run helper.

The tests use the committed built-in model (``resources/models/builtin/`` and
``resources/models/builtin-controlnet-scribble/``) through the ordinary user path: the
settings name the model ``builtin``, the planner reads its native size from that folder
and the engine resolves it under its default models root. A missing model is a test
*failure* (the weights are committed; a checkout without them is broken), never a skip.

For developing the tests against another copy of the model (a trainer's intermediate
output), set ``SFUMATO_BUILTIN_MODEL_DIR`` to a built-in model folder; its sibling
``builtin-controlnet-scribble`` folder is used as the ControlNet when it exists. The
fixture then points the catalog, the planner and the engine at that copy for the whole
session (nothing else changes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from semantic_run import BuiltinModel

log = logging.getLogger(__name__)

DEV_ENV = "SFUMATO_BUILTIN_MODEL_DIR"


def _committed_folders() -> tuple[Path, Path]:
    from sfumato.inference.catalog import BUILTIN_CONTROLNET_DIR, BUILTIN_MODEL_DIR

    return Path(BUILTIN_MODEL_DIR), Path(BUILTIN_CONTROLNET_DIR)


@pytest.fixture(scope="session")
def builtin_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltinModel]:
    """The built-in model's folders (see the module doc); fails when they are missing."""
    override = os.environ.get(DEV_ENV)
    if not override:
        folder, controlnet = _committed_folders()
        _require(folder, controlnet, "the committed built-in model")
        yield BuiltinModel(folder, controlnet)
        return
    folder = Path(override).expanduser().resolve()
    controlnet = folder.parent / "builtin-controlnet-scribble"
    _require(folder, controlnet, f"${DEV_ENV}")
    root = tmp_path_factory.mktemp("models")
    (root / "builtin").symlink_to(folder)
    (root / "builtin-controlnet-scribble").symlink_to(controlnet)
    from sfumato.inference import catalog, model_cache
    from sfumato.planner import families

    patch = pytest.MonkeyPatch()
    patch.setattr(catalog, "BUILTIN_MODEL_DIR", root / "builtin")
    patch.setattr(catalog, "BUILTIN_CONTROLNET_DIR", root / "builtin-controlnet-scribble")
    patch.setattr(model_cache, "models_folder", lambda: root)
    patch.setattr(families, "builtin_model_folder", lambda: root / "builtin")
    log.warning("semantic tests use the model at %s (from $%s)", folder, DEV_ENV)
    try:
        yield BuiltinModel(root / "builtin", root / "builtin-controlnet-scribble")
    finally:
        patch.undo()


def _require(folder: Path, controlnet: Path, what: str) -> None:
    missing = [
        str(p) for p in (folder / "model_index.json", controlnet / "config.json") if not p.is_file()
    ]
    if missing:
        pytest.fail(
            f"{what} is missing ({', '.join(missing)}): the built-in model is committed to "
            "the repository; restore resources/models/builtin*/ (git checkout) or re-train "
            "it with `python tools/train_builtin_model.py`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def engine(builtin_model: BuiltinModel) -> object:
    """One CPU engine for the whole semantic suite (the model loads once)."""
    from sfumato.inference.engine import Engine

    return Engine(device="cpu")

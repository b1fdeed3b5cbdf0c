"""Helpers for the generation tests: a tiny SD 1.x model, a CPU engine shared across
tests, a window with the generation UI installed, and an inpaint mask painted through
the document API.

Import the fixtures into a test module with ``from genfixtures import *`` (they are
plain pytest fixtures; this file is not a conftest so it cannot clash with the window
tests' own ``conftest.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer, Role
from sfumato.inference.events import Cancelled, Finished, Preview, Progress

__all__ = ["gen_window", "paint_mask", "tiny_engine_factory", "tiny_model", "worker_threads"]

MASK_RECT = (120, 80, 60, 50)  # x, y, w, h in document pixels


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD 1.x diffusers folder (64 px native), built once per session."""
    from tinymodels import build_tiny_sd15

    return build_tiny_sd15(tmp_path_factory.mktemp("gen-models") / "sd15")


@pytest.fixture(scope="session")
def tiny_engine_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Any]:
    """Makes (once) a CPU engine; called on a worker thread, reused by later workers."""
    holder: dict[str, Any] = {}
    lock = threading.Lock()
    root = tmp_path_factory.mktemp("gen-engine-root")

    def make() -> Any:
        with lock:
            if "engine" not in holder:
                from sfumato.inference.devices import EngineOptions
                from sfumato.inference.engine import Engine

                holder["engine"] = Engine(device="cpu", options=EngineOptions(max_models=2), models_root=root)
            return holder["engine"]

    return make


@pytest.fixture
def gen_window(window: Any, tiny_model: Path, tiny_engine_factory: Callable[[], Any]) -> Iterator[Any]:
    """The test window with the generation UI installed, set up for the tiny model."""
    from sfumato.desktop.generation_controller import install_generation

    controller = install_generation(window, tiny_engine_factory)
    doc = window.document
    editing.set_recipe(doc, prompt="a red ball", model=str(tiny_model), seed=5, steps=3, cfg=5.0)
    doc.history.mark_clean()
    window.generation = controller
    yield window
    controller.shutdown()


def paint_mask(doc: Document, rect: tuple[int, int, int, int] = MASK_RECT) -> PixelLayer:
    """Add an inpaint-mask layer covering ``rect`` (x, y, w, h) through the undoable API."""
    from sfumato.desktop import layer_actions

    layer = layer_actions.add_layer(doc, Role.INPAINT_MASK)
    assert isinstance(layer, PixelLayer)
    x, y, w, h = rect
    pixels = np.zeros((h, w, 4), np.uint8)
    pixels[..., 3] = 255
    editing.put_pixels(doc, layer, pixels, x, y, label="Mask")
    return layer


def worker_threads() -> list[threading.Thread]:
    """Python-visible threads other than the main one (Qt threads show up as dummies)."""
    return [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]


class FakeEngine:
    """Emits ``steps`` progress events, each followed by a flat ``preview_rgb`` preview,
    then a batch of flat-coloured images; honours the cancel flag between steps like the
    real engine."""

    def __init__(self, step_delay: float = 0.0, preview_rgb: tuple[int, int, int] = (200, 200, 200)) -> None:
        self.step_delay = step_delay
        self.preview_rgb = preview_rgb
        self.requests: list[Any] = []
        self.threads: list[threading.Thread] = []

    def run(self, request: Any, on_event: Any, cancel: Any) -> None:
        self.requests.append(request)
        self.threads.append(threading.current_thread())
        for step in range(1, request.steps + 1):
            if cancel is not None and cancel.is_set():
                on_event(Cancelled())
                return
            if self.step_delay:
                threading.Event().wait(self.step_delay)
            on_event(Progress(step, request.steps))
            on_event(Preview(np.full((8, 8, 3), self.preview_rgb, np.uint8), step))
        images = tuple(
            np.full((request.height, request.width, 3), (40 * k) % 256, np.uint8) for k in range(request.batch)
        )
        on_event(Finished(images, {"seeds": [request.seed + k for k in range(request.batch)], "seconds": 0.01}))


def install_fake(window: Any, engine: FakeEngine, seed: int) -> Any:
    """The window's generation controller on ``engine`` (made on the worker's thread,
    recorded in ``controller.made_on``), with a recipe that plans; call ``shutdown()``."""
    from sfumato.desktop.generation_controller import install_generation

    made_on: list[threading.Thread] = []

    def factory() -> FakeEngine:
        made_on.append(threading.current_thread())
        return engine

    controller = install_generation(window, factory)  # type: ignore[arg-type]
    editing.set_recipe(window.document, prompt="a cat", model="fake-model", seed=seed, steps=2)
    controller.engine = engine
    controller.made_on = made_on
    return controller

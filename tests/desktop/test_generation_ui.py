"""The generation UI without a real model: a scripted fake engine drives the worker, so
these tests check the docks, staging, history, models dock and the worker's threading
rules quickly and deterministically (no torch)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from genfixtures import MASK_RECT, FakeEngine, install_fake, paint_mask
from sfumato.canvas import editing
from sfumato.canvas.model.layers import Role

TIMEOUT = 10_000


@pytest.fixture
def fake(window: Any) -> Any:
    controller = install_fake(window, FakeEngine(), seed=10)
    yield controller
    controller.shutdown()


def test_engine_is_made_and_run_on_the_worker_thread(fake: Any, qtbot: Any) -> None:
    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
    assert fake.made_on and fake.made_on[0] is not threading.main_thread()
    assert all(t is not threading.main_thread() for t in fake.engine.threads)


def test_dock_settings_live_in_the_recipe_and_undo_as_one_step(window: Any, fake: Any, qtbot: Any) -> None:
    doc = window.document
    dock = fake.dock
    assert dock.prompt.toPlainText() == "a cat" and dock.steps.value() == 2
    dock.prompt.clear()
    qtbot.keyClicks(dock.prompt, "a dog")
    assert doc.recipe.prompt == "a dog"
    assert doc.history.undo_label == "Prompt"
    dock.steps.setValue(7)
    dock.cfg.setValue(3.5)
    assert (doc.recipe.steps, doc.recipe.cfg) == (7, 3.5)
    doc.undo()  # cfg
    doc.undo()  # steps
    assert dock.steps.value() == 2 and dock.cfg.value() != 3.5
    doc.undo()  # clearing and typing the prompt: one step
    assert dock.prompt.toPlainText() == "a cat"


def test_recipe_saves_with_the_ora_and_reads_back(window: Any, fake: Any, tmp_path: Path) -> None:
    from sfumato.canvas.files.ora import load_ora, save_ora

    dock = fake.dock
    dock.prompt.setPlainText("a lighthouse at dusk")
    dock.negative.setPlainText("blurry")
    dock.strength.setValue(0.6)
    dock.sampler.setCurrentIndex(dock.sampler.findText("Euler a"))
    save_ora(window.document, tmp_path / "doc.ora")
    window.set_document(load_ora(tmp_path / "doc.ora"))
    assert dock.prompt.toPlainText() == "a lighthouse at dusk"
    assert dock.negative.toPlainText() == "blurry"
    assert dock.strength.value() == pytest.approx(0.6)
    assert dock.sampler.currentText() == "Euler a"
    assert dock.current_model() == "fake-model"


def test_random_seed_and_reuse_last(window: Any, fake: Any, qtbot: Any) -> None:
    dock = fake.dock
    dock.random_seed.setChecked(True)
    assert window.document.recipe.seed is None
    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
    used = fake.engine.requests[-1].seed
    dock.reuse_last_seed()
    assert not dock.random_seed.isChecked()
    assert window.document.recipe.seed == used


def test_batch_is_staged_and_any_image_can_be_accepted(window: Any, fake: Any, qtbot: Any) -> None:
    fake.dock.batch.setValue(3)
    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
    staging = fake.staging
    assert staging.count == 3 and staging.index == 0
    assert staging.bar.label.text() == "1 / 3"
    window.actions["next_result"].trigger()
    window.actions["next_result"].trigger()
    window.actions["next_result"].trigger()  # wraps around
    window.actions["previous_result"].trigger()
    assert staging.index == 2
    staging.previous()
    layer = staging.accept()
    assert layer is not None and layer.role is Role.GENERATED
    assert layer.generation["seed"] == 11 and layer.generation["batch_index"] == 1
    assert len(fake.history.entries) == 3


def test_esc_discards_a_staged_result(window: Any, fake: Any, qtbot: Any) -> None:
    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        window.actions["generate"].trigger()
    assert fake.staging.active
    window.cancel()
    assert not fake.staging.active
    assert not any(layer.role is Role.GENERATED for layer in window.document.pixel_layers())


def test_history_reapply_reuse_seed_copy_prompt(window: Any, fake: Any, qtbot: Any) -> None:
    from PySide6.QtGui import QGuiApplication

    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
    fake.staging.discard()
    history = fake.history
    assert len(history.entries) == 1 and "Seed: 10" in history.details.text()
    history.reapply_selected()
    assert fake.staging.active
    editing.set_recipe(window.document, seed=99)
    history.reuse_selected_seed()
    assert window.document.recipe.seed == 10
    history.copy_selected_prompt()
    assert QGuiApplication.clipboard().text() == "a cat"


def test_latest_request_wins(window: Any, fake: Any, qtbot: Any) -> None:
    fake.engine.step_delay = 0.02
    editing.set_recipe(window.document, steps=30)
    cancelled: list[int] = []
    fake.worker.cancelled.connect(cancelled.append)
    fake.generate()
    first = fake._current
    editing.set_recipe(window.document, steps=2, prompt="second")
    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
    assert first in cancelled
    assert fake.staging.staged is not None and fake.staging.staged.plan.request.prompt == "second"


def test_engine_that_cannot_start_reports_and_the_worker_recovers(window: Any, qtbot: Any) -> None:
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.desktop.worker import FailureKind

    attempts = {"n": 0}

    def flaky() -> FakeEngine:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ImportError("No module named 'torch'")
        return FakeEngine()

    controller = install_generation(window, flaky)  # type: ignore[arg-type]
    editing.set_recipe(window.document, model="fake-model", steps=1, seed=1)
    with qtbot.waitSignal(controller.failed, timeout=TIMEOUT) as blocker:
        controller.generate()
    assert blocker.args[1] is FailureKind.ENGINE_UNAVAILABLE
    assert "PyTorch" in controller.dock.error_text
    with qtbot.waitSignal(controller.staged, timeout=TIMEOUT):
        controller.generate()
    controller.shutdown()
    assert not controller.worker.isRunning()


def test_plan_errors_are_messages(window: Any, fake: Any, qtbot: Any) -> None:
    from sfumato.desktop.worker import FailureKind

    doc = window.document
    mask = paint_mask(doc)
    editing.clear_layer(doc, mask, use_selection=False)  # a visible but empty mask
    with qtbot.waitSignal(fake.failed, timeout=TIMEOUT) as blocker:
        fake.generate()
    assert blocker.args[1] is FailureKind.PLAN
    assert "mask" in fake.dock.error_text.lower()
    assert not fake.busy and not fake.engine.requests


def test_painting_during_planning_does_not_reach_the_plan(window: Any, fake: Any, qtbot: Any) -> None:
    """The worker plans a copy-on-write snapshot: edits after Generate are not in it."""
    from sfumato.canvas.render.composite import flatten

    doc = window.document
    editing.set_recipe(doc, strength=0.5)
    paint = next(layer for layer in doc.pixel_layers() if layer.name == "Paint")
    red = np.zeros((40, 40, 4), np.uint8)
    red[..., 0] = 255
    red[..., 3] = 255
    editing.put_pixels(doc, paint, red, 10, 10)
    before = flatten(doc).copy()
    fake.engine.step_delay = 0.0
    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
        blue = red.copy()
        blue[..., :3] = (0, 0, 255)
        editing.put_pixels(doc, paint, blue, 10, 10)  # painted right after pressing Generate
    assert not np.array_equal(flatten(doc), before), "the blue paint reached the document"
    request = fake.engine.requests[-1]
    assert request.init is not None and fake.staging.staged.plan.mode.label == "Refine"
    h, w = request.init.image.shape[:2]
    r, g, b = (int(v) for v in request.init.image[int(30 * h / 240), int(30 * w / 320)][:3])
    assert r > 200 and b < 60, f"the plan saw the later blue paint: {(r, g, b)}"


def test_no_model_says_what_to_do(window: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sfumato.desktop import models_dock
    from sfumato.desktop.generation_controller import install_generation

    monkeypatch.setattr(models_dock, "list_models", lambda: [])
    controller = install_generation(window, FakeEngine)  # type: ignore[arg-type]
    assert controller.dock.current_model() is None
    assert "No model found" in controller.dock.model.currentText()
    assert not controller.models.empty.isHidden()
    assert not controller.generate()
    assert "Models dock" in controller.dock.error_text
    assert not controller.worker.isRunning(), "nothing was started"
    controller.shutdown()


def test_inpaint_preview_is_masked(window: Any, fake: Any, qtbot: Any) -> None:
    paint_mask(window.document)
    shown: list[Any] = []
    fake.preview_shown.connect(shown.append)
    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
    assert shown
    x, y, w, h = MASK_RECT
    for rect in shown:  # previews cover the inpaint area, which contains the mask
        assert rect.x <= x and rect.y <= y and rect.x1 >= x + w and rect.y1 >= y + h


def test_models_dock_offline_message_and_empty_state(qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sfumato.desktop.models_dock import ModelsDock
    from sfumato.vocabulary.config import load_config

    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(tmp_path / "cfg"))
    dock = ModelsDock(scan=lambda: [])
    qtbot.addWidget(dock)
    got: list[Any] = []
    dock.models_changed.connect(got.append)
    dock.rescan()
    assert got == [[]]
    assert not dock.empty.isHidden() and "No model found" in dock.empty.text()
    assert not dock.download("stable-diffusion-v1-5/stable-diffusion-v1-5")  # HF_HUB_OFFLINE=1 in tests
    assert "offline" in dock.status.text().lower() and "Add file" in dock.status.text()
    assert not dock.downloading
    assert not dock.download("not an id")
    assert "org/name" in dock.status.text()
    model_file = tmp_path / "my-model.safetensors"
    model_file.write_bytes(b"")
    dock.add_path(model_file)
    assert str(model_file) in load_config().model_paths


def test_models_dock_lists_a_bad_model_file_with_its_reason_beside_the_good_one(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Issue 19: one .safetensors whose header is JSON nested 100,000 deep must not empty
    # the dock (the scan once ended in a RecursionError); it is listed as unusable, with
    # its reason, and never offered for generating.
    from hostilefiles import safetensors
    from sfumato.desktop.models_dock import ModelsDock
    from sfumato.vocabulary.config import Config, save_config

    models = tmp_path / "models"
    models.mkdir()
    good = {"model.diffusion_model.input_blocks.0.0.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "cond_stage_model.transformer.x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
    (models / "good.safetensors").write_bytes(safetensors(good, bytes(8)))
    (models / "deep.safetensors").write_bytes(safetensors(b"[" * 100_000 + b"]" * 100_000))
    monkeypatch.setenv("SFUMATO_CONFIG_DIR", str(tmp_path / "cfg"))
    save_config(Config(model_paths=(str(models),)))
    dock = ModelsDock()
    qtbot.addWidget(dock)
    dock.rescan()
    rows = {dock.list.item(i).text().split("\n")[0]: dock.list.item(i) for i in range(dock.list.count())}
    assert {"good", "deep"} <= set(rows), list(rows)
    assert "unusable" in rows["deep"].text() and "nested" in rows["deep"].toolTip()
    assert "sd15" in rows["good"].text()
    assert [e.label for e in dock.checkpoints() if e.label in ("good", "deep")] == ["good"]


def test_ctrl_enter_in_the_prompt_generates(window: Any, fake: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt

    fake.dock.prompt.setFocus()
    with qtbot.waitSignal(fake.job_started, timeout=TIMEOUT):
        qtbot.keyClick(fake.dock.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert "\n" not in window.document.recipe.prompt, "Ctrl+Enter must not type a new line"
    qtbot.waitUntil(lambda: not fake.busy, timeout=TIMEOUT)


def test_double_clicking_a_checkpoint_in_the_models_dock_picks_it(window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sfumato.desktop import models_dock
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.inference.catalog import ModelEntry, Origin, WeightsKind

    entries = [
        ModelEntry(WeightsKind.CHECKPOINT, "/models/a.safetensors", "a", "sd15", Origin.CONFIGURED),
        ModelEntry(WeightsKind.CHECKPOINT, "/models/b.safetensors", "b", "sdxl", Origin.CONFIGURED),
        ModelEntry(WeightsKind.CONTROLNET, "/models/cn.safetensors", "cn", "sd15", Origin.CONFIGURED),
    ]
    monkeypatch.setattr(models_dock, "list_models", lambda: entries)
    controller = install_generation(window, FakeEngine)  # type: ignore[arg-type]
    assert controller.dock.model.count() == 2, "only checkpoints are offered for generating"
    controller.models.list.setCurrentRow(1)
    assert controller.models.choose_selected()
    assert controller.dock.current_model() == "/models/b.safetensors"
    assert controller.dock.current_family() == "sdxl"
    assert window.document.recipe.model == "/models/b.safetensors"
    controller.models.list.setCurrentRow(2)
    assert not controller.models.choose_selected()
    assert controller.dock.current_model() == "/models/b.safetensors"
    controller.shutdown()


def test_collections_paused_freezes_only_after_heavy_work() -> None:
    import gc

    from sfumato.desktop.worker import collections_paused

    frozen = gc.get_freeze_count()
    with collections_paused():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen, "a light block freezes nothing"
    try:
        with collections_paused() as pause:
            keep = [[i] for i in range(1000)]
            pause.freeze = True
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(keep)
    finally:
        gc.unfreeze()


def test_a_new_document_cancels_the_run_and_drops_the_staged_result(window: Any, fake: Any, qtbot: Any) -> None:
    from windowdocs import small_document

    with qtbot.waitSignal(fake.staged, timeout=TIMEOUT):
        fake.generate()
    assert fake.staging.active and not fake.history.entries[0].result.thumbnail(0).isNull()
    window.set_document(small_document())
    assert not fake.staging.active
    fake.engine.step_delay = 0.05
    editing.set_recipe(window.document, model="fake-model", steps=100)
    with qtbot.waitSignal(fake.job_started, timeout=TIMEOUT):
        fake.generate()
    with qtbot.waitSignal(fake.cancelled, timeout=TIMEOUT):
        window.set_document(small_document())
    assert not fake.busy and not fake.staging.active


def test_the_dock_says_what_the_model_cannot_do_before_generate(
    window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Chroma model cannot do regional prompts: adding a region layer says so and the
    button waits; hiding the layer, or choosing a model that can, lets it go again. A
    sampler the flow-matching family cannot run is named the same way."""
    from sfumato.desktop import models_dock
    from sfumato.desktop.generation_controller import install_generation
    from sfumato.inference.catalog import ModelEntry, Origin, WeightsKind
    from sfumato.vocabulary.kinds import Sampler

    entries = [
        ModelEntry(WeightsKind.CHECKPOINT, "/models/chroma.safetensors", "chroma", "chroma", Origin.CONFIGURED),
        ModelEntry(WeightsKind.CHECKPOINT, "/models/flux.safetensors", "flux", "flux", Origin.CONFIGURED),
    ]
    monkeypatch.setattr(models_dock, "list_models", lambda: entries)
    controller = install_generation(window, FakeEngine)  # type: ignore[arg-type]
    dock = controller.dock
    dock.choose_model("/models/chroma.safetensors")
    dock.sampler.setCurrentIndex(dock.sampler.findData(Sampler.EULER))
    assert dock.problems_text == "" and dock.generate_button.isEnabled()
    window.layers_dock.add_layer(Role.REGION)
    controller.refresh_mode()
    assert "Chroma models cannot do regional prompts" in dock.problems_text
    assert not dock.generate_button.isEnabled()
    dock.choose_model("/models/flux.safetensors")
    assert dock.problems_text == "" and dock.generate_button.isEnabled()
    dock.sampler.setCurrentIndex(dock.sampler.findData(Sampler.DPMPP_2M))
    assert "flow matching" in dock.problems_text and not dock.generate_button.isEnabled()
    controller.shutdown()

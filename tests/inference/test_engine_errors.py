"""Cancellation and typed errors: each is reported as an event and leaves the engine usable."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from enginehelpers import Recorder, noise_image, request
from sfumato.inference import single_file  # noqa: F401 - an import bug fails, never skips
from sfumato.inference.cancel import CancelToken
from sfumato.inference.errors import (
    CorruptModelError,
    EngineError,
    InvalidRequestError,
    ModelNotFoundError,
    NetworkUnavailableError,
    OutOfMemoryError,
    UnsupportedModeError,
)
from sfumato.inference.events import Cancelled, Failed, Finished
from sfumato.inference.families.sd15 import SD15Family
from sfumato.inference.modes import Mode
from sfumato.inference.request import ControlSpec, ModelRef, RegionSpec
from sfumato.vocabulary.kinds import ControlKind


def _fail_at_call(module: torch.nn.Module, monkeypatch: pytest.MonkeyPatch, n: int, error: BaseException) -> None:
    original = module.forward
    calls = [0]

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "forward", failing)


def _assert_failed(rec: Recorder, result: Any, kind: type[EngineError]) -> EngineError:
    assert isinstance(rec.last, Failed)
    assert isinstance(rec.last.error, kind), rec.last.error
    assert result.error is rec.last.error and not result.ok and result.images == ()
    assert rec.last.error.message  # says what happened
    return rec.last.error


def _assert_usable(engine: Any, model: Path) -> None:
    rec = Recorder()
    result = engine.run(request(model, steps=2), rec)
    assert result.ok and isinstance(rec.last, Finished)


def test_cancel_from_the_progress_callback(fresh_engine: Any, tiny_sd15: Path) -> None:
    engine = fresh_engine()
    token = CancelToken()
    rec = Recorder(on_step=lambda p: token.cancel() if p.step == 2 else None)
    result = engine.run(request(tiny_sd15, steps=6), rec, token)
    assert result.cancelled and not result.ok
    assert isinstance(rec.last, Cancelled)
    assert [p.step for p in rec.progress] == [1, 2]  # stopped within one step
    assert rec.finished is None
    _assert_usable(engine, tiny_sd15)


def test_cancel_before_start_and_threading_event(fresh_engine: Any, tiny_sd15: Path) -> None:
    engine = fresh_engine()
    flag = threading.Event()
    flag.set()
    rec = Recorder()
    result = engine.run(request(tiny_sd15), rec, flag)
    assert result.cancelled and rec.events == [Cancelled()]
    assert engine.cache.load_count == 0  # nothing was loaded for a cancelled request


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 9.00 GB)"),
    ],
    ids=["torch-oom", "mps-runtime-error"],
)
def test_out_of_memory_mid_run(
    fresh_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    engine = fresh_engine()
    unet = engine.cache.get(ModelRef(str(tiny_sd15))).unet
    _fail_at_call(unet, monkeypatch, 2, error)
    rec = Recorder()
    result = engine.run(request(tiny_sd15, steps=4), rec)
    err = _assert_failed(rec, result, OutOfMemoryError)
    assert "memory" in str(err).lower() and err.hint
    assert len(rec.progress) == 1
    _assert_usable(engine, tiny_sd15)
    assert engine.cache.load_count == 1  # the model stayed loaded


def test_unexpected_error_becomes_engine_error(fresh_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = fresh_engine()
    unet = engine.cache.get(ModelRef(str(tiny_sd15))).unet
    _fail_at_call(unet, monkeypatch, 1, ValueError("boom"))
    rec = Recorder()
    result = engine.run(request(tiny_sd15), rec)
    err = _assert_failed(rec, result, EngineError)
    assert "boom" in err.message
    monkeypatch.undo()
    _assert_usable(engine, tiny_sd15)


def test_failing_event_callback_is_reported(fresh_engine: Any, tiny_sd15: Path) -> None:
    engine = fresh_engine()
    seen: list[Any] = []

    def callback(event: Any) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("the GUI went away")

    result = engine.run(request(tiny_sd15), callback)
    assert isinstance(seen[-1], Failed) and result.error is not None
    _assert_usable(engine, tiny_sd15)


def test_model_not_found(fresh_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    engine = fresh_engine()
    rec = Recorder()
    result = engine.run(request(tmp_path / "nowhere" / "model.safetensors"), rec)
    err = _assert_failed(rec, result, ModelNotFoundError)
    assert "nowhere" in err.message
    _assert_usable(engine, tiny_sd15)


def test_missing_builtin_model(fresh_engine: Any, tmp_path: Path) -> None:
    engine = fresh_engine(models_root=tmp_path / "empty")
    rec = Recorder()
    _assert_failed(rec, engine.run(request("builtin"), rec), ModelNotFoundError)


def test_corrupt_diffusers_folder(fresh_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd15, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    engine = fresh_engine()
    rec = Recorder()
    _assert_failed(rec, engine.run(request(broken), rec), CorruptModelError)
    _assert_usable(engine, tiny_sd15)


def test_corrupt_checkpoint_file(fresh_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a safetensors file at all")
    engine = fresh_engine()
    rec = Recorder()
    _assert_failed(rec, engine.run(request(junk), rec), CorruptModelError)
    _assert_usable(engine, tiny_sd15)


def test_not_a_model_file(fresh_engine: Any, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    rec = Recorder()
    _assert_failed(rec, fresh_engine().run(request(text), rec), CorruptModelError)


def test_hub_id_without_network(fresh_engine: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rec = Recorder()
    _assert_failed(rec, fresh_engine().run(request("someone/not-downloaded-model"), rec), NetworkUnavailableError)


def test_unsupported_mode_for_family(fresh_engine: Any, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SD15Family, "supported_modes", frozenset(Mode) - {Mode.REGIONS})
    engine = fresh_engine()
    mask = np.ones((64, 80), np.float32)
    rec = Recorder()
    result = engine.run(request(tiny_sd15, regions=(RegionSpec(mask, "x"),)), rec)
    err = _assert_failed(rec, result, UnsupportedModeError)
    assert "regions" in err.message
    _assert_usable(engine, tiny_sd15)


def test_controlnet_of_another_family(fresh_engine: Any, tiny_sd15: Path, tiny_controlnet_sdxl: Path) -> None:
    engine = fresh_engine()
    control = ControlSpec(ControlKind.SCRIBBLE, noise_image(80, 64), model=ModelRef(str(tiny_controlnet_sdxl)))
    rec = Recorder()
    _assert_failed(rec, engine.run(request(tiny_sd15, controls=(control,)), rec), UnsupportedModeError)
    _assert_usable(engine, tiny_sd15)


def test_no_default_controlnet(fresh_engine: Any, tiny_sdxl: Path, tmp_path: Path) -> None:
    engine = fresh_engine(models_root=tmp_path / "no-models")
    control = ControlSpec(ControlKind.CANNY, noise_image(80, 64))
    rec = Recorder()
    err = _assert_failed(rec, engine.run(request(tiny_sdxl, controls=(control,)), rec), UnsupportedModeError)
    assert "canny" in err.message


def test_invalid_request(fresh_engine: Any, tiny_sd15: Path) -> None:
    rec = Recorder()
    result = fresh_engine().run(request(tiny_sd15, steps=0), rec)
    err = _assert_failed(rec, result, InvalidRequestError)
    assert "steps" in err.message


def test_generate_raises_the_typed_error(fresh_engine: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        fresh_engine().generate(request(tmp_path / "missing.safetensors"))


class _Payload:
    """Pickling this runs code on load: a checkpoint must never be allowed to."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (print, ("pickle code ran",))


def test_pickle_checkpoint_with_code_is_refused(fresh_engine: Any, tiny_sd15: Path, tmp_path: Path) -> None:
    from sfumato.inference.errors import UnsafeModelError

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": _Payload()}}, str(path))
    engine = fresh_engine()
    rec = Recorder()
    _assert_failed(rec, engine.run(request(path), rec), UnsafeModelError)
    _assert_usable(engine, tiny_sd15)


def test_cancel_from_another_thread(fresh_engine: Any, tiny_sd15: Path) -> None:
    """The desktop's shape: the engine runs on a worker thread, the GUI thread cancels."""
    engine = fresh_engine()
    engine.load(ModelRef(str(tiny_sd15)))
    token = CancelToken()
    first_step = threading.Event()
    proceed = threading.Event()
    rec = Recorder()

    def on_step(progress: Any) -> None:
        if progress.step == 1:
            first_step.set()
            proceed.wait(10)  # hold the worker until the GUI thread has cancelled

    rec.on_step = on_step
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(engine.run(request(tiny_sd15, steps=8), rec, token)))
    worker.start()
    assert first_step.wait(60)
    token.cancel()
    proceed.set()
    worker.join(60)
    assert not worker.is_alive()
    assert outcome[0].cancelled and isinstance(rec.last, Cancelled)
    assert len(rec.progress) == 1

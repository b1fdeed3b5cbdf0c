"""Fixtures for the inference tests: tiny models built once per session, and engines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tinymodels import tiny_model


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder for engine side files (an empty ``models-root``)."""
    return tmp_path_factory.mktemp("tinymodels")


@pytest.fixture(scope="session")
def tiny_sd15(tiny_root: Path) -> Path:
    """A tiny SD 1.x diffusers folder (native 64 px)."""
    return tiny_model("sd15")


@pytest.fixture(scope="session")
def tiny_sdxl(tiny_root: Path) -> Path:
    """A tiny SDXL diffusers folder (native 64 px)."""
    return tiny_model("sdxl")


@pytest.fixture(scope="session")
def tiny_sd15_inpaint(tiny_root: Path) -> Path:
    """A tiny SD 1.x folder with a 9-channel inpainting UNet."""
    return tiny_model("sd15-inpaint")


@pytest.fixture(scope="session")
def tiny_sdxl_inpaint(tiny_root: Path) -> Path:
    return tiny_model("sdxl-inpaint")


@pytest.fixture(scope="session")
def tiny_controlnet_sd15(tiny_root: Path) -> Path:
    return tiny_model("controlnet-sd15")


@pytest.fixture(scope="session")
def tiny_controlnet_sdxl(tiny_root: Path) -> Path:
    return tiny_model("controlnet-sdxl")


@pytest.fixture(scope="session")
def shared_engine(tiny_root: Path):  # type: ignore[no-untyped-def]
    """One CPU engine for tests that neither count loads nor patch models."""
    from sfumato.inference.devices import EngineOptions
    from sfumato.inference.engine import Engine

    return Engine(device="cpu", options=EngineOptions(max_models=8), models_root=tiny_root / "models-root")


@pytest.fixture
def fresh_engine(tiny_root: Path) -> Callable[..., object]:
    """Factory for a new CPU engine (own cache): ``fresh_engine(**EngineOptions fields)``."""
    from sfumato.inference.devices import EngineOptions
    from sfumato.inference.engine import Engine

    def make(
        models_root: Path | None = None, single_file_configs: dict[str, Path] | None = None, **options: object
    ) -> Engine:
        opts = EngineOptions(**{"max_models": 8, **options})  # type: ignore[arg-type]
        return Engine(
            device="cpu",
            options=opts,
            models_root=models_root or tiny_root / "models-root",
            single_file_configs=single_file_configs,
        )

    return make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

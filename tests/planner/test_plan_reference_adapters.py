"""A family that reads references through an IP-Adapter (SD 1.x, SDXL) is checked for an
installed adapter when the plan is made, so the artist learns what to install before
anything runs (the engine would refuse too, later, after loading the model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plandocs import document, gradient, layer
from sfumato.canvas.model.layers import ReferenceSettings, Role
from sfumato.planner.errors import ModelCannotError
from sfumato.planner.families import FamilyInfo
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings
from sfumato.vocabulary.kinds import ReferenceKind

SD15 = FamilyInfo.for_native("sd15", 64)


def _doc(kind: ReferenceKind) -> object:
    reference = layer("look", gradient(32, 32), role=Role.REFERENCE, reference=ReferenceSettings(kind=kind))
    return document(64, 64, reference, layer("paint", gradient(64, 64)))


def _settings() -> GenerationSettings:
    return GenerationSettings(prompt="a garden", model="tiny", model_family="sd15", seed=1, steps=2)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home whose ComfyUI folders the catalog scans."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SFUMATO_NO_SYSTEM_MODEL_DIRS", "0")
    for var in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_no_adapter_installed_stops_the_plan_saying_where_to_put_one(home: Path) -> None:
    with pytest.raises(ModelCannotError) as caught:
        plan(_doc(ReferenceKind.STYLE), _settings(), family=SD15)
    assert "IP-Adapter" in str(caught.value) and "ComfyUI/models/ipadapter" in str(caught.value)
    assert "clip_vision" in str(caught.value)


def test_an_installed_adapter_lets_the_plan_through_and_a_face_needs_a_face_adapter(home: Path) -> None:
    from tinyadapters import build_tiny_ip_adapter

    build_tiny_ip_adapter(home, "sd15")  # ComfyUI/models/ipadapter + clip_vision under home
    planned = plan(_doc(ReferenceKind.STYLE), _settings(), family=SD15)
    assert [r.spec.kind for r in planned.references] == [ReferenceKind.STYLE]
    with pytest.raises(ModelCannotError, match="face IP-Adapter"):
        plan(_doc(ReferenceKind.FACE), _settings(), family=SD15)


def test_what_a_family_does_not_follow_is_noted() -> None:
    """SD 1.x (IP-Adapter) follows every setting, FLUX.1's Redux all but the kind, FLUX.2
    Klein none (it reads the picture whole)."""
    import numpy as np
    from sfumato.inference.request import ReferenceImage
    from sfumato.planner.references import PlannedReference, unfollowed_notes

    picture = np.zeros((16, 16, 3), np.uint8)
    styled = PlannedReference(ReferenceImage(picture, kind=ReferenceKind.STYLE, strength=0.5, start=0.2), "look",
                              region_names=("sky",))  # fmt: skip
    assert unfollowed_notes([styled], "sd15") == []
    (flux,) = unfollowed_notes([styled], "flux")
    assert "its kind (style)" in flux and "strength" not in flux and "schedule" not in flux and "region" not in flux
    (klein,) = unfollowed_notes([styled], "flux2")
    for part in ("its kind (style)", "its strength (0.5)", "its schedule (0.2..1)", "its region (sky)", "whole"):
        assert part in klein, part
    plain = PlannedReference(ReferenceImage(picture), "plain")
    assert unfollowed_notes([plain], "flux2") == []  # nothing set that it ignores

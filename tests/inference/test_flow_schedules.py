"""Every flow-matching family runs any step count, one included.

Qwen-Image's scheduler stretches its sigmas to end at ``shift_terminal``; with one step
that stretch is 0/0 (diffusers' own pipeline draws NaN there). The family mends it: one
step from pure noise, sigma 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from enginehelpers import Recorder, request
from tinyflow import tiny_flow_model


@pytest.mark.parametrize("kind", ["flux", "chroma", "sd3", "zimage", "qwenimage", "flux2-klein"])
def test_one_step_runs(shared_engine: Any, kind: str) -> None:
    result = shared_engine.run(request(tiny_flow_model(kind), width=64, height=64, steps=1, cfg=1.0), Recorder())
    assert result.ok, result.error
    assert result.metadata["steps_run"] == 1 and result.images[0].std() > 1.0


def test_qwen_images_single_step_starts_from_pure_noise(shared_engine: Any) -> None:
    import torch
    from sfumato.inference.families import get_family
    from sfumato.inference.request import ModelRef
    from sfumato.inference.schedulers import make_scheduler
    from sfumato.vocabulary.kinds import Sampler

    model = shared_engine.cache.get(ModelRef(str(tiny_flow_model("qwenimage"))))
    scheduler = make_scheduler(Sampler.DEFAULT, dict(model.pipe.scheduler.config), None, get_family("qwenimage"))
    model.family.set_timesteps(scheduler, 1, (8, 8), torch.device("cpu"))
    assert scheduler.sigmas.tolist() == [1.0, 0.0] and np.isfinite(scheduler.timesteps.numpy()).all()

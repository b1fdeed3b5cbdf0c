"""The built-in model's trainer runs end to end (``--smoke``: a few steps per stage) and
its continuation modes (``--resume``, ``--controlnet-from``) load what it wrote.

These check the plumbing that reproduces the committed weights, not their quality (the
semantic suite judges that); CI never trains for real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from tools import train_builtin_model as trainer  # noqa: E402


def _train(out: Path, *extra: str) -> dict:
    argv = ["--smoke", "--threads", "1", "--out", str(out / "builtin")]
    argv += ["--controlnet-out", str(out / "builtin-controlnet-scribble"), *extra]
    assert trainer.main(argv) == 0
    return json.loads((out / "builtin" / "training_log.json").read_text())


@pytest.mark.timeout(600)
def test_smoke_run_writes_a_loadable_model_then_continues_it(tmp_path: Path) -> None:
    import torch
    from diffusers import ControlNetModel, StableDiffusionPipeline

    first = tmp_path / "first"
    log = _train(first)
    assert set(log["stages"]) == {"data", "vae", "unet", "controlnet"}
    assert log["weights_bytes"] > 0
    pipe = StableDiffusionPipeline.from_pretrained(
        str(first / "builtin"), local_files_only=True, torch_dtype=torch.float32
    )
    assert pipe.vae_scale_factor == 4
    assert pipe.vae.config.scaling_factor == log["scaling_factor"]
    ids = pipe.tokenizer("a red circle on a blue background").input_ids
    assert len(ids) == 2 + 7  # every caption word is one token

    # continue only the ControlNet: the text-to-image weights stay as they were
    second = tmp_path / "second"
    log2 = _train(
        second,
        "--resume", str(first / "builtin"),
        "--unet-steps", "0",
        "--controlnet-from", str(first / "builtin-controlnet-scribble"),
    )  # fmt: skip
    assert log2["controlnet_resumed_from"] == str(first / "builtin-controlnet-scribble")
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        assert (second / "builtin" / part).read_bytes() == (first / "builtin" / part).read_bytes()
    before = ControlNetModel.from_pretrained(str(first / "builtin-controlnet-scribble"))
    after = ControlNetModel.from_pretrained(str(second / "builtin-controlnet-scribble"))
    changed = [
        name
        for (name, a), (_, b) in zip(before.state_dict().items(), after.state_dict().items())
        if not torch.equal(a, b)
    ]
    assert changed, "the ControlNet stage did not train the loaded ControlNet"

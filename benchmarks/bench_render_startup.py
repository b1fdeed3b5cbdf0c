"""Where the time of a small headless ``sfumato render`` goes: start-up, imports, model
load, first step, the rest.

A 64 px job with the built-in model spends almost all its wall time before the first
denoising step. Each phase is measured in a fresh interpreter (so every import is paid
as a user pays it), by timing cumulative checkpoints in one process:

- ``python``: interpreter start (``python -c pass``, its own process);
- ``cli``: ``import sfumato.cli`` (what ``sfumato --help`` pays);
- ``torch``: ``import torch``;
- ``diffusers``: the engine's modules and the SD 1.x pipeline class (diffusers, with
  ``torch._dynamo`` which diffusers imports);
- ``transformers``: the CLIP text model and tokenizer classes;
- ``load``: the engine made and the built-in model loaded;
- ``run``: the render itself (plan, 8 steps at 64², VAE decode), with its first step
  timed apart from the rest;
- ``total``: the whole ``sfumato render doc.ora -o out.png`` command, its own process.

Medians over ``--repeat`` runs; the machine is shared, so compare phases of one run.

    python benchmarks/bench_render_startup.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = """
import json, sys, time
t0 = time.perf_counter(); marks = {}
def mark(name): marks[name] = time.perf_counter() - t0
import sfumato.cli; mark("cli")
import torch; mark("torch")
import diffusers
from sfumato.inference.engine import Engine
from sfumato.inference.families import get_family
get_family("sd15").pipeline_class(inpaint=False); mark("diffusers")
from transformers import CLIPTextModel, CLIPTokenizer; mark("transformers")
from sfumato.canvas.files.ora import load_ora
from sfumato.inference.request import ModelRef
from sfumato.planner.plan import plan
from sfumato.planner.recipe import settings_from_recipe
engine = Engine(device="cpu")
engine.cache.get(ModelRef("builtin")); mark("load")
doc = load_ora(sys.argv[1])
planned = plan(doc, settings_from_recipe(doc.recipe, model="builtin", seed=1))
steps = []
def on_event(event):
    if type(event).__name__ == "Progress" and event.step > 0:
        steps.append(time.perf_counter() - t0)
result = engine.run(planned.request, on_event)
assert result.error is None, result.error
mark("run")
marks["first_step"] = steps[0] - marks["load"]
print(json.dumps(marks))
"""


def _document(folder: Path) -> Path:
    from sfumato.canvas.files.ora import save_ora
    from sfumato.canvas.model.document import Document, Recipe

    path = folder / "doc.ora"
    save_ora(Document(64, 64, recipe=Recipe(prompt="a red circle on a blue background", seed=1, steps=8)), path)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        doc = _document(Path(tmp))
        runs: list[dict[str, float]] = []
        for _ in range(repeat):
            out = subprocess.run([sys.executable, "-c", PHASES, str(doc)], check=True, env=_env(),
                                 capture_output=True, text=True)
            marks = json.loads(out.stdout.strip().splitlines()[-1])
            marks["python"] = _timed([sys.executable, "-c", "pass"])
            marks["total"] = _timed([sys.executable, "-m", "sfumato", "render", str(doc), "-o",
                                     str(Path(tmp) / "out.png"), "--model", "builtin", "-q"])
            runs.append(marks)
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    figures = measure(args.repeat)
    order = ["cli", "torch", "diffusers", "transformers", "load", "run"]
    print(f"{'phase':<14}{'cumulative s':>14}{'phase s':>10}{'share':>8}")
    previous = 0.0
    end = figures["run"]
    for name in order:
        value = figures[name]
        print(f"{name:<14}{value:>14.2f}{value - previous:>10.2f}{(value - previous) / end:>8.0%}")
        previous = value
    print(f"{'first step':<14}{'':>14}{figures['first_step']:>10.2f}")
    print(f"{'python -c pass':<14}{'':>14}{figures['python']:>10.2f}")
    print(f"{'sfumato render':<14}{figures['total']:>14.2f}   (whole command, its own process)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

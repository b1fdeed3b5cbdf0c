"""Mutation check: break one core behaviour at a time and see that the tests notice.

A test suite that still passes when inpainting ignores the picture around the mask, or
when undo restores nothing, protects nothing. Each :class:`Mutation` below is one
deliberate break of a behaviour artists rely on, written as an exact text replacement in
one source file. For each, the tool copies the working tree to a temporary folder,
applies the replacement there, and runs the tests that must catch it (``pytest -x``): the
mutation is **caught** when they fail, **survived** when they pass. Nothing is changed in
the working tree itself.

Before the mutations, the same tests run once on the unmodified copy: a failing baseline
makes every "caught" meaningless, so the tool stops there.

Usage::

    python tools/mutation_check.py              # every mutation; exit 1 if one survives
    python tools/mutation_check.py inpaint-context undo-stroke   # some, by name
    python tools/mutation_check.py --list       # names, files and the tests that catch them
    python tools/mutation_check.py --json PATH  # the report as JSON too

When a refactor moves the code a mutation names, the tool stops with "not found" (and
``tests/tools/test_mutation_check.py`` fails in the normal suite): move the mutation with
the code, so the break it stands for stays covered.
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def package_dirs(root: Path) -> dict[str, str]:
    """Subpackage of the sfumato namespace -> its folder on disk, as pyproject.toml maps
    them (``package-dir``): read, not repeated, so a new room is copied like the others."""
    import tomllib

    mapping = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]
    return {name.removeprefix("sfumato."): folder for name, folder in mapping.items() if name.startswith("sfumato.")}


@dataclass(frozen=True)
class Mutation:
    """One deliberate break: replace ``old`` (exactly once in ``path``) with ``new``."""

    name: str
    behaviour: str  # what an artist loses when this break ships
    path: str  # relative to the repository root
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments (files, folders, node ids) that must fail

    def apply(self, text: str) -> str:
        count = text.count(self.old)
        if count != 1:
            where = "not found" if count == 0 else f"found {count} times"
            raise MutationStale(
                f"{self.name}: the text to break is {where} in {self.path}; "
                "move the mutation with the code it stands for"
            )
        return text.replace(self.old, self.new)


class MutationStale(Exception):
    """A mutation's ``old`` text no longer occurs exactly once in its file."""


M = "tests/inference/test_engine_modes.py::"

INPAINT_TESTS = (
    "tests/inference/test_inpaint_context.py",
    "tests/semantic/test_semantic_inpaint.py",
)

FLUX = "tests/inference/test_flux.py::"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        name="flow-noise-level",
        behaviour="img2img on a flow-matching model (FLUX, SD 3.5...) starts from the wrong mix of picture and noise",
        path="inference/latents.py",
        old="return (1.0 - s) * x0 + s * noise",
        new="return x0 + s * noise",
        tests=(FLUX + "test_img2img_equals_flux_img2img_pipeline",),
    ),
    Mutation(
        name="joint-region-bias",
        behaviour="on the transformer families a region's picture reads every prompt, not its own",
        path="inference/joint_regions.py",
        old="text_image = logs[owner]  # (T, N): text token → image token",
        new="text_image = torch.zeros_like(logs[owner])",
        tests=(FLUX + "test_regions_keep_each_regions_attention_on_its_prompt",),
    ),
    Mutation(
        name="flux-guidance",
        behaviour="FLUX.1 dev ignores the guidance scale (its embedding always gets 1)",
        path="inference/denoisers/flux.py",
        old="torch.full([1], job.cfg, device=device, dtype=torch.float32)",
        new="torch.full([1], 1.0, device=device, dtype=torch.float32)",
        tests=(FLUX + "test_guidance_is_an_input_of_dev",),
    ),
    Mutation(
        name="chroma-padding",
        behaviour="Chroma reads the padding of a prompt shorter than its negative",
        path="inference/denoisers/chroma.py",
        old="attention_mask=self.mask,",
        new="attention_mask=None,",
        tests=("tests/inference/test_chroma.py::test_txt2img_equals_chroma_pipeline",),
    ),
    Mutation(
        name="inpaint-context",
        behaviour="inpainting ignores the picture around the mask (txt2img of the area, pasted back)",
        path="inference/engine.py",
        old="latents = known + (latents - known) * free",
        new="latents = latents",
        tests=INPAINT_TESTS,
    ),
    Mutation(
        name="soft-masks",
        behaviour="a soft (grey) mask regenerates as much as a full one (differential diffusion off)",
        path="inference/engine.py",
        old="free = (job.denoise_mask > thresholds[j]).to(dtype)",
        new="free = (job.denoise_mask > 0.0).to(dtype)",
        tests=("tests/inference/test_inpaint_context.py",),
    ),
    Mutation(
        name="preview-mask",
        behaviour="an inpaint preview covers the whole area, hiding the painting around the mask",
        path="desktop/generation_controller.py",
        old="masked_preview(rgb, planned.paste_mask)",
        new="masked_preview(rgb, None)",
        tests=("tests/desktop/test_preview_overlay.py",),
    ),
    Mutation(
        name="preview-alpha",
        behaviour="the preview overlay ignores the mask it is given",
        path="desktop/preview_overlay.py",
        old="out[..., 3] = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)",
        new="out[..., 3] = 255",
        tests=("tests/desktop/test_preview_overlay.py",),
    ),
    Mutation(
        name="region-masks",
        behaviour="every region prompt applies to the whole picture, not to its region",
        path="inference/regions.py",
        old="torch.cat([self._global_mask[None], self._masks])",
        new="torch.cat([self._global_mask[None], torch.ones_like(self._masks)])",
        tests=("tests/inference/test_regions.py", "tests/semantic/test_semantic_region_placement.py"),
    ),
    Mutation(
        name="controlnet-conditioning",
        behaviour="the sketch layer no longer steers the composition (ControlNet sees a blank image)",
        path="inference/denoisers/unet.py",
        old="controlnet_cond=control.image,",
        new="controlnet_cond=torch.zeros_like(control.image),",
        tests=(M + "test_two_controls_each_condition_the_result",),
    ),
    Mutation(
        name="controlnet-second-skipped",
        behaviour="only the first control layer steers; the others are ignored",
        path="inference/denoisers/unet.py",
        old="for net, controls in _union_groups([c for c in self.job.controls if c.active(j, n)]):",
        new="for net, controls in _union_groups([c for c in self.job.controls[:1] if c.active(j, n)]):",
        tests=(M + "test_two_controls_each_condition_the_result",),
    ),
    Mutation(
        name="controlnet-strength",
        behaviour="a control layer's strength slider does nothing",
        path="inference/denoisers/unet.py",
        old="conditioning_scale=control.strength,",
        new="conditioning_scale=1.0,",
        tests=(M + "test_two_controls_each_condition_the_result",),
    ),
    Mutation(
        name="strength",
        behaviour="img2img strength does nothing: every strength starts from the same noise level",
        path="inference/engine.py",
        old="levels = NoiseLevels(scheduler, first)",
        new="levels = NoiseLevels(scheduler, 0)",
        tests=(M + "test_higher_strength_moves_further_from_the_source",),
    ),
    Mutation(
        name="no-cfg-prompt",
        behaviour="with guidance off (cfg 1) the prompt is dropped",
        path="inference/text_conditioning.py",
        old="        if uncond is None:\n            return cond\n",
        new="        if uncond is None:\n            return torch.zeros_like(cond)\n",
        tests=(M + "test_no_cfg_path_is_the_conditional_prediction",),
    ),
    Mutation(
        name="prompt-not-encoded",
        behaviour="the main prompt never reaches the model",
        path="inference/text_conditioning.py",
        old="PromptPair(request.prompt, request.negative),",
        new='PromptPair("", request.negative),',
        tests=("tests/semantic/test_semantic_default_model.py",),
    ),
    Mutation(
        name="vae-tiling",
        behaviour="VAE tiling is switched on but large pictures still decode in one piece",
        path="inference/model_cache.py",
        old="pipe.vae.enable_tiling()",
        new="pass",
        tests=(M + "test_vae_tiling_decodes_in_tiles_close_to_the_untiled_picture",),
    ),
    Mutation(
        name="channels-last",
        behaviour="the channels-last speed option is accepted but not applied",
        path="inference/model_cache.py",
        old="pipe.unet.to(memory_format=torch.channels_last)",
        new="pass",
        tests=(M + "test_channels_last_gives_the_contiguous_picture",),
    ),
    Mutation(
        name="lora-merge",
        behaviour="a LoRA tag changes nothing (the update is never merged)",
        path="inference/lora.py",
        old="merged = target.float() + weight * delta.to(target.device)",
        new="merged = target.float()",
        tests=("tests/inference/test_lora.py",),
    ),
    Mutation(
        name="lora-alpha",
        behaviour="a LoRA's alpha is ignored, so it applies rank/alpha times too strongly",
        path="inference/lora.py",
        old="return 1.0 if self.alpha is None else self.alpha / self.rank",
        new="return 1.0",
        tests=("tests/inference/test_lora.py",),
    ),
    Mutation(
        name="lora-weight",
        behaviour="a LoRA's weight (<lora:name:0.4>) is ignored: always full strength",
        path="inference/lora.py",
        old="_merge(pipe, layers, (float(spec.weight), float(spec.text_weight)), state.backups, path.name)",
        new="_merge(pipe, layers, (1.0, 1.0), state.backups, path.name)",
        tests=("tests/inference/test_lora.py", "tests/inference/test_model_cache.py"),
    ),
    Mutation(
        name="inpaint-known-latents",
        behaviour="the latents outside an inpaint mask end a little off the original's (the final reset is gone)",
        path="inference/engine.py",
        old="latents = torch.where(job.denoise_mask <= 0.0, job.init_latents, latents)",
        new="latents = latents",
        tests=(M + "test_inpaint_every_fill_mode_keeps_the_known_latents",),
    ),
    Mutation(
        name="paste-mask-leaks",
        behaviour="the paste mask is not clipped to the mask: pixels around an inpaint change",
        path="planner/mask.py",
        old="out = np.minimum(faded, mask)",
        new="out = faded",
        tests=("tests/planner/test_plan_masks.py", "tests/planner/test_plan_placement.py"),
    ),
    Mutation(
        name="placement-mask",
        behaviour="an inpaint result layer is opaque over its whole area, hiding the painting around the mask",
        path="planner/placement.py",
        old="if alpha is None and plan.paste_mask is not None:",
        new="if False:",
        tests=("tests/planner/test_plan_placement.py",),
    ),
    Mutation(
        name="undo-stroke",
        behaviour="undo of a brush stroke leaves the stroke on the layer",
        path="canvas/edits/pixel_commands.py",
        old='assert self.patch is not None, "undo before redo"\n        self.patch.swap(self.layer.surface)',
        new='assert self.patch is not None, "undo before redo"',
        tests=("tests/canvas/test_history.py", "tests/canvas/test_brush.py", "tests/desktop/test_tools.py"),
    ),
    Mutation(
        name="canvas-draws-nothing",
        behaviour="the canvas view paints no tiles: the artist sees nothing of the picture",
        path="desktop/canvas_tiles.py",
        old="painter.drawImage(device_rect(viewport, shown, dpr), image, source_rect)",
        new="pass",
        tests=("tests/desktop/test_canvas_view.py",),
    ),
    Mutation(
        name="ora-role-write",
        behaviour="a saved region/mask/control layer reopens as a plain paint layer",
        path="canvas/files/ora_write.py",
        old='attrs[_S + "role"] = layer.role.value',
        new="pass",
        tests=("tests/canvas/test_ora.py",),
    ),
    Mutation(
        name="ora-role-read",
        behaviour="opening an .ora file forgets which layers are regions, masks and controls",
        path="canvas/files/ora_read.py",
        old="layer.role = Role.parse(role_text)",
        new="layer.role = Role.PAINT",
        tests=("tests/canvas/test_ora.py",),
    ),
    Mutation(
        name="journal-pixels",
        behaviour="the recovery journal forgets the strokes: a crash loses the painting",
        path="canvas/recovery/journal.py",
        old="tiles.extend(_frozen_tiles(layer, sorted(keys)))",
        new="pass",
        tests=("tests/canvas/test_journal.py",),
    ),
    Mutation(
        name="journal-undo",
        behaviour="recovery forgets the undo history the artist had",
        path="canvas/recovery/recovery.py",
        old="(history.undo if action == \"undo\" else history.redo)()",
        new="pass",
        tests=("tests/canvas/test_journal.py",),
    ),
    Mutation(
        name="save-backup",
        behaviour="saving keeps no backup of the previous file",
        path="vocabulary/atomic_file.py",
        old="        if backup:\n            keep_backup(target)",
        new="        pass",
        tests=("tests/canvas/test_save_full_disk.py",),
    ),
    Mutation(
        name="reference-negative-embeds",
        behaviour="a reference picture steers the unconditional half of guidance too (no zero "
        "negative image embeds), so guidance cancels what the picture asks",
        path="inference/reference_adapters.py",
        old="    return torch.cat([torch.cat([uncond[None]] * batch), cond])",
        new="    return torch.cat([cond, cond])",
        tests=("tests/inference/test_ip_adapter.py::test_sd15_with_a_reference_equals_diffusers_load_ip_adapter",),
    ),
    Mutation(
        name="reference-mask",
        behaviour="a reference layer inside a region steers the whole picture",
        path="inference/reference_adapters.py",
        old="        if any(r.mask is not None for r in self.references):",
        new="        if False:",
        tests=("tests/inference/test_ip_adapter.py::test_a_masked_reference_adds_nothing_to_the_attention_outside_its_mask",),
    ),
    Mutation(
        name="union-control-type",
        behaviour="a depth layer on an SDXL union ControlNet is read as thick lines (the wrong control type)",
        path="inference/detect.py",
        old="    ControlKind.DEPTH: 1,",
        new="    ControlKind.DEPTH: 2,",
        tests=("tests/inference/test_union_controlnet.py::test_one_layer_equals_the_union_pipeline",),
    ),
    Mutation(
        name="expand-paste-feathered",
        behaviour="an Expand pastes its border through an inpaint's inward fade: a half-transparent seam beside the picture",
        path="planner/plan.py",
        old="        pasted = (area_mask > 0).astype(np.float32)  # unfeathered: nothing lies beneath to fade into",
        new="        pasted = paste_mask(area_mask, paste_feather(area_mask))",
        tests=("tests/planner/test_plan_outpaint.py::test_the_picture_stays_byte_identical_and_the_border_is_filled",),
    ),
    Mutation(
        name="tile-blend-unweighted",
        behaviour="tiled refine adds overlapping tiles without their feather weights: the overlaps come out too bright",
        path="planner/tiles.py",
        old="        acc *= weight[..., None]",
        new="        acc *= 1.0",
        tests=("tests/planner/test_tiles.py::test_identity_refine_of_a_constant_picture_is_exact",),
    ),
    Mutation(
        name="pose-limbs-full-colour",
        behaviour="pose limbs drawn at full colour, not OpenPose's 0.6 shade the pose ControlNets were trained on",
        path="planner/pose.py",
        old="LIMB_SHADE = 0.6",
        new="LIMB_SHADE = 1.0",
        tests=("tests/planner/test_pose_render.py::test_hand_made_skeletons_match_openpose_pixel_for_pixel",),
    ),
    Mutation(
        name="split-attention-merge-unweighted",
        behaviour="regional SD 3.5 / Z-Image pictures average the image and text attention halves instead of weighing them",
        path="inference/split_attention.py",
        old="    peak = torch.maximum(own_lse, text_lse)",
        new="    peak = own_lse = text_lse = torch.zeros_like(own_lse)",
        tests=("tests/inference/test_split_attention.py",),
    ),
    Mutation(
        name="qwen21-prompt-cache-refilled",
        behaviour="Qwen-Image 2.1 recomputes its prompt's keys and values every step: each step costs the whole sequence",
        path="inference/denoisers/qwenimage21.py",
        old="        self.filled = True\n",
        new="        self.filled = False\n",
        tests=("tests/inference/test_qwenimage21.py::test_the_prompt_cache_fills_once_then_serves_each_half",),
    ),
    Mutation(
        name="qwen21-alpha-dropped",
        behaviour="Qwen-Image 2.1's transparent parts land as whatever colour the VAE left under them, not over white",
        path="inference/families/qwenimage21.py",
        old="        return over_white(decode_frame(pipe.vae, latents))",
        new="        return decode_frame(pipe.vae, latents)[:, :3]",
        tests=("tests/inference/test_qwenimage21.py::test_txt2img_equals_qwenimage21_pipeline",),
    ),
)


# -- the copy ----------------------------------------------------------------------------
def _tree_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files: what a commit of the tree would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, check=True, capture_output=True,
    ).stdout.decode()
    return [p for p in out.split("\0") if p and (root / p).is_file()]


def make_copy(root: Path, dest: Path) -> None:
    """Copy the tree to ``dest`` and make ``dest/sfumato`` a complete package.

    The installed package is an editable install of the *working tree*, whose rooms map
    into ``sfumato.*`` through a finder that points at ``root``. In the copy, links
    ``sfumato/canvas -> ../canvas`` (and the other rooms) let ``import sfumato.canvas``
    resolve inside the copy from ``sys.path`` before that finder is asked.
    """
    for rel in _tree_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    for sub, folder in package_dirs(root).items():
        link = dest / "sfumato" / sub
        if not link.exists():
            link.symlink_to(Path("..") / folder, target_is_directory=True)


def copy_env(dest: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(dest), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def check_copy_imports(dest: Path) -> None:
    """Fail loudly unless the copy's modules are the ones imported (else nothing is tested)."""
    names = ["sfumato", *(f"sfumato.{sub}" for sub in package_dirs(dest))]
    probe = "import importlib\n" + "".join(f"print(importlib.import_module({n!r}).__file__)\n" for n in names)
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=dest, env=copy_env(dest), capture_output=True, text=True, check=True
    ).stdout.split()
    real = dest.resolve()
    for path in out:
        if not Path(path).resolve().is_relative_to(real):
            raise SystemExit(f"mutation check: the copy imports {path}, not its own modules; nothing would be tested")


# -- running -----------------------------------------------------------------------------
@dataclass
class Outcome:
    name: str
    caught: bool
    detail: str  # the first failing test, or why it counts as caught
    seconds: float


def run_tests(dest: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=dest, env=copy_env(dest), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return proc.returncode, proc.stdout + proc.stderr


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    tail = [line for line in output.splitlines() if line.strip()]
    return tail[-1] if tail else "(no output)"


def check_one(dest: Path, mutation: Mutation, timeout: float) -> Outcome:
    path = dest / mutation.path
    original = path.read_text(encoding="utf-8")
    path.write_text(mutation.apply(original), encoding="utf-8")
    started = time.perf_counter()
    try:
        py_compile.compile(str(path), doraise=True)  # a break must be a behaviour, not a syntax error
        code, output = run_tests(dest, mutation.tests, timeout)
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = time.perf_counter() - started
    if code == -1:
        return Outcome(mutation.name, True, f"tests hung past {timeout:.0f} s", seconds)
    if code == 0:
        return Outcome(mutation.name, False, "all selected tests passed", seconds)
    if code in (2, 3, 4):
        # interrupted / internal error / usage error: not a test noticing the break
        raise SystemExit(f"mutation check: pytest could not run for {mutation.name} (exit {code}):\n{output[-2000:]}")
    return Outcome(mutation.name, True, first_failure(output), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutation's tests")
    args = parser.parse_args(argv)

    by_name = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    chosen = [by_name[n] for n in args.names] if args.names else list(MUTATIONS)
    if args.list:
        for m in chosen:
            print(f"{m.name:26} {m.path}\n    {m.behaviour}\n    tests: {' '.join(m.tests)}")
        return 0
    for m in chosen:  # stale mutations stop the run before any copying
        m.apply((ROOT / m.path).read_text(encoding="utf-8"))

    with tempfile.TemporaryDirectory(prefix="sfumato-mutants.") as tmp:
        dest = Path(tmp) / "tree"
        make_copy(ROOT, dest)
        check_copy_imports(dest)
        baseline = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        print(f"baseline: {len(baseline)} test paths on the unmodified copy ...", flush=True)
        started = time.perf_counter()
        code, output = run_tests(dest, baseline, args.timeout * 2)
        if code != 0:
            print(output[-4000:])
            raise SystemExit(f"mutation check: the tests fail without any mutation ({first_failure(output)})")
        print(f"baseline passed in {time.perf_counter() - started:.0f} s\n", flush=True)
        outcomes = []
        for m in chosen:
            outcome = check_one(dest, m, args.timeout)
            outcomes.append(outcome)
            verdict = "caught  " if outcome.caught else "SURVIVED"
            print(f"{verdict} {m.name:26} {outcome.seconds:5.0f} s  {outcome.detail}", flush=True)

    survived = [o.name for o in outcomes if not o.caught]
    print(f"\n{len(outcomes) - len(survived)}/{len(outcomes)} mutations caught"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2) + "\n", encoding="utf-8")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

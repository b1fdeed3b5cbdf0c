"""Checks on a diffusers model folder before anything is built from it.

A folder's ``config.json`` files decide how large the networks are; diffusers and
transformers trust them and allocate first. A config that declares a million layers, or
a number where a list belongs, would then run for minutes into ``std::bad_alloc`` or end
in a bare ``TypeError``. :func:`check_model_folder` reads every component's config and
its weights file's header (no weights, no torch) and raises :class:`CorruptModelError`
naming the file, the field and what was expected when:

- a file the loader will read is not a regular file (a named pipe would block forever);
- a config is not a JSON object, or a size field has the wrong type or an absurd value
  (whole numbers 1 … 2^20; lists of at most 16 of them);
- a config declares more layers or wider layers than the weights file holds (layer
  counts from the tensor names, widths from the tensor shapes).
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from sfumato.inference.detect import open_model_file, read_safetensors_header
from sfumato.inference.errors import CorruptModelError

__all__ = ["check_model_folder"]

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2", "controlnet")
MAX_CONFIG_BYTES = 4 << 20
MAX_SIZE = 1 << 20
MAX_LIST = 16

# Fields the loaders read: (name, kind) with kind "int" or "ints" (a list or one int).
_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "unet": (("in_channels", "int"), ("out_channels", "int"), ("sample_size", "int"),
             ("cross_attention_dim", "int"), ("layers_per_block", "ints"),
             ("block_out_channels", "ints"), ("transformer_layers_per_block", "ints"),
             ("attention_head_dim", "ints"), ("num_attention_heads", "ints")),
    "controlnet": (("in_channels", "int"), ("conditioning_channels", "int"),
                   ("cross_attention_dim", "int"), ("layers_per_block", "ints"),
                   ("block_out_channels", "ints"), ("transformer_layers_per_block", "ints"),
                   ("attention_head_dim", "ints"), ("num_attention_heads", "ints")),
    "vae": (("in_channels", "int"), ("out_channels", "int"), ("latent_channels", "int"),
            ("sample_size", "int"), ("layers_per_block", "int"), ("block_out_channels", "ints")),
    "text_encoder": (("vocab_size", "int"), ("hidden_size", "int"), ("intermediate_size", "int"),
                     ("num_hidden_layers", "int"), ("num_attention_heads", "int"),
                     ("max_position_embeddings", "int"), ("projection_dim", "int")),
}
_FIELDS["text_encoder_2"] = _FIELDS["text_encoder"]
_WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors",
            "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors")


def check_model_folder(folder: Path) -> None:
    """Check a diffusers pipeline folder (or a ControlNet folder) as the module says."""
    folder = Path(folder)
    _regular_files(folder, depth=2)
    components = [(name, folder / name) for name in COMPONENTS if (folder / name / "config.json").exists()]
    if not components and (folder / "config.json").exists():
        components = [("controlnet", folder)]
    for name, where in components:
        config = _read_config(where / "config.json")
        _check_fields(where / "config.json", config, _FIELDS[name])
        weights = next((where / w for w in _WEIGHTS if (where / w).is_file()), None)
        if weights is not None:
            _against_weights(where / "config.json", config, name, read_safetensors_header(weights).shapes)


def _regular_files(folder: Path, depth: int) -> None:
    try:
        children = list(folder.iterdir())
    except OSError as error:
        raise CorruptModelError(f"{folder} cannot be listed: {error.strerror or error}.") from None
    for child in children:
        try:
            mode = child.stat().st_mode
        except OSError:
            continue  # a dangling link: the loader names it if it needs it
        if stat.S_ISDIR(mode):
            if depth > 1:
                _regular_files(child, depth - 1)
        elif not stat.S_ISREG(mode):
            raise CorruptModelError(
                f"{child} is not a regular file (a named pipe, socket or device); Sfumato reads "
                "models only from regular files.",
                "Remove it from the model folder.",
            )


def _read_config(path: Path) -> dict[str, Any]:
    with open_model_file(path) as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise CorruptModelError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MB; a model config is a few KB.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CorruptModelError(f"{path} is not valid JSON ({error}).") from None
    except RecursionError:
        raise CorruptModelError(f"{path} is JSON nested far too deeply to be a model config.") from None
    if not isinstance(data, dict):
        raise CorruptModelError(f"{path} must hold a JSON object, not {type(data).__name__}.")
    return data


def _is_whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(path: Path, config: Mapping[str, Any], fields: tuple[tuple[str, str], ...]) -> None:
    for name, kind in fields:
        if name not in config or config[name] is None:
            continue
        value = config[name]
        values = value if kind == "ints" and isinstance(value, list) else [value]
        expected = (
            f"a whole number from 1 to {MAX_SIZE:,}" if kind == "int"
            else f"a whole number from 1 to {MAX_SIZE:,}, or a list of at most {MAX_LIST} of them"
        )
        if len(values) > MAX_LIST or not all(_is_whole(v) and 1 <= v <= MAX_SIZE for v in values):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise CorruptModelError(f"{path}: {name} is {shown}; expected {expected}.")


def _as_list(value: Any, length: int) -> list[int]:
    return list(value) if isinstance(value, list) else [value] * length


def _against_weights(
    path: Path, config: Mapping[str, Any], component: str, shapes: Mapping[str, tuple[int, ...]]
) -> None:
    """Layer counts and widths the config declares must be those the weights hold."""

    def count(pattern: str) -> int:
        found = {int(m.group(1)) for key in shapes if (m := re.search(pattern, key))}
        return max(found) + 1 if found else 0

    def refuse(field: str, declared: Any, held: Any) -> None:
        raise CorruptModelError(
            f"{path}: {field} is {declared}, but the weights file holds {held}; the config does "
            "not belong to these weights."
        )

    if component.startswith("text_encoder"):
        layers = count(r"encoder\.layers\.(\d+)\.")
        declared = config.get("num_hidden_layers")
        if layers and _is_whole(declared) and declared > layers:
            refuse("num_hidden_layers", declared, f"{layers} layers")
        embedding = next((s for k, s in shapes.items() if k.endswith("token_embedding.weight")), None)
        hidden = config.get("hidden_size")
        if embedding is not None and len(embedding) == 2 and _is_whole(hidden) and hidden != embedding[1]:
            refuse("hidden_size", hidden, f"embeddings {embedding[1]} wide")
        return
    blocks = config.get("block_out_channels")
    if not isinstance(blocks, list):
        return
    held_blocks = count(r"^(?:encoder\.)?down_blocks\.(\d+)\.")
    if held_blocks and len(blocks) > held_blocks:
        refuse("block_out_channels", f"a list of {len(blocks)}", f"{held_blocks} down blocks")
    conv_in = shapes.get("conv_in.weight") or shapes.get("encoder.conv_in.weight")
    if conv_in is not None and len(conv_in) == 4 and blocks and blocks[0] != conv_in[0]:
        refuse("block_out_channels[0]", blocks[0], f"a first convolution {conv_in[0]} wide")
    # Per-block counts: the field, the weights' names of one block's layers, what they are.
    for name, pattern, what in (
        ("layers_per_block", r"^(?:encoder\.)?down_blocks\.{index}\.resnets\.(\d+)\.", "layers there"),
        ("transformer_layers_per_block", r"^down_blocks\.{index}\.attentions\.0\.transformer_blocks\.(\d+)\.", "there"),
    ):
        per_block = config.get(name)
        if per_block is None:
            continue
        for index, declared in enumerate(_as_list(per_block, len(blocks))):
            held = count(pattern.format(index=index))
            if held and _is_whole(declared) and declared > held:
                refuse(f"{name} (block {index})", declared, f"{held} {what}")

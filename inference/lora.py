"""LoRAs (kohya/A1111 and diffusers/PEFT safetensors) merged into a pipeline's weights.

peft is not a dependency, so LoRAs are applied by merging: for every adapted layer
``W ← W + weight · (alpha / rank) · up @ down`` (``alpha`` from the file, ``rank`` =
``down``'s first dimension; no ``alpha`` means ``alpha = rank``). The original tensors
of the layers a LoRA touches are copied to the CPU first, so :func:`remove_loras`
restores them bit for bit — no drift however often LoRAs are switched. Merging costs
one matrix product per adapted layer once per LoRA change, and nothing per step.

Key formats understood (one file may mix UNet and text-encoder entries):

- kohya / A1111: ``lora_unet_<module_with_underscores>.lora_down.weight`` /
  ``.lora_up.weight`` / ``.alpha``; text encoders ``lora_te_`` (SD 1.x) or ``lora_te1_``
  / ``lora_te2_`` (SDXL). UNet names may be diffusers names (SD 1.x LoRAs) or the
  original LDM names (``input_blocks_4_1_…``, SDXL LoRAs); both are resolved.
- diffusers / PEFT: ``unet.<module>.lora_A.weight`` / ``lora_B.weight`` (also
  ``lora.down``/``lora.up``, ``lora_linear_layer.down``/``up`` and the old
  ``processor.to_q_lora.down`` form), ``text_encoder.`` / ``text_encoder_2.`` prefixes,
  optional ``.alpha``.

LyCORIS variants (LoHa, LoKr, DoRA) are refused with a clear message.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sfumato.inference.checkpoint_reading import load_checkpoint_state_dict
from sfumato.inference.errors import CorruptModelError, ModelNotFoundError, UnsupportedModeError
from sfumato.inference.request import LoraSpec

__all__ = [
    "LoraLayer",
    "apply_loras",
    "applied_loras",
    "load_lora_layers",
    "remove_loras",
]

log = logging.getLogger(__name__)

_COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")


@dataclass(frozen=True)
class LoraLayer:
    """One adapted layer: ``delta = (alpha / rank) · up @ down`` for ``component.module``."""

    component: str  # "unet", "text_encoder" or "text_encoder_2"
    module: str  # the module's name in that component (diffusers naming)
    down: torch.Tensor  # (rank, in) or (rank, in, kh, kw)
    up: torch.Tensor  # (out, rank) or (out, rank, 1, 1)
    alpha: float | None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank

    def delta(self, shape: torch.Size) -> torch.Tensor:
        """The float32 weight update for a target weight of ``shape``."""
        up = self.up.float()
        down = self.down.float()
        if up.ndim == 4 and down.ndim == 4 and up.shape[2:] != (1, 1) and down.shape[2:] == (1, 1):
            delta = torch.einsum("orhw,ri->oihw", up, down[:, :, 0, 0])
        else:
            delta = up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)
        if delta.numel() != shape.numel():
            raise ValueError(f"LoRA update {tuple(delta.shape)} does not fit a weight of {tuple(shape)}")
        return delta.reshape(shape) * self.scale


# --------------------------------------------------------------------------- parsing

_KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2", "lora_te_": "text_encoder"}
_PAIR_PATTERNS = [
    # (regex for the down/A key, the matching up/B key template)
    (re.compile(r"^(?P<m>.+)\.lora_down\.weight$"), "{m}.lora_up.weight"),
    (re.compile(r"^(?P<m>.+)\.lora_A(?:\.default)?\.weight$"), None),
    (re.compile(r"^(?P<m>.+)\.lora\.down\.weight$"), "{m}.lora.up.weight"),
    (re.compile(r"^(?P<m>.+)\.lora_linear_layer\.down\.weight$"), "{m}.lora_linear_layer.up.weight"),
]
_OLD_PROCESSOR = re.compile(r"^(?P<m>.+)\.processor\.(?P<p>to_q|to_k|to_v|to_out)_lora\.down\.weight$")


def _pairs(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor, torch.Tensor, float | None]]:
    """(raw module name, down, up, alpha) for every LoRA pair in the file."""
    pairs = []
    for key, down in state.items():
        name: str | None = None
        up_key: str | None = None
        if m := _OLD_PROCESSOR.match(key):
            suffix = "to_out.0" if m["p"] == "to_out" else m["p"]
            name = f"{m['m']}.{suffix}"
            up_key = key.replace("_lora.down.weight", "_lora.up.weight")
            alpha_key = key.replace(".down.weight", ".alpha")
        else:
            for pattern, template in _PAIR_PATTERNS:
                if m := pattern.match(key):
                    name = m["m"]
                    up_key = template.format(m=name) if template else key.replace("lora_A", "lora_B")
                    alpha_key = f"{name}.alpha"
                    break
        if name is None or up_key is None:
            continue
        if up_key not in state:
            raise CorruptModelError(f"The LoRA has {key} but not its partner {up_key}.")
        alpha_tensor = state.get(alpha_key)
        alpha = float(alpha_tensor.float().item()) if alpha_tensor is not None else None
        pairs.append((name, down, state[up_key], alpha))
    return pairs


def _split_component(raw: str, denoiser: str = "unet") -> tuple[str, str, bool]:
    """(component, module name, is_kohya) from a raw LoRA module name."""
    for prefix, component in _KOHYA_PREFIXES.items():
        if raw.startswith(prefix):
            return component, raw[len(prefix) :], True
    for component in ("text_encoder_3", "text_encoder_2", "text_encoder", "unet", "transformer"):
        if raw.startswith(component + "."):
            return component, raw[len(component) + 1 :], False
    # Unprefixed diffusers LoRAs (older files) name the denoiser's modules directly.
    return denoiser, raw, False


def _read_lora(path: Path, pipe: Any) -> dict[str, torch.Tensor]:
    """The LoRA file's tensors, in diffusers' naming for the transformer families.

    The file is read by our own loader (safetensors, or a pickle only when it needs no
    code). For a pipeline with a transformer, diffusers' own ``lora_state_dict`` then
    converts the many published layouts (kohya's ``lora_unet_double_blocks_…`` with fused
    qkv, Black Forest Labs', XLabs', ComfyUI's) into ``transformer.<module>.lora_A/B``
    pairs, with each pair's alpha already folded into its weights.
    """
    state = load_checkpoint_state_dict(path)
    loader = getattr(type(pipe), "lora_state_dict", None)
    if getattr(pipe, "transformer", None) is None or loader is None:
        return state
    try:
        converted = loader(state, return_alphas=True)
    except TypeError:
        converted = loader(state)
    tensors, alphas = converted if isinstance(converted, tuple) else (converted, None)
    result = dict(tensors)
    for key, value in (alphas or {}).items():
        if value is not None:
            result.setdefault(key if key.endswith(".alpha") else f"{key}.alpha", torch.tensor(float(value)))
    return result


def load_lora_layers(path: Path, pipe: Any) -> list[LoraLayer]:
    """Parse a LoRA file and resolve every entry to a module of ``pipe``.

    Raises :class:`ModelNotFoundError`, :class:`CorruptModelError` (not a LoRA) or
    :class:`UnsupportedModeError` (LyCORIS variants; modules this model does not have —
    usually a LoRA for another model family).
    """
    path = Path(path)
    state = _read_lora(path, pipe)
    if any(k.endswith((".hada_w1_a", ".lokr_w1", ".dora_scale", ".lokr_w1_a")) for k in state):
        raise UnsupportedModeError(
            f"{path.name} is a LyCORIS (LoHa/LoKr/DoRA) file; only plain LoRAs are supported."
        )
    pairs = _pairs(state)
    if not pairs:
        raise CorruptModelError(f"{path.name} contains no LoRA weights.", "Choose a LoRA .safetensors file.")
    resolvers = {c: _ModuleResolver(getattr(pipe, c)) for c in _COMPONENTS if getattr(pipe, c, None) is not None}
    layers: list[LoraLayer] = []
    missing: list[str] = []
    denoiser = "transformer" if getattr(pipe, "transformer", None) is not None else "unet"
    for raw, down, up, alpha in pairs:
        component, name, kohya = _split_component(raw, denoiser)
        resolver = resolvers.get(component)
        module = resolver.resolve(name, kohya) if resolver is not None else None
        if module is None:
            missing.append(raw)
            continue
        layers.append(LoraLayer(component, module, down, up, alpha))
    if missing:
        log.warning("%s: %d of %d LoRA layers match no module (e.g. %s)", path.name, len(missing), len(pairs), missing[0])
    if not layers or len(missing) > len(pairs) // 2:
        raise UnsupportedModeError(
            f"The LoRA {path.name} does not fit this model ({len(missing)} of {len(pairs)} layers "
            "have no counterpart); it is probably made for another model family.",
            "Choose a LoRA made for this model's family.",
        )
    return layers


class _ModuleResolver:
    """Finds a component's Linear/Conv module by diffusers, kohya or LDM-style name."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.names: dict[str, str] = {}
        self.underscored: dict[str, str] = {}
        config = getattr(model, "config", None)
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
                continue
            for alias in _aliases(name, config):
                self.names.setdefault(alias, name)
                self.underscored.setdefault(alias.replace(".", "_"), name)

    def resolve(self, name: str, kohya: bool) -> str | None:
        if kohya:
            return self.underscored.get(name)
        return self.names.get(name) or self.underscored.get(name.replace(".", "_"))


def _aliases(name: str, config: Any) -> list[str]:
    aliases = [name]
    # transformers >= 5.6 flattened CLIPTextModel: LoRAs still say text_model.encoder...
    if name.startswith(("encoder.", "embeddings.", "final_layer_norm")):
        aliases.append("text_model." + name)
    ldm = _ldm_unet_name(name, config)
    if ldm is not None:
        aliases.append(ldm)
    return aliases


_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}  # fmt: skip


def _ldm_unet_name(name: str, config: Any) -> str | None:
    """The original LDM name of a diffusers UNet module (SDXL kohya LoRAs use these)."""
    if config is None or not hasattr(config, "get") or "layers_per_block" not in config:
        return None
    per = int(config["layers_per_block"]) + 1
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_out": "out.2", "add_embedding.linear_1": "label_emb.0.0",
             "add_embedding.linear_2": "label_emb.0.2"}  # fmt: skip
    if name in fixed:
        return fixed[name]

    def resnet(rest: str) -> str:
        head, _, tail = rest.partition(".")
        mapped = _RESNET.get(head, head)
        return f"{mapped}.{tail}" if tail else mapped

    def inner(kind: str, rest: str) -> str:
        """A block's resnet (``.0.``) or attention (``.1.``) module name, LDM style."""
        return f"0.{resnet(rest)}" if kind == "resnets" else f"1.{rest}"

    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name):
        return f"input_blocks.{1 + int(m[1]) * per + int(m[3])}.{inner(m[2], m[4])}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv", name):
        return f"input_blocks.{int(m[1]) * per + per}.0.op"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", name):
        return f"middle_block.{0 if m[1] == '0' else 2}.{resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", name):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", name):
        return f"output_blocks.{int(m[1]) * per + int(m[3])}.{inner(m[2], m[4])}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv", name):
        block = int(m[1])
        types = config.get("up_block_types") or ()
        has_attention = block < len(types) and "CrossAttn" in types[block]
        return f"output_blocks.{block * per + per - 1}.{2 if has_attention else 1}.conv"
    return None


# --------------------------------------------------------------------------- merging


@dataclass
class _Applied:
    backups: dict[tuple[str, str], torch.Tensor]
    loras: tuple[LoraSpec, ...]


_applied: weakref.WeakKeyDictionary[Any, _Applied] = weakref.WeakKeyDictionary()


def applied_loras(pipe: Any) -> tuple[LoraSpec, ...]:
    """The LoRAs currently merged into ``pipe`` (empty when none)."""
    state = _applied.get(pipe)
    return () if state is None else state.loras


def apply_loras(pipe: Any, loras: Sequence[LoraSpec]) -> None:
    """Merge ``loras`` (file, weight) into ``pipe``'s UNet and text encoders.

    Replaces whatever LoRAs were merged before (those are removed first). All or
    nothing: if any LoRA fails to load or fit, the pipeline is left exactly as it was
    before the call and the error is raised.
    """
    remove_loras(pipe)
    if not loras:
        return
    state = _Applied(backups={}, loras=tuple(loras))
    _applied[pipe] = state
    try:
        for spec in loras:
            path = Path(spec.source).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(f"LoRA file not found: {path}")
            layers = load_lora_layers(path, pipe)
            _merge(pipe, layers, (float(spec.weight), float(spec.text_weight)), state.backups, path.name)
            log.info(
                "merged LoRA %s (%d layers, weight %.2f, text encoders %.2f)",
                path.name, len(layers), spec.weight, spec.text_weight,
            )
    except BaseException:
        remove_loras(pipe)
        raise


def _merge(
    pipe: Any, layers: list[LoraLayer], weights: tuple[float, float],
    backups: dict[tuple[str, str], torch.Tensor], label: str,
) -> None:
    """Merge ``layers``: the UNet's with ``weights[0]``, the text encoders' with ``weights[1]``."""
    for layer in layers:
        weight = weights[1] if layer.component.startswith("text_encoder") else weights[0]
        module = getattr(pipe, layer.component).get_submodule(layer.module)
        target = module.weight
        try:
            delta = layer.delta(target.shape)
        except ValueError as error:
            raise UnsupportedModeError(
                f"The LoRA {label} does not fit this model ({layer.component}.{layer.module}: {error}).",
                "Choose a LoRA made for this model's family.",
            ) from error
        key = (layer.component, layer.module)
        with torch.no_grad():
            if key not in backups:
                backups[key] = target.detach().to("cpu", copy=True)
            merged = target.float() + weight * delta.to(target.device)
            target.copy_(merged.to(target.dtype))


def remove_loras(pipe: Any) -> None:
    """Restore every weight changed by :func:`apply_loras` exactly; no-op without LoRAs."""
    state = _applied.pop(pipe, None)
    if state is None:
        return
    with torch.no_grad():
        for (component, name), original in state.backups.items():
            target = getattr(pipe, component).get_submodule(name).weight
            target.copy_(original.to(target.device))

"""The files of a transformer-family model and what each one is, from its header alone.

FLUX.1, Chroma, SD 3.5, FLUX.2, Z-Image and Qwen-Image reach artists in pieces: ComfyUI
keeps the transformer in ``models/diffusion_models/`` (or ``models/unet/``), the text
encoders in ``models/text_encoders/`` (or ``models/clip/``) and the VAE in
``models/vae/``; some checkpoints hold everything (FLUX "fp8 all-in-one", SD 3.5's with
its text encoders). :func:`identify_part` reads a ``.safetensors`` header (or a
``.gguf``'s tensor table) and says which *role* the file plays (:class:`Role`), for which
family, in which key layout (:class:`Layout`); :func:`group_parts` puts a transformer
together with the text encoders and VAE found in the sibling folders, or says exactly
which file is missing and where to put it.

Imports no torch: the catalog (model picker) calls it for every file it lists. The key
names are diffusers' own (``diffusers/loaders/single_file_utils.py``:
``CHECKPOINT_KEY_NAMES`` and the ``convert_*_checkpoint_to_diffusers`` functions).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from sfumato.inference.detect import read_safetensors_header
from sfumato.inference.errors import EngineError
from sfumato.inference.transformer_keys import (
    Layout,
    dim_of,
    shape_of,
    transformer_family,
    transformer_of,
)
from sfumato.vocabulary.families import (
    CHROMA,
    FLUX,
    FLUX2,
    FLUX_KONTEXT,
    QWENIMAGE,
    SD3,
    ZIMAGE,
    is_kontext_name,
)

__all__ = [
    "COMFY_FOLDERS",
    "FAMILY_LABELS",
    "Encoder",
    "GroupedModel",
    "Layout",
    "ModelPart",
    "Role",
    "UNLOADED_VARIANTS",
    "VaeKind",
    "group_parts",
    "group_transformer_file",
    "identify_keys",
    "identify_part",
    "identify_part_cached",
    "models_root_of",
    "needs_of",
    "transformer_family",
]

log = logging.getLogger(__name__)


class Role(Enum):
    """What one file holds."""

    CHECKPOINT = "checkpoint"  # the transformer and at least one text encoder or the VAE
    TRANSFORMER = "transformer"  # the denoiser alone
    TEXT_ENCODER = "text encoder"
    VAE = "vae"


class Encoder(Enum):
    """A text encoder, by the file artists put in ``models/text_encoders/``."""

    CLIP_L = "CLIP-L"
    CLIP_G = "CLIP-G"
    T5XXL = "T5-XXL"
    QWEN25VL = "Qwen2.5-VL"
    QWEN3 = "Qwen3"


class VaeKind(Enum):
    """A VAE, by its latent space (the weights alone tell the FLUX.1 and SD3 VAEs apart
    only by name: both are 16-channel AutoencoderKLs)."""

    SD = "4-channel SD VAE"
    LATENT16 = "16-channel FLUX/SD3 VAE"
    FLUX2 = "FLUX.2 VAE"
    QWENIMAGE = "Qwen-Image VAE"


#: A family's name as a person reads it.
FAMILY_LABELS = {
    FLUX: "FLUX.1", CHROMA: "Chroma", SD3: "SD 3.5", FLUX2: "FLUX.2",
    ZIMAGE: "Z-Image", QWENIMAGE: "Qwen-Image",
}  # fmt: skip

#: The sub-folders of a ComfyUI (or Forge) ``models/`` for each role, preferred first.
COMFY_FOLDERS: dict[Role, tuple[str, ...]] = {
    Role.TRANSFORMER: ("diffusion_models", "unet"),
    Role.CHECKPOINT: ("checkpoints", "Stable-diffusion"),  # the second: A1111 / Forge
    Role.TEXT_ENCODER: ("text_encoders", "clip", "text_encoder"),
    Role.VAE: ("vae", "VAE"),
}

#: The file a family's part is usually called, for messages saying what to put where.
_USUAL_FILE: dict[Encoder | VaeKind, str] = {
    Encoder.CLIP_L: "clip_l.safetensors",
    Encoder.CLIP_G: "clip_g.safetensors",
    Encoder.T5XXL: "t5xxl_fp16.safetensors",
    Encoder.QWEN25VL: "qwen_2.5_vl_7b.safetensors",
    Encoder.QWEN3: "qwen_3_4b.safetensors",
    VaeKind.LATENT16: "ae.safetensors",
    VaeKind.FLUX2: "flux2-vae.safetensors",
    VaeKind.QWENIMAGE: "qwen_image_vae.safetensors",
}


@dataclass(frozen=True)
class ModelPart:
    """One model file and what it is.

    ``family`` is the transformer's family (for a transformer or a whole checkpoint);
    ``variant`` a finer name when the keys tell it (FLUX.1 ``"dev"``/``"schnell"``/
    ``"fill"``/``"control"``, SD 3.5 ``"large"``/``"medium"``, FLUX.2 ``"klein-4b"``...),
    or, for FLUX.1 Kontext, whose keys are dev's, the file name (``"kontext"``).
    ``width`` is the text width: what a transformer's text input takes, what an
    encoder gives (T5-XXL 4096, Qwen3-4B 2560), so a Qwen3-8B is not paired with a
    transformer made for Qwen3-4B. ``holds`` names what a whole checkpoint carries
    besides its transformer. ``prefix`` is the key prefix of the part inside the file.
    ``quantized`` is ``"fp8"``, ``"gguf"`` or ``None``.
    """

    path: Path
    role: Role
    layout: Layout
    family: str | None = None
    variant: str | None = None
    encoder: Encoder | None = None
    vae: VaeKind | None = None
    width: int | None = None
    holds: frozenset[Encoder | VaeKind] = frozenset()
    prefix: str = ""
    quantized: str | None = None

    @property
    def model_family(self) -> str | None:
        """The family plugin that runs this transformer: :attr:`family`, except FLUX.1
        Kontext (a FLUX.1 transformer of variant ``"kontext"``), which is its own."""
        return FLUX_KONTEXT if (self.family, self.variant) == (FLUX, "kontext") else self.family

    @property
    def label(self) -> str:
        what = self.encoder.value if self.encoder else self.vae.value if self.vae else None
        if what is None:
            what = FAMILY_LABELS.get(self.family or "", self.family or "unknown")
            if self.variant:
                what += f" {self.variant}"
        return f"{self.path.name} ({what} {self.role.value})"


# --------------------------------------------------------------------------- keys

# Where text encoders and VAEs sit inside a whole checkpoint (ComfyUI, SAI, diffusers dumps).
_CLIP_PREFIXES = {
    Encoder.CLIP_L: ("text_encoders.clip_l.transformer.", "text_encoders.clip_l.", "text_encoder."),
    Encoder.CLIP_G: ("text_encoders.clip_g.transformer.", "text_encoders.clip_g.", "text_encoder_2."),
    Encoder.T5XXL: ("text_encoders.t5xxl.transformer.", "text_encoders.t5xxl.", "text_encoder_3.", "text_encoder_2."),
}
_VAE_PREFIXES = ("first_stage_model.", "vae.")


def _strip(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}


def _encoder_in(shapes: Mapping[str, tuple[int, ...]]) -> tuple[Encoder, int | None] | None:
    """The text encoder a bare (unprefixed) state dict holds, with its output width."""
    names = shapes.keys()
    # CLIP (transformers' names; transformers 5 may drop the ``text_model.`` level).
    for lead in ("text_model.", "transformer.text_model.", ""):
        token = shape_of(shapes, f"{lead}embeddings.token_embedding.weight")
        if token is not None and f"{lead}encoder.layers.0.self_attn.q_proj.weight" in shapes:
            return (Encoder.CLIP_G if token[1] >= 1280 else Encoder.CLIP_L), token[1]
    if "enc.blk.0.attn_q.weight" in shapes and "token_embd.weight" in shapes:  # llama.cpp's names (GGUF)
        return Encoder.T5XXL, dim_of(shapes, 1, "token_embd.weight")
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in shapes:
        width = dim_of(shapes, 1, "shared.weight", "encoder.embed_tokens.weight")
        if width is None:
            width = dim_of(shapes, 1, "encoder.block.0.layer.0.SelfAttention.q.weight")
        return Encoder.T5XXL, width
    for lead in ("model.", "model.language_model.", "language_model.model.", ""):
        if f"{lead}layers.0.self_attn.q_proj.weight" in shapes:
            width = dim_of(shapes, 1, f"{lead}embed_tokens.weight")
            if width is None:
                width = dim_of(shapes, 1, f"{lead}layers.0.self_attn.q_proj.weight")
            if f"{lead}layers.0.self_attn.q_norm.weight" in shapes:
                return Encoder.QWEN3, width
            if any(k.startswith(("visual.", "model.visual.")) for k in names) or (
                f"{lead}layers.0.self_attn.q_proj.bias" in shapes
            ):
                return Encoder.QWEN25VL, width
    return None


def _vae_in(shapes: Mapping[str, tuple[int, ...]]) -> VaeKind | None:
    """The VAE a bare state dict holds (original or diffusers names)."""
    if any(k.startswith(("decoder.middle.0.residual.", "decoder.mid_block.resnets.0.residual.")) for k in shapes) or (
        "decoder.mid_block.resnets.0.norm1.gamma" in shapes
    ):
        return VaeKind.QWENIMAGE
    conv_in = shape_of(shapes, "decoder.conv_in.weight")
    if conv_in is None or len(conv_in) != 4:
        return None
    if "bn.running_mean" in shapes or conv_in[1] == 32:
        return VaeKind.FLUX2
    return VaeKind.LATENT16 if conv_in[1] == 16 else VaeKind.SD if conv_in[1] == 4 else None


def identify_keys(path: Path, shapes: Mapping[str, tuple[int, ...]], *, quantized: str | None = None) -> ModelPart | None:
    """The part a file with these tensors (name → shape) is; ``None`` when it is none of
    the parts :class:`Role` names (an SD 1.x checkpoint, a LoRA, a ControlNet...)."""
    transformer = transformer_of(shapes)
    if transformer is not None:
        holds: set[Encoder | VaeKind] = set()
        for encoder, prefixes in _CLIP_PREFIXES.items():
            for prefix in prefixes:
                found = _encoder_in(_strip(shapes, prefix)) if any(k.startswith(prefix) for k in shapes) else None
                named = prefix.startswith("text_encoders.")  # ComfyUI names the CLIP inside
                clip = found is not None and found[0] in (Encoder.CLIP_L, Encoder.CLIP_G)
                if found is not None and (found[0] is encoder or (named and clip and encoder is not Encoder.T5XXL)):
                    holds.add(encoder)
                    break
        for prefix in _VAE_PREFIXES:
            vae = _vae_in(_strip(shapes, prefix)) if any(k.startswith(prefix) for k in shapes) else None
            if vae is not None:
                holds.add(vae)
                break
        variant = transformer.variant
        if transformer.family == FLUX and variant == "dev" and is_kontext_name(Path(path).name):
            variant = "kontext"  # dev's keys exactly: only the name tells
        return ModelPart(
            Path(path), Role.CHECKPOINT if holds else Role.TRANSFORMER, transformer.layout, transformer.family,
            variant, width=transformer.width, holds=frozenset(holds), prefix=transformer.prefix,
            quantized=quantized,
        )
    # A file is an encoder or a VAE only when that is all it holds (an SD 1.x checkpoint
    # holds a CLIP under ``cond_stage_model.transformer.`` beside its UNet).
    for prefix in ("", "text_encoders.clip_l.transformer.", "text_encoders.clip_g.transformer.",
                   "text_encoders.t5xxl.transformer.", "transformer.", "cond_stage_model.transformer."):
        bare = _strip(shapes, prefix) if prefix else shapes
        found = _encoder_in(bare) if bare and len(bare) == len(shapes) else None
        if found is not None:
            encoder, width = found
            if encoder in (Encoder.CLIP_L, Encoder.CLIP_G) and width not in (768, 1280):
                # not the released widths (a custom or test model): the file name says which
                encoder = Encoder.CLIP_G if re.search(r"clip[_-]?g|open_?clip|bigg", Path(path).name.lower()) else Encoder.CLIP_L
            return ModelPart(Path(path), Role.TEXT_ENCODER, Layout.ORIGINAL, encoder=encoder, width=width,
                             prefix=prefix, quantized=quantized)
    for prefix in ("", *_VAE_PREFIXES):
        bare = _strip(shapes, prefix) if prefix else shapes
        vae = _vae_in(bare) if bare and len(bare) == len(shapes) else None
        if vae is not None:
            diffusers = any(".mid_block." in k for k in bare)
            return ModelPart(Path(path), Role.VAE, Layout.DIFFUSERS if diffusers else Layout.ORIGINAL, vae=vae,
                             prefix=prefix, quantized=quantized)
    return None


_FP8 = ("F8_E4M3", "F8_E5M2")


def identify_part(path: str | os.PathLike[str]) -> ModelPart | None:
    """What the ``.safetensors`` or ``.gguf`` file at ``path`` is, from its header only.

    Raises :class:`~sfumato.inference.errors.CorruptModelError` for a damaged header;
    returns ``None`` for files that are no part of a transformer-family model.
    """
    path = Path(path)
    if path.suffix.lower() == ".gguf":
        shapes = gguf_shapes(path)
        return identify_keys(path, shapes, quantized="gguf") if shapes is not None else None
    header = read_safetensors_header(path)
    fp8 = any(info.dtype in _FP8 for info in header.tensors.values())
    return identify_keys(path, header.shapes, quantized="fp8" if fp8 else None)


def gguf_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor names → shapes (rows first, as torch sees them) of a ``.gguf`` file, read
    from its tensor table (memory-mapped, nothing dequantized); ``None`` when the
    optional ``gguf`` package is not installed."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    from sfumato.inference.errors import CorruptModelError

    try:
        reader = GGUFReader(str(path))
    except Exception as error:  # noqa: BLE001 - gguf's reader raises many kinds on a damaged file
        raise CorruptModelError(f"{path.name} cannot be read as a GGUF file: {error}.") from error
    return {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}


# --------------------------------------------------------------------------- needs

#: Variants recognised by their keys but not loaded from single files: another
#: architecture under the name, which loads from its diffusers folder (its scheduler's
#: settings and Qwen3-VL's tokenizer come only with that folder; no file of ours may guess them).
UNLOADED_VARIANTS = {
    (QWENIMAGE, "2.1"): (
        "{name} is a Qwen-Image 2.1 transformer file; Sfumato loads Qwen-Image 2.1 from its diffusers folder "
        "(Qwen/Qwen-Image-2.1: model_index.json with processor/, scheduler/, text_encoder/, transformer/ and vae/) "
        "put in a models folder, not from single files yet"
    ),
}

#: What each family needs besides its transformer: text encoders, then the VAE.
_NEEDS: dict[str, tuple[tuple[Encoder, ...], VaeKind]] = {
    FLUX: ((Encoder.CLIP_L, Encoder.T5XXL), VaeKind.LATENT16),
    CHROMA: ((Encoder.T5XXL,), VaeKind.LATENT16),
    SD3: ((Encoder.CLIP_L, Encoder.CLIP_G, Encoder.T5XXL), VaeKind.LATENT16),
    FLUX2: ((Encoder.QWEN3,), VaeKind.FLUX2),
    ZIMAGE: ((Encoder.QWEN3,), VaeKind.LATENT16),
    QWENIMAGE: ((Encoder.QWEN25VL,), VaeKind.QWENIMAGE),
}

#: Words in a file name that say which family's VAE a 16-channel VAE is.
_VAE_NAME_WORDS = {FLUX: ("ae", "flux"), CHROMA: ("ae", "flux"), ZIMAGE: ("ae", "flux", "z"), SD3: ("sd3", "sd35")}
#: Words in a file name that say which family a text encoder was exported for.
_PREFERRED_WORDS = ("fp16", "bf16", "fp32")


def needs_of(family: str) -> tuple[tuple[Encoder, ...], VaeKind]:
    """The text encoders and the VAE kind a ``family`` transformer needs."""
    return _NEEDS[family]


# --------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class GroupedModel:
    """A transformer (or a whole checkpoint) with the files that make it a usable model.

    ``text_encoders`` follow the order of the family's needs; a part the checkpoint holds
    itself is the checkpoint's own :class:`ModelPart` again. ``problem`` says, when the
    model cannot be loaded, exactly which file is missing and where to put it.
    """

    main: ModelPart
    text_encoders: tuple[ModelPart, ...] = ()
    vae: ModelPart | None = None
    problem: str | None = None
    missing: tuple[Encoder | VaeKind, ...] = field(default=())

    @property
    def family(self) -> str | None:
        return self.main.family

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the model is built from, each once."""
        seen: dict[Path, None] = {self.main.path: None}
        for part in (*self.text_encoders, self.vae):
            if part is not None:
                seen.setdefault(part.path, None)
        return tuple(seen)


_MODEL_SUFFIXES = (".safetensors", ".gguf", ".sft")


def models_root_of(path: Path) -> Path | None:
    """The ComfyUI-style ``models`` folder a transformer file sits in (``<root>/models/
    diffusion_models/x/flux.safetensors`` → ``<root>/models``), or ``None``."""
    names = {name for role in COMFY_FOLDERS.values() for name in role}
    for parent in Path(path).parents:
        if parent.name in names:
            return parent.parent
    return None


def _part_files(folder: Path, depth: int = 2) -> Iterator[Path]:
    try:
        children = sorted(folder.iterdir(), key=lambda p: p.name.lower())
    except OSError:
        return
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_dir() and depth > 0:
            yield from _part_files(child, depth - 1)
        elif child.suffix.lower() in _MODEL_SUFFIXES and child.is_file():
            yield child


_PARTS_CACHE: dict[tuple[str, int, int], ModelPart | None] = {}


def identify_part_cached(path: Path) -> ModelPart | None:
    """:func:`identify_part`, cached by path, size and time; ``None`` for unreadable files
    (the catalog lists those with the reason its own header reading gives)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _PARTS_CACHE:
        try:
            _PARTS_CACHE[key] = identify_part(path)
        except EngineError as error:
            log.info("cannot read %s: %s", path, error.message)
            _PARTS_CACHE[key] = None
    return _PARTS_CACHE[key]


def _parts_in(root: Path, role: Role) -> list[ModelPart]:
    parts = []
    for name in COMFY_FOLDERS[role]:
        for file in _part_files(root / name):
            part = identify_part_cached(file)
            if part is not None:
                parts.append(part)
    return parts


def _name_score(part: ModelPart, words: tuple[str, ...]) -> tuple[int, ...]:
    """Sort key: names with the wanted words first, full precision before fp8, shorter names."""
    stem = part.path.stem.lower()
    tokens = set(re.split(r"[^a-z0-9]+", stem))
    wanted = sum(1 for w in words if w in tokens or (len(w) > 2 and w in stem))
    precise = any(w in stem for w in _PREFERRED_WORDS) or (part.quantized is None and "fp8" not in stem)
    return (-wanted, 0 if precise else 1, len(stem))


def _pick_encoder(main: ModelPart, encoder: Encoder, candidates: list[ModelPart]) -> ModelPart | None:
    matching = [p for p in candidates if p.encoder is encoder]
    # the transformer's text input width tells Qwen3-4B from 8B, Qwen2.5-VL 7B from others
    if main.width and encoder in (Encoder.QWEN3, Encoder.QWEN25VL):
        fits = [p for p in matching if p.width is None or p.width == main.width or p.width * 3 == main.width]
        matching = fits
    if not matching:
        return None
    return min(matching, key=lambda p: _name_score(p, ()))


def _pick_vae(family: str, kind: VaeKind, candidates: list[ModelPart]) -> ModelPart | None:
    matching = [p for p in candidates if p.vae is kind]
    if not matching:
        return None
    return min(matching, key=lambda p: _name_score(p, _VAE_NAME_WORDS.get(family, ())))


def _group(main: ModelPart, root: Path | None, encoders: list[ModelPart], vaes: list[ModelPart]) -> GroupedModel:
    family = main.family
    label = FAMILY_LABELS.get(family or "", family or "This model")
    if family not in _NEEDS:
        return GroupedModel(main, problem=f"{main.path.name} is a {label} model, which Sfumato cannot load.")
    if (family, main.variant) in UNLOADED_VARIANTS:
        return GroupedModel(main, problem=UNLOADED_VARIANTS[(family, main.variant)].format(name=main.path.name))
    needed_encoders, vae_kind = _NEEDS[family]
    chosen: list[ModelPart] = []
    missing: list[Encoder | VaeKind] = []
    for encoder in needed_encoders:
        if encoder in main.holds:
            chosen.append(main)
            continue
        found = _pick_encoder(main, encoder, encoders)
        if found is None:
            missing.append(encoder)
        else:
            chosen.append(found)
    vae = main if vae_kind in main.holds else _pick_vae(family, vae_kind, vaes)
    if vae is None:
        missing.append(vae_kind)
    problem = None
    if missing:
        problem = "; ".join(_missing_words(label, what, root, main) for what in missing)
    return GroupedModel(main, tuple(chosen), vae, problem, tuple(missing))


def _missing_words(label: str, what: Encoder | VaeKind, root: Path | None, main: ModelPart) -> str:
    if isinstance(what, Encoder):
        folder = (root / "text_encoders") if root is not None else main.path.parent
        usual = _USUAL_FILE[what]
        if what is Encoder.QWEN3 and main.width in (12288, 4096):
            usual = "qwen_3_8b.safetensors"
        return f"{label} needs a {what.value} text encoder: put {usual} in {folder}{os.sep}"
    folder = (root / "vae") if root is not None else main.path.parent
    usual = "sd3.5_vae.safetensors" if main.family == SD3 else _USUAL_FILE[what]
    return f"{label} needs the {what.value}: put {usual} in {folder}{os.sep}"


def group_parts(roots: Iterable[Path]) -> list[GroupedModel]:
    """Every transformer-family model under the ComfyUI-style ``models`` folders ``roots``.

    Each transformer file in ``diffusion_models/`` or ``unet/`` and each whole checkpoint
    in ``checkpoints/`` becomes one :class:`GroupedModel`, with its text encoders and VAE
    from the same root's ``text_encoders/``, ``clip/`` and ``vae/`` (preferring
    full-precision files, and for a 16-channel VAE the name the family uses: ``ae`` for
    FLUX, ``sd3`` for SD 3.5), or with a ``problem`` naming what is missing and where.
    A root may also be a ComfyUI install (its ``models`` folder is used).
    """
    models: list[GroupedModel] = []
    for root in roots:
        root = Path(root)
        if (root / "models").is_dir() and not any((root / n).is_dir() for n in COMFY_FOLDERS[Role.TRANSFORMER]):
            root = root / "models"
        mains = [p for p in _parts_in(root, Role.TRANSFORMER) + _parts_in(root, Role.CHECKPOINT)
                 if p.role in (Role.TRANSFORMER, Role.CHECKPOINT)]
        if not mains:
            continue
        encoders = [p for p in _parts_in(root, Role.TEXT_ENCODER) if p.role is Role.TEXT_ENCODER]
        vaes = [p for p in _parts_in(root, Role.VAE) if p.role is Role.VAE]
        models += [_group(main, root, encoders, vaes) for main in mains]
    return models


def group_transformer_file(path: Path, part: ModelPart | None = None) -> GroupedModel | None:
    """The model a transformer (or whole checkpoint) file belongs to, with its companions
    from the ComfyUI folders around it, or beside it when it is in no such folder.
    ``None`` when the file is no transformer-family model."""
    path = Path(path)
    part = part if part is not None else identify_part(path)
    if part is None or part.role not in (Role.TRANSFORMER, Role.CHECKPOINT):
        return None
    root = models_root_of(path)
    if root is not None:
        encoders = [p for p in _parts_in(root, Role.TEXT_ENCODER) if p.role is Role.TEXT_ENCODER]
        vaes = [p for p in _parts_in(root, Role.VAE) if p.role is Role.VAE]
    else:  # a loose folder: the companions lie beside it
        beside = [identify_part_cached(f) for f in _part_files(path.parent, 0) if f != path]
        encoders = [p for p in beside if p is not None and p.role is Role.TEXT_ENCODER]
        vaes = [p for p in beside if p is not None and p.role is Role.VAE]
    return _group(part, root, encoders, vaes)

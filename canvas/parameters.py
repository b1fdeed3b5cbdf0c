"""The ``parameters`` text that Stable Diffusion tools put in PNGs (A1111/Forge format).

The format, as AUTOMATIC1111 writes it::

    a castle on a hill, sunset
    Negative prompt: blurry, lowres
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: sd15, Denoising strength: 0.6

The prompt may span several lines; the negative prompt starts at a line beginning with
``Negative prompt:`` and runs to the last line; the last line holds ``Key: value`` pairs
separated by ``", "``. A value containing a comma, a colon or a newline is written as a
JSON string (``Lora hashes: "a: 1, b: 2"``), exactly as A1111's ``quote()`` does.

The dictionaries here use the keys of :meth:`GenerationRequest.summary()
<sfumato.inference.request.GenerationRequest.summary>`: ``prompt``, ``negative``,
``steps``, ``sampler`` (a :class:`~sfumato.vocabulary.kinds.Sampler` value such as
``"euler_a"``), ``cfg``, ``seed``, ``width``, ``height``, ``model``, ``strength``,
``controls``. Keys a parser does not know are kept verbatim in ``extra`` (a
``{key: text}`` dict) and written back by :func:`format_parameters`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import struct
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sfumato.canvas.document import Document, Recipe
from sfumato.vocabulary.errors import RequestError
from sfumato.vocabulary.kinds import Sampler

log = logging.getLogger(__name__)

__all__ = [
    "document_parameters",
    "format_parameters",
    "parse_comfyui_prompt",
    "parse_parameters",
    "picture_parameters",
    "read_image_parameters",
    "read_png_parameters",
    "read_png_text",
    "recipe_from_parameters",
    "recipe_summary",
]

MAX_TEXT_BYTES = 8 << 20  # one text chunk, decompressed

# A1111's own pattern for "Key: value" pairs (modules/infotext_utils.py).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
_NEGATIVE = "Negative prompt:"
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


# =========================================================================================
# Writing
# =========================================================================================
def format_parameters(summary: Mapping[str, Any]) -> str:
    """A1111-style ``parameters`` text from a request summary (missing keys are left out).

    Key order and spelling follow A1111: ``Steps, Sampler, CFG scale, Seed, Size, Model,
    Denoising strength``, then ControlNet units as the sd-webui-controlnet extension
    writes them, then any ``extra`` pairs. The default sampler is not written (other tools
    would not know it). A local model path is written as its file name without the
    extension, as A1111 does (full paths would leak the user's folders into shared
    images).
    """
    prompt = str(summary.get("prompt") or "")
    negative = str(summary.get("negative") or "")
    pairs: list[tuple[str, Any]] = []
    if summary.get("steps") is not None:
        pairs.append(("Steps", int(summary["steps"])))
    sampler = _sampler_label(summary.get("sampler"))
    if sampler:
        pairs.append(("Sampler", sampler))
    if summary.get("cfg") is not None:
        pairs.append(("CFG scale", _num(summary["cfg"])))
    if summary.get("seed") is not None:
        pairs.append(("Seed", int(summary["seed"])))
    if summary.get("width") and summary.get("height"):
        pairs.append(("Size", f"{int(summary['width'])}x{int(summary['height'])}"))
    if summary.get("model"):
        pairs.append(("Model", model_display_name(str(summary["model"]))))
    if summary.get("strength") is not None and summary.get("mode") != "txt2img":
        pairs.append(("Denoising strength", _num(summary["strength"])))
    for i, control in enumerate(summary.get("controls") or ()):
        pairs.append((f"ControlNet {i}", _controlnet_unit(control)))
    known = {key for key, _ in pairs}
    for key, value in (summary.get("extra") or {}).items():
        if key not in known and _PARAM.fullmatch(f"{key}: x"):
            pairs.append((key, value))
    line = ", ".join(f"{key}: {_quote(str(value))}" for key, value in pairs)
    text = prompt
    if negative:
        text += f"\n{_NEGATIVE} {negative}"
    return f"{text}\n{line}".strip()


def _quote(text: str) -> str:
    """A1111's ``quote``: JSON-quote values holding a comma, a colon or a newline."""
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _num(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _sampler_label(value: Any) -> str | None:
    if not value:
        return None
    try:
        sampler = Sampler.from_label(str(value))
    except RequestError:
        return str(value)  # a label another tool wrote: pass it on as it was
    return None if sampler is Sampler.DEFAULT else sampler.label


def _controlnet_unit(control: Mapping[str, Any]) -> str:
    parts = [f"Module: {control.get('kind', 'none')}"]
    if control.get("model"):
        parts.append(f"Model: {model_display_name(str(control['model']))}")
    parts.append(f"Weight: {_num(control.get('strength', 1.0))}")
    parts.append(f"Guidance Start: {_num(control.get('start', 0.0))}")
    parts.append(f"Guidance End: {_num(control.get('end', 1.0))}")
    return ", ".join(parts)


def model_display_name(source: str) -> str:
    """What ``Model:`` shows: a checkpoint file's or folder's name; hub ids unchanged."""
    text = source.strip()
    is_path = (
        text.startswith(("/", ".", "~"))
        or "\\" in text
        or re.match(r"^[A-Za-z]:", text) is not None
        or text.lower().endswith(_CHECKPOINT_SUFFIXES)
    )
    if not is_path:
        return text
    name = re.split(r"[\\/]", text.rstrip("/\\"))[-1]
    for suffix in _CHECKPOINT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def recipe_summary(doc: Document) -> dict[str, Any]:
    """A summary-style dict of the document's recipe (for a PNG exported from it)."""
    recipe = doc.recipe
    summary: dict[str, Any] = {"prompt": recipe.prompt, "negative": recipe.negative}
    for key in ("model", "sampler", "steps", "cfg", "seed", "strength"):
        value = getattr(recipe, key)
        if value is not None:
            summary[key] = value
    summary["width"], summary["height"] = doc.width, doc.height
    return summary


def picture_parameters(doc: Document) -> str | None:
    """``parameters`` for a picture exported from the window: the full record (steps,
    sampler, CFG, seed, model, size — what ``sfumato render`` writes, from the same
    :func:`format_parameters`) of the topmost visible generated layer; ``None`` when no
    generated layer is visible (the picture is paint, and no recipe made it)."""
    from sfumato.canvas.layers import PixelLayer, Role

    for layer in doc.layers():
        if (isinstance(layer, PixelLayer) and layer.role is Role.GENERATED and layer.generation
                and layer.effectively_visible()):
            return format_parameters(layer.generation)
    return None


def document_parameters(doc: Document) -> str | None:
    """``parameters`` text for a flattened export of ``doc``; ``None`` when it has no recipe."""
    recipe = doc.recipe
    if recipe == Recipe():
        return None
    return format_parameters(recipe_summary(doc))


# =========================================================================================
# Reading
# =========================================================================================
def parse_parameters(text: str) -> dict[str, Any]:
    """Parse A1111/Forge ``parameters`` text into a summary-style dict.

    Always has ``prompt`` and ``negative`` (possibly empty); numbers become ``int``/
    ``float``; ``Size`` becomes ``width``/``height``; ``Sampler`` (with A1111 ≥ 1.9's
    separate ``Schedule type``) becomes a :class:`Sampler` value when Sfumato knows it
    (otherwise the label stays in ``extra["Sampler"]``); every other pair is kept as text
    in ``extra``. Values that do not parse as numbers also stay in ``extra``.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    last = lines[-1] if lines else ""
    pairs: list[tuple[str, str]] = []
    if _PARAM.match(last) and len(_PARAM.findall(last)) >= 3:
        pairs = [(k.strip(), _unquote(v.strip())) for k, v in _PARAM.findall(last)]
        lines = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        if not in_negative and line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE):].lstrip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines).strip(),
        "negative": "\n".join(negative_lines).strip(),
    }
    extra: dict[str, str] = {}
    values = dict(pairs)
    for key, value in pairs:
        if not _take_pair(result, key, value, values):
            extra[key] = value
    if extra:
        result["extra"] = extra
    return result


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def _take_pair(result: dict[str, Any], key: str, value: str, values: Mapping[str, str]) -> bool:
    """Store a known pair in ``result``; False when it belongs in ``extra``."""
    try:
        if key == "Steps":
            result["steps"] = int(value)
        elif key == "CFG scale":
            result["cfg"] = float(value)
        elif key == "Seed":
            result["seed"] = int(value)
        elif key == "Denoising strength":
            result["strength"] = float(value)
        elif key == "Model":
            result["model"] = value
        elif key == "Size":
            match = _SIZE.match(value)
            if match is None:
                return False
            result["width"], result["height"] = int(match.group(1)), int(match.group(2))
        elif key == "Sampler":
            sampler = _parse_sampler(value, values.get("Schedule type"))
            if sampler is None:
                return False
            result["sampler"] = sampler.value
        elif key == "Schedule type":
            # Consumed when it merged into the sampler ("DPM++ 2M" + "Karras").
            label = f"{values.get('Sampler', '')} {value}"
            return _parse_sampler(label, None) is not None and result.get("sampler") is not None
        else:
            return False
    except ValueError:
        return False
    return True


def _parse_sampler(label: str, schedule: str | None) -> Sampler | None:
    candidates = [label]
    if schedule and schedule.lower() not in ("automatic", "uniform", "normal"):
        candidates.insert(0, f"{label} {schedule}")
    for candidate in candidates:
        try:
            return Sampler.from_label(candidate)
        except RequestError:
            continue
    return None


# -- ComfyUI ---------------------------------------------------------------------------------
_COMFY_SAMPLERS = {
    "euler": Sampler.EULER,
    "euler_ancestral": Sampler.EULER_A,
    "dpmpp_2m": Sampler.DPMPP_2M,
    "ddim": Sampler.DDIM,
    "uni_pc": Sampler.UNIPC,
    "uni_pc_bh2": Sampler.UNIPC,
    "lcm": Sampler.LCM,
    "heun": Sampler.HEUN,
}


def parse_comfyui_prompt(text: str) -> dict[str, Any] | None:
    """A minimal reading of ComfyUI's ``prompt`` chunk (its API graph as JSON).

    Finds the first ``KSampler``/``KSamplerAdvanced`` node and follows its links to the
    prompt texts, the checkpoint and the latent size. Returns ``None`` when the graph has
    no such sampler (custom sampler nodes are not understood).
    """
    try:
        graph = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(graph, dict):
        return None
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}
    # Seeds and steps must be plain numbers; floats that are not finite are ignored.
    sampler_node = next(
        (
            n
            for _, n in sorted(nodes.items(), key=lambda kv: _node_order(kv[0]))
            if n.get("class_type") in ("KSampler", "KSamplerAdvanced")
        ),
        None,
    )
    if sampler_node is None:
        return None
    inputs = _inputs(sampler_node)
    result: dict[str, Any] = {
        "prompt": _comfy_text(nodes, inputs.get("positive"), "positive"),
        "negative": _comfy_text(nodes, inputs.get("negative"), "negative"),
        "extra": {"Source": "ComfyUI"},
    }
    seed = inputs.get("seed", inputs.get("noise_seed"))
    for key, value, kind in (
        ("seed", seed, int),
        ("steps", inputs.get("steps"), int),
        ("cfg", inputs.get("cfg"), float),
    ):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            result[key] = kind(value)
    denoise = inputs.get("denoise")
    if isinstance(denoise, int | float) and not isinstance(denoise, bool) and 0 <= denoise < 1:
        result["strength"] = float(denoise)
    name, scheduler = inputs.get("sampler_name"), inputs.get("scheduler")
    if isinstance(name, str):
        sampler = _COMFY_SAMPLERS.get(name)
        if scheduler == "karras" and name in ("dpmpp_2m", "dpmpp_sde"):
            sampler = Sampler.DPMPP_2M_KARRAS if name == "dpmpp_2m" else Sampler.DPMPP_SDE_KARRAS
        if sampler is not None:
            result["sampler"] = sampler.value
        else:
            result["extra"]["Sampler"] = f"{name} {scheduler or ''}".strip()
    model = _comfy_find(nodes, inputs.get("model"), ("ckpt_name", "unet_name"))
    if isinstance(model, str):
        result["model"] = model_display_name(model)
    latent = _comfy_node(nodes, inputs.get("latent_image"))
    if latent is not None:
        latent_inputs = _inputs(latent)
        width, height = latent_inputs.get("width"), latent_inputs.get("height")
        if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            result["width"], result["height"] = width, height
    return result


def _node_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdecimal() else (1 << 30, key)  # "²".isdigit() but int("²") fails


def _inputs(node: Mapping[str, Any] | None) -> dict[str, Any]:
    value = None if node is None else node.get("inputs")
    return value if isinstance(value, dict) else {}


def _link_target(link: Any) -> str | None:
    if isinstance(link, list) and link and isinstance(link[0], str | int) and not isinstance(link[0], bool):
        return str(link[0])
    return None


def _comfy_node(nodes: Mapping[str, Any], link: Any) -> dict[str, Any] | None:
    key = _link_target(link)
    node = None if key is None else nodes.get(key)
    return node if isinstance(node, dict) else None


def _walk(nodes: Mapping[str, Any], link: Any) -> list[dict[str, Any]]:
    """Nodes reachable from ``link``, breadth first, each once (graphs may have cycles)."""
    seen: set[str] = set()
    queue = [link]
    found: list[dict[str, Any]] = []
    while queue and len(seen) < 256:
        key = _link_target(queue.pop(0))
        if key is None or key in seen:
            continue
        seen.add(key)
        node = nodes.get(key)
        if isinstance(node, dict):
            found.append(node)
            queue.extend(_inputs(node).values())
    return found


def _comfy_text(nodes: Mapping[str, Any], link: Any, side: str) -> str:
    """The text(s) of the CLIPTextEncode-like node(s) behind a conditioning link.

    Stops at nodes holding a text; through nodes that carry both conditionings (e.g.
    ControlNet apply nodes) only the ``side`` (``positive``/``negative``) input is followed.
    """
    seen: set[str] = set()
    queue = [link]
    texts: list[str] = []
    while queue and len(seen) < 256:
        key = _link_target(queue.pop(0))
        if key is None or key in seen:
            continue
        seen.add(key)
        inputs = _inputs(nodes.get(key) if isinstance(nodes.get(key), dict) else None)
        text = next((inputs[k] for k in ("text", "text_g", "prompt") if isinstance(inputs.get(k), str)), None)
        if text is not None:
            if text:
                texts.append(text)
            continue
        if "positive" in inputs and "negative" in inputs:
            queue.append(inputs[side])
        else:
            queue.extend(inputs.values())
    return ", ".join(texts)


def _comfy_find(nodes: Mapping[str, Any], link: Any, keys: tuple[str, ...]) -> str | None:
    for node in _walk(nodes, link):
        inputs = _inputs(node)
        for key in keys:
            if isinstance(inputs.get(key), str):
                return str(inputs[key])
    return None


# -- PNG text chunks -------------------------------------------------------------------------
def read_png_text(path: str | Path, keys: tuple[str, ...] = ("parameters", "prompt")) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks named ``keys`` of a PNG, read without decoding pixels.

    Walks the chunk list and stops at ``IEND``; chunks whose CRC does not match are
    skipped; compressed text is inflated with a bound (:data:`MAX_TEXT_BYTES`). Returns ``{}`` for files that are not PNGs or are damaged.
    """
    found: dict[str, str] = {}
    try:
        with Path(path).open("rb") as handle:
            if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                return {}
            while True:
                header = handle.read(8)
                if len(header) < 8:
                    break
                length, kind = struct.unpack(">I4s", header)
                if kind == b"IEND":
                    break
                if kind in (b"tEXt", b"zTXt", b"iTXt") and length <= MAX_TEXT_BYTES:
                    body = handle.read(length)
                    crc = handle.read(4)
                    if len(crc) < 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
                        log.info("%s: damaged %s chunk skipped", path, kind.decode())
                        continue
                    item = _text_chunk(kind, body)
                    if item is not None and item[0] in keys and item[0] not in found:
                        found[item[0]] = item[1]
                else:
                    handle.seek(length + 4, 1)
    except (OSError, struct.error) as exc:
        log.info("could not read text chunks of %s: %s", path, exc)
    return found


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str] | None:
    key, sep, rest = data.partition(b"\x00")
    if not sep:
        return None
    name = key.decode("latin-1")
    try:
        if kind == b"tEXt":
            return name, rest.decode("latin-1")
        if kind == b"zTXt":
            return name, _inflate(rest[1:]).decode("latin-1")
        compressed = rest[0:1] == b"\x01"  # rest[1] is the method: 0 = zlib
        _lang, _, rest = rest[2:].partition(b"\x00")
        _translated, _, body = rest.partition(b"\x00")
        return name, (_inflate(body) if compressed else body).decode("utf-8")
    except (zlib.error, UnicodeDecodeError, ValueError, IndexError):
        return None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("text chunk is damaged or inflates beyond the limit")
    return out


def read_png_parameters(path: str | Path) -> dict[str, Any] | None:
    """The generation parameters stored in a PNG, or ``None`` if it carries none.

    Reads A1111/Forge/Sfumato ``parameters`` text first, then ComfyUI's ``prompt`` graph.
    """
    chunks = read_png_text(path)
    if "parameters" in chunks and chunks["parameters"].strip():
        return parse_parameters(chunks["parameters"])
    if "prompt" in chunks:
        return parse_comfyui_prompt(chunks["prompt"])
    return None


def read_image_parameters(path: str | Path) -> dict[str, Any] | None:
    """Generation parameters of a PNG, JPEG or WebP file, or ``None`` if it has none.

    PNGs: see :func:`read_png_parameters`. JPEG and WebP: A1111/Forge store the same
    text in the EXIF ``UserComment`` tag (``UNICODE\\0`` + UTF-16, or ``ASCII\\0\\0\\0``);
    only the EXIF header is read, never the pixels.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            magic = handle.read(8)
    except OSError:
        return None
    if magic.startswith(b"\x89PNG"):
        return read_png_parameters(path)
    text = _exif_user_comment(path)
    return parse_parameters(text) if text and text.strip() else None


def _exif_user_comment(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        # Only the header is read; its size was checked by the caller's decode, so
        # Pillow's own bomb check (at its default, lower than ours) must not refuse it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=["JPEG", "WEBP"]) as image:
                raw = image.getexif().get_ifd(0x8769).get(0x9286)
    except Image.DecompressionBombError as exc:
        log.info("no EXIF parameters read from %s: %s", path, exc)
        return None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        log.info("no EXIF parameters in %s: %s", path, exc)
        return None
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes) or len(raw) > MAX_TEXT_BYTES:
        return None
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        # piexif (A1111) writes big-endian; some tools write little-endian with a BOM.
        if body.startswith((b"\xff\xfe", b"\xfe\xff")):
            return body.decode("utf-16", "replace")
        # Mostly-ASCII text has its zero bytes first in each pair when big-endian.
        zeros_first, zeros_second = body[0::2].count(0), body[1::2].count(0)
        return body.decode("utf-16-be" if zeros_first >= zeros_second else "utf-16-le", "replace")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body.decode("latin-1").rstrip("\x00")
    return raw.decode("utf-8", "replace").rstrip("\x00")


#: the ranges of the recipe's numbers, shared with the OpenRaster reader: a value read
#: from another tool's text is checked against them on the way in, so Sfumato never
#: writes a file it will not read back
SEED_RANGE = (0, 2**63 - 1)
STEPS_RANGE = (1, 1000)
CFG_RANGE = (0.0, 100.0)
STRENGTH_RANGE = (0.0, 1.0)


def recipe_from_parameters(params: Mapping[str, Any], *, source: str | Path | None = None) -> Recipe:
    """A document recipe from parsed parameters (what a dropped-in PNG was made with).

    Whole numbers outside their range (``Seed: -5``, ``Steps: 0``) are dropped and
    numbers with a fraction outside theirs (``CFG scale: 500``) are clamped, each with a
    logged warning naming ``source``; a sampler Sfumato does not know is dropped.
    """
    where = f"{source}: " if source is not None else ""

    def whole(key: str, label: str, bounds: tuple[int, int]) -> int | None:
        value = params.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not math.isfinite(value) or value != int(value) or not bounds[0] <= value <= bounds[1]:
            log.warning(
                "%sparameters: %s: %s is outside %d..%d; not used", where, label, value, *bounds
            )
            return None
        return int(value)

    def fraction(key: str, label: str, bounds: tuple[float, float]) -> float | None:
        value = params.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not math.isfinite(value):
            log.warning("%sparameters: %s: %s is not a finite number; not used", where, label, value)
            return None
        if not bounds[0] <= value <= bounds[1]:
            log.warning(
                "%sparameters: %s: %s is outside %g..%g; clamped", where, label, value, *bounds
            )
        return float(min(max(value, bounds[0]), bounds[1]))

    sampler = str(params["sampler"]) if params.get("sampler") else None
    if sampler is not None:
        try:
            sampler = Sampler.from_label(sampler).value
        except RequestError:
            log.warning("%sparameters: Sampler: %r is not a sampler Sfumato knows; not used", where, sampler)
            sampler = None
    return Recipe(
        prompt=str(params.get("prompt") or ""),
        negative=str(params.get("negative") or ""),
        model=str(params["model"]) if params.get("model") else None,
        seed=whole("seed", "Seed", SEED_RANGE),
        steps=whole("steps", "Steps", STEPS_RANGE),
        cfg=fraction("cfg", "CFG scale", CFG_RANGE),
        strength=fraction("strength", "Denoising strength", STRENGTH_RANGE),
        sampler=sampler,
    )

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

This module is the text alone. Around it: :mod:`sfumato.canvas.files.image_parameters` reads it
(and ComfyUI's graph, :mod:`sfumato.canvas.files.comfyui_prompt`) from PNG, JPEG and WebP files;
:mod:`sfumato.canvas.files.recipe_parameters` turns a document's recipe into it and back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sfumato.vocabulary.errors import RequestError
from sfumato.vocabulary.kinds import Sampler

__all__ = ["format_parameters", "model_display_name", "parse_parameters"]

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

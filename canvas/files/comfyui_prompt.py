"""A minimal reading of ComfyUI's ``prompt`` PNG chunk (its API graph as JSON).

ComfyUI stores no ``parameters`` text; it stores the whole node graph. This finds the
first ``KSampler``/``KSamplerAdvanced`` node and follows its links to the prompt texts, the
checkpoint and the latent size, and returns the same summary-style dict as
:func:`sfumato.canvas.files.parameters.parse_parameters` (``extra["Source"] = "ComfyUI"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from sfumato.canvas.files.parameters import model_display_name
from sfumato.vocabulary.kinds import Sampler

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

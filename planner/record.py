"""The generation record: what a placed result remembers of the generation that made it.

:func:`generation_record` is the one builder of the ``generation`` dict a ``generated``
layer carries (saved as ``sfumato:generation`` in OpenRaster files); the window's
Accept and ``sfumato render`` both place results through
:func:`~sfumato.planner.placement.result_layer`, which calls it, so the two save the same
record for the same generation. The ``parameters`` text of an exported picture is
:func:`~sfumato.canvas.files.parameters.format_parameters` of this record.

The record is the request's :meth:`~sfumato.inference.request.GenerationRequest.summary`
(what was asked: prompt, model, sampler, steps, generation size, ...), with the prompts as
the plan recorded them (``Plan.prompts``: wildcards resolved, ``<lora:...>`` tags kept, as
A1111 writes them, so a re-run gives the same prompt and LoRAs), plus

- ``references``: the request's summary of each reference picture (kind, strength,
  start/end, the size it was given at, whether a region mask applied) with the name of
  the reference ``layer`` it came from (the pixels stay in the document's layer);
- ``area``: ``[x, y, w, h]`` of the plan's area, in document pixels;
- ``seed``: this image's seed (the engine's ``seeds`` list, else ``request.seed +
  batch_index``, the engine's batch convention); ``batch_index`` when the batch has
  more than one image;
- from the engine's ``Finished.metadata``, when given: :data:`ENGINE_FIELDS` (the family
  it actually loaded, the steps it ran, the seconds it took).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sfumato.planner.plan import Plan

__all__ = ["ENGINE_FIELDS", "generation_record", "result_seed"]

#: What the record takes from the engine's ``Finished.metadata``: the family of the model
#: it loaded, the denoising steps it ran (fewer than ``steps`` when strength < 1) and the
#: wall-clock seconds of the run. ``seconds`` differs from run to run; the rest does not.
ENGINE_FIELDS = ("family", "steps_run", "seconds")


def result_seed(plan: Plan, metadata: Mapping[str, Any] | None, batch_index: int) -> int:
    """The seed of batch image ``batch_index``: the engine's ``seeds`` when it reported
    them, else ``request.seed + batch_index``."""
    seeds = (metadata or {}).get("seeds")
    if isinstance(seeds, list | tuple) and 0 <= batch_index < len(seeds):
        return int(seeds[batch_index])
    return plan.request.seed + batch_index


def generation_record(
    plan: Plan, metadata: Mapping[str, Any] | None = None, batch_index: int = 0
) -> dict[str, Any]:
    """The JSON-ready ``generation`` record of batch image ``batch_index`` of ``plan``
    (see the module docstring); ``metadata`` is the engine's ``Finished.metadata``."""
    record = dict(plan.request.summary())
    if plan.prompts is not None:
        record["prompt"] = plan.prompts.prompt
        record["negative"] = plan.prompts.negative
        if "regions" in record and len(plan.prompts.regions) == len(record["regions"]):
            record["regions"] = [
                {"prompt": prompt, "negative": negative} for prompt, negative in plan.prompts.regions
            ]
    if "references" in record and len(plan.references) == len(record["references"]):
        record["references"] = [
            {**entry, "layer": ref.layer_name} for entry, ref in zip(record["references"], plan.references, strict=True)
        ]
    area = plan.area
    record["area"] = [area.x, area.y, area.w, area.h]
    record["seed"] = result_seed(plan, metadata, batch_index)
    if plan.request.batch > 1:
        record["batch_index"] = batch_index
    for key in ENGINE_FIELDS:
        if metadata is not None and key in metadata:
            record[key] = metadata[key]
    return record

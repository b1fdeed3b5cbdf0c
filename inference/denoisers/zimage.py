"""Z-Image's call a step: the latents as a list of ``(C, 1, h, w)`` items (the transformer
patchifies them itself), each caption at its own length, the timestep as ``(1000 − t) / 1000``,
the prediction negated (the model predicts ``noise − x0`` the other way round), true CFG as
diffusers' pipeline computes it, ControlNet hints and the region bias.

The transformer lays out its joint sequence per batch item as ``[image tokens, padded to a
multiple of 32 with a learned pad token][caption, padded to a multiple of 32]`` and pads the
batch to its longest item, with a boolean key mask. Its forward takes no attention mask, so
regions install :class:`_BiasedProcessor` on every main layer (the joint sequence: the bias
of :mod:`sfumato.inference.joint_regions`, image first, widened for the pad tokens) and on
every caption refiner layer (the captions are refined together there: each prompt's tokens
see only their own prompt's). The image-only refiner layers have no text to keep apart.

Caption positions matter here (RoPE along the caption, the image one step past its end),
so with regions each prompt is padded on its own and given the positions it would have
alone, all ending where the image starts (:func:`_caption_positions`, through the
transformer's ``patchify_and_embed``): a region repeating the global prompt reads exactly
what the global prompt gives. The processors and positions are armed only while the
transformer runs: the ControlNet shares the caption refiners and sees the global prompt
alone.
"""

from __future__ import annotations

from typing import Any

import torch
from sfumato.inference.denoise import ControlInput, DenoiseJob
from sfumato.inference.joint_regions import JointLayout, joint_attention_bias
from sfumato.inference.model_cache import LoadedModel
from sfumato.inference.regions import NEGATIVE_BIAS
from sfumato.inference.split_attention import image_first_attention

__all__ = ["ZImageDenoiser"]

#: the transformer pads the image tokens and each caption to a multiple of this
SEQ_MULTIPLE = 32


def _padded(length: int) -> int:
    return length + (-length) % SEQ_MULTIPLE


def _filled(caption: torch.Tensor) -> torch.Tensor:
    """``caption`` padded to a multiple of 32 rows with its last row (as the transformer
    pads; the pad rows become its learned caption pad token)."""
    extra = _padded(len(caption)) - len(caption)
    return torch.cat([caption, caption[-1:].expand(extra, -1)])


def _caption_positions(lengths: list[int]) -> torch.Tensor:
    """``(T, 3)`` RoPE positions of a caption of prompts of (padded) ``lengths``: each
    prompt ends where the longest does, so the image tokens, right after, stand to each
    prompt exactly as to a prompt alone (which diffusers puts at ``1 … T``, the image at
    ``T + 1``)."""
    end = max(lengths) + 1
    ids = torch.zeros(sum(lengths), 3, dtype=torch.int32)
    start = 0
    for n in lengths:
        ids[start : start + n, 0] = torch.arange(end - n, end)
        start += n
    return ids


class _BiasedProcessor:
    """The stock Z-Image attention processor with an additive bias in place of the
    transformer's key mask while :attr:`armed`. ``image``: the leading image tokens of the
    sequence (the main layers' ``[image, caption]``), whose block of the bias is zero; the
    computation is then the stock one's up to the attention, which
    :func:`~sfumato.inference.split_attention.image_first_attention` does. ``0`` (the
    caption refiners): the stock processor with the bias."""

    def __init__(self, stock: Any, bias: torch.Tensor, image: int = 0) -> None:
        self.stock = stock
        self.bias = bias
        self.image = image
        self.armed = False

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        freqs_cis: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if not self.armed:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask=attention_mask,
                              freqs_cis=freqs_cis)  # fmt: skip
        if self.bias.shape[-1] != hidden_states.shape[1]:
            raise RuntimeError(f"region bias for {self.bias.shape[-1]} tokens, sequence of {hidden_states.shape[1]}")
        if not self.image:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask=self.bias, freqs_cis=freqs_cis)
        query, key, value = (f(hidden_states).unflatten(-1, (attn.heads, -1)) for f in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if freqs_cis is not None:
            query, key = _rotated(query, freqs_cis), _rotated(key, freqs_cis)
        out = image_first_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), self.bias,
                                    image=self.image)  # fmt: skip
        out = out.transpose(1, 2).flatten(2, 3).to(query.dtype)
        out = attn.to_out[0](out)
        return out if len(attn.to_out) == 1 else attn.to_out[1](out)


def _rotated(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Z-Image's rotary embedding as its processor applies it (complex pairs, float32)."""
    with torch.amp.autocast("cuda", enabled=False):
        pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(pairs * freqs_cis.unsqueeze(2)).flatten(3).type_as(x)


def _spans(lengths: list[int]) -> list[tuple[int, int]]:
    """The regions' ranges in a caption of prompts of ``lengths`` (the global one first)."""
    spans, start = [], lengths[0]
    for n in lengths[1:]:
        spans.append((start, start + n))
        start += n
    return spans


def joint_bias(masks: torch.Tensor, rows: list[list[int]], image_tokens: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, 1, L, L)``: the region bias over the main layers' sequence for batch rows whose
    prompts have ``rows[i]`` tokens (each padded to a multiple of 32: a prompt's pad tokens
    are its own). Image pad tokens are background image tokens without a place: they see
    every image token and the global prompt, and only the global prompt's tokens see them.
    Keys past a row's length (the batch padding) are masked."""
    device = masks.device
    masks = masks.detach().float().cpu()  # built on the CPU, then moved
    n, nx = image_tokens, _padded(image_tokens)
    lengths = [nx + _padded(sum(r)) for r in rows]
    size = max(lengths)
    out = torch.zeros(len(rows), 1, size, size)
    for i, prompt_lengths in enumerate(rows):
        text = _padded(sum(prompt_lengths))
        layout = JointLayout(_spans(prompt_lengths), text, image_first=True)
        core = joint_attention_bias(masks, layout, patch=2, dtype=torch.float32, device="cpu")[0, 0]
        keep = torch.cat([torch.arange(n), torch.arange(nx, nx + text)])
        full = torch.zeros(nx + text, nx + text)
        full[keep[:, None], keep[None, :]] = core
        foreign = torch.where(layout.owners() == 0, 0.0, NEGATIVE_BIAS)  # (text,)
        full[n:nx, nx:] = foreign[None, :]
        full[nx:, n:nx] = foreign[:, None]
        out[i, 0, : nx + text, : nx + text] = full
        out[i, 0, :, nx + text :] = NEGATIVE_BIAS
    return out.to(device, dtype)


def caption_bias(rows: list[list[int]], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(B, 1, T, T)``: the caption refiners' bias: each prompt's tokens see their own
    prompt's; batch padding masked."""
    lengths = [_padded(sum(r)) for r in rows]
    size = max(lengths)
    out = torch.full((len(rows), 1, size, size), NEGATIVE_BIAS)
    for i, prompt_lengths in enumerate(rows):
        owner = JointLayout(_spans(prompt_lengths), lengths[i]).owners()
        same = owner[:, None] == owner[None, :]
        out[i, 0, : lengths[i], : lengths[i]] = torch.where(same, 0.0, NEGATIVE_BIAS)
        out[i, 0, lengths[i] :, : lengths[i]] = 0.0  # batch-padding queries read the real keys
    return out.to(device, dtype)


#: what ``ZImageControlNetModel.from_transformer`` lends a ControlNet from the transformer
_SHARED_WITH_CONTROLNET = ("t_scale", "t_embedder", "all_x_embedder", "cap_embedder", "rope_embedder",
                           "noise_refiner", "context_refiner", "x_pad_token", "cap_pad_token")  # fmt: skip


class ZImageDenoiser:
    """One Z-Image transformer call a step (module docstring)."""

    def __init__(self, model: LoadedModel, job: DenoiseJob) -> None:
        self.transformer = model.denoiser
        self.family = model.family
        self.job = job
        text = job.text
        rows = text.prompt_tokens()  # each prompt at its own length, as the transformer takes it
        self.control_captions = text.control_prompt_tokens()
        self.guidance = job.cfg - 1.0 if text.guided else None
        h, w = job.lat_size
        self.image_tokens = (h // 2) * (w // 2)
        self.installed: list[tuple[Any, Any]] = []  # (attention module, its stock processor)
        self.biased: list[_BiasedProcessor] = []
        self.positions: list[torch.Tensor] = []
        if job.region_masks is None:
            self.captions = [prompts[0] for prompts in rows]
            self.global_lengths = [_padded(len(c)) for c in self.captions]
            self.pads: list[torch.Tensor] = []
        else:
            self.captions = [torch.cat([_filled(p) for p in prompts]) for prompts in rows]
            lengths = [[_padded(len(p)) for p in prompts] for prompts in rows]
            self.global_lengths = [r[0] for r in lengths]
            self.pads = [torch.cat([torch.arange(_padded(len(p))) >= len(p) for p in prompts]) for prompts in rows]
            self.positions = [_caption_positions(r) for r in lengths]
            dtype, device = text.tokens.dtype, text.tokens.device
            bias = joint_bias(job.region_masks, lengths, self.image_tokens, dtype)
            self._install(self.transformer.layers, bias, image=_padded(self.image_tokens))
            self._install(self.transformer.context_refiner, caption_bias(lengths, device, dtype))
        self.controls = [(c, self._control_condition(model, c)) for c in job.controls]

    def _install(self, blocks: Any, bias: torch.Tensor, image: int = 0) -> None:
        for block in blocks:
            stock = block.attention.processor
            processor = _BiasedProcessor(stock, bias, image)
            block.attention.set_processor(processor)
            self.installed.append((block.attention, stock))
            self.biased.append(processor)

    def _arm(self, on: bool) -> None:
        """Arm the installed processors and the caption positions (only while the
        transformer itself runs: the ControlNet shares the caption refiners)."""
        for processor in self.biased:
            processor.armed = on
        if not self.positions:
            return
        if on:
            self.transformer.patchify_and_embed = self._patchify_and_embed
        else:
            self.transformer.__dict__.pop("patchify_and_embed", None)

    def _patchify_and_embed(self, images: list[torch.Tensor], captions: list[torch.Tensor], *args: Any) -> Any:
        """The transformer's own patchify, then each prompt's pad tokens and positions
        (:func:`_caption_positions`), the image tokens placed right after every prompt."""
        image, caption, sizes, image_ids, caption_ids, image_pads, caption_pads = type(
            self.transformer
        ).patchify_and_embed(self.transformer, images, captions, *args)
        for i, positions in enumerate(self.positions):
            device = caption_ids[i].device
            caption_ids[i] = positions.to(device=device, dtype=caption_ids[i].dtype)
            caption_pads[i] = self.pads[i].to(device)
            ids = image_ids[i].clone()
            ids[~image_pads[i], 0] = int(positions[:, 0].max()) + 1
            image_ids[i] = ids
        return image, caption, sizes, image_ids, caption_ids, image_pads, caption_pads

    def _control_condition(self, model: LoadedModel, control: ControlInput) -> list[torch.Tensor]:
        """A Z-Image ControlNet's condition: the control image's latents ``(C, 1, h, w)``,
        zero channels added up to the net's ``control_in_dim`` (the inpainting nets' mask
        and masked-image channels), one per batch row; the net is given the transformer's
        shared modules (diffusers' ``ZImageControlNetModel.from_transformer``)."""
        net = control.net
        type(net).from_transformer(net, self.transformer)
        pixels = control.image[:1] * 2.0 - 1.0
        latents = self.family.encode_pixels(model.pipe, pixels).to(control.image.dtype)
        wanted = int(net.config.control_in_dim or latents.shape[1])
        if wanted > latents.shape[1]:
            zeros = latents.new_zeros(1, wanted - latents.shape[1], *latents.shape[2:])
            latents = torch.cat([latents, zeros], dim=1)
        item = latents[0].unsqueeze(1)
        return [item] * control.image.shape[0]

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, j: int, n: int) -> torch.Tensor:
        job = self.job
        x = job.text.unet_batch(latents).to(self.transformer.dtype)
        timestep = (1000 - t.expand(x.shape[0])) / 1000
        items = list(x.unsqueeze(2).unbind(dim=0))
        hints = self._control_hints(items, timestep, j, n)
        self._arm(True)
        try:
            out = self.transformer(
                items, timestep, self.captions, controlnet_block_samples=hints, return_dict=False
            )[0]
        finally:
            self._arm(False)
        pred = torch.stack([o.float() for o in out]).squeeze(2)
        if self.guidance is not None:
            # As diffusers computes it: cond + s·(cond − uncond), s the engine's scale − 1.
            uncond, cond = pred.chunk(2)
            pred = cond + self.guidance * (cond - uncond)
        return (-pred).to(latents.dtype)

    def _control_hints(
        self, items: list[torch.Tensor], timestep: torch.Tensor, j: int, n: int
    ) -> dict[int, torch.Tensor] | None:
        hints: dict[int, torch.Tensor] | None = None
        for control, condition in self.controls:
            if not control.active(j, n):
                continue
            samples = control.net(
                items, timestep, self.control_captions, condition, conditioning_scale=control.strength
            )
            hints = hints or {}
            for k, v in samples.items():
                hints[k] = hints[k] + v if k in hints else v
        if hints is None or not self.biased:
            return hints
        return {k: self._widened(v) for k, v in hints.items()}

    def _widened(self, hint: torch.Tensor) -> torch.Tensor:
        """A hint over the ControlNet's sequence (image, global caption) placed in the main
        sequence with regions (image, every prompt's caption): image tokens and the global
        prompt's tokens get theirs, region tokens none."""
        nx = _padded(self.image_tokens)
        size = max(nx + len(c) for c in self.captions)
        out = hint.new_zeros(hint.shape[0], size, hint.shape[2])
        for i, length in enumerate(self.global_lengths):
            out[i, : nx + length] = hint[i, : nx + length]
        return out

    def close(self) -> None:
        for attention, stock in self.installed:
            attention.set_processor(stock)
        self.installed = []
        self.biased = []
        for control, _ in self.controls:
            # The cached net must not keep this transformer's modules alive once the model
            # leaves the cache; the next run shares them again.
            for name in _SHARED_WITH_CONTROLNET:
                setattr(control.net, name, None)
        self.controls = []

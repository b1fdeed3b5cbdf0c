"""Qwen-Image (and its later releases, such as 2512): a 20B MMDiT over Qwen2.5-VL's last
hidden state, a video-style VAE (``AutoencoderKLQwenImage``) used one frame at a time,
2×2 latent patches, flow matching with a resolution-dependent shift, 1328 px native.

What differs from FLUX:

- **the prompt** is wrapped in a chat template (a system prompt asking for a detailed
  description, then the user turn); the first 34 tokens (the system prompt and
  ``<|im_start|>user\\n``) are dropped after the encoder. Sequences are as long as the
  prompt, not padded to a fixed length: :meth:`QwenImageFamily.encode_prompts` returns each
  prompt's real tokens, and where the engine's layout pads one (a negative to its
  positive's length, regions side by side) the padding is masked
  (:attr:`~.base.Family.masked_padding`): the denoiser hands the transformer
  :attr:`~sfumato.inference.text_conditioning.TextConditioning.token_mask`, as diffusers
  masks its own padding.
- **guidance** is true classifier-free guidance with a negative prompt, followed by a
  rescale of each token's guided prediction to the norm of its conditional prediction
  (the denoiser does it; ``guidance_embeds`` is false in every released model).
- **the VAE** works on 5-D video latents ``(B, C, T, h, w)`` with per-channel
  ``latents_mean``/``latents_std``: encode and decode add and drop the frame axis, so the
  loop keeps ``(B, 16, h, w)``; 8 pixels a latent pixel (``2 ** len(temperal_downsample)``).
- **ControlNets** (``QwenImageControlNetModel``, InstantX's union net among them) take the
  control image's packed latents, and diffusers computes their residuals once, from the
  conditional prompt, for both guidance halves.

No inpainting model exists (the Edit models take a reference picture, another task), so
inpainting is the engine's soft-mask blend over the base model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sfumato.inference.families.flow import FlowFamily
from sfumato.inference.families.t5 import needs_weighting, plain_text
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import QWENIMAGE
from sfumato.vocabulary.prompt_syntax import parse_prompt

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["QwenImageFamily", "decode_frame", "encode_frame", "statistics", "weighted_qwen", "weighted_qwen_hidden"]

#: prompt tokens kept at most: the pipelines' ``max_sequence_length`` default (the encoder
#: is causal, so cutting after it, as they do, or before it gives the same states)
QWEN_TOKENS = 512


class QwenImageFamily(FlowFamily):
    name = QWENIMAGE
    label = "Qwen-Image"
    native_side = 1328  # the published 1:1 size; 1664×928 and 928×1664 for 16:9
    min_side_fraction = 0.5  # 664
    max_side_fraction = 1.3  # 1726: the 16:9 sizes' long side fits
    pixel_fractions = (0.6, 1.2)
    supported_modes = frozenset(Mode)
    pipelines = ("QwenImagePipeline", "QwenImagePipeline")  # no inpainting model: one class
    transformer_class = "QwenImageTransformer2DModel"
    preview_factors = None  # fitted to the loaded VAE (:func:`sfumato.inference.preview.fit_latent_rgb_map`)
    controlnet_class = "QwenImageControlNetModel"
    masked_padding = True

    def controlnet_mismatch(self, net: Any, pipe: Any) -> str | None:
        expected = int(pipe.transformer.config.joint_attention_dim)
        got = int(getattr(net.config, "joint_attention_dim", 0) or 0)
        if type(net).__name__ != "QwenImageControlNetModel" or expected != got:
            return f"not a Qwen-Image ControlNet of text width {expected}"
        if int(getattr(net.config, "extra_condition_channels", 0) or 0):
            return "an inpainting ControlNet (it takes a mask beside the picture), which Sfumato does not run"
        return None

    def embeds_guidance(self, pipe: Any) -> bool:
        # No released Qwen-Image is guidance-distilled, but the transformer has the option
        # (and the pipelines take ``guidance_scale`` for it): then one pass, the scale an input.
        return bool(getattr(pipe.transformer.config, "guidance_embeds", False))

    # ----------------------------------------------------------------- the VAE

    def vae_scale(self, pipe: Any) -> int:
        return int(2 ** len(pipe.vae.temperal_downsample))

    def latent_channels(self, pipe: Any) -> int:
        return int(pipe.vae.config.z_dim)

    def encode_pixels(self, pipe: Any, pixels: torch.Tensor) -> torch.Tensor:
        """One frame through the video VAE, its mode normalised by ``latents_mean``/``std``."""
        return encode_frame(pipe.vae, pixels)

    def decode_pixels(self, pipe: Any, latents: torch.Tensor) -> torch.Tensor:
        return decode_frame(pipe.vae, latents)

    # ----------------------------------------------------------------- conditioning

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(tokens (N, T, 3584), None)``: each prompt's Qwen2.5-VL hidden states after the
        template, its real tokens only. The engine encodes one prompt at a time and masks
        any padding it adds (:attr:`masked_padding`); several prompts at once are
        zero-padded to the longest."""
        import torch

        rows = []
        with torch.inference_mode():
            for prompt in prompts:
                if needs_weighting(prompt):
                    rows.append(weighted_qwen(pipe, prompt, device)[0])
                else:
                    embeds, mask = pipe._get_qwen_prompt_embeds(prompt=[plain_text(prompt)], device=device)
                    rows.append(embeds[0, : int(mask[0].sum())][:QWEN_TOKENS])
        length = max(r.shape[0] for r in rows)
        return torch.stack([torch.nn.functional.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows]), None


def weighted_qwen(pipe: Any, prompt: str, device: torch.device) -> torch.Tensor:
    """``(1, T, D)``: ``prompt``'s weighted hidden states, A1111-style as
    :func:`sfumato.inference.families.t5.weighted_t5` weighs T5's (:func:`weighted_qwen_hidden`)."""

    def hidden(input_ids: torch.Tensor) -> torch.Tensor:
        import torch

        out = pipe.text_encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                output_hidden_states=True)  # fmt: skip
        return out.hidden_states[-1]  # type: ignore[no-any-return]

    return weighted_qwen_hidden(
        pipe.tokenizer, pipe.prompt_template_encode, pipe.prompt_template_encode_start_idx, hidden, prompt, device,
        dtype=pipe.text_encoder.dtype,
    )  # fmt: skip


def weighted_qwen_hidden(
    tokenizer: Any,
    template: str,
    drop: int,
    hidden: Callable[[torch.Tensor], torch.Tensor],
    prompt: str,
    device: torch.device,
    *,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``(1, T, D)``: ``prompt``'s weighted states from a chat-template Qwen encoder.

    The prompt's plain text (:func:`~sfumato.inference.families.t5.plain_text`) is tokenised
    in ``template`` as the pipeline does, so the ids are the unweighted prompt's; each token
    takes the weight of the span its last character comes from. ``hidden`` maps the ids to
    the states the pipeline reads; after it the template's first ``drop`` tokens go, each
    token's state is multiplied by its weight and the whole rescaled to its unweighted mean."""
    import torch

    text, char_weights = _weighted_text(prompt)
    prefix = template.split("{}")[0]
    encoded = tokenizer(template.format(text), max_length=QWEN_TOKENS + drop, truncation=True,
                        return_offsets_mapping=True)  # fmt: skip
    weights = []
    for _, end in encoded["offset_mapping"]:
        at = end - 1 - len(prefix)
        weights.append(char_weights[at] if 0 <= at < len(text) else 1.0)
    input_ids = torch.tensor([encoded["input_ids"]], device=device)
    states = hidden(input_ids)[:, drop:]
    scale = torch.tensor(weights[drop:], device=device, dtype=states.dtype)[None, :, None]
    before = states.float().mean()
    weighted = states * scale
    after = weighted.float().mean()
    if float(after) != 0.0:
        weighted = weighted * (before / after).to(states.dtype)
    return weighted.to(dtype)


def _weighted_text(prompt: str) -> tuple[str, list[float]]:
    """``prompt``'s :func:`plain_text` and each of its characters' weight."""
    chars: list[tuple[str, float]] = []
    for chunk in parse_prompt(prompt):
        part = [(c, span.weight) for span in chunk for c in span.text]
        while part and part[0][0].isspace():
            part.pop(0)
        while part and part[-1][0].isspace():
            part.pop()
        if chars:
            chars.append((" ", 1.0))
        chars.extend(part)
    while chars and chars[0][0].isspace():
        chars.pop(0)
    while chars and chars[-1][0].isspace():
        chars.pop()
    return "".join(c for c, _ in chars), [w for _, w in chars]


def statistics(vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(latents_mean, 1 / latents_std)`` as ``(1, C, 1, 1)`` tensors like ``like``."""
    import torch

    z = int(vae.config.z_dim)
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1).to(like.device, like.dtype)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1).to(like.device, like.dtype)
    return mean, inv_std


def encode_frame(vae: Any, pixels: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` pixels in [-1, 1] as one frame through a video VAE → its mode,
    normalised by the VAE's ``latents_mean``/``latents_std``: ``(B, z, h, w)``."""
    import torch
    from sfumato.inference.families.vae import vae_dtype

    with torch.inference_mode():
        latents = vae.encode(pixels.to(vae_dtype(vae))[:, :, None]).latent_dist.mode()[:, :, 0]
        mean, inv_std = statistics(vae, latents)
        return (latents - mean) * inv_std


def decode_frame(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`encode_frame`: normalised latents → the VAE's pixels (all of
    its output channels) in about [-1, 1]."""
    import torch
    from sfumato.inference.families.vae import vae_dtype

    with torch.inference_mode():
        z = latents.to(vae_dtype(vae))
        mean, inv_std = statistics(vae, z)
        return vae.decode((z / inv_std + mean)[:, :, None], return_dict=False)[0][:, :, 0]

"""FLUX.2 Klein (4B, 9B; distilled and Base): an MMDiT over Qwen3's stacked hidden states,
FLUX.2's own 32-channel VAE, flow matching with FLUX.2's empirical shift, 1024 px native.

Where it differs from FLUX.1 (:mod:`.flux`), each difference a hook here or in its
denoiser (:mod:`sfumato.inference.denoisers.flux2`):

- **the text** is one Qwen3 run over the prompt in Qwen's chat template (no thinking),
  padded to 512 tokens; the hidden states of layers 9, 18 and 27 are stacked along the
  width (``3 × hidden``: 7680 for the 4B, 12288 for the 9B). There is no pooled
  embedding, and the padding positions go to the transformer unmasked, as diffusers sends
  them.
- **the latents** the loop denoises are the VAE's, 2×2-patchified into 128 channels at
  1/16 of the picture and normalised by the VAE's batch-norm statistics
  (``running_mean``/``running_var``): exactly the tensor diffusers draws its noise in, so
  a seed gives the same noise. Hence :meth:`Flux2Family.vae_scale` is 16, sides are
  multiples of 16 and the transformer's patch is 1 (one token a latent pixel). Regions,
  the inpaint mask and x0 previews work on this 1/16 grid (previews fit their map over
  the 128 channels).
- **the schedule**: FLUX's sigmas, shifted by diffusers' ``compute_empirical_mu`` (fitted
  on the token count *and* the step count) instead of FLUX.1's linear ``mu``.
- **guidance**: the distilled Klein (``is_distilled`` in the folder's
  ``model_index.json``, 4 steps) ignores the scale: one pass, no negative. Klein Base runs
  true classifier-free guidance above a scale of 1.
- **reference images** are extra image tokens at time index 10, 20, …: the inpainting
  pipeline gives the model the whole init picture that way, and so does the engine
  (:class:`~sfumato.inference.denoisers.flux2.Flux2Denoiser`); the request's reference
  pictures join them, and an edit (``GenerationRequest.edit``) shows the picture to edit
  as the first reference, as ``Flux2KleinPipeline(image=[picture, ...])`` does.

diffusers has no FLUX.2 ControlNet, so the family refuses ControlNets. LoRAs merge through
diffusers' FLUX.2 layout conversion (:mod:`sfumato.inference.lora`). diffusers has no Klein
img2img pipeline either: img2img is the engine's own (the init noised to the strength's
first sigma), which a Klein pipeline reproduces when handed those latents and sigmas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfumato.inference.families.flow import REGION_TOKEN_STEP, FlowFamily, round_up
from sfumato.inference.families.t5 import needs_weighting, plain_text
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import FLUX2
from sfumato.vocabulary.prompt_syntax import parse_prompt

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["Flux2Family", "empirical_mu", "weighted_qwen3"]

#: Qwen3 tokens a prompt is padded to (the pipeline's ``max_sequence_length`` default)
QWEN_TOKENS = 512
#: the Qwen3 hidden states stacked into the text tokens (``text_encoder_out_layers``)
HIDDEN_LAYERS = (9, 18, 27)


def empirical_mu(image_seq_len: int, num_steps: int) -> float:
    """FLUX.2's schedule shift (diffusers' ``compute_empirical_mu``): linear in the token
    count, interpolated between fits for 10 and 200 steps; large images use the 200-step fit."""
    a1, b1 = 8.73809524e-05, 1.89833333
    a2, b2 = 0.00016927, 0.45666666
    if image_seq_len > 4300:
        return float(a2 * image_seq_len + b2)
    m_200 = a2 * image_seq_len + b2
    m_10 = a1 * image_seq_len + b1
    a = (m_200 - m_10) / 190.0
    b = m_200 - 200.0 * a
    return float(a * num_steps + b)


def _chat_parts(tokenizer: Any) -> tuple[str, str]:
    """The chat template around a user message, as Flux2Klein renders it: (before, after)."""
    marker = "\u2063SFUMATO\u2063"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    before, after = text.split(marker)
    return before, after


def weighted_qwen3(tokenizer: Any, encoder: Any, prompt: str, device: torch.device) -> torch.Tensor:
    """``(1, 512, 3·D)``: ``prompt``'s stacked Qwen3 hidden states with A1111 weights.

    As :func:`~.t5.weighted_t5` does for T5: the template and each span are tokenised on
    their own and joined, padded as the pipeline pads; after the encoder each token's
    stacked hidden state is multiplied by its span's weight (the template's by 1) and the
    sequence rescaled to its unweighted mean.
    """
    import torch

    before, after = _chat_parts(tokenizer)

    def ids_of(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    ids, weights = ids_of(before), [1.0] * len(ids_of(before))
    for chunk in parse_prompt(prompt):
        for span in chunk:
            piece = ids_of(span.text)
            ids.extend(piece)
            weights.extend([span.weight] * len(piece))
    tail = ids_of(after)
    ids = (ids + tail)[:QWEN_TOKENS]
    weights = (weights + [1.0] * len(tail))[:QWEN_TOKENS]
    real = len(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids += [pad] * (QWEN_TOKENS - real)
    weights += [1.0] * (QWEN_TOKENS - real)
    input_ids = torch.tensor([ids], device=encoder.device)
    mask = torch.tensor([[1] * real + [0] * (QWEN_TOKENS - real)], device=encoder.device)
    out = encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    stacked = torch.stack([out.hidden_states[k] for k in HIDDEN_LAYERS], dim=1)  # (1, 3, T, D)
    hidden = stacked.permute(0, 2, 1, 3).reshape(1, QWEN_TOKENS, -1).to(device)
    scale = torch.tensor(weights, device=device, dtype=hidden.dtype)[None, :, None]
    before_mean = hidden.float().mean()
    weighted = hidden * scale
    after_mean = weighted.float().mean()
    if float(after_mean) != 0.0:
        weighted = weighted * (before_mean / after_mean).to(hidden.dtype)
    return weighted


class Flux2Family(FlowFamily):
    name = FLUX2
    label = "FLUX.2 Klein"
    native_side = 1024
    min_side_fraction = 0.5  # 512
    max_side_fraction = 2.0  # FLUX.2 generates up to 4 megapixels
    pixel_fractions = (0.75, 1.5)
    #: edits: the picture to edit is the first reference picture (:attr:`takes_references`)
    supported_modes = frozenset({Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT, Mode.REGIONS, Mode.LORA, Mode.EDIT})
    pipelines = ("Flux2KleinPipeline", "Flux2KleinInpaintPipeline")
    transformer_class = "Flux2Transformer2DModel"
    #: the loop's latents are already patchified: one token a latent pixel
    patch = 1
    # The map is fitted to the loaded VAE (over the 128 patchified channels) at load time.
    preview_factors = None

    def embeds_guidance(self, pipe: Any) -> bool:
        """The distilled Klein learnt its guided prediction: one pass, whatever the scale
        (the pipeline ignores ``guidance_scale`` for it); Base runs true CFG."""
        return bool(getattr(pipe.config, "is_distilled", False))

    # ----------------------------------------------------------------- latents

    def vae_scale(self, pipe: Any) -> int:
        """16: pixels per latent pixel of the patchified latents the loop denoises."""
        return int(2 ** (len(pipe.vae.config.block_out_channels) - 1)) * 2

    def latent_channels(self, pipe: Any) -> int:
        return int(pipe.vae.config.latent_channels) * 4

    def _statistics(self, vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's batch-norm mean and standard deviation, ``(1, 128, 1, 1)`` each."""
        import torch

        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(like.device, like.dtype)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(like.device, like.dtype)
        return mean, std

    def encode_pixels(self, pipe: Any, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels → the VAE's mode, 2×2-patchified (channel-major, as diffusers) and normalised."""
        import torch
        from sfumato.inference.families.vae import vae_dtype

        vae = pipe.vae
        with torch.inference_mode():
            z = vae.encode(pixels.to(vae_dtype(vae))).latent_dist.mode()
            b, c, h, w = z.shape
            z = z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)
            mean, std = self._statistics(vae, z)
            return (z - mean) / std

    def decode_pixels(self, pipe: Any, latents: torch.Tensor) -> torch.Tensor:
        import torch
        from sfumato.inference.families.vae import vae_dtype

        vae = pipe.vae
        with torch.inference_mode():
            z = latents.to(vae_dtype(vae))
            mean, std = self._statistics(vae, z)
            z = z * std + mean
            b, c, h, w = z.shape
            z = z.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, h * 2, w * 2)
            return vae.decode(z).sample

    # ----------------------------------------------------------------- schedule

    def set_timesteps(self, scheduler: Any, steps: int, lat_size: tuple[int, int], device: torch.device) -> None:
        """FLUX's sigmas from 1 to ``1/steps``, shifted by :func:`empirical_mu` of the token
        count and the step count (the whole schedule's, before img2img's strength cuts it)."""
        import numpy as np

        mu = empirical_mu(lat_size[0] * lat_size[1], steps)
        if scheduler.config.get("use_flow_sigmas", False):
            scheduler.set_timesteps(steps, device=device, mu=mu)
        else:
            scheduler.set_timesteps(device=device, sigmas=list(np.linspace(1.0, 1.0 / steps, steps)), mu=mu)

    # ----------------------------------------------------------------- conditioning

    takes_references = True

    def regional_tokens(self, pipe: Any, texts: list[str], length: int) -> list[slice] | None:
        """With regions, every prompt's 512 Qwen3 tokens cut to what the longest templated
        prompt takes and a pad, rounded up to :data:`.flow.REGION_TOKEN_STEP`, on the side the tokenizer pads — as FLUX
        cuts its T5 padding (:mod:`.flux`)."""
        tokenizer = pipe.tokenizer

        def count(text: str) -> int:
            messages = [{"role": "user", "content": plain_text(text)}]
            templated = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
            )
            return len(tokenizer(templated)["input_ids"])

        keep = min(length, round_up(max(count(text) for text in texts) + 1, REGION_TOKEN_STEP))
        return [slice(length - keep, length) if tokenizer.padding_side == "left" else slice(0, keep)]

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(stacked Qwen3 tokens (N, 512, 3·D), None)``."""
        import torch

        rows = []
        with torch.inference_mode():
            for prompt in prompts:
                if needs_weighting(prompt):
                    rows.append(weighted_qwen3(pipe.tokenizer, pipe.text_encoder, prompt, device))
                else:
                    rows.append(
                        pipe._get_qwen3_prompt_embeds(
                            text_encoder=pipe.text_encoder,
                            tokenizer=pipe.tokenizer,
                            prompt=[plain_text(prompt)],
                            device=device,
                            max_sequence_length=QWEN_TOKENS,
                            hidden_states_layers=HIDDEN_LAYERS,
                        )
                    )
        return torch.cat(rows), None

"""Z-Image and Z-Image-Turbo: a 6B single-stream DiT over a Qwen3-4B text encoder, the
FLUX.1 16-channel VAE (shift and scale), 2×2 latent patches, flow matching with a fixed
shift of 3, 1024 px native.

What sets it apart from FLUX (:mod:`.flux`):

- **the caption** is Qwen3's second-to-last hidden state over the prompt wrapped in Qwen3's
  chat template (a user message, ``enable_thinking=True``), *without* its padding: each
  prompt keeps its own length. :meth:`ZImageFamily.encode_prompts` returns its real tokens;
  where the engine pads a prompt to share a layout (a negative to its positive's length in
  the CFG batch) the padding is marked (:attr:`~.base.Family.masked_padding`), and the
  denoiser hands the transformer each caption at its own length, the padding left out
  (:meth:`~sfumato.inference.text_conditioning.TextConditioning.prompt_tokens`), as
  diffusers' pipeline does.
- **guidance** is true classifier-free guidance; diffusers' ``guidance_scale`` ``s`` means
  ``cond + s·(cond − uncond)``, the engine's scale ``c`` is ``uncond + c·(cond − uncond)``,
  so ``c = s + 1``: Turbo's ``guidance_scale=0`` is the engine's 1 (one unguided pass).
- **the transformer** predicts the negated velocity at ``(1000 − t) / 1000`` and puts the
  image tokens *before* the caption (:mod:`sfumato.inference.denoisers.zimage`).
- **ControlNets** are the "Fun ControlNet Union" nets (``ZImageControlNetModel``): the
  control image's latents steer the transformer's layers; the net shares the transformer's
  embedders and refiners (``from_transformer``), and the control type is read from the
  image (no union index).

No inpainting model exists: inpainting is the engine's soft-mask blend, as diffusers'
``ZImageInpaintPipeline`` does it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfumato.inference.families.flow import FlowFamily, flux_shift
from sfumato.inference.families.t5 import needs_weighting, plain_text
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import ZIMAGE
from sfumato.vocabulary.prompt_syntax import parse_prompt

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["CAPTION_TOKENS", "ZImageFamily", "weighted_qwen3"]

#: Qwen3 tokens a Z-Image prompt is cut to (diffusers' ``max_sequence_length`` default)
CAPTION_TOKENS = 512

#: the marker the chat template is rendered around, to find the prompt's place in it
_MARKER = "\u241fPROMPT\u241f"


class ZImageFamily(FlowFamily):
    name = ZIMAGE
    label = "Z-Image"
    native_side = 1024
    min_side_fraction = 0.5  # 512
    max_side_fraction = 2.0  # 2048: trained on many sizes, at ease up to about 2K
    pixel_fractions = (0.75, 2.0)
    supported_modes = frozenset(Mode)
    pipelines = ("ZImagePipeline", "ZImagePipeline")
    transformer_class = "ZImageTransformer2DModel"
    preview_factors = None  # fitted to the loaded VAE at load time, as for FLUX
    masked_padding = True

    def matches_diffusers(self, model_index: dict[str, Any], unet_config: dict[str, Any]) -> bool:
        # Not Z-Image Omni, whose transformer also reads SigLIP image features.
        return super().matches_diffusers(model_index, unet_config) and not unet_config.get("siglip_feat_dim")

    def set_timesteps(self, scheduler: Any, steps: int, lat_size: tuple[int, int], device: torch.device) -> None:
        """Z-Image's schedule: FLUX's (:meth:`FlowFamily.set_timesteps`: sigmas from 1 to
        ``1/steps``, a fixed shift of 3 in the public scheduler config) with the sigmas made
        by ``torch.linspace`` in float32, as diffusers' pipeline makes them."""
        import torch

        sigmas = torch.linspace(1.0, 1.0 / steps, steps).tolist()
        config = scheduler.config
        tokens = (lat_size[0] // self.patch) * (lat_size[1] // self.patch)
        mu = flux_shift(
            tokens,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        # ``mu`` counts only with dynamic shifting; the pipeline always passes it.
        scheduler.set_timesteps(device=device, sigmas=sigmas, mu=mu)

    controlnet_class = "ZImageControlNetModel"

    def controlnet_mismatch(self, net: Any, pipe: Any) -> str | None:
        config = pipe.transformer.config
        dim, heads = int(config.dim), int(config.n_heads)
        if "control_layers_places" not in net.config or int(net.config.get("dim", 0)) != dim:
            return f"not a Z-Image ControlNet of width {dim}"
        if int(net.config.get("n_heads", 0)) != heads or max(net.config.control_layers_places) >= int(config.n_layers):
            return f"not a Z-Image ControlNet for {config.n_layers} layers of {heads} heads"
        return None

    # ----------------------------------------------------------------- conditioning

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, None]:
        """``(captions (N, T, D), None)``: each prompt's Qwen3 hidden states (layer −2), its
        real tokens only (at most :data:`CAPTION_TOKENS`). The engine encodes one prompt at a
        time and marks any padding it adds (:attr:`masked_padding`); several prompts at
        once are zero-padded to the longest."""
        import torch

        rows = []
        with torch.inference_mode():
            for prompt in prompts:
                if needs_weighting(prompt):
                    caption = weighted_qwen3(pipe.tokenizer, pipe.text_encoder, prompt, CAPTION_TOKENS, device)
                else:
                    caption = pipe._encode_prompt(
                        prompt=[plain_text(prompt)], device=device, max_sequence_length=CAPTION_TOKENS
                    )[0]
                rows.append(caption)
        longest = max(r.shape[0] for r in rows)
        return torch.stack([torch.nn.functional.pad(r, (0, 0, 0, longest - r.shape[0])) for r in rows]), None


def weighted_qwen3(tokenizer: Any, encoder: Any, prompt: str, max_length: int, device: torch.device) -> torch.Tensor:
    """``(T, D)``: ``prompt``'s weighted caption (A1111 weights, as :func:`.t5.weighted_t5`
    weighs T5 tokens): the chat template's own tokens around the prompt's spans, tokenised
    span by span; after the encoder each span's hidden states (layer −2) are multiplied by
    its weight and the caption rescaled to its unweighted mean."""
    import torch

    template = tokenizer.apply_chat_template(
        [{"role": "user", "content": _MARKER}], tokenize=False, add_generation_prompt=True, enable_thinking=True
    )
    before, after = template.split(_MARKER)
    ids: list[int] = tokenizer(before, add_special_tokens=False)["input_ids"]
    weights = [1.0] * len(ids)
    for text, weight in _word_spans(prompt):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        weights.extend([weight] * len(piece))
    tail = tokenizer(after, add_special_tokens=False)["input_ids"]
    ids, weights = (ids + tail)[:max_length], (weights + [1.0] * len(tail))[:max_length]
    input_ids = torch.tensor([ids], device=device)
    mask = torch.ones_like(input_ids, dtype=torch.bool)
    hidden = encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2][0]
    scale = torch.tensor(weights, device=device, dtype=hidden.dtype)[:, None]
    before_mean = hidden.float().mean()
    weighted = hidden * scale
    after_mean = weighted.float().mean()
    if float(after_mean) != 0.0:
        weighted = weighted * (before_mean / after_mean).to(hidden.dtype)
    return weighted


def _word_spans(prompt: str) -> list[tuple[str, float]]:
    """``prompt``'s weighted spans with each space moved to the front of the word after it:
    byte-level BPE reads ``" red"`` as one token, so ``"a (red:1.5) cat"`` keeps the tokens of
    ``"a red cat"``."""
    out: list[tuple[str, float]] = []
    carry = ""
    for i, chunk in enumerate(parse_prompt(prompt)):
        carry += " " if i else ""  # BREAK reads as a space
        for span in chunk:
            text = carry + span.text
            stripped = text.rstrip()
            carry = text[len(stripped) :]
            if stripped:
                out.append((stripped, span.weight))
    return out

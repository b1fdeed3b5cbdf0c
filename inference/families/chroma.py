"""Chroma: an 8.9B FLUX.1-schnell derivative trained for true classifier-free guidance.
T5-XXL only (no CLIP, no pooled embedding: the modulation comes from a small
"distilled guidance" network fed the timestep), the FLUX VAE, 2×2 patches, flow
matching with FLUX's resolution shift, 1024 px native.

Padding: Chroma was trained with the T5 padding masked out except the first pad token,
in the encoder and in the transformer. A prompt here is its real tokens and that one pad
(the rest are dropped rather than masked: masked keys change nothing), and where a
negative or a region's prompt must be padded to share a layout, the padding is masked
(:attr:`~.base.Family.masked_padding`). diffusers 0.42's ``ChromaPipeline`` hands the
transformer its mask as floats, which attention *adds* to the scores instead of masking
(huggingface/diffusers#12116); the engine masks, as the model was trained.

No ControlNet class exists for Chroma in diffusers, and its blocks take their own
attention mask, so neither control layers nor regional prompts are offered: the planner
says so before a run (:mod:`sfumato.planner.capabilities`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfumato.inference.families.flow import FlowFamily
from sfumato.inference.families.t5 import needs_weighting, plain_text, weighted_t5
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import CHROMA

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["ChromaFamily"]

T5_TOKENS = 512


class ChromaFamily(FlowFamily):
    name = CHROMA
    label = "Chroma"
    native_side = 1024
    min_side_fraction = 0.5
    max_side_fraction = 1.5
    pixel_fractions = (0.75, 1.25)
    supported_modes = frozenset({Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT, Mode.LORA})
    pipelines = ("ChromaPipeline", "ChromaInpaintPipeline")
    transformer_class = "ChromaTransformer2DModel"
    masked_padding = True

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(T5 tokens (N, T, D), None)``: each prompt's real tokens and one pad. The
        engine encodes one prompt at a time and masks any padding it adds
        (:attr:`masked_padding`); several prompts at once are zero-padded to the longest."""
        import torch

        rows = []
        with torch.inference_mode():
            for prompt in prompts:
                if needs_weighting(prompt):
                    hidden, length = weighted_t5(
                        pipe.tokenizer, pipe.text_encoder, prompt, T5_TOKENS, device, masked=True
                    )
                    rows.append(hidden[:, : length + 1])
                    continue
                hidden, mask = pipe._get_t5_prompt_embeds(
                    prompt=[plain_text(prompt)], max_sequence_length=T5_TOKENS, device=device
                )
                rows.append(hidden[:, : int(mask.sum())])
        longest = max(r.shape[1] for r in rows)
        rows = [torch.nn.functional.pad(r, (0, 0, 0, longest - r.shape[1])) for r in rows]
        return torch.cat(rows), None

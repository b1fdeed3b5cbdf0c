"""Stable Diffusion 3 and 3.5 (Medium, Large, Large Turbo and their fine-tunes): an MMDiT
over three text encoders, a 16-channel VAE with shift and scale, 2×2 latent patches, flow
matching with a fixed shift, 1024 px native.

What sets it apart from FLUX.1 (:mod:`.flux`), each a reason for a hook here or in its
denoiser (:mod:`sfumato.inference.denoisers.sd3`):

- **the prompt** is three encoders joined: CLIP-L's and CLIP-G's penultimate hidden
  states side by side (768 + 1280 wide, 77 tokens), zero-padded to T5-XXL's 4096 channels,
  then T5's 256 tokens after them on the token axis (333 tokens a prompt); the pooled
  embedding is CLIP-L's and CLIP-G's projected outputs joined (2048). T5 is optional: a
  folder without ``text_encoder_3`` loads, and its 256 tokens are zeros, as diffusers does.
- **the schedule**: the pipeline asks the scheduler for ``steps`` timesteps (no explicit
  sigmas): evenly spaced between the shifted training extremes, then shifted again by the
  config's ``shift`` (3.0) — not FLUX's ``linspace(1, 1/steps)``; :meth:`SD3Family.set_timesteps`
  makes the same call, so the sigmas are the pipeline's bit for bit.
- **guidance** is true classifier-free guidance over a doubled batch (Large Turbo runs
  without, at a scale of 1 or less); the timestep goes in as ``t`` (0–1000), not ``t/1000``.
- **the latents** stay ``(B, 16, h, w)``: the transformer patchifies them itself.
- **ControlNets** are ``SD3ControlNetModel`` (InstantX's, which take zeroed pooled
  embeddings and control latents without the VAE shift; Stability's 3.5 Large blur, canny
  and depth nets, which borrow the transformer's position embedding and take no text).

LoRAs merge into the transformer and the text encoders through
:mod:`sfumato.inference.lora` (diffusers' own SD3 layout conversion first).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfumato.inference.families.flow import REGION_TOKEN_STEP, FlowFamily, flux_shift, round_up
from sfumato.inference.families.t5 import needs_weighting, plain_text, weighted_t5
from sfumato.inference.modes import Mode
from sfumato.vocabulary.config import read_json
from sfumato.vocabulary.families import SD3

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["SD3Family"]

#: T5 tokens an SD3 prompt is padded to (the pipelines' ``max_sequence_length`` default)
T5_TOKENS = 256
#: the CLIP tokens before them (one 77-token window)
CLIP_TOKENS = 77


class SD3Family(FlowFamily):
    name = SD3
    label = "Stable Diffusion 3"
    native_side = 1024
    min_side_fraction = 0.5  # 512
    max_side_fraction = 1.5  # 1536 (3.5 Medium was trained up to 1440)
    pixel_fractions = (0.75, 1.25)
    supported_modes = frozenset(Mode)
    pipelines = ("StableDiffusion3Pipeline", "StableDiffusion3InpaintPipeline")
    transformer_class = "SD3Transformer2DModel"
    # No published factors are shipped: the map is fitted to the loaded VAE at load time.
    preview_factors = None
    controlnet_class = "SD3ControlNetModel"

    def load_folder(self, path: Path, *, torch_dtype: torch.dtype, inpaint: bool) -> Any:
        """Load the folder; one without T5 (no ``text_encoder_3`` in its index, or none on
        disk) loads with T5 left out, as diffusers allows when it is passed as ``None``."""
        index = read_json(Path(path) / "model_index.json") or {}
        entry = index.get("text_encoder_3")
        without_t5 = not entry or entry[0] is None or not (Path(path) / "text_encoder_3").is_dir()
        kwargs: dict[str, Any] = {"text_encoder_3": None, "tokenizer_3": None} if without_t5 else {}
        cls = self.pipeline_class(inpaint=False)
        return cls.from_pretrained(str(path), torch_dtype=torch_dtype, local_files_only=True, **kwargs)

    def set_timesteps(self, scheduler: Any, steps: int, lat_size: tuple[int, int], device: torch.device) -> None:
        """The SD3 pipelines' call: ``steps`` timesteps and the scheduler's own spacing and
        shift (module docstring); ``mu`` for the token count where the config shifts
        dynamically (no released SD3 does), with SD3's default ``max_shift`` of 1.16."""
        config = scheduler.config
        kwargs: dict[str, Any] = {}
        if config.get("use_dynamic_shifting", False):
            tokens = (lat_size[0] // self.patch) * (lat_size[1] // self.patch)
            kwargs["mu"] = flux_shift(
                tokens,
                config.get("base_image_seq_len", 256),
                config.get("max_image_seq_len", 4096),
                config.get("base_shift", 0.5),
                config.get("max_shift", 1.16),
            )
        scheduler.set_timesteps(steps, device=device, **kwargs)

    # ----------------------------------------------------------------- ControlNets

    def controlnet_mismatch(self, net: Any, pipe: Any) -> str | None:
        """Not an SD3 ControlNet for this transformer: another family's net, one of another
        width (3.5 Large's on Medium), or an inpainting ControlNet (Alimama's, whose control
        input carries a mask channel the ControlNet pipeline's inpainting variant prepares)."""
        config, own = net.config, pipe.transformer.config
        if "pos_embed_max_size" not in config:
            return "not an SD3 ControlNet"
        width = int(config.num_attention_heads) * int(config.attention_head_dim)
        expected = int(own.num_attention_heads) * int(own.attention_head_dim)
        if width != expected:
            return f"an SD3 ControlNet of width {width}, the model's transformer is {expected} wide"
        if int(config.get("extra_conditioning_channels", 0) or 0):
            return "an SD3 inpainting ControlNet (it reads a mask beside the picture), which Sfumato does not drive"
        text = config.get("joint_attention_dim")
        if text is not None and int(text) != int(own.joint_attention_dim):
            return f"text width {text}, the model uses {own.joint_attention_dim}"
        return None

    # ----------------------------------------------------------------- conditioning

    def regional_tokens(self, pipe: Any, texts: list[str], length: int) -> list[slice] | None:
        """With regions: of the 77 CLIP tokens, those the longest prompt takes (start, words,
        end and a pad) rounded up to 8; then the T5 tokens it needs (end token and a pad)
        rounded up to :data:`.flow.REGION_TOKEN_STEP`, none without T5 (the pipeline's T5 part is zeros then) — the
        padding cut as FLUX cuts it. SD 3's text tokens carry no positions, so the cut parts
        join seamlessly."""
        plain = [plain_text(text) for text in texts]
        clip = max(len(pipe.tokenizer(text, truncation=True, max_length=CLIP_TOKENS)["input_ids"]) for text in plain)
        keep = [slice(0, min(CLIP_TOKENS, round_up(clip + 1, 8)))]
        if getattr(pipe, "text_encoder_3", None) is not None:
            longest = max(len(pipe.tokenizer_3(text, add_special_tokens=True)["input_ids"]) for text in plain)
            keep.append(slice(CLIP_TOKENS, min(length, CLIP_TOKENS + round_up(longest + 1, REGION_TOKEN_STEP))))
        return keep

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(CLIP-L ‖ CLIP-G padded to T5's width, then T5: (N, 77 + 256, 4096),
        pooled CLIP-L ‖ CLIP-G (N, 2048))``.

        A plain prompt goes through the pipeline's own ``encode_prompt`` (bit for bit what
        diffusers conditions on; negatives are encoded the same way there). A prompt with
        A1111 weights is weighted per encoder: each CLIP's penultimate states A1111's way
        over its one 77-token window (:func:`~.clip.emphasize`; SD3 reads no more than one
        window, as the pipeline truncates), T5's :func:`~.t5.weighted_t5`; the pooled
        embeddings stay unweighted. ``embeddings`` (textual inversion) are not read: SD3
        has none in use.
        """
        import torch

        rows, pooled_rows = [], []
        with torch.inference_mode():
            for prompt in prompts:
                if needs_weighting(prompt):
                    tokens, pooled = _weighted(pipe, prompt, device)
                else:
                    tokens, _, pooled, _ = pipe.encode_prompt(
                        prompt=plain_text(prompt), prompt_2=None, prompt_3=None, device=device,
                        num_images_per_prompt=1, do_classifier_free_guidance=False, max_sequence_length=T5_TOKENS,
                    )  # fmt: skip
                rows.append(tokens)
                pooled_rows.append(pooled)
        return torch.cat(rows), torch.cat(pooled_rows)


def _weighted(pipe: Any, prompt: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One weighted prompt's ``(tokens (1, 333, D), pooled (1, P))`` (see
    :meth:`SD3Family.encode_prompts`), laid out as the pipeline lays out plain ones."""
    import torch
    from sfumato.inference.families.clip import emphasize, encode_chunks, weighted_token_ids

    hidden, pooled = [], []
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        ids, weights = weighted_token_ids(tokenizer, [prompt])
        ids, weights = ids[:, :1], weights[:, :1]  # the first 77-token window, as the pipeline truncates
        out = encode_chunks(encoder, ids, device, output_hidden_states=True)
        pooled.append(out[0])
        hidden.append(emphasize(out.hidden_states[-2], weights[0]).to(pipe.text_encoder.dtype))
    clip = torch.cat(hidden, dim=-1)
    if pipe.text_encoder_3 is None:
        t5 = pipe._get_t5_prompt_embeds(prompt=[""], max_sequence_length=T5_TOKENS, device=device)
    else:
        t5 = weighted_t5(pipe.tokenizer_3, pipe.text_encoder_3, prompt, T5_TOKENS, device)
    clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
    return torch.cat([clip, t5.to(clip.dtype)], dim=-2), torch.cat(pooled, dim=-1)

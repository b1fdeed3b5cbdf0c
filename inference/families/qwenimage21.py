"""Qwen-Image 2.1 (and 2.1 Turbo): not a newer Qwen-Image but another architecture under
the name — ``QwenImage21Transformer2DModel``, ``AutoencoderKLQwenImage21`` and a Qwen3-VL
text encoder, run by diffusers' ``QwenImage21Pipeline`` (0.42.1).

What differs from Qwen-Image (:mod:`.qwenimage`):

- **the transformer** is single-stream and *block-causal*: one sequence ``[prompt,
  picture]`` in which text tokens attend causally and the picture's tokens see everything
  before them and each other. Text tokens are modulated from ``t = 0``, so their keys and
  values do not change between steps: the first step fills a key/value cache and the
  later ones compute the picture's tokens alone (the denoiser keeps one cache per guidance
  half, :mod:`sfumato.inference.denoisers.qwenimage21`). Nothing lets a region's tokens
  read only their prompt here, and no ControlNet exists for it: txt2img, img2img, inpaint
  and LoRAs, which :attr:`supported_modes` tells the planner.
- **the latents** are 64 channels at 16× (the transformer takes them unpatched: one token
  per latent pixel, sides multiples of 32 because the text encoder's image slots stand for
  2×2 of them), normalised by per-channel ``latents_mean``/``latents_std``, one video
  frame.
- **the VAE is RGBA**: it encodes four channels and decodes four. A picture the engine
  encodes is opaque (alpha 1, as the pipeline converts an RGB picture); a decoded picture
  is composited over white where its alpha is below 1 — the convention the pipeline uses
  when it shows a picture to the text encoder — so the result is the RGB a viewer would
  see. The alpha itself does not reach the layer yet.
- **the prompt** goes into a chat template (a short system turn, then the user turn);
  after the encoder the system turn's tokens are dropped and the user turn's stay.
  diffusers reads the last decoder layer *before* its final norm (a hook, whatever the
  transformers version returns as ``hidden_states[-1]``); :meth:`encode_prompts` calls the
  pipeline's own encoder. Each prompt is its real tokens; where a negative is shorter the
  engine pads it with masked zeros (:attr:`masked_padding`), and the denoiser gives each
  guidance half its real tokens alone, because the picture's positions follow the text's
  length.
- **the schedule**: a checkpoint may ship its own sigma grid (``sample_sigmas`` in its
  ``model_index.json``, 2.1 Turbo's few steps): the engine follows its curve at the
  request's step count (exactly the grid when the counts match), else FLUX's even sigmas;
  either way shifted by ``mu`` for the picture's token count.
- **guidance**: plain true CFG with a negative prompt (no norm rescale); the model is
  meant to be sampled without it (cfg 1).

The pipeline's processor is Qwen3-VL's, which transformers builds only with torchvision
(its video processor); the engine shows the encoder no pictures, so it loads the folder's
tokenizer into :class:`TextProcessor`, which tokenises exactly as the processor does for
text alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfumato.inference.families.flow import FlowFamily
from sfumato.inference.families.qwenimage import (
    QWEN_TOKENS,
    decode_frame,
    encode_frame,
    weighted_qwen_hidden,
)
from sfumato.inference.families.t5 import needs_weighting, plain_text
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import QWENIMAGE21

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["QwenImage21Family", "TextProcessor", "resampled_sigmas"]


class TextProcessor:
    """What ``QwenImage21Pipeline`` asks of its Qwen3-VL processor for text alone: the
    tokenizer, a call that tokenises text, and the chat template's rendering of a message
    list (``<|im_start|>{role}\\n{text}<|im_end|>\\n``, as Qwen3-VL's template renders text
    content). Pictures are refused: they need the real processor."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def from_folder(cls, folder: Path) -> TextProcessor:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(folder), local_files_only=True))

    def __call__(self, text: Any = None, images: Any = None, **kwargs: Any) -> Any:
        if images is not None:
            raise ValueError("Qwen-Image 2.1's text processor reads no pictures")
        return self.tokenizer(text, **kwargs)

    def apply_chat_template(self, messages: list[dict[str, Any]], *, tokenize: bool = True,
                            return_dict: bool = False, **_: Any) -> Any:  # fmt: skip
        parts = []
        for message in messages:
            content = message["content"]
            text = content if isinstance(content, str) else "".join(c["text"] for c in content if c["type"] == "text")
            parts.append(f"<|im_start|>{message['role']}\n{text}<|im_end|>\n")
        rendered = "".join(parts)
        return [self.tokenizer(rendered)["input_ids"]] if tokenize else rendered


def resampled_sigmas(grid: list[float], steps: int) -> list[float]:
    """The author's sigma ``grid`` (terminal sigma excluded) followed at ``steps`` points:
    linear interpolation along the grid's index, the first and last sigma kept; the grid
    itself when ``steps`` equals its length."""
    if steps == len(grid) or len(grid) < 2:
        return [float(s) for s in grid] if steps == len(grid) else [float(grid[0])] * steps
    if steps == 1:
        return [float(grid[0])]
    last = len(grid) - 1
    out = []
    for i in range(steps):
        at = i * last / (steps - 1)
        low = min(int(at), last - 1)
        frac = at - low
        out.append(float(grid[low]) * (1.0 - frac) + float(grid[low + 1]) * frac)
    return out


class QwenImage21Family(FlowFamily):
    name = QWENIMAGE21
    label = "Qwen-Image 2.1"
    native_side = 1024  # the pipeline's output_resolution: about a megapixel at any ratio
    min_side_fraction = 0.5
    max_side_fraction = 1.75  # 1792: a 16:9 megapixel's long side (1365) with room
    pixel_fractions = (0.75, 1.25)
    supported_modes = frozenset({Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT, Mode.LORA})
    pipelines = ("QwenImage21Pipeline", "QwenImage21Pipeline")  # one class for every mode
    transformer_class = "QwenImage21Transformer2DModel"
    preview_factors = None  # fitted to the loaded VAE
    masked_padding = True
    patch = 1  # latents go in unpatched
    size_multiple = 32  # 16× VAE, and 2×2 latent pixels per image slot of the text encoder

    def load_folder(self, path: Path, *, torch_dtype: torch.dtype, inpaint: bool) -> Any:
        """The folder's parts in a ``QwenImage21Pipeline`` whose processor is a
        :class:`TextProcessor` over the ``processor`` (or ``tokenizer``) folder's tokenizer
        (the pipeline's own loader would insist on Qwen3-VL's processor class). The
        folder's ``sample_sigmas`` go into its scheduler's config, where the run's scheduler
        is made from (:func:`sfumato.inference.schedulers.make_scheduler`)."""
        import diffusers
        from sfumato.vocabulary.config import read_json
        from transformers import Qwen3VLForConditionalGeneration

        folder = Path(path)
        tokens = next((folder / n for n in ("processor", "tokenizer") if (folder / n).is_dir()), None)
        if tokens is None:
            raise FileNotFoundError(f"{folder} has no processor/ folder (Qwen3-VL's tokenizer)")
        index = read_json(folder / "model_index.json") or {}

        def part(cls: Any, name: str) -> Any:
            return cls.from_pretrained(str(folder), subfolder=name, torch_dtype=torch_dtype, local_files_only=True)

        scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_pretrained(
            str(folder), subfolder="scheduler", local_files_only=True
        )
        grid = index.get("sample_sigmas")
        pipe = diffusers.QwenImage21Pipeline(
            scheduler=scheduler,
            vae=part(diffusers.AutoencoderKLQwenImage21, "vae"),
            text_encoder=Qwen3VLForConditionalGeneration.from_pretrained(
                str(folder / "text_encoder"), dtype=torch_dtype, local_files_only=True
            ).eval(),
            processor=TextProcessor.from_folder(tokens),
            transformer=part(diffusers.QwenImage21Transformer2DModel, "transformer"),
            sample_sigmas=grid,
        )
        if grid:
            scheduler.register_to_config(sample_sigmas=[float(s) for s in grid])
        return pipe

    def set_timesteps(self, scheduler: Any, steps: int, lat_size: tuple[int, int], device: torch.device) -> None:
        grid = scheduler.config.get("sample_sigmas")
        if not grid:
            super().set_timesteps(scheduler, steps, lat_size, device)
            return
        from sfumato.inference.families.flow import flux_shift

        config = scheduler.config
        mu = flux_shift(
            lat_size[0] * lat_size[1],
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        scheduler.set_timesteps(device=device, sigmas=resampled_sigmas(list(grid), steps), mu=mu)

    # ----------------------------------------------------------------- the VAE

    def vae_scale(self, pipe: Any) -> int:
        return int(pipe.vae.spatial_compression_ratio)

    def latent_channels(self, pipe: Any) -> int:
        return int(pipe.vae.config.z_dim)

    def encode_pixels(self, pipe: Any, pixels: torch.Tensor) -> torch.Tensor:
        """RGB ``(B, 3, H, W)`` in [-1, 1] → normalised latents, opaque alpha added where
        the VAE takes four channels; the distribution's mode, as the pipeline takes it."""
        import torch

        if int(pipe.vae.config.in_channels) == 4:
            pixels = torch.cat([pixels, torch.ones_like(pixels[:, :1])], dim=1)
        return encode_frame(pipe.vae, pixels)

    def decode_pixels(self, pipe: Any, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents → RGB in about [-1, 1], composited over white where the
        decoded alpha is below 1 (module docstring)."""
        return over_white(decode_frame(pipe.vae, latents))

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
        """``(tokens (N, T, D), None)``: each prompt's Qwen3-VL states after the system
        turn, its real tokens only (zero-padded to the longest when several)."""
        import torch

        rows = []
        with torch.inference_mode():
            for prompt in prompts:
                if needs_weighting(prompt):
                    rows.append(weighted_qwen21(pipe, prompt, device)[0])
                    continue
                embeds, mask, _ = pipe._get_qwen_prompt_embeds(prompt=[plain_text(prompt)], image=None, device=device)
                rows.append(embeds[0, : int(mask[0].sum())][:QWEN_TOKENS])
        length = max(r.shape[0] for r in rows)
        return torch.stack([torch.nn.functional.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows]), None


def over_white(image: torch.Tensor) -> torch.Tensor:
    """A decoded ``(B, 4, H, W)`` RGBA picture in [-1, 1] → its RGB over white (a
    three-channel picture passes unchanged)."""
    if image.shape[1] != 4:
        return image
    alpha = ((image[:, 3:] + 1.0) / 2.0).clamp(0.0, 1.0)
    return image[:, :3] * alpha + (1.0 - alpha)


def weighted_qwen21(pipe: Any, prompt: str, device: torch.device) -> torch.Tensor:
    """``(1, T, D)``: ``prompt``'s weighted states, as :func:`.qwenimage.weighted_qwen`
    weighs Qwen-Image's, read where the pipeline reads them (before the final norm)."""
    text_model = getattr(pipe.text_encoder.model, "language_model", pipe.text_encoder.model)

    def hidden(input_ids: torch.Tensor) -> torch.Tensor:
        import torch

        handle = text_model.norm.register_forward_hook(lambda module, args, output: args[0])
        try:
            out = pipe.text_encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                    output_hidden_states=True)  # fmt: skip
        finally:
            handle.remove()
        return out.hidden_states[-1]  # type: ignore[no-any-return]

    return weighted_qwen_hidden(
        pipe.processor.tokenizer, pipe.prompt_template_t2i, pipe._drop_idx, hidden, prompt, device,
        dtype=pipe.text_encoder.dtype,
    )  # fmt: skip

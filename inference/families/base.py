"""The model-family plugin interface.

A family is everything the engine needs to know about one architecture that the
denoising modes must not care about: its native resolution, which modes it supports,
its default scheduler, its latent→RGB preview factors, how its pipelines load, and how
its prompts become conditioning tensors (one CLIP for SD 1.x; two CLIPs, pooled
embeddings and size "time ids" for SDXL).

The modes (txt2img, img2img, inpaint, regions, ControlNet) only ever see the family's
text conditioning — the ``(tokens, pooled)`` pair of :meth:`Family.encode_prompts` and the
extra UNet keyword arguments of :meth:`Family.extra_unet_kwargs` — and the
UNet/VAE/scheduler, so a new family (SD 2.x v-prediction, SD3, FLUX, ...) is a new
subclass registered in :mod:`sfumato.inference.families`, not a change to the modes.

This module imports no torch at import time: the planner builds its sizing table from
``native_side``, the side fractions and ``pixel_fractions``, and recognises a folder's
family with :meth:`Family.matches_diffusers`, without loading the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfumato.inference.modes import Mode
from sfumato.vocabulary.kinds import ReferenceKind

if TYPE_CHECKING:
    import numpy as np
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary
    from sfumato.inference.request import Sampler
__all__ = ["REFERENCE_SETTINGS", "Family", "PreviewFactors"]

#: the settings of a reference layer a family may follow (:attr:`Family.reference_settings`)
REFERENCE_SETTINGS = frozenset({"kind", "strength", "range", "region"})


@dataclass(frozen=True)
class PreviewFactors:
    """A linear map from one latent pixel (C channels) to RGB in [-1, 1].

    ``rgb = latent @ weights + bias``; ``weights`` has C rows of 3 values. Also used for
    maps fitted at run time by :func:`sfumato.inference.preview.fit_latent_rgb_map`.
    """

    weights: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)


class Family(ABC):
    """One model architecture. Subclasses are stateless singletons."""

    #: identifier matching ``ModelRef.family`` and :mod:`sfumato.inference.detect`
    name: str = ""
    #: human name for messages
    label: str = ""
    #: native side in pixels for full-size models (the loaded model's own UNet size wins)
    native_side: int = 512
    #: smallest short side worth generating at, as a fraction of native
    min_side_fraction: float = 1.0
    #: largest long side, as a fraction of native
    max_side_fraction: float = 1.5
    #: the pixel count a generation should have, (fewest, most), as fractions of native²
    pixel_fractions: tuple[float, float] = (1.0, 1.5)
    supported_modes: frozenset[Mode] = frozenset(Mode)
    #: the diffusers scheduler class used when the checkpoint brings no scheduler config
    default_scheduler: str = "EulerDiscreteScheduler"
    preview_factors: PreviewFactors | None = None
    #: VAE config values that the built-in preview factors were made for
    reference_vae: dict[str, Any] = {}
    #: names of the diffusers pipeline classes that load this family: (txt2img, inpaint)
    pipelines: tuple[str, str] = ("", "")
    #: the pipeline component that denoises: ``"unet"`` or ``"transformer"``
    denoiser_component: str = "unet"
    #: generation sides are multiples of this many pixels: the VAE's factor (8), times the
    #: latent patch a token takes where latents are packed into tokens (16 for the
    #: transformer families)
    size_multiple: int = 8
    #: whether the model takes reference pictures beside the prompt (FLUX.2 Klein; SD 1.x
    #: and SDXL through an IP-Adapter)
    takes_references: bool = False
    #: how references reach the model: ``None`` as extra latents (FLUX.2 Klein), or
    #: ``"ip-adapter"`` (an IP-Adapter file and its CLIP vision encoder, found by
    #: :func:`sfumato.inference.catalog.find_reference_adapter`), or ``"redux"`` (FLUX.1)
    reference_adapter: str | None = None
    #: which of a reference layer's settings the family follows (:data:`REFERENCE_SETTINGS`:
    #: the kind, the strength, the step range, a region); the planner notes the others
    #: where a layer sets them. A family that takes references as latents follows none: it
    #: reads the picture whole.
    reference_settings: frozenset[str] = frozenset()
    #: the reference kinds this family tells apart (the others are refused by name);
    #: families that take references as latents follow the picture whatever the kind
    reference_kinds: frozenset[ReferenceKind] = frozenset(ReferenceKind)
    #: IP-Adapter layer-wise scales per kind: attention-processor name prefixes → factor of
    #: the reference's strength (layers named nowhere get 0); a kind not listed acts on
    #: every layer at its strength (content, face)
    reference_layers: dict[ReferenceKind, dict[str, float]] = {}
    #: whether the model is made for instruction edits ("make it night": FLUX.1 Kontext,
    #: Qwen-Image-Edit): the planner then plans an edit (``GenerationRequest.edit``) where
    #: there is a picture. The engine also takes edits from families that take reference
    #: pictures (FLUX.2 Klein: the picture is its first reference), and refuses them from
    #: the others by name.
    edits: bool = False
    #: whether the text encoder reads an edit's pictures beside the prompt: then
    #: :meth:`encode_prompts` takes them as ``pictures`` (uint8 ``(H, W, 3)`` each;
    #: Qwen-Image-Edit's Qwen2.5-VL reads them with its vision tower)
    prompt_reads_pictures: bool = False
    #: the samplers this family can run; ``None``: all of them
    samplers: frozenset[Sampler] | None = None
    #: whether a prompt's tokens are padded (for the CFG layout, for regions) with
    #: masked-out zero vectors rather than empty-prompt tokens (Chroma, Qwen-Image: their
    #: models mask padding; :attr:`sfumato.inference.text_conditioning.TextConditioning.token_mask`)
    masked_padding: bool = False

    # ----------------------------------------------------------------- identity

    @abstractmethod
    def matches_diffusers(self, model_index: dict[str, Any], unet_config: dict[str, Any]) -> bool:
        """Whether a diffusers folder (its ``model_index.json`` and UNet config) is this family."""

    def native_side_of(self, unet_sample_size: int | None, vae_scale: int) -> int:
        """The native side of a loaded model: its UNet's sample size times the VAE factor."""
        if unet_sample_size:
            return int(unet_sample_size) * vae_scale
        return self.native_side

    def loaded_native_side(self, pipe: Any) -> int:
        """The native side of a loaded pipeline (its denoiser's sample size, if it has one)."""
        denoiser = getattr(pipe, self.denoiser_component)
        return self.native_side_of(getattr(denoiser.config, "sample_size", None), self.vae_scale(pipe))

    def vae_scale(self, pipe: Any) -> int:
        """Pixels per latent pixel along a side (8 for the stock VAEs)."""
        return int(2 ** (len(pipe.vae.config.block_out_channels) - 1))

    def side_limits(self, native_side: int) -> tuple[int, int]:
        """``(min_side, max_long_side)`` in pixels for a model of ``native_side``, in
        multiples of :attr:`size_multiple`."""
        m = self.size_multiple
        return (
            int(round(native_side * self.min_side_fraction / m)) * m,
            int(round(native_side * self.max_side_fraction / m)) * m,
        )

    def preview_factors_fit(self, vae_config: dict[str, Any]) -> bool:
        """Whether :attr:`preview_factors` were made for this VAE (else fit new ones)."""
        if self.preview_factors is None:
            return False
        return all(vae_config.get(k) == v for k, v in self.reference_vae.items())

    # ----------------------------------------------------------------- loading

    def load_folder(self, path: Path, *, torch_dtype: torch.dtype, inpaint: bool) -> Any:
        """Load a diffusers-format folder, fully offline."""
        cls = self.pipeline_class(inpaint=inpaint)
        return cls.from_pretrained(
            str(path), torch_dtype=torch_dtype, local_files_only=True, **self.pipeline_kwargs()
        )

    def pipeline_kwargs(self) -> dict[str, Any]:
        return {}

    def pipeline_class(self, *, inpaint: bool) -> type[Any]:
        """The diffusers pipeline class holding this family's components (named by :attr:`pipelines`)."""
        import diffusers

        return getattr(diffusers, self.pipelines[1] if inpaint else self.pipelines[0])  # type: ignore[no-any-return]

    # ----------------------------------------------------------------- the denoise loop

    def set_timesteps(self, scheduler: Any, steps: int, lat_size: tuple[int, int], device: torch.device) -> None:
        """Give ``scheduler`` its timesteps for a run of ``steps`` on latents of ``lat_size``."""
        scheduler.set_timesteps(steps, device=device)

    def latent_channels(self, pipe: Any) -> int:
        """The channel count of the latents the loop denoises (noise is drawn in this shape)."""
        return int(pipe.vae.config.latent_channels)

    def encode_pixels(self, pipe: Any, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` pixels in [-1, 1] → model-space latents ``(B, C, h, w)``: what the
        denoiser sees (scaled and shifted; the distribution's mode, so deterministic)."""
        from sfumato.inference.families.vae import encode_pixels

        return encode_pixels(pipe.vae, pixels)

    def decode_pixels(self, pipe: Any, latents: torch.Tensor) -> torch.Tensor:
        """Model-space latents → ``(B, 3, H, W)`` pixels in about [-1, 1]."""
        from sfumato.inference.families.vae import decode_pixels

        return decode_pixels(pipe.vae, latents)

    def encode_images(self, pipe: Any, images: list[np.ndarray], device: torch.device) -> torch.Tensor:
        """uint8 ``(H, W, 3)`` images → model-space latents ``(B, C, h, w)``."""
        from sfumato.inference.families.vae import images_to_tensor, vae_dtype

        return self.encode_pixels(pipe, images_to_tensor(images, device, vae_dtype(pipe.vae)))

    def decode_latents(self, pipe: Any, latents: torch.Tensor) -> list[np.ndarray]:
        """Model-space latents → uint8 ``(H, W, 3)`` images."""
        from sfumato.inference.families.vae import pixels_to_images

        return pixels_to_images(self.decode_pixels(pipe, latents))

    def is_inpaint_config(self, config: dict[str, Any]) -> bool:
        """Whether a denoiser of this ``config`` takes a mask and the masked image beside its
        latents (a 9-channel inpainting UNet)."""
        return int(config.get("in_channels", 4)) == 9

    def is_inpaint_model(self, pipe: Any) -> bool:
        """:meth:`is_inpaint_config` of a loaded pipeline's denoiser."""
        return self.is_inpaint_config(dict(getattr(pipe, self.denoiser_component).config))

    def embeds_guidance(self, pipe: Any) -> bool:
        """Whether the denoiser takes the guidance scale as an input (one unguided pass)
        instead of classifier-free guidance (FLUX.1 dev; LCM UNets are handled by the
        engine's ``timestep_cond``)."""
        return False

    def inpaint_model_input(
        self,
        pipe: Any,
        mask: np.ndarray,
        masked: np.ndarray,
        lat_size: tuple[int, int],
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """An inpainting model's extra input ``(1, ...)`` from the hard ``mask`` (H, W) and the
        ``masked`` image: for a 9-channel UNet, the mask at latent size then the masked
        image's latents (5 channels)."""
        import torch

        masked_latents = self.encode_images(pipe, [masked], device).to(dtype)
        mask_t = torch.from_numpy(mask)[None, None]
        mask_lat = torch.nn.functional.interpolate(mask_t, size=lat_size, mode="nearest").to(device=device, dtype=dtype)
        return torch.cat([mask_lat, masked_latents], dim=1)

    #: the diffusers class of this family's ControlNets
    controlnet_class: str = "ControlNetModel"
    #: the diffusers class of this family's union ControlNets, when they have their own
    #: (SDXL: ``ControlNetUnionModel``); ``None``: union nets load as :attr:`controlnet_class`
    #: (FLUX's union nets are ``FluxControlNetModel`` with a ``num_mode``) or do not exist
    union_controlnet_class: str | None = None

    def controlnet_mismatch(self, net: Any, pipe: Any) -> str | None:
        """Why ``net`` cannot steer ``pipe``'s denoiser (another family's ControlNet), else ``None``."""
        expected = int(getattr(pipe, self.denoiser_component).config.cross_attention_dim)
        got = int(getattr(net.config, "cross_attention_dim", 0) or 0)
        return None if expected == got else f"text width {got}, the model uses {expected}"

    def control_mode(self, net: Any, kind: Any) -> int | None:
        """A union ControlNet's control-type index for ``kind``; ``None`` for single-kind nets."""
        return None

    def regional_tokens(self, pipe: Any, texts: list[str], length: int) -> list[slice] | None:
        """With regions, the parts of every prompt's ``length`` tokens that are kept, joined
        (``texts``: every prompt and negative of the request); ``None``: kept whole.
        Families whose prompts are padded to a fixed length (FLUX's 512 T5 tokens) cut the
        padding, alike for the global prompt and every region's, so that regions add their
        words, not 512 tokens each, to every attention call."""
        return None

    # ----------------------------------------------------------------- conditioning

    @abstractmethod
    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode ``prompts`` → ``(tokens (N, T, D), pooled (N, P) or None)``.

        ``T`` is a whole number of the tokenizer's contexts: a long prompt takes several
        77-token chunks (:mod:`.clip`), all prompts as many as the longest needs.
        ``negative`` marks negative prompts (SDXL zeroes empty ones). ``embeddings``:
        textual-inversion files the prompts may name (:mod:`sfumato.inference.embeddings`).
        """

    def extra_unet_kwargs(
        self,
        pipe: Any,
        pooled: torch.Tensor | None,
        *,
        gen_size: tuple[int, int],
        crop_top_left: tuple[int, int] = (0, 0),
    ) -> dict[str, Any]:
        """Extra UNet inputs for a batch whose pooled embeddings are ``pooled``.

        ``gen_size`` is ``(width, height)`` in pixels. SD 1.x needs none.
        """
        return {}

    def reference_layer_scale(self, kind: ReferenceKind, processor_name: str) -> float:
        """The factor of a reference's strength at the attention processor
        ``processor_name`` (``"up_blocks.0.attentions.1.transformer_blocks.0.attn2.processor"``)
        for a reference of ``kind``: :attr:`reference_layers`, else 1 everywhere."""
        layers = self.reference_layers.get(kind)
        if layers is None:
            return 1.0
        for prefix, factor in layers.items():
            if processor_name.startswith(prefix + "."):
                return factor
        return 0.0

    # ----------------------------------------------------------------- misc

    def __repr__(self) -> str:
        return f"<Family {self.name}>"

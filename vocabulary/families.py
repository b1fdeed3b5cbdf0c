"""Model family identity: the names of the families and of the built-in models.

A family name (``"sd15"``, ``"sdxl"``) travels from the checkpoint's header (the catalog)
through the planner's sizing and the window's pickers to the engine's plugin table
(:mod:`sfumato.inference.families`, where each plugin's ``name`` is one of these). The
model source ``"builtin"`` names the demo model shipped in ``resources/models/builtin``;
every room that resolves it asks :func:`builtin_model_folder`.

Imports nothing of ours but the data package :mod:`sfumato.resources` (no code).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BUILTIN",
    "BUILTIN_CONTROLNET",
    "CHROMA",
    "FLOW_FAMILIES",
    "PIPELINE_FAMILIES",
    "FLUX",
    "FLUX2",
    "FLUX_KONTEXT",
    "LORA_FAMILIES",
    "QWENIMAGE",
    "QWENIMAGE_EDIT",
    "QWENIMAGE_EDIT_PLUS",
    "QWENIMAGE21",
    "SD15",
    "SD2",
    "SD3",
    "SDXL",
    "ZIMAGE",
    "SUPPORTED_FAMILIES",
    "builtin_controlnet_folder",
    "builtin_model_folder",
    "is_kontext_name",
    "lora_family",
    "models_folder",
    "pipeline_names",
]

#: Stable Diffusion 1.x (and fine-tunes of it), trained at 512².
SD15 = "sd15"
#: Stable Diffusion XL, trained at 1024².
SDXL = "sdxl"
#: Stable Diffusion 2.x (OpenCLIP text encoder, v-prediction at 768², epsilon at 512²).
SD2 = "sd2"
#: Stable Diffusion 3 / 3.5 (medium, large, turbo): an MMDiT over two CLIPs and T5.
SD3 = "sd3"
#: FLUX.1 (dev, schnell, Krea, Fill, Kontext and fine-tunes): guidance-distilled, CLIP-L + T5.
FLUX = "flux"
#: FLUX.2 Klein (4B / 9B): a Qwen3 text encoder and its own VAE.
FLUX2 = "flux2"
#: Chroma: a FLUX.1-schnell derivative with true classifier-free guidance, T5 only.
CHROMA = "chroma"
#: Z-Image and Z-Image-Turbo: a single-stream DiT over a Qwen3 text encoder.
ZIMAGE = "zimage"
#: Qwen-Image (and its 2512 release): an MMDiT over Qwen2.5-VL, with a video-style VAE.
QWENIMAGE = "qwenimage"
#: Qwen-Image 2.1 (and Turbo): another architecture under the name — a single-stream,
#: block-causal transformer over Qwen3-VL, with a 16× RGBA VAE of 64 latent channels.
QWENIMAGE21 = "qwenimage21"
#: FLUX.1 Kontext [dev]: FLUX.1 made for instruction edits (the picture as context tokens).
FLUX_KONTEXT = "flux-kontext"
#: Qwen-Image-Edit (and 2509's single-picture use): Qwen-Image made for instruction edits,
#: the picture read by Qwen2.5-VL's vision tower and given as context latents.
QWENIMAGE_EDIT = "qwenimage-edit"
#: Qwen-Image-Edit-Plus (2509, 2511): Qwen-Image-Edit with several pictures.
QWENIMAGE_EDIT_PLUS = "qwenimage-edit-plus"
#: The family whose LoRAs an edit model takes: the same transformer with the same keys,
#: so a LoRA file reads as its base family's (:func:`lora_family`).
LORA_FAMILIES = {FLUX_KONTEXT: FLUX, QWENIMAGE_EDIT: QWENIMAGE, QWENIMAGE_EDIT_PLUS: QWENIMAGE}


def lora_family(family: str | None) -> str | None:
    """The family of the LoRAs a model of ``family`` takes (an edit model takes its base
    model's); ``None`` stays ``None``."""
    return LORA_FAMILIES.get(family, family) if family else family


#: The families the engine can load, in the order pickers list them.
SUPPORTED_FAMILIES = (SD15, SDXL, SD2, SD3, FLUX, FLUX_KONTEXT, FLUX2, ZIMAGE, QWENIMAGE, QWENIMAGE_EDIT,
                      QWENIMAGE_EDIT_PLUS, QWENIMAGE21, CHROMA)  # fmt: skip
#: The families whose denoiser is a transformer trained with flow matching.
FLOW_FAMILIES = (SD3, FLUX, FLUX_KONTEXT, FLUX2, CHROMA, ZIMAGE, QWENIMAGE, QWENIMAGE_EDIT, QWENIMAGE_EDIT_PLUS,
                 QWENIMAGE21)  # fmt: skip

#: The model source that names the built-in demo model (also its folder's name).
BUILTIN = "builtin"
#: The folder name of the built-in scribble ControlNet (beside the built-in model).
BUILTIN_CONTROLNET = "builtin-controlnet-scribble"


def models_folder() -> Path:
    """``resources/models`` inside the installed package: where the built-in models live."""
    import sfumato.resources

    return Path(sfumato.resources.__file__).resolve().parent / "models"


def builtin_model_folder() -> Path:
    """Where the built-in demo model lives (``resources/models/builtin``)."""
    return models_folder() / BUILTIN


def builtin_controlnet_folder() -> Path:
    """Where the built-in scribble ControlNet lives (``resources/models/builtin-controlnet-scribble``)."""
    return models_folder() / BUILTIN_CONTROLNET


#: diffusers pipeline class (a folder's ``model_index.json`` ``_class_name``) → the
#: transformer family whose folders declare it. One table for the catalog (which lists a
#: folder under its family without importing the engine) and the family plugins (whose
#: folder test it is). The instruction-edit models (FLUX.1 Kontext, Qwen-Image-Edit and
#: -Edit-Plus) are families of their own: their folders hold the same parts as their base
#: model's, and only the pipeline class a folder declares tells them apart. Not here:
#: Z-Image Omni's pipeline, which takes reference pictures (another task), and SD's own,
#: which the UNet families recognise by their UNet config.
PIPELINE_FAMILIES: dict[str, str] = {
    "FluxPipeline": FLUX,
    "FluxImg2ImgPipeline": FLUX,
    "FluxInpaintPipeline": FLUX,
    "FluxFillPipeline": FLUX,
    "FluxKontextPipeline": FLUX_KONTEXT,
    "FluxKontextInpaintPipeline": FLUX_KONTEXT,
    "ChromaPipeline": CHROMA,
    "ChromaImg2ImgPipeline": CHROMA,
    "ChromaInpaintPipeline": CHROMA,
    "StableDiffusion3Pipeline": SD3,
    "StableDiffusion3Img2ImgPipeline": SD3,
    "StableDiffusion3InpaintPipeline": SD3,
    "StableDiffusion3ControlNetPipeline": SD3,
    "StableDiffusion3ControlNetInpaintingPipeline": SD3,
    "StableDiffusion3PAGPipeline": SD3,
    "Flux2KleinPipeline": FLUX2,
    "Flux2KleinInpaintPipeline": FLUX2,
    "Flux2KleinKVPipeline": FLUX2,
    "ZImagePipeline": ZIMAGE,
    "ZImageImg2ImgPipeline": ZIMAGE,
    "ZImageInpaintPipeline": ZIMAGE,
    "ZImageControlNetPipeline": ZIMAGE,
    "ZImageControlNetInpaintPipeline": ZIMAGE,
    "QwenImagePipeline": QWENIMAGE,
    "QwenImageImg2ImgPipeline": QWENIMAGE,
    "QwenImageInpaintPipeline": QWENIMAGE,
    "QwenImageControlNetPipeline": QWENIMAGE,
    "QwenImageEditPipeline": QWENIMAGE_EDIT,
    "QwenImageEditInpaintPipeline": QWENIMAGE_EDIT,
    "QwenImageEditPlusPipeline": QWENIMAGE_EDIT_PLUS,
    "QwenImage21Pipeline": QWENIMAGE21,
}


def pipeline_names(family: str) -> tuple[str, ...]:
    """The diffusers pipeline classes whose folders are ``family``'s."""
    return tuple(name for name, owner in PIPELINE_FAMILIES.items() if owner == family)


def is_kontext_name(name: str) -> bool:
    """Whether a FLUX.1 file's name says it is Kontext: its weights cannot (they have FLUX.1
    dev's keys and shapes exactly), so a single file is told by its name."""
    return "kontext" in name.lower()

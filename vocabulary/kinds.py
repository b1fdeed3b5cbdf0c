"""Enumerations that travel from the document to the engine: modes, control kinds, samplers."""

from __future__ import annotations

from enum import Enum

from sfumato.vocabulary.errors import RequestError

__all__ = ["ControlKind", "FillMode", "Mode", "ReferenceKind", "Sampler"]


class Mode(Enum):
    """What a generation does. Exactly one of txt2img, img2img, inpaint and edit (the
    window's button says which: ``label``); a request may add regions, ControlNets and
    LoRAs, which model families declare they support. Edit is an instruction-edit model's
    ("make it night"): the picture goes to the model beside the prompt as context, and
    the result is made from noise (:attr:`sfumato.inference.families.base.Family.edits`).
    Expand is the planner's word for an inpaint of the canvas no picture covers
    (:mod:`sfumato.planner.outpaint`); its request is an inpaint."""

    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    REGIONS = "regions"
    CONTROLNET = "controlnet"
    LORA = "lora"
    EDIT = "edit"
    EXPAND = "expand"

    @property
    def label(self) -> str:
        """The button's word: Generate, Refine, Inpaint, Edit, Expand (the others: their name)."""
        return _MODE_LABELS.get(self, self.value)


_MODE_LABELS = {Mode.TXT2IMG: "Generate", Mode.IMG2IMG: "Refine", Mode.INPAINT: "Inpaint", Mode.EDIT: "Edit",
                Mode.EXPAND: "Expand"}


class Sampler(Enum):
    """Schedulers offered to the user (names as A1111/Forge users know them)."""

    DEFAULT = "default"  # the model family's (or checkpoint's) own scheduler
    EULER = "euler"
    EULER_A = "euler_a"
    DPMPP_2M = "dpmpp_2m"
    DPMPP_2M_KARRAS = "dpmpp_2m_karras"
    DPMPP_SDE_KARRAS = "dpmpp_sde_karras"
    DDIM = "ddim"
    UNIPC = "unipc"
    LCM = "lcm"
    TCD = "tcd"  # trajectory consistency distillation (TCD-LoRA, Hyper-SD's 1-step LoRA)
    HEUN = "heun"

    @property
    def label(self) -> str:
        """The name other SD tools write in their ``parameters`` text."""
        return _SAMPLER_LABELS[self]

    @classmethod
    def from_label(cls, text: str) -> Sampler:
        """Parse an A1111-style label (``"DPM++ 2M Karras"``) or an enum value (``"euler_a"``)."""
        key = text.strip().lower()
        for sampler, label in _SAMPLER_LABELS.items():
            if key in (sampler.value, label.lower()):
                return sampler
        raise RequestError(
            f"unknown sampler {text!r}; choose one of: "
            + ", ".join(s.value for s in cls)
        )


_SAMPLER_LABELS = {
    Sampler.DEFAULT: "Default",
    Sampler.EULER: "Euler",
    Sampler.EULER_A: "Euler a",
    Sampler.DPMPP_2M: "DPM++ 2M",
    Sampler.DPMPP_2M_KARRAS: "DPM++ 2M Karras",
    Sampler.DPMPP_SDE_KARRAS: "DPM++ SDE Karras",
    Sampler.DDIM: "DDIM",
    Sampler.UNIPC: "UniPC",
    Sampler.LCM: "LCM",
    Sampler.TCD: "TCD",
    Sampler.HEUN: "Heun",
}


class ControlKind(Enum):
    """What a control layer/image means; each kind has a model-free preprocessor."""

    SCRIBBLE = "scribble"
    LINEART = "lineart"
    SOFTEDGE = "softedge"
    CANNY = "canny"
    DEPTH = "depth"
    POSE = "pose"
    SEGMENTATION = "segmentation"

    @classmethod
    def parse(cls, text: str) -> ControlKind:
        """The kind named by ``text`` (any case); :class:`RequestError` if there is none."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise RequestError(
                f"unknown control kind {text!r}; known kinds: " + ", ".join(k.value for k in cls)
            ) from None


class ReferenceKind(Enum):
    """What a reference layer/image asks the model to follow (IP-Adapter's layer-wise
    scales for SD 1.x/SDXL; families that take reference pictures as extra latents
    follow the picture whatever the kind)."""

    STYLE = "style"  # colours, brushwork, mood; not the layout
    COMPOSITION = "composition"  # the layout; not the style
    FACE = "face"  # keep this person's face
    CONTENT = "content"  # the picture as a whole

    @classmethod
    def parse(cls, text: str) -> ReferenceKind:
        """The kind named by ``text`` (any case); :class:`RequestError` if there is none."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise RequestError(
                f"unknown reference kind {text!r}; known kinds: " + ", ".join(k.value for k in cls)
            ) from None


class FillMode(Enum):
    """What the masked area starts from before denoising (inpainting; an Expand's bare
    canvas, where ``keep`` means Telea: there is nothing to keep)."""

    KEEP = "keep"  # the original pixels (best for small changes)
    BLUR = "blur"  # the surroundings smeared into the hole (removes the old object)
    NEUTRAL = "neutral"  # flat grey
    NOISE = "noise"  # random noise (most freedom)
    # Model-free infills for outpainting (a border no paint covers) and for removals:
    TELEA = "telea"  # OpenCV's fast-marching inpaint (Telea 2004): smooth, follows edges in
    NAVIER_STOKES = "navier-stokes"  # OpenCV's fluid-dynamics inpaint (Bertalmio 2001)
    EDGE = "edge"  # each pixel takes the colour of the nearest known pixel (edge extend)

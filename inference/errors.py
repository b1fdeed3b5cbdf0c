"""Typed engine errors: what went wrong, said so that a user knows what to do next.

Imports no torch, so the desktop and planner can catch these without loading the engine.
Every error carries a user-facing ``message`` (also ``str(error)``) and an optional
``hint`` (the next step). The engine stays usable after any of them.
"""

from __future__ import annotations

__all__ = [
    "CancelledError",
    "CorruptModelError",
    "EngineError",
    "InvalidRequestError",
    "MissingImageEncoderError",
    "MissingReduxEncoderError",
    "MissingPoseEstimatorError",
    "ModelNotFoundError",
    "NetworkUnavailableError",
    "OutOfMemoryError",
    "UnsafeModelError",
    "UnsupportedModeError",
    "UnsupportedUpscalerError",
]


class EngineError(Exception):
    """Base of every error the engine reports to its caller.

    ``message`` says what happened in words a painter understands; ``hint`` says what to
    do about it (may be empty). ``str(error)`` joins both.
    """

    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


class ModelNotFoundError(EngineError):
    """The model reference points at nothing: no file, no folder, no cached hub id."""

    default_hint = "Check the model path in the model picker, or choose another model."


class MissingImageEncoderError(ModelNotFoundError):
    """An IP-Adapter was found but not the image encoder it reads pictures with.

    ``expected`` names the encoder's file (ComfyUI's name for it), ``folder`` where to put it.
    """

    def __init__(self, adapter: str, expected: str, folder: str) -> None:
        self.adapter = adapter
        self.expected = expected
        self.folder = folder
        super().__init__(
            f"The IP-Adapter {adapter} needs its image encoder, {expected}, which is not installed.",
            f"Put {expected} in {folder} (or in a clip_vision folder of your model paths).",
        )


class MissingReduxEncoderError(MissingImageEncoderError):
    """A FLUX.1 Redux was found but not the SigLIP vision encoder it reads pictures with.

    ``expected`` names the encoder's file (ComfyUI's name for it), ``folder`` where to put it.
    """

    def __init__(self, adapter: str, expected: str, folder: str) -> None:
        self.adapter = adapter
        self.expected = expected
        self.folder = folder
        ModelNotFoundError.__init__(
            self,
            f"The FLUX.1 Redux {adapter} needs its SigLIP image encoder, {expected}, which is not installed.",
            f"Put {expected} in {folder} (or the FLUX.1-Redux-dev folder's image_encoder beside it).",
        )


class CorruptModelError(EngineError):
    """The file exists but is not a model we can read (truncated, wrong keys, bad config)."""

    default_hint = "The file may be incomplete or not a Stable Diffusion model; download it again."


class UnsafeModelError(EngineError):
    """A pickle checkpoint that would need to run arbitrary code to load; refused."""

    default_hint = "Use the .safetensors version of this model instead."


class UnsupportedModeError(EngineError):
    """The model family cannot do what the request asks (e.g. no ControlNet for it)."""

    default_hint = "Choose a model that supports this, or turn the option off."


class OutOfMemoryError(EngineError):
    """The device ran out of memory during the generation."""

    default_hint = (
        "Try a smaller area, a smaller batch, or enable CPU offload / VAE tiling in the settings."
    )


class CancelledError(EngineError):
    """The run was cancelled by the user (raised internally; reported as a Cancelled event)."""

    def __init__(self, message: str = "Generation cancelled.", hint: str | None = "") -> None:
        super().__init__(message, hint)


class NetworkUnavailableError(EngineError):
    """A hub model id was requested but is not cached locally and there is no network."""

    default_hint = (
        "Connect to the internet once to download it, or pick a local .safetensors file."
    )


class InvalidRequestError(EngineError):
    """The request itself is inconsistent (sizes disagree, values out of range)."""

    default_hint = "This is a bug in the caller; the message names the field."


class UnsupportedUpscalerError(EngineError):
    """A super-resolution file of an architecture Sfumato cannot run (not ESRGAN/RRDBNet,
    and spandrel, which reads the others, is not installed or does not know it either)."""

    default_hint = (
        "Use an ESRGAN or Real-ESRGAN file, or install spandrel for the other architectures: "
        "pip install 'sfumato[upscale]' (it needs the torchvision build that matches your torch)."
    )


class MissingDepthEstimatorError(ModelNotFoundError):
    """No depth estimator is installed for "depth from the picture".

    ``expected`` names what to download (a transformers folder: ``config.json``,
    ``model.safetensors``, ``preprocessor_config.json``), ``folder`` where to put it.
    """

    def __init__(self, expected: str, folder: str, message: str | None = None) -> None:
        self.expected = expected
        self.folder = folder
        super().__init__(
            message or "No depth estimator is installed: a depth map from the picture needs one.",
            f"Put {expected} (the whole folder: config.json, model.safetensors, preprocessor_config.json) "
            f"in {folder}, or add its folder to your model paths.",
        )


class MissingPoseEstimatorError(ModelNotFoundError):
    """No pose estimator is installed for "Pose from Image".

    ``expected`` names what to download (a transformers VitPose folder: ``config.json``,
    ``model.safetensors``, ``preprocessor_config.json``), ``folder`` where to put it.
    """

    def __init__(self, expected: str, folder: str, message: str | None = None) -> None:
        self.expected = expected
        self.folder = folder
        super().__init__(
            message or "No pose estimator is installed: finding the pose in a picture needs one (VitPose).",
            f"Put {expected} (the whole folder: config.json, model.safetensors, preprocessor_config.json) "
            f"in {folder}, or add its folder to your model paths. For several people, put a person "
            f"detector beside it (PekingU/rtdetr_r50vd_coco_o365).",
        )

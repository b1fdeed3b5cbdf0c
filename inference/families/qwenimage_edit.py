"""Qwen-Image-Edit and Qwen-Image-Edit-Plus: Qwen-Image (:mod:`.qwenimage`) trained for
instruction edits ("make it night", "remove the lamp post").

The picture to edit reaches the model twice, as diffusers' ``QwenImageEditPipeline`` and
``QwenImageEditPlusPipeline`` give it:

- **through the text encoder**: Qwen2.5-VL reads the picture with its vision tower beside
  the instruction, in the Edit template (a system prompt asking to describe the picture
  and how the instruction changes it, then ``<|vision_start|><|image_pad|><|vision_end|>``
  and the instruction; its first 64 tokens dropped after the encoder, not truncated to a
  length). The folder's ``processor`` (``Qwen2VLProcessor``) turns the picture into
  patches, at its own size rules (multiples of 28 px). Edit-Plus names each picture
  ("Picture 1: …, Picture 2: …") and gives the vision tower each picture at about
  384×384 (``CONDITION_IMAGE_SIZE``: the image encoder's fixed input size, the one
  resampling the engine does); Edit gives it the picture at its own size.
- **as context latents**: the picture's VAE latents, packed like the noise and appended to
  the image tokens; the transformer's rotary positions take each picture as one more frame
  (``img_shapes``) and the prediction keeps the noise tokens' part
  (:class:`~sfumato.inference.denoisers.qwenimage.QwenImageDenoiser`).

The pipelines resize the picture for the VAE to about 1 megapixel (and the generation to
it); the engine takes the picture at the request's size and each reference at its own, the
planner's choice. Prompt weights (A1111 syntax) are not read by the Edit models: the text
is read plain. Guidance is Qwen-Image's true CFG with norm rescale; the negative prompt is
read with the picture too. Without a picture the Edit pipelines do not run, so the
families do edits only (:attr:`supported_modes`); Edit-Plus takes reference pictures
(:attr:`takes_references`) after the picture to edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfumato.inference.families.qwenimage import QwenImageFamily
from sfumato.inference.families.t5 import plain_text
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import QWENIMAGE_EDIT, QWENIMAGE_EDIT_PLUS

if TYPE_CHECKING:
    import torch
    from sfumato.inference.embeddings import EmbeddingLibrary

__all__ = ["PictureProcessor", "QwenImageEditFamily", "QwenImageEditPlusFamily"]

#: the token the chat text marks a picture with, repeated once per merged vision patch
IMAGE_TOKEN = "<|image_pad|>"


class PictureProcessor:
    """What the Edit pipelines call as ``processor(text=..., images=..., padding=True,
    return_tensors="pt")``: transformers' ``Qwen2VLProcessor`` for text with pictures.

    transformers 5 cannot build ``Qwen2VLProcessor`` without torchvision (its video
    processor needs it, even for pictures alone), and Sfumato does not install torchvision;
    so the folder's ``processor`` is read as its two working parts — the image processor
    (``Qwen2VLImageProcessor``: patches, ``image_grid_thw``) and the tokenizer — and this
    does the rest of the processor's call: each ``<|image_pad|>`` becomes one token per
    merged patch of its picture, then the text is tokenised. The result equals
    ``Qwen2VLProcessor``'s (``tests/inference/test_qwen_edit.py``).
    """

    def __init__(self, tokenizer: Any, image_processor: Any) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor

    def __call__(self, text: Any, images: Any = None, padding: bool = True, return_tensors: str = "pt") -> Any:
        from transformers import BatchFeature

        texts = [text] if isinstance(text, str) else list(text)
        data: dict[str, Any] = {}
        if images is not None:
            pictures = images if isinstance(images, list) else [images]
            vision = self.image_processor(images=pictures, return_tensors=return_tensors)
            data.update(vision)
            merge = int(self.image_processor.merge_size) ** 2
            index = 0
            expanded = []
            for line in texts:
                while IMAGE_TOKEN in line:
                    count = int(vision["image_grid_thw"][index].prod()) // merge
                    line = line.replace(IMAGE_TOKEN, "<|placeholder|>" * count, 1)
                    index += 1
                expanded.append(line.replace("<|placeholder|>", IMAGE_TOKEN))
            texts = expanded
        data.update(self.tokenizer(texts, padding=padding, return_tensors=return_tensors))
        return BatchFeature(data=data)


class QwenImageEditFamily(QwenImageFamily):
    name = QWENIMAGE_EDIT
    label = "Qwen-Image-Edit"
    edits = True
    prompt_reads_pictures = True
    supported_modes = frozenset({Mode.EDIT, Mode.LORA})
    pipelines = ("QwenImageEditPipeline", "QwenImageEditInpaintPipeline")
    #: a folder naming no pipeline class is Qwen-Image's: only the class tells Edit apart
    transformer_class = ""
    controlnet_class = ""

    def controlnet_mismatch(self, net: Any, pipe: Any) -> str | None:
        return "Qwen-Image-Edit takes no ControlNet"

    def load_folder(self, path: Path, *, torch_dtype: torch.dtype, inpaint: bool) -> Any:
        """The Edit pipeline without transformers' processor (:class:`PictureProcessor`
        stands in, from the folder's ``processor`` image-processor and tokenizer files)."""
        from transformers import AutoTokenizer, Qwen2VLImageProcessor

        cls = self.pipeline_class(inpaint=inpaint)
        pipe = cls.from_pretrained(str(path), torch_dtype=torch_dtype, local_files_only=True, processor=None)
        folder = str(Path(path) / "processor")
        image_processor = Qwen2VLImageProcessor.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        pipe.processor = PictureProcessor(tokenizer, image_processor)
        return pipe

    def pipeline_class(self, *, inpaint: bool) -> type[Any]:
        import diffusers

        return getattr(diffusers, self.pipelines[0])  # type: ignore[no-any-return]

    def vision_pictures(self, pipe: Any, pictures: Sequence[Any]) -> Any:
        """What the pipeline hands its processor: the picture to edit, as a PIL image."""
        from PIL import Image

        return Image.fromarray(pictures[0])

    def encode_prompts(
        self,
        pipe: Any,
        prompts: list[str],
        device: torch.device,
        *,
        negative: bool = False,
        embeddings: EmbeddingLibrary | None = None,
        pictures: Sequence[Any] = (),
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(tokens (N, T, D), None)``: each prompt's Qwen2.5-VL hidden states after the Edit
        template, the pictures read by the vision tower with it; real tokens only."""
        import torch

        images = self.vision_pictures(pipe, pictures) if pictures else None
        rows = []
        with torch.inference_mode():
            for prompt in prompts:
                embeds, mask = pipe._get_qwen_prompt_embeds(prompt=[plain_text(prompt)], image=images, device=device)
                rows.append(embeds[0, : int(mask[0].sum())])
        length = max(r.shape[0] for r in rows)
        return torch.stack([torch.nn.functional.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows]), None


class QwenImageEditPlusFamily(QwenImageEditFamily):
    name = QWENIMAGE_EDIT_PLUS
    label = "Qwen-Image-Edit-Plus"
    takes_references = True
    pipelines = ("QwenImageEditPlusPipeline", "QwenImageEditPlusPipeline")

    def vision_pictures(self, pipe: Any, pictures: Sequence[Any]) -> Any:
        """Each picture at about 384×384 (multiples of 32, its aspect kept), as the pipeline
        resizes them for the vision tower."""
        from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus
        from PIL import Image

        resized = []
        for picture in pictures:
            h, w = picture.shape[:2]
            cw, ch = plus.calculate_dimensions(plus.CONDITION_IMAGE_SIZE, w / h)
            resized.append(pipe.image_processor.resize(Image.fromarray(picture), ch, cw))
        return resized

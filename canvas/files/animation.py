"""A sequence of pictures saved as an animation: live mode's recording.

:class:`FrameRecorder` keeps the frames it is given (uint8 RGB, each scaled to at most
:data:`MAX_SIDE` a side, so a long session on a large canvas stays bounded: 100 frames of
1024² are 300 MB at the most, and the recorder drops the oldest beyond :data:`MAX_FRAMES`)
with the time each arrived, and :func:`save_frames` writes them as an **animated WebP**
(``.webp``: each frame shown as long as it was on screen, clamped to
[:data:`MIN_FRAME_MS`, :data:`MAX_FRAME_MS`]) or as a **numbered PNG folder** (any other
path: ``frame-0001.png``…, created; an existing non-empty folder is refused, nothing is
overwritten). Writes go through a temporary name and a rename, so a failed save leaves no
half file.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sfumato.canvas.files.file_errors import SaveError

__all__ = ["MAX_FRAMES", "MAX_SIDE", "FrameRecorder", "save_frames"]

MAX_SIDE = 1024
MAX_FRAMES = 300
MIN_FRAME_MS = 40
MAX_FRAME_MS = 2000


def _fit(rgb: np.ndarray) -> np.ndarray:
    rgb = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[..., :3])
    h, w = rgb.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return rgb.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


class FrameRecorder:
    """Frames with their arrival times (seconds, any monotonic clock)."""

    def __init__(self) -> None:
        self._frames: deque[tuple[float, np.ndarray]] = deque(maxlen=MAX_FRAMES)

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, rgb: np.ndarray, now: float) -> None:
        """Keep ``rgb`` (uint8 ``(h, w, 3|4)``; alpha is dropped) as the next frame."""
        self._frames.append((now, _fit(rgb)))

    def clear(self) -> None:
        self._frames.clear()

    def frames(self) -> list[np.ndarray]:
        return [frame for _, frame in self._frames]

    def durations_ms(self) -> list[int]:
        """How long each frame was on screen (the last one: :data:`MAX_FRAME_MS`)."""
        times = [t for t, _ in self._frames]
        gaps = [round((b - a) * 1000) for a, b in zip(times, times[1:])] + [MAX_FRAME_MS]
        return [min(MAX_FRAME_MS, max(MIN_FRAME_MS, gap)) for gap in gaps]

    def save(self, path: str | Path) -> Path:
        return save_frames(self.frames(), path, self.durations_ms())


def save_frames(frames: Sequence[np.ndarray], path: str | Path, durations_ms: Sequence[int] | None = None) -> Path:
    """Write ``frames`` (uint8 RGB) to ``path`` (see the module docstring); returns it.

    Frames of different sizes (a canvas resized mid-recording) are scaled to the first
    one's size. Raises :class:`~sfumato.canvas.files.file_errors.SaveError` with a message for
    the artist.
    """
    path = Path(path)
    if not frames:
        raise SaveError(path, "cannot save: nothing was recorded")
    first = np.asarray(frames[0])
    size = (first.shape[1], first.shape[0])
    images = [
        Image.fromarray(np.ascontiguousarray(np.asarray(f, dtype=np.uint8)[..., :3])).resize(size)
        if (f.shape[1], f.shape[0]) != size
        else Image.fromarray(np.ascontiguousarray(np.asarray(f, dtype=np.uint8)[..., :3]))
        for f in frames
    ]
    if len(images) and not path.parent.is_dir():
        raise SaveError(path, f"cannot save: the folder {path.parent} does not exist")
    durations = list(durations_ms) if durations_ms is not None else [MIN_FRAME_MS * 5] * len(images)
    if len(durations) != len(images):
        raise ValueError(f"{len(images)} frames but {len(durations)} durations")
    try:
        if path.suffix.lower() == ".webp":
            _save_webp(images, durations, path)
        else:
            _save_png_folder(images, path)
    except OSError as error:
        raise SaveError(path, f"cannot save: {error.strerror or error}") from error
    return path


def _save_webp(images: list[Image.Image], durations: list[int], path: Path) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        images[0].save(
            temp, format="WEBP", save_all=True, append_images=images[1:], duration=durations,
            loop=0, quality=90, method=4,
        )
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _save_png_folder(images: list[Image.Image], folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise SaveError(folder, "cannot save the frames here: it exists and is not an empty folder")
    parent = folder.parent
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
    try:
        digits = max(4, len(str(len(images))))
        for index, image in enumerate(images, start=1):
            image.save(temp / f"frame-{index:0{digits}d}.png", format="PNG", compress_level=6)
        if folder.exists():
            folder.rmdir()
        os.replace(temp, folder)
    finally:
        if temp.exists():
            for leftover in temp.iterdir():
                leftover.unlink()
            temp.rmdir()

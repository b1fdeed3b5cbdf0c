"""Live mode's recording: animated WebP or a numbered PNG folder, bounded in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence
from sfumato.canvas.files.animation import (
    MAX_FRAME_MS,
    MAX_SIDE,
    MIN_FRAME_MS,
    FrameRecorder,
    save_frames,
)
from sfumato.canvas.files.file_errors import SaveError


def _frame(value: int, size: tuple[int, int] = (48, 32)) -> np.ndarray:
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[..., 0] = value
    rgb[: size[1] // 2, :, 2] = 255 - value
    return rgb


def test_an_animated_webp_holds_every_frame_for_as_long_as_it_was_shown(tmp_path: Path) -> None:
    recorder = FrameRecorder()
    for i, t in enumerate([0.0, 0.5, 0.52, 1.9, 10.0]):
        recorder.add(_frame(40 * i), t)
    assert recorder.durations_ms() == [500, MIN_FRAME_MS, 1380, MAX_FRAME_MS, MAX_FRAME_MS]
    path = recorder.save(tmp_path / "live.webp")
    with Image.open(path) as image:
        assert image.format == "WEBP" and image.n_frames == 5
        frames, shown = [], []
        for frame in ImageSequence.Iterator(image):
            frames.append(np.asarray(frame.convert("RGB")))  # decodes it, which reads its duration
            shown.append(frame.info.get("duration"))
    assert shown == [500, MIN_FRAME_MS, 1380, MAX_FRAME_MS, MAX_FRAME_MS]
    for i, frame in enumerate(frames):  # lossy, but each frame is its own picture
        assert abs(int(frame[..., 0].mean()) - 40 * i) <= 6
    assert not [p for p in tmp_path.iterdir() if p.name != "live.webp"]  # no temporary left


def test_a_png_folder_is_numbered_lossless_and_never_overwrites(tmp_path: Path) -> None:
    frames = [_frame(10), _frame(200)]
    out = save_frames(frames, tmp_path / "take")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["frame-0001.png", "frame-0002.png"]
    assert np.array_equal(np.asarray(Image.open(out / "frame-0002.png")), frames[1])
    with pytest.raises(SaveError, match="not an empty folder"):
        save_frames(frames, out)
    with pytest.raises(SaveError, match="nothing was recorded"):
        save_frames([], tmp_path / "empty")


def test_frames_are_kept_small_and_sizes_that_change_are_scaled_to_the_first(tmp_path: Path) -> None:
    recorder = FrameRecorder()
    recorder.add(np.zeros((4000, 2000, 4), np.uint8), 0.0)
    assert recorder.frames()[0].shape == (MAX_SIDE, MAX_SIDE // 2, 3)
    out = save_frames([_frame(0, (40, 40)), _frame(100, (80, 80))], tmp_path / "mixed")
    assert Image.open(out / "frame-0002.png").size == (40, 40)


def test_a_save_into_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SaveError, match="cannot save"):
        save_frames([_frame(0)], tmp_path / "missing" / "live.webp")

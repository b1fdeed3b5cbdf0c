"""Full-size SD 1.5 single-file loading through the shipped configs.

Writes a random-weight checkpoint in the released layout (≈ 2 GB in fp16) and loads it
with no config override, i.e. exactly the path an artist's download takes: shipped
configs, shipped tokenizer, no network (see :mod:`fullsize_checkpoint`).

Measured on the 2-core development machine (writing the checkpoint included): 20 s wall
clock, 3.3 GB peak resident memory. The SDXL equivalent (≈ 7 GB, 97 s, 9.4 GB peak) is
too heavy for the suite: run ``python tools/check_fullsize_loading.py sdxl``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fullsize_checkpoint import check_full_size_loading

pytestmark = pytest.mark.slow


def test_full_size_sd15_checkpoint_loads_offline(tmp_path: Path) -> None:
    check_full_size_loading("sd15", tmp_path / "sd15.safetensors")

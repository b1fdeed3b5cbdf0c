"""Check that full-size single-file checkpoints load offline through the shipped configs.

Writes a random-weight checkpoint in the released layout for each family named (SDXL ≈
7 GB on disk, ≈ 9.4 GB peak memory, ≈ 100 s on a 2-core machine) into a temporary
folder and loads it with no config override, exactly as an artist's download loads:
shipped configs, shipped tokenizers, no network. The SD 1.5 case also runs in the test
suite (``tests/inference/test_single_file_fullsize.py``); SDXL is too heavy for it.

    python tools/check_fullsize_loading.py            # sdxl
    python tools/check_fullsize_loading.py sd15 sdxl
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

TESTS = Path(__file__).resolve().parent.parent / "tests"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("families", nargs="*", default=["sdxl"], choices=["sd15", "sdxl"])
    parser.add_argument("--dir", type=Path, default=None, help="where to write the checkpoint (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(TESTS))  # the checkpoint writer is the test suite's helper
    from fullsize_checkpoint import check_full_size_loading

    failed = 0
    for family in args.families:
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            start = time.perf_counter()
            try:
                check_full_size_loading(family, Path(folder) / f"{family}.safetensors")
            except AssertionError as error:
                failed += 1
                log.error("%s: FAILED %s", family, error)
                continue
            log.info("%s: loads offline (%.0f s)", family, time.perf_counter() - start)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

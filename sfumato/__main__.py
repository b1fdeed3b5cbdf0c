"""``python -m sfumato``: the same as the ``sfumato`` command."""

from __future__ import annotations

import sys

from sfumato.cli import main

if __name__ == "__main__":
    sys.exit(main())

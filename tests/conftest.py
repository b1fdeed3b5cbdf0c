"""Session-wide test guards: offline, headless, and no network at all."""

from __future__ import annotations

import os
import socket
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# The user's own settings and model folders never leak into a test run.
os.environ["SFUMATO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="sfumato-test-config-")
os.environ["SFUMATO_RECOVERY_DIR"] = tempfile.mkdtemp(prefix="sfumato-test-recovery-")
os.environ["SFUMATO_NO_SYSTEM_MODEL_DIRS"] = "1"


import pytest  # noqa: E402


class NetworkAccessError(RuntimeError):
    """Raised when code under test tries to open a network connection."""


_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:
    # Unix sockets (Qt, X11) are local; anything with a host is the network.
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise NetworkAccessError(f"tests must not touch the network (tried {address!r})")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]

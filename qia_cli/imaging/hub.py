"""The Hugging Face Hub as the model loaders see it: is it reachable, and going offline when it is not."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

_REACHABLE: bool | None = None  # asked once per process: the network does not change within a command


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 2.0) -> bool:
    """False when offline mode is set or huggingface.co:443 doesn't answer within `timeout`."""
    global _REACHABLE
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return False
    if _REACHABLE is None:
        url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        port = url.port or (80 if url.scheme == "http" else 443)
        try:
            with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
                _REACHABLE = True
        except OSError:
            _REACHABLE = False
    return _REACHABLE


def go_offline() -> None:
    """Offline mode for the rest of the process, so that no loader waits on the network again."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:  # huggingface_hub reads the variable at import time
        import huggingface_hub.constants as hc

        hc.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):
        pass

"""Where the worker keeps what it downloads or computes once per machine."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str, override: str) -> Path:
    """``$override`` if set, else ``qembed/<kind>`` under ``$XDG_CACHE_HOME`` (``~/.cache``)."""
    chosen = os.environ.get(override)
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qembed" / kind

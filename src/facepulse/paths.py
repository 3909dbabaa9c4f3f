"""Where the project finds things on disk."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The real-data folder: ``$FACEPULSE_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("FACEPULSE_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_cache_dir() -> Path:
    """The preprocessing cache used when none is given (shared by ``facepulse preprocess``,
    ``evaluate`` and ``train``): ``$FACEPULSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/facepulse``,
    else ``~/.cache/facepulse``."""
    env = os.environ.get("FACEPULSE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "facepulse"

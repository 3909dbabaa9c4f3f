"""Where the project finds things on disk."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The real-data folder: ``$FACEPULSE_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("FACEPULSE_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"

"""Shared test settings."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_default_cache(tmp_path_factory):
    """Commands run without --cache-dir use the default cache folder: point it at a
    folder of this test session, never at the user's own cache."""
    saved = os.environ.get("FACEPULSE_CACHE_DIR")
    os.environ["FACEPULSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("default_cache"))
    yield
    if saved is None:
        os.environ.pop("FACEPULSE_CACHE_DIR", None)
    else:
        os.environ["FACEPULSE_CACHE_DIR"] = saved

"""Live heart rate: rolling estimates from cameras, network streams, files and browsers.

- :mod:`facepulse.live.estimator`: :class:`LiveEstimator`, the estimation seam (per-frame
  ``push``, once-a-second ``update`` -> :class:`LiveUpdate`);
- :mod:`facepulse.live.sources`: camera / URL / file sources with realtime pacing
  (:func:`open_live_source`);
- :mod:`facepulse.live.session`: the loop source -> face tracker -> estimator -> updates
  (:func:`run_live`);
- :mod:`facepulse.live.display`: the terminal display (rich Live) and JSON lines;
- :mod:`facepulse.live.server`: the local web app (``facepulse serve``).

Names are imported lazily so ``import facepulse.live`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LiveEstimator": "estimator",
    "LiveUpdate": "estimator",
    "confidence_from_snr": "estimator",
    "LiveFrame": "sources",
    "LiveSource": "sources",
    "open_live_source": "sources",
    "LiveSession": "session",
    "run_live": "session",
    "create_app": "server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"facepulse.live.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'facepulse.live' has no attribute {name!r}")

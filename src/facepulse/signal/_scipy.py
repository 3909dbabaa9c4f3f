"""``scipy.signal`` without the ~0.3-0.5 s of ``scipy.stats`` its import pulls in.

``scipy.signal``'s peak finding imports one function from ``scipy.stats`` when the package
loads (``scoreatpercentile``, for :func:`scipy.signal.find_peaks_cwt`, which facepulse
never calls), and importing ``scipy.stats`` is most of the cost of importing
``scipy.signal``: about a tenth of a ``facepulse predict`` run on a one-minute clip
(docs/benchmarks.md). While ``scipy.signal`` imports, ``scipy.stats`` is a stand-in that
hands out that function as a forwarder to the real one; any other name loads the real
``scipy.stats`` on the spot. The stand-in leaves ``sys.modules`` right after, so a later
``import scipy.stats`` (ours, the user's, or the forwarder's first call) loads the real
package. Nothing is stood in for when either module is already imported.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

__all__ = ["scipy_signal"]

#: What ``scipy.signal`` takes from ``scipy.stats`` at import time and only calls later.
_DEFERRED = frozenset({"scoreatpercentile"})

_lock = threading.Lock()


class _StatsStandIn(types.ModuleType):
    """``scipy.stats`` while ``scipy.signal`` imports."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)  # import-machinery probes
        if attr in _DEFERRED:
            return _forwarder(self.__name__, attr)
        # anything else is needed now: step aside and load the real module
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _forwarder(module: str, name: str) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = f"Calls ``{module}.{name}``, importing it on first use."
    return forward


def scipy_signal() -> types.ModuleType:
    """The ``scipy.signal`` module, imported without ``scipy.stats`` the first time."""
    if "scipy.signal" in sys.modules:
        return importlib.import_module("scipy.signal")  # waits if another thread is importing it
    with _lock:
        if "scipy.signal" in sys.modules or "scipy.stats" in sys.modules:
            return importlib.import_module("scipy.signal")
        stand_in = _StatsStandIn("scipy.stats")
        sys.modules["scipy.stats"] = stand_in
        try:
            return importlib.import_module("scipy.signal")
        finally:
            if sys.modules.get("scipy.stats") is stand_in:
                del sys.modules["scipy.stats"]

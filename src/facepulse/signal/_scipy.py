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

from facepulse._standins import StandIn, standing_in

__all__ = ["scipy_signal"]

#: What ``scipy.signal`` takes from ``scipy.stats`` at import time and only calls later.
_DEFERRED = frozenset({"scoreatpercentile"})

_lock = threading.Lock()


def scipy_signal() -> types.ModuleType:
    """The ``scipy.signal`` module, imported without ``scipy.stats`` the first time."""
    if "scipy.signal" in sys.modules:
        return importlib.import_module("scipy.signal")  # waits if another thread is importing it
    with _lock:
        if "scipy.signal" in sys.modules or "scipy.stats" in sys.modules:
            return importlib.import_module("scipy.signal")
        with standing_in(StandIn("scipy.stats", _DEFERRED)):
            return importlib.import_module("scipy.signal")

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

import types

from facepulse._standins import import_with_stand_ins

__all__ = ["scipy_signal"]

#: What ``scipy.signal`` takes from ``scipy.stats`` at import time and only calls later.
_DEFERRED = frozenset({"scoreatpercentile"})


def scipy_signal() -> types.ModuleType:
    """The ``scipy.signal`` module, imported without ``scipy.stats`` the first time."""
    return import_with_stand_ins("scipy.signal", {"scipy.stats": ()}, {"scipy.stats": _DEFERRED})

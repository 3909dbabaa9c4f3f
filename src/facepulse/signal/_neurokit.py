"""neurokit2 without the ~0.7 s of scikit-learn and matplotlib its import pulls in.

neurokit2's package init imports every module it has, and with them scikit-learn (for
clustering, mixture models and complexity measures) and matplotlib (for its plots): none
of which facepulse's beat detection and HRV (:mod:`facepulse.signal.hrv`) call. On a
short clean clip, where ``facepulse predict`` reports HRV, that import was about a
quarter of the run (docs/benchmarks.md). While neurokit2 imports, those packages and the
submodules it names at import time are stand-ins (:mod:`facepulse._standins`); they
leave ``sys.modules`` right after, so a later import (ours, the user's, or a neurokit2
function that needs one) loads the real package. A package already imported is used as
it is.
"""

from __future__ import annotations

import types

from facepulse._standins import import_with_stand_ins

__all__ = ["neurokit2"]

#: Packages neurokit2 imports when it loads but facepulse never needs, with the
#: submodules its modules import at top level (neurokit2 0.3). A release that imports
#: another one at load time gets a plain import (see :func:`import_with_stand_ins`).
_HEAVY: dict[str, tuple[str, ...]] = {
    "sklearn": (
        "cluster", "datasets", "decomposition", "linear_model", "metrics", "metrics.pairwise",
        "mixture", "model_selection", "neighbors",
    ),
    "matplotlib": ("animation", "cm", "collections", "gridspec", "patches", "pyplot", "ticker"),
}


def neurokit2() -> types.ModuleType:
    """The ``neurokit2`` module, imported without scikit-learn and matplotlib the first time."""
    return import_with_stand_ins("neurokit2", _HEAVY)

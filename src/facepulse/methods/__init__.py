"""Classic (training-free) rPPG methods: mean skin colour trace -> pulse signal.

Every method is a pure function ``f(rgb: (N, 3) float, fps: float, **params) -> (N,)``
registered in :data:`METHODS`; importing this package registers them all. Outputs share
one polarity, that of blood volume (systole is a maximum, as in a contact PPG), and are
not necessarily band-limited: condition them with :mod:`facepulse.signal.filters` before
HR/HRV analysis. For traces with NaN gaps use :func:`apply_method`.

Add a method by decorating it with ``@METHODS.register("name")`` in a module imported here.
"""

from __future__ import annotations

from facepulse.methods._core import METHODS, MIN_DURATION_S, MethodFn, apply_method
from facepulse.methods.chrom import chrom
from facepulse.methods.green import green
from facepulse.methods.ica import ica
from facepulse.methods.lgi import lgi
from facepulse.methods.omit import omit
from facepulse.methods.pbv import pbv
from facepulse.methods.pos import pos

__all__ = [
    "METHODS",
    "MIN_DURATION_S",
    "MethodFn",
    "apply_method",
    "chrom",
    "green",
    "ica",
    "lgi",
    "omit",
    "pbv",
    "pos",
]

"""Stand-in modules: import a package without the heavy modules it pulls in for features
facepulse never uses (start-up time).

While the package imports (:func:`import_with_stand_ins`), each heavy module is a
:class:`StandIn` in ``sys.modules``; right after, the stand-ins leave, so any later
``import`` of the real module (ours, the user's, or a stand-in's first use) loads it.
Used for matplotlib under MediaPipe
(:func:`facepulse.face.detectors.import_mediapipe`), ``scipy.stats`` under
``scipy.signal`` (:mod:`facepulse.signal._scipy`) and scikit-learn and matplotlib under
neurokit2 (:mod:`facepulse.signal._neurokit`).
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["StandIn", "import_with_stand_ins", "package_stand_ins", "standing_in"]


class StandIn(types.ModuleType):
    """Stands in for module ``name``; the real one loads on first use.

    ``deferred``: names the importing package takes from the module at import time and
    only calls later; while standing in they are forwarders to the real functions. Any
    other name loads the real module on the spot (the stand-in steps aside first).
    """

    def __init__(self, name: str, deferred: frozenset[str] = frozenset()) -> None:
        super().__init__(name)
        self._deferred = deferred

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)  # import-machinery probes
        if attr in self._deferred and sys.modules.get(self.__name__) is self:
            return _forwarder(self.__name__, attr)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        try:
            return getattr(real, attr)
        except AttributeError:
            try:  # a package's submodule that nothing has imported yet
                return importlib.import_module(f"{self.__name__}.{attr}")
            except ModuleNotFoundError:
                raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}") from None


def _forwarder(module: str, name: str) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = f"Calls ``{module}.{name}``, importing it on first use."
    return forward


def package_stand_ins(
    package: str, submodules: tuple[str, ...] = (), deferred: frozenset[str] = frozenset()
) -> list[StandIn]:
    """Stand-ins for ``package`` (with ``deferred`` names, see :class:`StandIn`) and its
    dotted ``submodules`` (relative names), each an attribute of its parent, as
    ``import package.sub`` would leave them: code that runs ``import package.sub`` while
    they stand in gets them without loading anything."""
    made = {package: StandIn(package, deferred)}
    for sub in submodules:
        parts = sub.split(".")
        for k in range(1, len(parts) + 1):
            name = ".".join([package, *parts[:k]])
            if name not in made:
                made[name] = StandIn(name)
                setattr(made[name.rpartition(".")[0]], parts[k - 1], made[name])
    return list(made.values())


@contextmanager
def standing_in(*stand_ins: StandIn) -> Iterator[None]:
    """``stand_ins`` in ``sys.modules`` for the duration; each leaves unless replaced."""
    sys.modules.update({s.__name__: s for s in stand_ins})
    try:
        yield
    finally:
        for s in stand_ins:
            if sys.modules.get(s.__name__) is s:
                del sys.modules[s.__name__]


_lock = threading.Lock()


def import_with_stand_ins(
    name: str,
    heavy: Mapping[str, tuple[str, ...]],
    deferred: Mapping[str, frozenset[str]] | None = None,
) -> types.ModuleType:
    """``import name`` while each package of ``heavy`` that is not imported yet stands in,
    with the submodules ``name`` imports from it at load time (``heavy[package]``) and the
    names it takes from it then and only calls later (``deferred[package]``).

    Nothing stands in once ``name`` is imported. Should ``name`` import something of a
    stand-in that is not listed (a new release), the half-imported module is dropped and
    imported the plain way, so the worst case is the plain import's start-up time.
    """
    if name in sys.modules:
        return importlib.import_module(name)  # waits if another thread is importing it
    with _lock:
        if name in sys.modules:
            return importlib.import_module(name)
        deferred = deferred or {}
        stand_ins = [s for package, subs in heavy.items() if package not in sys.modules
                     for s in package_stand_ins(package, subs, deferred.get(package, frozenset()))]
        try:
            with standing_in(*stand_ins):
                return importlib.import_module(name)
        except ImportError:
            if not stand_ins:
                raise
            for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[module]
            return importlib.import_module(name)

"""Models that ship inside the package, by name (``predict --model default``).

Each packaged model is an ONNX file of ``facepulse export`` in ``facepulse/models/pretrained/``
next to a model card ``<name>.json``: what it is, what it was trained on, and its measured
figures (with the command that measured them). Nothing is downloaded: a name resolves to
a file of the installed package.

>>> [m.name for m in pretrained_models()]          # doctest: +SKIP
['tsnet-ubfc', 'tsnet-ubfc-teacher']
>>> resolve_model("default")                       # doctest: +SKIP
PosixPath('.../facepulse/models/pretrained/tsnet-ubfc-teacher.onnx')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from facepulse.errors import InputError

#: the name ``--model default`` stands for: the packaged model with the lowest
#: leave-one-subject-out error (docs/benchmarks.md, "The shipped model")
DEFAULT_MODEL = "tsnet-ubfc-teacher"
ALIASES = {"default": DEFAULT_MODEL}


@dataclass(frozen=True)
class PretrainedModel:
    """A packaged model: ``name``, its ``path`` (ONNX) and its model ``card`` (dict)."""

    name: str
    path: Path
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def _folder() -> Path:
    return Path(str(resources.files("facepulse.models").joinpath("pretrained")))


def pretrained_models() -> list[PretrainedModel]:
    """Every model that ships in the installed package (those whose card and file exist)."""
    out = []
    folder = _folder()
    for card_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            card = json.loads(card_path.read_text())
        except ValueError as err:
            raise InputError(f"{card_path}: bad model card ({err})") from None
        path = card_path.with_name(str(card.get("file", f"{card_path.stem}.onnx")))
        if path.is_file():
            out.append(PretrainedModel(card_path.stem, path, card))
    return out


def get_pretrained(name: str) -> PretrainedModel:
    """The packaged model ``name`` (or an alias such as ``default``); InputError if none."""
    wanted = ALIASES.get(name, name)
    models = pretrained_models()
    for model in models:
        if model.name == wanted:
            return model
    names = ", ".join(["default", *(m.name for m in models)]) if models else "none in this installation"
    raise InputError(
        f"model {name!r}: not a file and no such packaged model (available: {names}; see `facepulse models`)"
    )


def resolve_model(spec: str | Path) -> Path:
    """A model file for ``spec``: an existing ``.ckpt`` / ``.onnx`` path, else a packaged
    model's name (``default``, ``tsnet-ubfc``, ...; see ``facepulse models``)."""
    path = Path(spec)
    if path.is_file() or path.suffix.lower() in (".ckpt", ".onnx") or len(path.parts) > 1:
        return path  # a file (load_model reports a missing one by its path)
    return get_pretrained(str(spec)).path

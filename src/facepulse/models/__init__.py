"""Deep rPPG models: clips ``(B, 3, T, H, W)`` float -> pulse ``(B, T)``.

Build one by name with :func:`build_model` (names in ``MODELS``)::

    model = build_model("physnet", base_channels=8)
    pulse = model(normalize_clip(clips, "standardize"))   # (B, T)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from facepulse.errors import ConfigError
from facepulse.models.autohr import AutoHR, Cell
from facepulse.models.genotype import DEFAULT_GENOTYPE, Edge, Genotype, all_edges, as_genotype, without_tdc
from facepulse.models.normalize import NORMALIZATIONS, ClipNormalizer, diff_signal, normalize_clip
from facepulse.models.ops import OPS, SEARCH_SPACE, build_op, conv_equivalent, is_tdc
from facepulse.models.physnet import PhysNet
from facepulse.models.tdc import TDConv3d
from facepulse.models.tsnet import TSNet
from facepulse.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

__all__ = [
    "MODELS",
    "OPS",
    "NORMALIZATIONS",
    "SEARCH_SPACE",
    "AutoHR",
    "Cell",
    "ClipNormalizer",
    "DEFAULT_GENOTYPE",
    "Edge",
    "Genotype",
    "PhysNet",
    "TDConv3d",
    "TSNet",
    "all_edges",
    "as_genotype",
    "build_model",
    "build_op",
    "conv_equivalent",
    "inline_model_params",
    "diff_signal",
    "is_tdc",
    "normalize_clip",
    "without_tdc",
]


@MODELS.register("physnet")
def physnet(base_channels: int = 16, in_channels: int = 3) -> PhysNet:
    """PhysNet 3DCNN-ED with transposed-convolution upsampling (Yu et al., BMVC 2019)."""
    return PhysNet(base_channels=base_channels, upsample="transpose", in_channels=in_channels)


@MODELS.register("physnet_interp")
def physnet_interp(base_channels: int = 16, in_channels: int = 3) -> PhysNet:
    """PhysNet with interpolation + conv upsampling instead of transposed convolutions."""
    return PhysNet(base_channels=base_channels, upsample="interp", in_channels=in_channels)


@MODELS.register("autohr")
def autohr(
    genotype: Any = None, channels: int = 64, n_blocks: int = 4, upsample: str = "transpose", in_channels: int = 3
) -> AutoHR:
    """AutoHR backbone from a genotype (default: hand-written TDC cell) (Yu et al., IEEE SPL 2020)."""
    return AutoHR(genotype, channels=channels, n_blocks=n_blocks, upsample=upsample, in_channels=in_channels)


@MODELS.register("autohr_conv")
def autohr_conv(
    genotype: Any = None, channels: int = 64, n_blocks: int = 4, upsample: str = "transpose", in_channels: int = 3
) -> AutoHR:
    """AutoHR with every TDC op of the genotype replaced by its plain convolution (ablation)."""
    geno = without_tdc(DEFAULT_GENOTYPE if genotype is None else as_genotype(genotype))
    return AutoHR(geno, channels=channels, n_blocks=n_blocks, upsample=upsample, in_channels=in_channels)


@MODELS.register("tsnet")
def tsnet(channels: int = 16, temporal_blocks: int = 3, in_channels: int = 3) -> TSNet:
    """Small temporal-shift CNN for CPU (TS-CAN / EfficientPhys style; Liu et al., NeurIPS 2020)."""
    return TSNet(channels=channels, temporal_blocks=temporal_blocks, in_channels=in_channels)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the registered model ``name`` with keyword options.

    Raises ConfigError for an unknown name or an option the model does not take.
    """
    factory = MODELS.get(name)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as err:
        raise ConfigError(f"model {name!r}: {err}") from None
    return factory(**kwargs)


#: Models whose ``genotype`` option may name a genotype JSON file.
GENOTYPE_MODELS = ("autohr", "autohr_conv")


def inline_model_params(name: str, params: Mapping[str, Any], base_dir: str | Path | None = None) -> dict[str, Any]:
    """``params`` of model ``name`` with every file it names replaced by the file's content.

    An ``autohr`` / ``autohr_conv`` ``genotype`` given as a path to ``genotype.json`` becomes
    the genotype's dict, so that a config (and a checkpoint, which stores it) rebuilds the
    model from any working directory; the ``backbone_params`` of a ``saliency`` model are
    inlined the same way. A relative path is read relative to ``base_dir`` when given
    (the folder the path was written for), else to the working directory. Other params are
    returned unchanged. Raises InputError / ConfigError for an unreadable or invalid genotype.
    """
    out = dict(params)
    if name in GENOTYPE_MODELS and isinstance(out.get("genotype"), (str, Path)):
        path = Path(out["genotype"])
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        out["genotype"] = Genotype.load(path).to_dict()
    if name == "saliency" and isinstance(out.get("backbone_params"), Mapping):
        out["backbone_params"] = inline_model_params(
            str(out.get("backbone", "physnet")), out["backbone_params"], base_dir
        )
    return out

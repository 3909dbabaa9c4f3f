"""Dataset readers: one module per dataset layout, each registered in ``DATASETS``.

>>> from facepulse.datasets import DATASETS, get_reader
>>> DATASETS.names()  # doctest: +SKIP
['cohface', 'generic', 'mahnob-hci', 'mmpd', 'mmse-hr', 'pure', 'scamps', 'ubfc-phys', ...]
"""

from pathlib import Path

from facepulse.datasets import (  # noqa: F401  (importing a reader module registers it)
    cohface,
    generic,
    mahnob_hci,
    mmpd,
    mmse_hr,
    pure,
    scamps,
    ubfc_phys,
    ubfc_rppg,
    vipl_hr,
)
from facepulse.datasets import synthetic  # noqa: F401
from facepulse.datasets.base import DATASETS, DatasetReader, Record, Reference

__all__ = ["DATASETS", "DatasetReader", "Record", "Reference", "get_reader"]


def get_reader(name: str, root: str | Path) -> DatasetReader:
    """Instantiate the registered reader ``name`` on ``root`` (every built-in reader is
    registered by importing this package)."""
    return DATASETS.get(name)(root)

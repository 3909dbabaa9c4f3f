"""Subject-wise splits: no person may appear in two of train / val / test.

Subjects are named by *subject keys*: ``"<dataset>:<subject_id>"`` (see
:func:`subject_key`), so the same id in two datasets never collides. Within a single
dataset a split file may list bare subject ids; :meth:`Split.assign` matches either form.

Three ways to make a :class:`Split`:

- fixed lists: ``Split(train=[...], val=[...], test=[...])`` or :func:`load_split` on a
  YAML / JSON file with ``train`` / ``val`` / ``test`` lists;
- k-fold by subject: :func:`kfold_splits`;
- cross-dataset (train on A, test on B): :func:`cross_dataset_split`.

Random choices use ``numpy.random.default_rng(seed)`` on subjects sorted first, so a
seed gives the same split on every machine whatever order the records come in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facepulse.datasets._common import natural_key
from facepulse.datasets.base import Record
from facepulse.errors import ConfigError, InputError

SPLIT_NAMES = ("train", "val", "test")


def subject_key(record: Record) -> str:
    """The dataset-qualified subject of a record: ``"<dataset>:<subject_id>"``."""
    return f"{record.dataset}:{record.subject_id}"


def subjects_of(records: Iterable[Record]) -> list[str]:
    """The distinct subject keys of ``records``, in natural sort order."""
    return sorted({subject_key(r) for r in records}, key=natural_key)


@dataclass(frozen=True)
class Split:
    """Disjoint lists of subject keys (or bare subject ids) for train / val / test.

    Raises ConfigError if a subject is listed twice, in one list or across lists.
    """

    train: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for split_name in SPLIT_NAMES:
            items = getattr(self, split_name)
            if isinstance(items, str):
                raise ConfigError(f"split {split_name!r} must be a list of subjects, not text")
            items = tuple(str(s) for s in items)
            object.__setattr__(self, split_name, items)
            for s in items:
                if s in seen:
                    where = self.name or "split"
                    if seen[s] == split_name:
                        raise ConfigError(
                            f"{where}: subject {s!r} is listed twice in {split_name!r}"
                        )
                    raise ConfigError(
                        f"{where}: subject {s!r} is in both {seen[s]!r} and {split_name!r}"
                    )
                seen[s] = split_name

    def subjects(self, split_name: str) -> tuple[str, ...]:
        if split_name not in SPLIT_NAMES:
            raise ConfigError(
                f"unknown split {split_name!r}; expected one of {', '.join(SPLIT_NAMES)}"
            )
        return getattr(self, split_name)

    def assign(
        self, records: Sequence[Record], *, require_all: bool = False
    ) -> dict[str, list[Record]]:
        """Records grouped by split: ``{"train": [...], "val": [...], "test": [...]}``.

        An entry matches a record by its subject key or, when it has no ``:``, by its bare
        subject id (then it must not match subjects of two datasets). Records of subjects
        in no list are left out, or raise ConfigError with ``require_all``. Raises
        ConfigError if a listed subject has no record (a typo would otherwise shrink a
        test set unnoticed).
        """
        where = self.name or "split"
        lookup: dict[str, str] = {}
        for split_name in SPLIT_NAMES:
            for entry in self.subjects(split_name):
                lookup[entry] = split_name
        out: dict[str, list[Record]] = {s: [] for s in SPLIT_NAMES}
        used: set[str] = set()
        bare_owner: dict[str, str] = {}
        for rec in records:
            key = subject_key(rec)
            if key in lookup and rec.subject_id in lookup and key != rec.subject_id:
                raise ConfigError(
                    f"{where}: subject listed both as {rec.subject_id!r} and as {key!r}"
                )
            entry = key if key in lookup else rec.subject_id if rec.subject_id in lookup else None
            if entry is None:
                if require_all:
                    raise ConfigError(f"{where}: subject {key!r} ({rec.video_id}) is in no split")
                continue
            if entry == rec.subject_id and entry != key:
                owner = bare_owner.setdefault(entry, rec.dataset)
                if owner != rec.dataset:
                    raise ConfigError(
                        f"{where}: subject {entry!r} exists in {owner!r} and {rec.dataset!r}; "
                        f"write it as '<dataset>:{entry}'"
                    )
            used.add(entry)
            out[lookup[entry]].append(rec)
        missing = [e for e in lookup if e not in used]
        if missing:
            raise ConfigError(f"{where}: subject {missing[0]!r} has no record in the dataset")
        return out


def load_split(path: str | Path) -> Split:
    """Read a fixed split from YAML or JSON: ``{train: [...], val: [...], test: [...]}``.

    Missing lists are empty; unknown keys, non-list values and a subject in two lists
    raise ConfigError naming the file.
    """
    import yaml  # YAML is a superset of JSON, so one parser reads both

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: split file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML/JSON{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with train / val / test lists")
    unknown = [k for k in data if k not in SPLIT_NAMES]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; expected train, val, test")
    lists = {}
    for split_name in SPLIT_NAMES:
        items = data.get(split_name) or []
        if not isinstance(items, list):
            raise ConfigError(f"{path}: {split_name!r} must be a list of subject ids")
        lists[split_name] = tuple(str(s) for s in items)
    return Split(**lists, name=str(path))


def _shuffled(subjects: Iterable[str], seed: int) -> list[str]:
    ordered = sorted(set(subjects), key=natural_key)
    rng = np.random.default_rng(seed)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def _take_val(pool: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Split ``pool`` (already shuffled) into (train, val) with ``round(f * n)`` val subjects."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * len(pool)))
    if val_fraction > 0 and n_val == 0 and len(pool) > 1:
        n_val = 1  # a requested validation set is never silently empty
    if n_val >= len(pool) and pool:
        raise ConfigError(
            f"val_fraction {val_fraction} leaves no training subject out of {len(pool)}"
        )
    return sorted(pool[n_val:], key=natural_key), sorted(pool[:n_val], key=natural_key)


def kfold_splits(
    subjects: Iterable[str], k: int, *, seed: int = 0, val_fraction: float = 0.0
) -> list[Split]:
    """``k`` folds by subject: fold i tests on one k-th of the subjects, trains on the rest.

    Subjects are shuffled with ``seed`` and dealt into k folds whose sizes differ by at
    most one; each test subject is in exactly one fold. With ``val_fraction`` > 0 that
    share of each fold's training subjects is held out as validation.
    """
    pool = _shuffled(subjects, seed)
    if k < 2:
        raise ConfigError(f"k must be at least 2, got {k}")
    if k > len(pool):
        raise ConfigError(f"k={k} folds need at least {k} subjects; got {len(pool)}")
    folds = [list(f) for f in np.array_split(np.array(pool, dtype=object), k)]
    splits = []
    for i, test in enumerate(folds):
        rest = [s for j, f in enumerate(folds) if j != i for s in f]
        train, val = _take_val(rest, val_fraction)
        test = sorted(test, key=natural_key)
        splits.append(Split(tuple(train), tuple(val), tuple(test), name=f"fold {i + 1}/{k}"))
    return splits


def random_split(
    subjects: Iterable[str], *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> Split:
    """One train / val / test split by subject with the given fractions (rounded)."""
    pool = _shuffled(subjects, seed)
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = max(1, int(round(test_fraction * len(pool))))
    if n_test >= len(pool):
        raise ConfigError(
            f"test_fraction {test_fraction} leaves no training subject out of {len(pool)}"
        )
    test, rest = pool[:n_test], pool[n_test:]
    train, val = _take_val(rest, val_fraction / (1.0 - test_fraction) if val_fraction else 0.0)
    test = sorted(test, key=natural_key)
    return Split(tuple(train), tuple(val), tuple(test), name=f"random split (seed {seed})")


def cross_dataset_split(
    train_records: Sequence[Record],
    test_records: Sequence[Record],
    *,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> Split:
    """Train (and validate) on the subjects of ``train_records``, test on ``test_records``.

    Subjects are dataset-qualified keys; a subject key present on both sides (the same
    dataset used for training and testing) raises ConfigError.
    """
    train_subjects = subjects_of(train_records)
    test_subjects = subjects_of(test_records)
    if not train_subjects or not test_subjects:
        raise ConfigError("cross-dataset split needs records on both the training and test side")
    train, val = _take_val(_shuffled(train_subjects, seed), val_fraction)
    return Split(
        train=tuple(train),
        val=tuple(val),
        test=tuple(test_subjects),
        name="cross-dataset split",
    )

"""Subject-wise splits: disjointness, determinism, k-fold coverage, cross-dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepulse.datasets import Record
from facepulse.errors import ConfigError
from facepulse.eval.splits import (
    Split,
    cross_dataset_split,
    kfold_splits,
    load_split,
    random_split,
    subject_key,
    subjects_of,
)


def recs(dataset: str, subjects: list[str], per_subject: int = 2) -> list[Record]:
    return [
        Record(dataset, f"{s}_{k}", s, Path(f"/data/{s}_{k}.avi"))
        for s in subjects
        for k in range(per_subject)
    ]


UBFC = recs("ubfc-rppg", [f"subject{i}" for i in (1, 3, 4, 5, 8, 9, 10, 11, 12, 13)])
PURE = recs("pure", ["01", "02", "03"], per_subject=6)


def test_fixed_split_rejects_a_subject_in_two_lists():
    with pytest.raises(ConfigError, match="subject 's2' is in both 'train' and 'test'"):
        Split(train=("s1", "s2"), test=("s2",))
    with pytest.raises(ConfigError, match="subject 's1' is listed twice in 'val'"):
        Split(val=("s1", "s1"))
    with pytest.raises(ConfigError, match="must be a list of subjects"):
        Split(train="s1")


def test_assign_groups_records_by_subject():
    split = Split(train=("subject1", "subject3"), val=("subject4",), test=("ubfc-rppg:subject10",))
    out = split.assign(UBFC)
    train_ids = [r.video_id for r in out["train"]]
    assert train_ids == ["subject1_0", "subject1_1", "subject3_0", "subject3_1"]
    assert {r.subject_id for r in out["val"]} == {"subject4"}
    assert {r.subject_id for r in out["test"]} == {"subject10"}
    with pytest.raises(ConfigError, match="subject 'ubfc-rppg:subject5' .* is in no split"):
        split.assign(UBFC, require_all=True)
    with pytest.raises(ConfigError, match="subject 'subject99' has no record"):
        Split(train=("subject99",)).assign(UBFC)


def test_bare_ids_shared_by_two_datasets_are_ambiguous():
    other = recs("cohface", ["subject1"])
    with pytest.raises(ConfigError, match="subject 'subject1' exists in 'ubfc-rppg' and 'cohface'"):
        Split(train=("subject1",)).assign(UBFC + other)
    with pytest.raises(ConfigError, match="listed both as 'subject1' and as 'cohface:subject1'"):
        Split(train=("subject1",), test=("cohface:subject1",)).assign(other)
    out = Split(train=("cohface:subject1",), test=("ubfc-rppg:subject1",)).assign(UBFC + other)
    assert {r.dataset for r in out["train"]} == {"cohface"}
    assert {r.dataset for r in out["test"]} == {"ubfc-rppg"}


def test_load_split_yaml_and_json(tmp_path):
    y = tmp_path / "split.yaml"
    y.write_text("train: [subject1, subject3]\nval: [subject4]\ntest:\n  - subject5\n")
    split = load_split(y)
    assert split.train == ("subject1", "subject3") and split.test == ("subject5",)
    j = tmp_path / "split.json"
    j.write_text('{"train": ["01", "02"], "test": ["03"]}')
    assert load_split(j).val == ()
    assert {r.subject_id for r in load_split(j).assign(PURE)["test"]} == {"03"}


def test_load_split_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [a, b]\ntest: [b]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: subject 'b' is in both 'train' and 'test'"):
        load_split(bad)
    bad.write_text("train: [a]\ntset: [b]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'tset'"):
        load_split(bad)
    bad.write_text("train: a\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: 'train' must be a list"):
        load_split(bad)
    bad.write_text("train: [a\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML/JSON at line"):
        load_split(bad)


def test_kfold_covers_every_subject_once_and_is_deterministic():
    subjects = subjects_of(UBFC)
    folds = kfold_splits(subjects, 3, seed=7)
    assert len(folds) == 3
    tests = [s for f in folds for s in f.test]
    assert sorted(tests) == sorted(subjects)  # each subject tested exactly once
    assert sorted(len(f.test) for f in folds) == [3, 3, 4]
    for f in folds:
        assert set(f.train) | set(f.test) == set(subjects) and not set(f.train) & set(f.test)
    # Same seed, shuffled input order: same folds. Another seed: different folds.
    again = kfold_splits(list(reversed(subjects)), 3, seed=7)
    assert [f.test for f in again] == [f.test for f in folds]
    assert [f.test for f in kfold_splits(subjects, 3, seed=8)] != [f.test for f in folds]


def test_kfold_with_validation_and_bad_k():
    folds = kfold_splits(subjects_of(UBFC), 5, seed=0, val_fraction=0.25)
    for f in folds:
        assert len(f.test) == 2 and len(f.val) == 2 and len(f.train) == 6
        assert not (set(f.val) & set(f.train) or set(f.val) & set(f.test))
    with pytest.raises(ConfigError, match="k=11 folds need at least 11 subjects"):
        kfold_splits(subjects_of(UBFC), 11)
    with pytest.raises(ConfigError, match="k must be at least 2"):
        kfold_splits(subjects_of(UBFC), 1)


def test_random_split_fractions():
    split = random_split(subjects_of(UBFC), val_fraction=0.2, test_fraction=0.3, seed=1)
    assert (len(split.train), len(split.val), len(split.test)) == (5, 2, 3)
    assert split == random_split(subjects_of(UBFC), val_fraction=0.2, test_fraction=0.3, seed=1)
    out = split.assign(UBFC, require_all=True)
    assert sum(len(v) for v in out.values()) == len(UBFC)


def test_cross_dataset_split():
    split = cross_dataset_split(PURE, UBFC, val_fraction=0.34, seed=3)
    assert set(split.train) | set(split.val) == {"pure:01", "pure:02", "pure:03"}
    assert len(split.val) == 1
    assert split.test == tuple(subjects_of(UBFC))
    out = split.assign(PURE + UBFC, require_all=True)
    assert {r.dataset for r in out["test"]} == {"ubfc-rppg"}
    assert {r.dataset for r in out["train"] + out["val"]} == {"pure"}
    with pytest.raises(ConfigError, match="subject 'pure:01' is in both"):
        cross_dataset_split(PURE, PURE[:2])


def test_subject_key():
    assert subject_key(PURE[0]) == "pure:01"

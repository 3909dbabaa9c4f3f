"""Symlinked dataset folders (with loops), absolute paths from the user, relative committed configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from facepulse.config import load_config
from facepulse.datasets import get_reader
from facepulse.datasets._common import find_paths
from test_datasets import make_cohface_session, make_pure_session, make_ubfc2_subject, make_vipl_source

REPO = Path(__file__).resolve().parents[1]


def _link_all(store: Path, root: Path) -> None:
    """``root/<name>`` -> ``store/<name>`` for every folder of ``store`` (symlinked subjects)."""
    root.mkdir()
    for sub in sorted(store.iterdir()):
        os.symlink(sub, root / sub.name, target_is_directory=True)


@pytest.mark.parametrize(
    "dataset, make, ids",
    [
        ("ubfc-rppg", lambda s: [make_ubfc2_subject(s, n) for n in ("subject1", "subject2")], ["subject1", "subject2"]),
        ("pure", lambda s: [make_pure_session(s, n, n=6) for n in ("01-01", "02-01")], ["01-01", "02-01"]),
        ("cohface", lambda s: make_cohface_session(s, "1", "0"), ["1-0"]),
        ("vipl-hr", lambda s: make_vipl_source(s, "p1", "v1", "source1"), ["p1_v1_source1"]),
    ],
)
def test_readers_follow_symlinked_subject_folders(tmp_path: Path, dataset, make, ids) -> None:
    store = tmp_path / "store"
    store.mkdir()
    make(store)
    root = tmp_path / "root"
    _link_all(store, root)
    assert all((root / p.name).is_symlink() for p in store.iterdir())
    records = get_reader(dataset, root).records()
    assert [r.video_id for r in records] == ids
    assert all(r.video_path.exists() for r in records)


def test_ubfc_reader_survives_a_symlink_loop(tmp_path: Path) -> None:
    make_ubfc2_subject(tmp_path / "real", "subject3")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "real" / "subject3", root / "subject3", target_is_directory=True)
    os.symlink(root, root / "subject3" / "loop", target_is_directory=True)  # root/subject3/loop -> root
    os.symlink(root / "subject3", root / "subject3" / "self", target_is_directory=True)
    records = get_reader("ubfc-rppg", root).records()
    assert [r.video_id for r in records] == ["subject3"]


def test_find_paths_matches_like_glob_and_enters_links(tmp_path: Path) -> None:
    for rel in ("a/x.txt", "a/b/x.txt", "a/b/c/x.txt", "d/y.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    os.symlink(tmp_path / "a" / "b", tmp_path / "d" / "linked", target_is_directory=True)
    rel = lambda ps: sorted(p.relative_to(tmp_path).as_posix() for p in ps)  # noqa: E731
    assert rel(find_paths(tmp_path, "*/x.txt")) == ["a/x.txt"]
    # each real folder is walked once under **: a/b (reached first, sorted) not again as d/linked
    assert rel(find_paths(tmp_path, "**/x.txt")) == ["a/b/c/x.txt", "a/b/x.txt", "a/x.txt"]
    assert rel(find_paths(tmp_path / "d", "**/x.txt")) == ["d/linked/c/x.txt", "d/linked/x.txt"]
    assert rel(find_paths(tmp_path, "d/*/x.txt")) == ["d/linked/x.txt"]
    assert find_paths(tmp_path / "missing", "**/x.txt") == []


# ---------------------------------------------------------------- absolute paths


def test_absolute_paths_from_the_user_are_accepted(tmp_path: Path) -> None:
    data = tmp_path / "datasets" / "UBFC"
    cfg = load_config(None, [f"data.root={data}", f"out_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path}/c"])
    assert cfg.data.root == str(data) and cfg.run_dir == tmp_path / "runs" / "experiment"
    own = tmp_path / "mine.yaml"
    own.write_text(f"name: mine\ndata:\n  root: {data}\n  split_file: {tmp_path / 'split.yaml'}\n"
                   f"model:\n  init_from: {tmp_path / 'start.ckpt'}\n")
    cfg = load_config(own, [])
    assert Path(cfg.data.root).is_absolute() and Path(cfg.model.init_from).is_absolute()


def test_cli_train_accepts_an_absolute_data_root(tmp_path: Path, capsys, monkeypatch) -> None:
    """The root is absolute and missing: the error is about the folder, not about absoluteness."""
    from facepulse.cli import main

    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "physnet_synthetic.yaml"
    rc = main(["train", "--config", str(config), f"data.root={tmp_path / 'nowhere'}", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "absolute" not in err and "nowhere" in err and "Traceback" not in err


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_committed_configs_hold_no_absolute_path() -> None:
    files = sorted((REPO / "configs").glob("*.yaml")) + sorted((REPO / "src" / "facepulse").rglob("configs/*.yaml"))
    assert files, "no committed config found"
    for path in files:
        tree = yaml.safe_load(path.read_text())
        load_config(path, [])  # each one is a valid experiment
        for value in _strings(tree):
            assert not value.startswith(("/", "~")) and not (len(value) > 2 and value[1:3] in (":\\", ":/")), (
                f"{path.name}: absolute path {value!r}"
            )

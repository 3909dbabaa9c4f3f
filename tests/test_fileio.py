"""The shared atomic writer (facepulse.fileio): permissions, kills, stale temporaries, checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from badinputs import face_video
from facepulse.errors import InputError
from facepulse.fileio import (
    atomic_path,
    check_output_dir,
    check_output_file,
    clean_stale_temps,
    is_temp_name,
    temp_name,
    write_text,
)


@pytest.fixture
def umask():
    """Set a umask for the test, restore the old one after."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    path = write_text(tmp_path / "r.json", "{}")
    assert path.stat().st_mode & 0o777 == mode


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = tmp_path / "r.json"
    path.write_text("old")
    path.chmod(0o640)
    write_text(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o640


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("kept")
    with pytest.raises(RuntimeError), atomic_path(path, ".json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert path.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_temp_names_are_recognised() -> None:
    name = temp_name(Path("out/r.json"), ".json").name
    assert name.startswith(".r.json.") and is_temp_name(name)
    assert not is_temp_name(".r.json.tmp") and not is_temp_name("r.json")


def test_stale_cleaning_spares_live_processes_and_other_files(tmp_path: Path) -> None:
    live = tmp_path / f".a.json.{os.getpid()}.0123abcd.fptmp.json"  # this process: alive
    dead = tmp_path / ".b.json.999999999.0123abcd.fptmp.json"  # no such process
    other = tmp_path / ".c.json.tmp"  # somebody else's naming
    for p in (live, dead, other):
        p.write_text("")
    assert clean_stale_temps(tmp_path) == [dead]
    assert live.exists() and other.exists() and not dead.exists()


KILL_WHILE_WRITING = """
    import os, signal
    from facepulse.report import _atomic_path
    with _atomic_path({path!r}, ".json") as tmp:
        tmp.write_text('{{"half": ')
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write: no finally runs
"""


def test_kill_during_write_leaves_no_temporary_after_the_next_run(tmp_path: Path, capsys) -> None:
    """A writer killed mid-write leaves its temporary file; the next run removes it."""
    from facepulse.cli import main

    out = tmp_path / "out" / "result.json"
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_WHILE_WRITING.format(path=str(out)))],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in out.parent.iterdir() if is_temp_name(p.name)]
    assert len(left) == 1 and not out.exists()  # the kill did leave one behind
    video = face_video(tmp_path)
    rc = main(["predict", str(video), "--window", "4", "-q", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json"]
    assert json.loads(out.read_text())["fps"] == pytest.approx(30.0)


def test_output_checks(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json", "--json")  # creatable
    assert not (tmp_path / "new").exists()  # the check creates nothing
    with pytest.raises(InputError, match="--json .*: is a folder"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(InputError, match="file.txt is a file, not a folder"):
        check_output_file(blocker / "sub" / "r.json", "--csv")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_dir(blocker, "--out")
    with pytest.raises(InputError, match="cannot write into /sys"):
        check_output_dir(Path("/sys/facepulse-test/results"), "--out")
    assert not [p for p in tmp_path.iterdir() if is_temp_name(p.name)]  # probes removed


def test_writers_of_the_package_use_the_shared_helper() -> None:
    """No writer of the package renames temporary files of its own any more."""
    src = Path(__file__).resolve().parents[1] / "src" / "facepulse"
    own = {"fileio.py"}
    # the preprocessing cache (HDF5 per worker) has its own pid-named temporaries and
    # stale-file cleaning; it is being restructured separately
    allowed = {"datasets/cache.py", "datasets/cache_writer.py", "datasets/preprocess.py"}
    offenders = []
    for path in src.rglob("*.py"):
        rel = path.relative_to(src).as_posix()
        if rel in own or rel in allowed:
            continue
        text = path.read_text()
        if "mkstemp(" in text or "os.replace(" in text or ".replace(out_path)" in text:
            offenders.append(rel)
    assert offenders == []

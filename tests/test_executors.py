"""The executor interface (local executor, progress, failures) and the default cache
folder shared by `facepulse preprocess` and `facepulse evaluate` (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facepulse.errors import ConfigError, InputError
from facepulse.executors import EXECUTORS, Job, LocalExecutor, Resources, RunProgress, make_executor
from facepulse.paths import default_cache_dir


def _count_frames(n: int, *, ctx) -> int:
    if n < 0:
        raise InputError(f"video{n}.mp4: not a video")
    for _ in range(n):
        ctx.frames(1)
    return n * 10


def test_a_failed_job_is_reported_and_the_others_complete():
    jobs = [Job(f"v{i}", _count_frames, (n,)) for i, n in enumerate([3, -1, 5])]
    progress = RunProgress(len(jobs), "test", enabled=False)
    results = {r.key: r for r in LocalExecutor(1).run(jobs, Resources(), progress)}
    assert results["v0"].ok and results["v0"].value == 30 and results["v0"].frames == 3
    assert results["v2"].ok and results["v2"].value == 50
    assert results["v1"].error == "video-1.mp4: not a video"
    assert (progress.done, progress.failed, progress.remaining, progress.frames) == (2, 1, 0, 8)
    assert "2 done, 1 failed, 0 left" in progress.status() and "8 frames" in progress.status()


def test_executor_registry_and_options():
    assert {"local", "ray"} <= set(EXECUTORS.names())
    assert make_executor("local", workers=3).describe() == "local, 3 workers"
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="--address is for --executor ray"):
        make_executor("local", address="head:6379")
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        make_executor("local", workers=0)
    with pytest.raises(ConfigError, match="resources must be > 0"):
        Resources(cpus=0)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEPULSE_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("FACEPULSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "facepulse"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facepulse.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_synth_preprocess_evaluate_share_the_default_cache(tmp_path):
    from facepulse.synth.params import CameraParams, SynthParams
    from facepulse.synth.writer import write_dataset

    env = {**os.environ, "FACEPULSE_CACHE_DIR": str(tmp_path / "default_cache")}
    data = tmp_path / "data"
    # Two local worker processes render the same bytes as this process alone.
    synth = _cli("synth", str(data), "--n-videos", "2", "--duration-s", "8", "--size", "160x120", "--seed", "4",
                 "--workers", "2", "--quiet", env=env)
    assert synth.returncode == 0, synth.stderr[-2000:]
    serial = tmp_path / "serial"
    write_dataset(serial, n_videos=2, scenario="still", seed=4,
                  base=SynthParams(duration_s=8.0, camera=CameraParams(width=160, height=120)))
    for path in sorted(serial.rglob("*")):
        if path.is_file():
            assert (data / path.relative_to(serial)).read_bytes() == path.read_bytes(), path.name

    pre = _cli("preprocess", str(data), "--dataset", "synthetic", "-q", env=env)
    assert pre.returncode == 0, pre.stderr[-2000:]
    assert "2 videos written, 0 already cached, 0 failed" in pre.stdout
    root = Path(pre.stdout.split(":")[0])
    assert root.parent.parent == tmp_path / "default_cache"
    stamps = {p.name: p.stat().st_mtime_ns for p in root.glob("*.h5")}
    assert sorted(stamps) == ["v00000.h5", "v00001.h5"]

    out = tmp_path / "out"
    ev = _cli("evaluate", "--dataset", "synthetic", "--data", str(data), "--window", "4", "--out", str(out), "-q",
              env=env)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["cache_root"] == str(root)
    # evaluate used preprocess's files as they were: the face stage did not run again.
    assert {p.name: p.stat().st_mtime_ns for p in root.glob("*.h5")} == stamps

"""The Ray executor (issue 16) on real UBFC-rPPG clips and one local Ray instance.

- `preprocess` with Ray gives the same cache files (datasets and bytes) as the local executor;
- a corrupt video among good ones is reported with its reason, the others complete;
- `facepulse preprocess --executor ray --address ...` killed midway (SIGKILL of the
  driver) and run again completes, and equals an uninterrupted run.

One Ray instance (2 CPUs, small object store, no dashboard) serves the whole module; the
clips are the first seconds of real subjects, re-encoded into tmp folders at test time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import ray

from facepulse.datasets import get_reader
from facepulse.datasets.cache import PreprocessConfig, cache_root, preprocess_dataset
from facepulse.executors import RayExecutor, make_executor

from _ubfc_short import short_ubfc

N_FRAMES = 240  # 8 s at 29.5 fps (the HR path needs more than 4 s)
N_FRAMES_KILLED = 120  # the clips of the interrupted run


@pytest.fixture(scope="module")
def ray_address():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
             log_to_driver=False, logging_level="warning")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory) -> Path:
    return short_ubfc(tmp_path_factory.mktemp("ubfc2"), {"subject3": "subject3", "subject4": "subject4"}, N_FRAMES)


def h5_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.h5") if not p.name.startswith("."))


def datasets_of(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f}


def assert_same_cache(got: list[Path], want: list[Path]) -> None:
    assert [p.name for p in got] == [p.name for p in want]
    for a, b in zip(got, want):
        da, db = datasets_of(a), datasets_of(b)
        assert sorted(da) == sorted(db)
        for name in db:
            np.testing.assert_array_equal(da[name], db[name], err_msg=f"{a.name}:{name}")
        assert a.read_bytes() == b.read_bytes(), f"{a.name}: same datasets, different bytes"


def test_ray_preprocess_equals_local_executor(ray_address, two_subjects, tmp_path):
    reader = get_reader("ubfc-rppg", two_subjects)
    local = preprocess_dataset(reader, tmp_path / "local", PreprocessConfig(), workers=1, progress=False)
    remote = preprocess_dataset(reader, tmp_path / "ray", PreprocessConfig(), progress=False,
                                executor=make_executor("ray", workers=2))
    assert local.ok and remote.ok, (local.failed, remote.failed)
    assert remote.written == ["subject3", "subject4"] and remote.frames == local.frames == 2 * N_FRAMES
    assert remote.executor.startswith("ray")
    assert_same_cache(h5_files(remote.root), h5_files(local.root))
    assert (remote.root / "config.json").read_text() == (local.root / "config.json").read_text()

    # A rerun finds everything cached: no task is sent.
    again = preprocess_dataset(reader, tmp_path / "ray", PreprocessConfig(), progress=False,
                               executor=make_executor("ray"))
    assert again.written == [] and again.skipped == ["subject3", "subject4"] and again.frames == 0


def test_ray_reports_a_corrupt_video_and_completes_the_others(ray_address, two_subjects, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(two_subjects, data)
    bad = data / "subject5"
    bad.mkdir()
    shutil.copy(two_subjects / "subject3" / "ground_truth.txt", bad / "ground_truth.txt")
    (bad / "vid.mp4").write_bytes(os.urandom(50_000))
    summary = preprocess_dataset(get_reader("ubfc-rppg", data), tmp_path / "cache", PreprocessConfig(),
                                 progress=False, executor=RayExecutor())
    assert list(summary.failed) == ["subject5"]
    assert "vid.mp4" in summary.failed["subject5"] and "\n" not in summary.failed["subject5"]
    assert summary.written == ["subject3", "subject4"]
    assert [p.name for p in h5_files(summary.root)] == ["subject3.h5", "subject4.h5"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "facepulse.cli", *args]


def test_ray_run_killed_midway_resumes_and_equals_uninterrupted(ray_address, tmp_path):
    n = 6
    data = short_ubfc(tmp_path / "data", {f"subject{i}": ("subject3", "subject4")[i % 2] for i in range(1, n + 1)},
                      N_FRAMES_KILLED)
    reference = preprocess_dataset(get_reader("ubfc-rppg", data), tmp_path / "reference", PreprocessConfig(),
                                   workers=1, progress=False)
    cache = tmp_path / "cache"
    root = cache_root(cache, "ubfc-rppg", PreprocessConfig())
    args = _cli("preprocess", str(data), "--dataset", "ubfc-rppg", "--cache-dir", str(cache),
                "--executor", "ray", "--address", ray_address, "--workers", "1", "-q")

    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (root.is_dir() and h5_files(root)):
        assert proc.poll() is None, f"ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no video finished"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver dies without any chance to clean up
    proc.communicate(timeout=60)
    n_killed = len(h5_files(root))
    assert 1 <= n_killed < n

    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    n_cached = int(result.stdout.split(" videos written, ")[1].split(" already cached")[0])
    assert n_cached >= n_killed  # what the killed run finished is not redone
    assert f"{n - n_cached} videos written, {n_cached} already cached, 0 failed" in result.stdout
    assert_same_cache(h5_files(root), h5_files(reference.root))


def test_ray_evaluate_and_synth_equal_the_local_executor(ray_address, two_subjects, tmp_path):
    from facepulse.eval.evaluate import MethodEstimator, evaluate_dataset
    from facepulse.synth.params import CameraParams, SynthParams
    from facepulse.synth.writer import write_dataset

    reader = get_reader("ubfc-rppg", two_subjects)
    reports = [
        evaluate_dataset(reader, MethodEstimator("pos"), cache_dir=tmp_path / name, window_s=3.0, executor=executor)
        for name, executor in (("local", None), ("ray", RayExecutor()))
    ]
    assert [v.video_id for v in reports[1].videos] == ["subject3", "subject4"] and not reports[1].failed
    assert reports[1].to_dict()["videos"] == reports[0].to_dict()["videos"]

    base = SynthParams(duration_s=1.0, camera=CameraParams(width=64, height=48))
    for name, executor in (("local", None), ("ray", RayExecutor())):
        write_dataset(tmp_path / f"synth_{name}", n_videos=3, scenario="motion", seed=5, base=base, executor=executor)
    files = {name: {p.relative_to(tmp_path / f"synth_{name}"): p.read_bytes()
                    for p in sorted((tmp_path / f"synth_{name}").rglob("*")) if p.is_file()}
             for name in ("local", "ray")}
    assert len(files["ray"]) == 1 + 3 * 4 and files["ray"] == files["local"]

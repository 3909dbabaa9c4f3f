"""Model inference: checkpoints, overlap-add over a video, ONNX export, predict/evaluate --model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from _clips import noise_clips
from facepulse.config import load_config
from facepulse.errors import InputError, SignalTooShortError
from facepulse.models.inference import (
    ModelInfo,
    OnnxRunner,
    TorchRunner,
    clip_starts,
    compare_onnx,
    export_onnx,
    load_model,
    overlap_add,
    read_checkpoint,
    video_pulse,
)
from facepulse.io.timegrid import resample_frames
from facepulse.train.data import ClipDataModule
from facepulse.train.runner import run_experiment

torch.set_num_threads(1)  # see tests/test_train.py

CLIP_LEN, SIZE = 32, 16


def train_tiny(root: Path, name: str, *model: str) -> Path:
    """A checkpoint of `facepulse train` after two steps on noise clips (tiny, seconds)."""
    cfg = load_config(
        None,
        [
            f"name={name}",
            "out_dir=runs",  # relative to root (the fixture's working directory)
            f"data.clip_len={CLIP_LEN}",
            f"data.size={SIZE}",
            "optim.batch_size=4",
            "optim.max_steps=2",
            "trainer.early_stopping_patience=null",
            *model,
        ],
    )
    dm = ClipDataModule(cfg, train=noise_clips(8, CLIP_LEN, SIZE), val=noise_clips(4, CLIP_LEN, SIZE, seed=1))
    result = run_experiment(cfg, resume=False, datamodule=dm, progress=False)
    return root / result.best_ckpt


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    import os

    here = os.getcwd()
    os.chdir(root)  # configs take relative paths only
    try:
        return {
            "physnet": train_tiny(root, "physnet", "model.params={base_channels: 2}"),
            "autohr": train_tiny(root, "autohr", "model.name=autohr", "model.params={channels: 4, n_blocks: 2}",
                                 "model.normalize=diff"),
        }
    finally:
        os.chdir(here)


# ----------------------------------------------------------------- overlap-add
def test_clip_starts_cover_every_frame():
    starts = clip_starts(100, 32, 16)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    covered = np.zeros(100, bool)
    for s in starts:
        covered[s : s + 32] = True
    assert covered.all()
    assert list(clip_starts(32, 32, 16)) == [0]
    with pytest.raises(SignalTooShortError, match="fewer than the model's clip of 32"):
        clip_starts(31, 32, 16)


def test_overlap_add_rejoins_a_signal_with_arbitrary_clip_gains():
    n, length = 300, 64
    t = np.arange(n) / 30.0
    x = np.sin(2 * np.pi * 1.3 * t) + 0.3 * np.sin(2 * np.pi * 2.1 * t)
    starts = clip_starts(n, length, 16)
    rng = np.random.default_rng(0)
    # each clip sees the signal with its own gain and offset, as a model's clips do
    pieces = np.stack([rng.uniform(0.5, 3) * x[s : s + length] + rng.uniform(-5, 5) for s in starts])
    joined = overlap_add(pieces, starts, n)
    assert joined.shape == (n,) and np.isfinite(joined).all()
    assert np.corrcoef(joined, x)[0, 1] > 0.99
    # frames no clip covers are NaN, never made up
    assert np.isnan(overlap_add(pieces[:1], starts[:1], n)[length:]).all()


class GreenMean:
    """A stand-in model: the clip's mean green level per frame (pixel values in, (B, T) out)."""

    def __init__(self, clip_len: int, size: int, output: str = "pulse") -> None:
        self.info = ModelInfo("green", "test", clip_len, size, 30.0, "raw", output)

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        assert clips.dtype == np.float32 and clips.shape[1:] == (3, self.info.clip_len, self.info.size, self.info.size)
        green = clips[:, 1].mean(axis=(2, 3))
        return np.diff(green, axis=1, append=green[:, -1:]) if self.info.output == "diff" else green


@pytest.mark.parametrize("output", ["pulse", "diff"])
def test_video_pulse_follows_the_video(output):
    n = 240
    t = np.arange(n) / 30.0
    pulse = np.sin(2 * np.pi * 1.2 * t)
    frames = np.full((n, SIZE, SIZE, 3), 120.0)
    frames[..., 1] += 10 * pulse[:, None, None]
    out = video_pulse(GreenMean(CLIP_LEN, SIZE, output), frames.astype(np.uint8))
    assert out.shape == (n,)
    # a derivative model's output is integrated back (a derivative of the pulse would
    # correlate ~0 with it); the integral only drifts a little at the clip edges
    assert np.corrcoef(out, pulse)[0, 1] > (0.98 if output == "pulse" else 0.9)
    with pytest.raises(InputError, match=r"expected frames \(N, 16, 16, 3\)"):
        video_pulse(GreenMean(CLIP_LEN, SIZE), frames[:, :8].astype(np.uint8))


def test_resample_frames_onto_the_model_rate():
    t = np.arange(0, 4, 1 / 25.0)  # 25 fps video
    frames = np.repeat(np.arange(t.size, dtype=np.uint8)[:, None, None, None], 2, axis=1).repeat(2, 2).repeat(3, 3)
    grid, out = resample_frames(t, frames, 30.0)
    assert np.allclose(np.diff(grid), 1 / 30.0) and grid[0] == 0 and grid[-1] <= t[-1]
    # a ramp of frame indices interpolates linearly in time
    assert np.allclose(out[:, 0, 0, 0], grid * 25.0, atol=1e-4)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_loads_back_into_the_trained_model(checkpoints):
    ckpt = read_checkpoint(checkpoints["physnet"])
    runner = load_model(checkpoints["physnet"])
    assert isinstance(runner, TorchRunner)
    assert runner.info == ModelInfo("physnet", "supervised", CLIP_LEN, SIZE, 30.0, "standardize", "pulse")
    weights = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    for key, value in runner.model.backbone.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert load_model(checkpoints["autohr"]).info.output == "diff"
    # loading must not touch the global RNG (the training builder seeds)
    state = torch.random.get_rng_state()
    load_model(checkpoints["physnet"])
    assert torch.equal(state, torch.random.get_rng_state())


def test_bad_model_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        load_model(tmp_path / "missing.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    with pytest.raises(InputError, match="not a Lightning checkpoint"):
        load_model(tmp_path / "other.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_model(tmp_path / "junk.ckpt")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        load_model(tmp_path / "junk.onnx")


# ------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("name", ["physnet", "autohr"])
def test_onnx_runtime_matches_pytorch(checkpoints, tmp_path, name):
    path = export_onnx(checkpoints[name], tmp_path / f"{name}.onnx")
    torch_runner, onnx_runner = load_model(checkpoints[name]), load_model(path)
    assert isinstance(onnx_runner, OnnxRunner) and onnx_runner.info == torch_runner.info
    rng = np.random.default_rng(1)
    clips = rng.uniform(0, 255, size=(3, 3, CLIP_LEN, SIZE, SIZE)).astype(np.float32)  # batch 3 != export batch 1
    expected, got = torch_runner(clips), onnx_runner(clips)
    assert got.shape == (3, CLIP_LEN)
    assert np.abs(expected - got).max() < 1e-4
    assert np.abs(expected).max() > 1e-3  # not a trivially zero output
    assert compare_onnx(checkpoints[name], path) < 1e-4


# ------------------------------------------------------------- whole video / CLI
@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    """12 s synthetic face video, 160x120, lossless, with its truth."""
    from facepulse.synth import SynthParams
    from facepulse.synth.params import CameraParams
    from facepulse.synth.writer import write_dataset

    root = tmp_path_factory.mktemp("synth")
    base = SynthParams(duration_s=12.0, camera=CameraParams(width=160, height=120))
    write_dataset(root, n_videos=2, scenario="still", seed=3, base=base, progress=False)
    return root


def test_predict_and_evaluate_with_a_model(checkpoints, face_video, tmp_path):
    from facepulse.datasets import get_reader
    from facepulse.datasets.cache import PreprocessConfig
    from facepulse.eval.evaluate import evaluate_dataset, make_estimator
    from facepulse.pipeline import predict

    video = sorted(face_video.glob("videos/*/video.mkv"))[0]
    onnx_path = export_onnx(checkpoints["physnet"], tmp_path / "physnet.onnx")
    with_torch = predict(video, model=checkpoints["physnet"], window_s=8)
    with_onnx = predict(video, model=onnx_path, window_s=8)
    assert with_torch.method == "model:physnet"
    assert with_torch.n_frames == 360 and np.isfinite(with_torch.bvp).mean() > 0.9
    assert 42 <= with_torch.hr_bpm <= 210
    # the same pulse through PyTorch and ONNX Runtime
    ok = np.isfinite(with_torch.bvp)
    assert np.allclose(with_torch.bvp[ok], with_onnx.bvp[ok], atol=1e-3 * np.abs(with_torch.bvp[ok]).max())
    assert with_torch.hr_bpm == pytest.approx(with_onnx.hr_bpm, abs=0.5)

    reader = get_reader("synthetic", face_video)
    estimator = make_estimator("model", str(checkpoints["physnet"]))
    report = evaluate_dataset(reader, estimator, window_s=8, config=PreprocessConfig(size=SIZE))
    assert not report.failed and len(report.videos) == 2
    assert all(np.isfinite(v.hr_pred_bpm) for v in report.videos)
    # crops of another size are refused, naming the fix
    wrong = evaluate_dataset(reader, estimator, window_s=8, records=reader.records()[:1])
    assert "preprocess with size 16" in next(iter(wrong.failed.values()))


class Hallucinating:
    """A stand-in model that outputs a clean pulse whatever the face shows: one period per
    16 frames (112.5 bpm at 30 fps), so that clips starting 16 frames apart join in phase."""

    HR_BPM = 112.5

    def __init__(self) -> None:
        self.info = ModelInfo("hallucinating", "test", CLIP_LEN, SIZE, 30.0, "raw", "pulse")

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        t = np.arange(self.info.clip_len) / self.info.fps
        return np.repeat(np.sin(2 * np.pi * self.HR_BPM / 60 * t)[None], clips.shape[0], axis=0)


def test_a_model_is_reliable_only_where_the_classic_estimate_agrees(face_video):
    from facepulse.pipeline import predict

    video = sorted(face_video.glob("videos/*/video.mkv"))[0]
    classic = predict(video, window_s=8)
    assert classic.quality["reliable"]
    assert abs(classic.hr_bpm - Hallucinating.HR_BPM) > 15  # the video's pulse is elsewhere
    # a model that follows the face's colour agrees with the classic estimate
    follows = predict(video, model=GreenMean(CLIP_LEN, SIZE), window_s=8)
    assert follows.hr_bpm == pytest.approx(classic.hr_bpm, abs=5.0)
    assert follows.quality["classic_hr_bpm"] == pytest.approx(classic.hr_bpm)
    assert follows.quality["reliable"], follows.quality["warnings"]
    # a model whose clean pulse has nothing to do with the face: its own confidence is
    # high, so only the check against the classic estimate can flag it
    wrong = predict(video, model=Hallucinating(), window_s=8)
    assert wrong.hr_bpm == pytest.approx(Hallucinating.HR_BPM, abs=2.0)
    assert np.nanmedian(wrong.windows.confidence) > 0.5
    assert not wrong.quality["reliable"]
    assert any("disagree" in w for w in wrong.quality["warnings"])


def test_evaluate_a_model_on_video_at_another_frame_rate(checkpoints, tmp_path):
    """A 30 Hz model on a 25 fps video: the reference goes through the model's grid, so
    the windows line up (this raised 'prediction and reference windows differ' before)."""
    from facepulse.datasets import get_reader
    from facepulse.datasets.cache import PreprocessConfig
    from facepulse.eval.evaluate import evaluate_dataset, make_estimator
    from facepulse.synth import SynthParams
    from facepulse.synth.params import CameraParams
    from facepulse.synth.writer import write_dataset

    base = SynthParams(duration_s=10.0, camera=CameraParams(width=160, height=120, fps=25.0, exposure_s=1 / 50))
    write_dataset(tmp_path, n_videos=1, scenario="still", seed=5, base=base, progress=False)
    reader = get_reader("synthetic", tmp_path)
    report = evaluate_dataset(reader, make_estimator("model", str(checkpoints["physnet"])), window_s=8,
                              config=PreprocessConfig(size=SIZE), cache_dir=tmp_path / "cache")
    assert not report.failed, report.failed
    (video,) = report.videos
    assert len(video.window_hr_pred_bpm) == len(video.window_hr_ref_bpm) >= 2
    # the reference HR (from the true PPG) is the generator's HR, whichever grid carried it
    ref = reader.load_reference(reader.records()[0])
    assert video.hr_ref_bpm == pytest.approx(float(np.nanmean(ref.hr_bpm)), abs=3.0)


def test_cli_export_and_predict_model(checkpoints, face_video, tmp_path):
    video = sorted(face_video.glob("videos/*/video.mkv"))[0]
    onnx_path = tmp_path / "model.onnx"
    run = lambda *a: subprocess.run([sys.executable, "-m", "facepulse.cli", *map(str, a)], capture_output=True,  # noqa: E731
                                    text=True, timeout=600)
    proc = run("export", checkpoints["physnet"], "--onnx", onnx_path)
    assert proc.returncode == 0, proc.stderr
    assert onnx_path.is_file() and "max |onnxruntime - pytorch|" in proc.stdout
    proc = run("predict", video, "--model", onnx_path, "--window", "8", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "method model:physnet" in proc.stdout and "heart rate" in proc.stdout
    proc = run("evaluate", "--dataset", "synthetic", "--data", face_video, "--model", checkpoints["physnet"],
               "--window", "8", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "# Evaluation: model:physnet (best.ckpt) on synthetic" in proc.stdout
    assert "2 videos evaluated, 0 failed" in proc.stdout
    proc = run("predict", video, "--model", tmp_path / "missing.ckpt")
    assert proc.returncode == 2 and proc.stderr.strip() == f"facepulse: error: {tmp_path / 'missing.ckpt'}: checkpoint not found"


def test_evaluate_checks_a_model_against_the_classic_estimate_as_predict_does(face_video, tmp_path):
    """`evaluate --model` flags each video as `predict --model` does (the model's own
    confidence cannot show when it fails), and reports the error on the flagged videos."""
    from facepulse.datasets import get_reader
    from facepulse.datasets.cache import PreprocessConfig
    from facepulse.eval.estimators import ModelEstimator
    from facepulse.eval.evaluate import evaluate_dataset, write_report
    from facepulse.pipeline import predict

    reader = get_reader("synthetic", face_video)
    kw = dict(window_s=8, config=PreprocessConfig(size=SIZE), cache_dir=tmp_path / "cache", keep_predictions=True)
    wrong = evaluate_dataset(reader, ModelEstimator(Hallucinating()), **kw)
    assert len(wrong.videos) == 2 and wrong.n_reliable == 0
    assert wrong.whole_video_reliable is None and wrong.whole_video["n"] == 2
    assert all(any("disagree" in w for w in v.prediction.quality["warnings"]) for v in wrong.videos)

    follows = evaluate_dataset(reader, ModelEstimator(GreenMean(CLIP_LEN, SIZE)), **kw)
    record = reader.records()[0]
    direct = predict(record.video_path, model=GreenMean(CLIP_LEN, SIZE), window_s=8)
    (first,) = [v for v in follows.videos if v.video_id == record.video_id]
    assert first.reliable == direct.quality["reliable"] is True
    assert first.prediction.quality["classic_hr_bpm"] == pytest.approx(direct.quality["classic_hr_bpm"])
    assert follows.whole_video_reliable["n"] == follows.n_reliable >= 1
    paths = write_report(follows, tmp_path / "out", plots=False)
    assert f"Flagged reliable by the estimator: {follows.n_reliable} of 2 videos" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["metrics"]["whole_video_reliable"]["n"] == follows.n_reliable

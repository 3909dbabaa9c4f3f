"""Evaluation: reproduces the predict path on real UBFC-rPPG video, scores a synthetic
dataset end to end through the CLI (synth -> preprocess -> evaluate), takes any
estimator with the PulseEstimator protocol, and reports unusable videos."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import facepulse
from facepulse.datasets import get_reader
from facepulse.datasets.cache import CachedVideo, PreprocessConfig, cache_root
from facepulse.eval.evaluate import (
    ESTIMATORS,
    MethodEstimator,
    PulseEstimator,
    evaluate_dataset,
    make_estimator,
    reference_result,
    write_report,
)
from facepulse.eval.plots import bland_altman_limits
from facepulse.errors import ConfigError
from facepulse.paths import shared_data_dir
from facepulse.pipeline import PredictionResult

UBFC = shared_data_dir() / "ubfc_rppg_dev"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facepulse.cli", *args], capture_output=True, text=True, timeout=600)


# ------------------------------------------------------------------------- UBFC


@pytest.fixture(scope="module")
def ubfc_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ubfc_cache")


def test_evaluation_reproduces_predict_on_ubfc(ubfc_cache):
    reader = get_reader("ubfc-rppg", UBFC)
    records = [r for r in reader.records() if r.video_id == "subject4"]  # the shortest video (46 s)
    config = PreprocessConfig(clips=False)
    report = evaluate_dataset(reader, MethodEstimator("pos"), records=records, cache_dir=ubfc_cache,
                              config=config, keep_predictions=True)
    assert not report.failed
    (video,) = report.videos
    direct = facepulse.predict(records[0].video_path, method="pos")
    # Same trace, same code path: the very same figures.
    assert video.hr_pred_bpm == direct.hr_bpm
    assert video.prediction.snr_db == direct.snr_db
    np.testing.assert_array_equal(video.window_t_center_s, direct.windows.t_center_s)
    np.testing.assert_array_equal(video.window_hr_pred_bpm, direct.windows.hr_bpm)
    # The reference: the PPG placed by frame index, through the same HR estimator. The
    # data's README gives 110.4 bpm (whole-video spectral peak of the PPG) for subject 4.
    assert abs(video.hr_ref_bpm - 110.4) < 1.0
    assert abs(video.error_bpm) < 3.0
    assert np.isfinite(video.window_hr_ref_bpm).all() and video.window_scored.sum() == len(direct.windows)
    assert np.median(np.abs(video.window_hr_pred_bpm - video.window_hr_ref_bpm)) < 5.0
    whole = report.whole_video
    assert whole["n"] == 1 and whole["mae"] == pytest.approx(abs(video.error_bpm))

    # A second method reuses the cached trace (no second decoding) and the same reference.
    files = sorted(cache_root(ubfc_cache, "ubfc-rppg", config).glob("*.h5"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    chrom = evaluate_dataset(reader, MethodEstimator("chrom"), records=records, cache_dir=ubfc_cache, config=config)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert chrom.videos[0].hr_ref_bpm == video.hr_ref_bpm
    np.testing.assert_array_equal(chrom.videos[0].window_hr_ref_bpm, video.window_hr_ref_bpm)

    # The fused default reads the cached region traces: the figures of predict's default.
    fused = evaluate_dataset(reader, MethodEstimator("auto"), records=records, cache_dir=ubfc_cache,
                             config=config, keep_predictions=True)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    (fv,) = fused.videos
    direct_auto = facepulse.predict(records[0].video_path)
    assert fv.hr_pred_bpm == direct_auto.hr_bpm
    np.testing.assert_array_equal(fv.window_hr_pred_bpm, direct_auto.windows.hr_bpm)
    np.testing.assert_array_equal(fv.window_hr_ref_bpm, video.window_hr_ref_bpm)
    assert fv.reliable is direct_auto.quality["reliable"] and fused.n_reliable == int(fv.reliable)
    # the reference summarised from its windows, as the fused default's HR is from its track
    assert fv.hr_ref_windows_bpm == np.median(video.window_hr_ref_bpm)
    assert fused.whole_video_vs_reference_windows["mae"] == pytest.approx(abs(fv.hr_pred_bpm - fv.hr_ref_windows_bpm))


# -------------------------------------------------------------------- synthetic


@pytest.fixture(scope="module")
def synth_eval(tmp_path_factory):
    """`facepulse synth` -> `facepulse preprocess` -> `facepulse evaluate --out`, as a user runs them."""
    root = tmp_path_factory.mktemp("synth_eval")
    data, cache, out = root / "data", root / "cache", root / "out"
    steps = [
        ("synth", str(data), "--n-videos", "3", "--duration-s", "10", "--size", "240x180", "--seed", "7",
         "--scenario", "still", "--quiet"),
        ("preprocess", str(data), "--dataset", "synthetic", "--cache-dir", str(cache), "-q"),
        ("evaluate", "--dataset", "synthetic", "--data", str(data), "--method", "pos", "--window", "6",
         "--cache-dir", str(cache), "--out", str(out), "-q"),
    ]
    results = [run_cli(*step) for step in steps]
    return {"data": data, "cache": cache, "out": out, "results": results}


def test_synthetic_end_to_end_through_the_cli(synth_eval):
    for result in synth_eval["results"]:
        assert result.returncode == 0, result.stderr[-2000:]
    preprocess_out, evaluate_out = synth_eval["results"][1].stdout, synth_eval["results"][2].stdout
    assert "3 videos written, 0 already cached, 0 failed" in preprocess_out
    assert "| MAE (bpm) |" in evaluate_out and "| v00002 | v00002 | 300 |" in evaluate_out
    assert "Flagged reliable by the estimator: 3 of 3 videos" in evaluate_out  # still, lossless faces
    out = synth_eval["out"]
    results = json.loads((out / "results.json").read_text())
    assert results["n_evaluated"] == 3 and results["n_failed"] == 0 and results["estimator"] == "pos"
    whole, windowed = results["metrics"]["whole_video"], results["metrics"]["windowed"]
    # Still faces, steady light, lossless video: POS gets the heart rate within a few bpm.
    assert whole["n"] == 3 and whole["mae"] < 3.0
    assert all(abs(v["error_bpm"]) < 4.0 for v in results["videos"])
    assert windowed["n"] == 3 * 5 and windowed["mae"] < 4.0
    for key in ("mae", "rmse", "mape", "pearson_r", "sd_error", "snr_db"):
        assert key in whole and f"{key}_se" in whole and key in windowed
    with (out / "per_video.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["video_id"] for r in rows] == ["v00000", "v00001", "v00002"]
    assert [r["reliable"] for r in rows] == ["True"] * 3
    assert results["metrics"]["whole_video_vs_reference_windows"]["n"] == 3
    assert float(rows[1]["hr_pred_bpm"]) == pytest.approx(results["videos"][1]["hr_pred_bpm"])
    with (out / "windows.csv").open() as fh:
        assert len(list(csv.reader(fh))) == 1 + 15
    md = (out / "summary.md").read_text()
    assert md.startswith("# Evaluation: pos on synthetic") and "| Pearson r |" in md
    for png in ("bland_altman.png", "scatter.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cached_reference_matches_the_generator(synth_eval):
    """The reference HR comes from the PPG of the cache, which is the generator's."""
    data, cache = synth_eval["data"], synth_eval["cache"]
    reader = get_reader("synthetic", data)
    root = cache_root(cache, "synthetic", PreprocessConfig())
    for rec in reader.records():
        with CachedVideo(root / f"{rec.video_id}.h5") as video:
            ref = reference_result(video, window_s=6.0)
            truth = reader.load_truth(rec)
            np.testing.assert_array_equal(video.ppg, truth["ppg"])
            # Constant-rate videos: the spectral peak is the simulated mean HR.
            assert abs(ref.hr_bpm - truth["hr_bpm"].mean()) < 3.0


class OracleEstimator:
    """Returns the reference PPG as the pulse: an estimator outside this package."""

    name = "oracle"
    needs_clips = False

    def estimate(self, video, *, window_s, step_s, band_bpm) -> PredictionResult:
        return reference_result(video, window_s=window_s, step_s=step_s, band_bpm=band_bpm)


def test_any_pulse_estimator_plugs_in(synth_eval):
    assert isinstance(MethodEstimator("pos"), PulseEstimator) and isinstance(OracleEstimator(), PulseEstimator)
    assert "method" in ESTIMATORS and make_estimator("method", "chrom").name == "chrom"
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        make_estimator("method", "nope")
    reader = get_reader("synthetic", synth_eval["data"])
    report = evaluate_dataset(reader, OracleEstimator(), cache_dir=synth_eval["cache"], window_s=6.0)
    assert report.estimator == "oracle" and len(report.videos) == 3
    assert report.whole_video["mae"] == 0.0 and report.windowed["mae"] == 0.0
    assert report.windowed["n"] == 15


def test_unusable_videos_are_reported_not_scored(synth_eval, tmp_path):
    reader = get_reader("synthetic", synth_eval["data"])
    report = evaluate_dataset(reader, MethodEstimator("pos"), cache_dir=synth_eval["cache"], window_s=12.0)
    assert report.videos == [] and list(report.failed) == ["v00000", "v00001", "v00002"]
    assert "shorter than one 12 s analysis window" in report.failed["v00000"]
    assert report.whole_video is None and report.windowed is None
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["n_failed"] == 3 and data["metrics"]["whole_video"] is None
    assert "failed: " in paths["markdown"].read_text()
    result = run_cli("evaluate", "--dataset", "synthetic", "--data", str(synth_eval["data"]), "--window", "12",
                     "--cache-dir", str(synth_eval["cache"]), "-q")
    assert result.returncode == 2
    assert "facepulse: error: 3 of 3 videos have no result" in result.stderr
    assert result.stderr.count("FAILED v0000") == 3


def test_bland_altman_limits():
    pred = np.array([100.0, 102.0, 98.0, 101.0, np.nan])
    ref = np.array([99.0, 100.0, 99.0, 100.0, 80.0])
    bias, lo, hi = bland_altman_limits(pred, ref)
    diff = np.array([1.0, 2.0, -1.0, 1.0])
    assert bias == pytest.approx(diff.mean())
    assert hi - bias == pytest.approx(1.96 * diff.std(ddof=1)) and bias - lo == pytest.approx(hi - bias)

"""Property-based tests (Hypothesis): signal functions, methods and ground-truth parsers.

Every function is fed arbitrary inputs of its documented kind. The properties: it returns
what its docstring promises (shapes, finiteness, invariances), or it raises a
:class:`FacepulseError` naming the problem, never another exception. Example counts stay
small so the whole file runs in seconds.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from facepulse.errors import FacepulseError, InputError
from facepulse.methods import METHODS
from facepulse.signal.filters import bandpass, detrend
from facepulse.signal.hrv import clean_ibi_mask, detect_beats, hrv_metrics, ibi_ms

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
fps_values = st.sampled_from([15.0, 25.0, 29.97, 30.0, 60.0])


def signals(min_len: int = 64, max_len: int = 400):
    return st.integers(min_len, max_len).flatmap(lambda n: arrays(np.float64, n, elements=finite))


# ----------------------------------------------------------------------- filters


@FAST
@given(x=signals(), fps=fps_values, gain=st.floats(0.01, 100.0))
def test_bandpass_shape_finite_and_linear(x, fps, gain):
    y = bandpass(x, fps)
    assert y.shape == x.shape
    assert np.isfinite(y).all()
    np.testing.assert_allclose(bandpass(gain * x, fps), gain * y, rtol=1e-6, atol=1e-6 * (1 + np.abs(gain * y).max()))


@FAST
@given(x=signals(), fps=fps_values, offset=finite)
def test_bandpass_ignores_a_constant_offset(x, fps, offset):
    y = bandpass(x, fps)
    np.testing.assert_allclose(bandpass(x + offset, fps), y, atol=1e-6 * (1 + abs(offset) + np.abs(x).max()))


@FAST
@given(n=st.integers(8, 300), fps=fps_values, slope=finite, intercept=finite)
def test_detrend_removes_a_straight_line(n, fps, slope, intercept):
    t = np.arange(n) / fps
    line = slope * t + intercept
    out = detrend(line, fps)
    assert out.shape == line.shape
    assert np.abs(out).max() <= 1e-6 * (1 + np.abs(line).max())


@FAST
@given(x=signals(min_len=40), fps=fps_values, data=st.data())
def test_detrend_keeps_gaps_as_gaps(x, fps, data):
    start = data.draw(st.integers(0, len(x) - 1))
    stop = data.draw(st.integers(start + 1, len(x)))
    x = x.copy()
    x[start:stop] = np.nan
    try:
        out = detrend(x, fps)
    except FacepulseError:
        return  # e.g. segments too short to detrend: a named error is fine
    assert out.shape == x.shape
    assert np.isnan(out[start:stop]).all()


# --------------------------------------------------------------------------- HRV


@FAST
@given(gaps_s=st.lists(st.floats(0.2, 2.0), min_size=1, max_size=60), t0=st.floats(0.0, 100.0))
def test_ibi_ms_are_the_gaps_in_milliseconds(gaps_s, t0):
    t = t0 + np.concatenate([[0.0], np.cumsum(gaps_s)])
    ibi = ibi_ms(t)
    assert ibi.shape == (len(gaps_s),)
    assert (ibi > 0).all()
    assert math.isclose(ibi.sum(), (t[-1] - t[0]) * 1000.0, rel_tol=1e-9)


@FAST
@given(t=arrays(np.float64, st.integers(2, 30), elements=st.floats(0, 100)))
def test_ibi_ms_refuses_times_that_do_not_increase(t):
    assume((np.diff(t) <= 0).any())
    with pytest.raises(InputError, match="increase"):
        ibi_ms(t)


@FAST
@given(ibi=arrays(np.float64, st.integers(1, 80), elements=st.floats(100.0, 3000.0)))
def test_clean_ibi_mask_is_a_mask_and_keeps_a_steady_rhythm(ibi):
    mask = clean_ibi_mask(ibi)
    assert mask.shape == ibi.shape and mask.dtype == bool
    steady = np.full_like(ibi, 800.0)
    assert clean_ibi_mask(steady).all()


@SLOW
@given(hr_bpm=st.floats(45.0, 180.0), duration_s=st.floats(2.5, 20.0), fps=fps_values,
       phase=st.floats(0, 2 * np.pi))
@example(hr_bpm=70.0, duration_s=4.8125, fps=15.0, phase=0.0)  # once found a beat past the end
def test_detect_beats_counts_the_beats_of_a_pulse(hr_bpm, duration_s, fps, phase):
    """Any duration from 2.5 s on: neurokit2's detector used to crash under 8 s."""
    n = int(duration_s * fps)
    t = np.arange(n) / fps
    beats = detect_beats(np.sin(2 * np.pi * hr_bpm / 60.0 * t + phase), fps)
    expected = duration_s * hr_bpm / 60.0
    assert abs(len(beats) - expected) <= 2.0
    assert np.all(np.diff(beats) > 0) and (beats >= 0).all() and (beats <= t[-1]).all()


@SLOW
@given(hr_bpm=st.floats(50.0, 120.0), n_beats=st.integers(20, 60))
def test_hrv_of_a_metronome_is_zero(hr_bpm, n_beats):
    beats = np.arange(n_beats) * 60.0 / hr_bpm
    m = hrv_metrics(beats)
    assert m["sdnn_ms"] == pytest.approx(0.0, abs=1e-6)
    assert m["rmssd_ms"] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------ methods

positive_rgb = st.integers(50, 240).flatmap(
    lambda n: arrays(np.float64, (n, 3), elements=st.floats(1.0, 255.0))
)


@FAST
@given(rgb=positive_rgb, fps=st.sampled_from([25.0, 30.0]), name=st.sampled_from(sorted(METHODS.names())))
def test_every_method_gives_a_finite_pulse_or_a_named_error(rgb, fps, name):
    try:
        bvp = METHODS.get(name)(rgb, fps)
    except FacepulseError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert bvp.shape == (rgb.shape[0],)
    assert np.isfinite(bvp).all()


@FAST
@given(rgb=positive_rgb, gain=st.floats(0.2, 5.0), name=st.sampled_from(["pos", "chrom", "green"]))
def test_colour_normalising_methods_ignore_the_exposure(rgb, gain, name):
    """POS, CHROM and GREEN divide by the temporal mean: a global gain changes nothing."""
    fn = METHODS.get(name)
    try:
        ref = fn(rgb, 30.0)
    except FacepulseError:
        return
    np.testing.assert_allclose(fn(gain * rgb, 30.0), ref, rtol=1e-6, atol=1e-6 * (1 + np.abs(ref).max()))


# ----------------------------------------------------------------- ground truths

text_lines = st.lists(
    st.text(alphabet=st.sampled_from(list("0123456789.-e +,\tnaNinf")), max_size=40), max_size=6
)


_SCRATCH: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _scratch_dir(tmp_path_factory):
    _SCRATCH.append(tmp_path_factory.mktemp("prop"))
    yield
    _SCRATCH.pop()


def _tmp_file(name: str, text: str) -> Path:
    folder = Path(tempfile.mkdtemp(dir=_SCRATCH[-1]))
    path = folder / name
    path.write_text(text)
    return path


@FAST
@given(ppg=arrays(np.float64, st.integers(2, 200), elements=finite), t0=st.floats(0, 1e4),
       dt=st.floats(0.005, 0.1))
def test_ubfc_ground_truth_round_trip(ppg, t0, dt):
    from facepulse.datasets.ubfc_rppg import read_ground_truth_txt

    n = ppg.size
    t = t0 + dt * np.arange(n)
    hr = np.full(n, 72.0)
    lines = [" ".join(repr(float(v)) for v in row) for row in (ppg, hr, t)]
    ref = read_ground_truth_txt(_tmp_file("ground_truth.txt", "\n".join(lines) + "\n"))
    np.testing.assert_array_equal(ref.ppg, ppg)
    assert ref.ppg_t_s[0] == 0.0 and ref.per_frame
    assert ref.source.endswith("ground_truth.txt")


@FAST
@given(lines=text_lines)
def test_ubfc_ground_truth_parser_never_crashes(lines):
    from facepulse.datasets.ubfc_rppg import read_ground_truth_txt

    path = _tmp_file("ground_truth.txt", "\n".join(lines))
    try:
        ref = read_ground_truth_txt(path)
    except InputError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert np.isfinite(ref.ppg).all() and ref.ppg.size == ref.ppg_t_s.size


@FAST
@given(lines=text_lines)
def test_ubfc_gtdump_parser_never_crashes(lines):
    from facepulse.datasets.ubfc_rppg import read_gtdump_xmp

    path = _tmp_file("gtdump.xmp", "\n".join(lines))
    try:
        ref = read_gtdump_xmp(path)
    except InputError as err:
        assert str(path) in str(err)
        return
    assert np.isfinite(ref.ppg).all() and np.all(np.diff(ref.ppg_t_s) >= 0)


@FAST
@given(lines=text_lines, header=st.sampled_from([None, "bvp"]))
def test_number_lines_parser_never_crashes(lines, header):
    from facepulse.datasets._common import read_number_lines

    path = _tmp_file("wave.csv", "\n".join(lines))
    try:
        values = read_number_lines(path, "wave", header=header)
    except InputError as err:
        assert str(path) in str(err)
        return
    assert values.ndim == 1 and np.isfinite(values).all()


@FAST
@given(lines=text_lines, header=st.sampled_from(["ppg", "ppg,time_s", "hr_bpm", "time_s,ppg,hr_bpm", "x"]),
       fps=st.sampled_from([None, 30.0]))
def test_generic_signals_parser_never_crashes(lines, header, fps):
    from facepulse.datasets.generic import read_signals_file

    path = _tmp_file("clip.csv", header + "\n" + "\n".join(lines))
    try:
        ref = read_signals_file(path, fps)
    except InputError as err:
        assert str(path) in str(err)
        return
    signal = ref.ppg if ref.ppg is not None else ref.hr_bpm
    assert signal is not None and np.isfinite(signal).all()

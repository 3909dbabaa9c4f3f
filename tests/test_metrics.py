"""HR metrics against values worked out by hand for a 4-video example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facepulse.eval import metrics as m

# Four videos. errors e = pred - ref = [-2, 2, -5, 0]; |e| = [2, 2, 5, 0]; e^2 = [4, 4, 25, 0]
PRED = np.array([70.0, 80.0, 90.0, 100.0])
REF = np.array([72.0, 78.0, 95.0, 100.0])


def test_mae_and_se():
    # mean |e| = 9/4; sd(|e|) = sqrt(12.75 / 3); SE = sd / sqrt(4)
    est = m.mae(PRED, REF)
    assert est.value == pytest.approx(2.25)
    assert est.se == pytest.approx(math.sqrt(12.75 / 3) / 2)


def test_rmse_and_delta_method_se():
    # mean e^2 = 33/4 = 8.25; sd(e^2) = sqrt(384.75 / 3); SE(mean e^2) = sd / 2
    # SE(RMSE) = SE(mean e^2) / (2 sqrt(8.25))
    est = m.rmse(PRED, REF)
    assert est.value == pytest.approx(math.sqrt(8.25))
    assert est.se == pytest.approx(math.sqrt(384.75 / 3) / 2 / (2 * math.sqrt(8.25)))


def test_mape_and_se():
    pct = [200 / 72, 200 / 78, 500 / 95, 0.0]
    mean = sum(pct) / 4
    sd = math.sqrt(sum((p - mean) ** 2 for p in pct) / 3)
    est = m.mape(PRED, REF)
    assert est.value == pytest.approx(mean)
    assert est.se == pytest.approx(sd / 2)
    assert est.value == pytest.approx(2.651260, abs=1e-6)


def test_pearson_r_and_se():
    # deviations: pred [-15, -5, 5, 15], ref [-14.25, -8.25, 8.75, 13.75]
    r = 505 / math.sqrt(500 * 536.75)
    est = m.pearson_r(PRED, REF)
    assert est.value == pytest.approx(r)
    assert est.se == pytest.approx(math.sqrt((1 - r * r) / (4 - 2)))


def test_bias_and_sd_of_error():
    # mean e = -1.25; sd(e) = sqrt(26.75 / 3)
    sd = math.sqrt(26.75 / 3)
    b = m.bias(PRED, REF)
    assert b.value == pytest.approx(-1.25) and b.se == pytest.approx(sd / 2)
    s = m.sd_error(PRED, REF)
    assert s.value == pytest.approx(sd) and s.se == pytest.approx(sd / math.sqrt(6))


def test_mean_snr():
    est = m.mean_snr_db(np.array([1.0, 3.0, 8.0]))
    assert est.value == pytest.approx(4.0)
    assert est.se == pytest.approx(math.sqrt((9 + 1 + 16) / 2) / math.sqrt(3))


def test_summarize_collects_every_metric():
    out = m.summarize(PRED, REF, snr_db=np.array([1.0, 2.0, 3.0, 4.0]))
    assert out["n"] == 4
    assert out["mae"] == pytest.approx(2.25) and out["rmse"] == pytest.approx(math.sqrt(8.25))
    assert out["bias"] == pytest.approx(-1.25) and out["snr_db"] == pytest.approx(2.5)
    for key in ("mae", "rmse", "mape", "pearson_r", "bias", "sd_error", "snr_db"):
        assert f"{key}_se" in out and np.isfinite(out[f"{key}_se"])
    assert "snr_db" not in m.summarize(PRED, REF)


def test_perfect_prediction():
    out = m.summarize(REF, REF)
    assert out["mae"] == 0 and out["rmse"] == 0 and out["mape"] == 0
    assert out["pearson_r"] == pytest.approx(1.0) and out["pearson_r_se"] == pytest.approx(0.0)
    assert math.isnan(out["rmse_se"])  # delta method undefined at RMSE = 0


def test_undefined_statistics_are_nan():
    one = m.mae(np.array([70.0]), np.array([71.0]))
    assert one.value == 1.0 and math.isnan(one.se)
    flat = m.pearson_r(np.array([70.0, 70.0, 70.0]), np.array([60.0, 70.0, 80.0]))
    assert math.isnan(flat.value)
    two = m.pearson_r(np.array([60.0, 70.0]), np.array([61.0, 75.0]))
    assert two.value == pytest.approx(1.0) and math.isnan(two.se)


@pytest.mark.parametrize(
    "pred, ref, message",
    [
        ([70.0, np.nan], [70.0, 71.0], "pred has a non-finite value at index 1"),
        ([70.0, 71.0], [70.0], "pred has 2 values but ref has 1"),
        ([], [], "no values to score"),
        ([[70.0]], [[70.0]], "expected 1-D arrays"),
    ],
)
def test_bad_inputs_are_refused(pred, ref, message):
    with pytest.raises(ValueError, match=message):
        m.mae(np.array(pred), np.array(ref))


def test_mape_refuses_zero_reference():
    with pytest.raises(ValueError, match="ref is 0 at index 1"):
        m.mape(np.array([1.0, 2.0]), np.array([1.0, 0.0]))

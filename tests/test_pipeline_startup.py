"""Start-up of `facepulse predict`: the face stage does not wait for SciPy's signal module,
which the back half imports in a background thread (same results either way)."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import facepulse.pipeline as pipeline
from facepulse.pipeline import PRELOAD_MODULES, import_in_background, predict


def test_the_face_stage_imports_no_scipy_signal():
    code = (
        "import sys\n"
        "import facepulse.pipeline, facepulse.methods, facepulse.roi.trace, facepulse.roi.regions\n"
        "import facepulse.face.tracker, facepulse.io.video, facepulse.cli\n"
        "print('scipy.signal' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_face_detector_does_not_import_matplotlib_and_later_imports_get_the_real_one():
    """mediapipe's init imports matplotlib.pyplot for a plotting helper facepulse never
    calls: the detector is built without it, and matplotlib still works afterwards."""
    code = (
        "import sys\n"
        "from facepulse.face.detectors import make_detector\n"
        "make_detector('auto')\n"
        "print('matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
        "import matplotlib.pyplot as plt\n"
        "import mediapipe.python.solutions.drawing_utils as du\n"
        "print(type(plt).__name__, du.plt.figure is plt.figure)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "module", "True"]


def test_background_import_imports_and_skips_failures():
    thread = import_in_background(["json", "facepulse_no_such_module_xyz", "colorsys"])
    assert isinstance(thread, threading.Thread) and thread.daemon
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "colorsys" in sys.modules  # the failure before it did not stop the rest
    assert "scipy.signal" in PRELOAD_MODULES


@pytest.fixture(scope="module")
def face_clip():
    from facepulse.synth import SynthParams, generate_video

    params = SynthParams(duration_s=12.0).with_overrides(
        {"physiology.hr_bpm": 72.0, "camera.width": 96, "camera.height": 96}
    )
    return generate_video(params, seed=3)


@pytest.mark.parametrize("method", ["auto", "pos"])
def test_results_are_the_same_with_and_without_the_background_import(face_clip, monkeypatch, method):
    with_preload = predict(face_clip.frames, fps=face_clip.fps, method=method)
    monkeypatch.setattr(pipeline, "PRELOAD_MODULES", ())
    without = predict(face_clip.frames, fps=face_clip.fps, method=method)
    assert with_preload.hr_bpm == without.hr_bpm
    np.testing.assert_array_equal(with_preload.bvp, without.bvp)
    np.testing.assert_array_equal(with_preload.windows.hr_bpm, without.windows.hr_bpm)
    assert with_preload.summary() == without.summary()

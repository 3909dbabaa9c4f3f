"""Start-up of `facepulse predict`: the face stage does not wait for SciPy's signal module,
which only the back half imports, on first use."""

from __future__ import annotations

import subprocess
import sys


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


def test_scipy_signal_is_imported_without_scipy_stats_and_later_imports_get_the_real_one():
    """scipy.signal's init imports scipy.stats (~0.3-0.5 s) for one function facepulse never
    calls: the filters import it without, and scipy.stats and that function still work."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from facepulse.signal.filters import bandpass\n"
        "bandpass(np.sin(np.arange(300) / 3.0), 30.0)\n"
        "print('scipy.signal' in sys.modules, 'scipy.stats' in sys.modules)\n"
        "import scipy.signal\n"
        "print(scipy.signal.find_peaks_cwt(np.sin(np.linspace(0, 20, 500)), np.arange(1, 10))[:3].tolist())\n"
        "import scipy.stats\n"
        "print(type(scipy.stats).__name__, scipy.stats.norm.cdf(0.0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["True", "False"]
    assert lines[1] == "[40, 196, 353]"  # find_peaks_cwt calls scipy.stats through the forwarder
    assert lines[2].split() == ["module", "0.5"]


def test_the_scipy_stats_stand_in_steps_aside_for_any_other_name():
    import colorsys

    from facepulse._standins import StandIn
    from facepulse.signal._scipy import _DEFERRED

    real = sys.modules.pop("colorsys")
    stand_in = StandIn("colorsys", _DEFERRED)
    sys.modules["colorsys"] = stand_in
    try:
        deferred = stand_in.scoreatpercentile  # a forwarder; nothing is imported yet
        assert callable(deferred) and sys.modules["colorsys"] is stand_in
        # a name that is needed at import time: the real module loads, the stand-in leaves
        assert stand_in.rgb_to_hsv(1.0, 0.0, 0.0) == colorsys.rgb_to_hsv(1.0, 0.0, 0.0)
        assert sys.modules["colorsys"] is not stand_in
    finally:
        sys.modules["colorsys"] = real

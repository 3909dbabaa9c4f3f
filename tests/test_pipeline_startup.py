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


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


_BEATS_AND_HRV = (
    "import sys\n"
    "import numpy as np\n"
    "from facepulse.signal.hrv import detect_beats, hrv_metrics\n"
    "t = np.arange(0, 60, 1 / 30)\n"
    "beats = detect_beats(np.sin(2 * np.pi * 1.1 * t + 0.3 * np.sin(2 * np.pi * 0.1 * t)), 30.0)\n"
    "print(round(hrv_metrics(beats)['mean_hr_bpm']))\n"
)


def test_beats_and_hrv_import_neurokit2_without_sklearn_or_matplotlib_and_both_work_afterwards():
    """neurokit2's init imports scikit-learn and matplotlib (~0.7 s) for features facepulse
    never calls: beats and HRV come without them, and neurokit2's own functions that use
    them, and later imports of them, still get the real packages."""
    lines = _run(
        _BEATS_AND_HRV
        + "print('sklearn' in sys.modules, 'matplotlib' in sys.modules)\n"
        "import neurokit2 as nk\n"
        "step = np.r_[np.zeros(50), np.ones(50)] + 0.01 * np.cos(np.arange(100))\n"
        "print(nk.signal_binarize(step, method='mixture')[[0, 99]].tolist())\n"  # sklearn.mixture inside
        "import sklearn.mixture, matplotlib.pyplot as plt\n"
        "print(type(sklearn.mixture).__name__, type(plt).__name__, nk.matplotlib is sys.modules['matplotlib'])\n"
    )
    assert lines[0] == "66"
    assert lines[1].split() == ["False", "False"]
    assert lines[2] == "[0.0, 1.0]"
    assert lines[3].split() == ["module", "module", "False"]  # nk keeps its stand-in, which forwards


def test_neurokit2_uses_a_package_already_imported_as_it_is():
    lines = _run(
        "import sys, matplotlib\n"
        "from facepulse.signal._neurokit import neurokit2\n"
        "nk = neurokit2()\n"
        "print(nk.matplotlib is sys.modules['matplotlib'], 'sklearn' in sys.modules)\n"
    )
    assert lines == ["True False"]


def test_a_neurokit2_that_imports_an_unlisted_submodule_gets_a_plain_import():
    """A neurokit2 release that imports a scikit-learn submodule not in the list at load
    time must still import (the plain way), not fail on the stand-in."""
    lines = _run(
        "import sys\n"
        "import facepulse.signal._neurokit as m\n"
        "m._HEAVY['sklearn'] = tuple(s for s in m._HEAVY['sklearn'] if s != 'mixture')\n"
        + _BEATS_AND_HRV.replace("import sys\n", "")
        + "print(type(sys.modules['sklearn']).__name__, type(m.neurokit2().sklearn).__name__)\n"
    )
    assert lines == ["66", "module module"]


def test_a_package_stand_in_hands_out_submodules_nothing_has_imported_yet():
    lines = _run(
        "import sys\n"
        "from facepulse._standins import package_stand_ins, standing_in\n"
        "with standing_in(*package_stand_ins('xml', ('etree.ElementTree',))):\n"
        "    import xml.etree.ElementTree as et\n"
        "    import xml\n"
        "print(type(et).__name__, 'xml' in sys.modules)\n"
        "print(et.fromstring('<a/>').tag, xml.dom.__name__)\n"  # a declared child; an undeclared one
        "try:\n"
        "    xml.no_such_thing\n"
        "except AttributeError as err:\n"
        "    print('AttributeError', err)\n"
    )
    assert lines[0] == "StandIn False"
    assert lines[1] == "a xml.dom"
    assert lines[2] == "AttributeError module 'xml' has no attribute 'no_such_thing'"

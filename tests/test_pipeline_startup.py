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

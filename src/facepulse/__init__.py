"""facepulse: heart rate from ordinary face video (remote photoplethysmography)."""

from __future__ import annotations

from facepulse.version import __version__

__all__ = ["__version__", "predict"]


def __getattr__(name: str):  # lazy: keep `import facepulse` light
    if name == "predict":
        from facepulse.pipeline import predict

        return predict
    if name == "PredictionResult":
        from facepulse.pipeline import PredictionResult

        return PredictionResult
    raise AttributeError(name)

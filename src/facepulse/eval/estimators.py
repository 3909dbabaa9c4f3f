"""Estimators: what `facepulse evaluate` scores, by kind (registry ``ESTIMATORS``).

An estimator turns one cached video into a :class:`~facepulse.pipeline.PredictionResult`
(pulse, HR, windows) through the prediction path of ``facepulse predict``:

- ``method``: a classic rPPG method on the cached RGB trace
  (:func:`facepulse.pipeline.predict_from_trace`), or ``auto``, the fused estimator on
  the cached region traces (:func:`facepulse.pipeline.predict_from_regions`);
- ``model``: a trained model on the cached face crops
  (:func:`facepulse.pipeline.predict_from_face_frames`).

Register a factory in ``ESTIMATORS`` to make a new kind available to
:func:`facepulse.eval.evaluate.evaluate_dataset` and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from facepulse.datasets.cache import CachedVideo
from facepulse.errors import ConfigError, InputError
from facepulse.pipeline import PredictionResult
from facepulse.registry import Registry

__all__ = ["ESTIMATORS", "MethodEstimator", "ModelEstimator", "PulseEstimator", "make_estimator"]


@runtime_checkable
class PulseEstimator(Protocol):
    """Turns one cached video into a pulse and HR figures.

    ``name`` labels the results; ``needs_clips`` says whether it reads the face crops
    (then the cache must hold them). ``estimate`` must return a PredictionResult whose
    ``timestamps_s`` are the video's frame times and whose windows come from
    :func:`facepulse.pipeline.result_from_pulse` with the given window settings, so they
    line up with the reference's windows.
    """

    name: str
    needs_clips: bool

    def estimate(
        self, video: CachedVideo, *, window_s: float, step_s: float, band_bpm: tuple[float, float]
    ) -> PredictionResult: ...


#: Estimator factories by kind: ``ESTIMATORS.get(kind)(spec) -> PulseEstimator``.
ESTIMATORS: Registry[Callable[[str], PulseEstimator]] = Registry("estimator")


@ESTIMATORS.register("method", help="a classic rPPG method (facepulse.methods) on the cached RGB trace")
@dataclass(frozen=True)
class MethodEstimator:
    """A classic rPPG method on the cached RGB trace: the back half of ``facepulse.predict``."""

    method: str
    needs_clips: ClassVar[bool] = False

    def __post_init__(self) -> None:
        from facepulse.methods import METHODS
        from facepulse.pipeline import FUSED_METHOD

        if self.method != FUSED_METHOD:
            METHODS.get(self.method)  # unknown names fail before any video is read

    @property
    def name(self) -> str:
        return self.method

    def estimate(
        self, video: CachedVideo, *, window_s: float, step_s: float, band_bpm: tuple[float, float]
    ) -> PredictionResult:
        from facepulse.pipeline import FUSED_METHOD, predict_from_regions, predict_from_trace

        if self.method == FUSED_METHOD:
            region_rgb = video.region_rgb
            if region_rgb is None:
                raise InputError(
                    f"{video.path}: the cache holds no region traces (made by an older facepulse); preprocess again"
                )
            return predict_from_regions(
                video.timestamps_s,
                region_rgb,
                video.fps,
                region_names=video.region_names,
                window_s=window_s,
                step_s=step_s,
                band_bpm=band_bpm,
                source=video.source_path,
                frames_without_face=video.frames_without_face,
                rgb=video.rgb,
                boxes=video.boxes,
            )
        return predict_from_trace(
            video.timestamps_s,
            video.rgb,
            video.fps,
            method=self.method,
            window_s=window_s,
            step_s=step_s,
            band_bpm=band_bpm,
            source=video.source_path,
            frames_without_face=video.frames_without_face,
            boxes=video.boxes,
        )


def make_estimator(kind: str, spec: str) -> PulseEstimator:
    """Build a registered estimator, e.g. ``make_estimator("method", "pos")``."""
    return ESTIMATORS.get(kind)(spec)


@ESTIMATORS.register("model", help="a trained model (.ckpt of facepulse train, or .onnx) on the cached face crops")
class ModelEstimator:
    """``facepulse evaluate --model``: a trained model on a cached video's face crops.

    The cache's crops must have the model's size (preprocess with ``size`` =
    ``info.size``); they are resampled to the model's frame rate, run in overlapping
    clips, and scored through :func:`facepulse.pipeline.predict_from_face_frames`, the
    HR path of ``facepulse predict --model`` and of the classic methods.
    """

    needs_clips = True

    def __init__(self, spec: str | Path | Any) -> None:
        from facepulse.models.inference import load_model

        if isinstance(spec, (str, Path)):
            self.path = Path(spec)
            self.runner = load_model(self.path)
            self.name = f"model:{self.runner.info.name} ({self.path.name})"
        else:  # a loaded model (anything with ``info`` and ``__call__(clips)``)
            self.path, self.runner = None, spec
            self.name = f"model:{spec.info.name}"
        self.info = self.runner.info

    def estimate(
        self, video: CachedVideo, *, window_s: float, step_s: float, band_bpm: tuple[float, float]
    ) -> PredictionResult:
        from facepulse.pipeline import check_model_against_classic, predict_from_face_frames

        if video.clip_size != self.info.size:
            raise ConfigError(
                f"{video.path}: face crops are {video.clip_size} px but {self.name} takes "
                f"{self.info.size} px (preprocess with size {self.info.size})"
            )
        result = predict_from_face_frames(
            video, video.clips(), self.runner, window_s=window_s, step_s=step_s, band_bpm=band_bpm,
            source=video.source_path,
        )
        # as predict --model: reliable only where the classic estimate on the same frames agrees
        return check_model_against_classic(result, video, window_s=window_s, step_s=step_s, band_bpm=band_bpm)

"""Typed, validated parameters of one synthetic video (units in every name).

A :class:`SynthParams` fully determines a video together with its seed: scenarios
(:mod:`facepulse.synth.scenarios`) only draw these values, the generator never draws
parameters itself. Every field is checked on construction; a bad value raises a
one-line :class:`~facepulse.errors.ConfigError` naming the field, e.g.
``physiology.hr_bpm=250: must be within 40-180``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from facepulse.errors import ConfigError

HR_MIN_BPM = 40.0
HR_MAX_BPM = 180.0


def _fail(name: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{name}={value!r}: {why}")


def _check_range(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, value, "must be a number")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise _fail(name, value, f"must be within {lo:g}-{hi:g}")


def _check_rgb(name: str, value: Any, lo: float, hi: float) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise _fail(name, value, "must be three numbers (R, G, B)")
    for v in value:
        _check_range(name, v, lo, hi)


def _normalise_numbers(obj: Any) -> None:
    """Store ints given for float fields as floats (and lists as tuples), so that equal
    parameters always serialise to the same JSON bytes."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        kind = str(f.type)
        if kind.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(obj, f.name, float(value))
        elif kind.startswith("tuple[float") and isinstance(value, (list, tuple)):
            object.__setattr__(obj, f.name, tuple(
                float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value
            ))


class _Section:
    """Shared validation / (de)serialisation of the parameter sections."""

    SECTION: ClassVar[str] = ""
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {}

    def __post_init__(self) -> None:
        _normalise_numbers(self)
        for name, (lo, hi) in self.RANGES.items():
            _check_range(f"{self.SECTION}.{name}", getattr(self, name), lo, hi)
        self._check()

    def _check(self) -> None:
        """Checks beyond plain ranges (choices, cross-field rules)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise _fail(cls.SECTION, data, "must be a mapping of fields")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"{cls.SECTION}.{key}: unknown field; known: {', '.join(sorted(known))}"
                )
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


@dataclass(frozen=True)
class PhysiologyParams(_Section):
    """The simulated person's cardiorespiratory state.

    hr_bpm : mean heart rate at the start of the video (beats per minute).
    hr_trajectory : a name in :data:`facepulse.synth.trajectories.HR_TRAJECTORIES`:
        "constant", "drift" (linear from ``hr_bpm`` to ``hr_end_bpm``) or "step"
        (``hr_bpm`` then a raised-cosine change to ``hr_end_bpm`` centred at
        ``hr_change_time_s`` and lasting ``hr_change_duration_s``).
    hr_end_bpm : mean HR at the end, required by every trajectory but "constant".
    hr_change_time_s : centre of the step; None = middle of the video.
    rsa_bpm : respiratory sinus arrhythmia, amplitude of the HR oscillation at the
        breathing rate (bpm).
    lf_bpm : RMS of the Mayer-wave (0.04-0.15 Hz) HR fluctuation (bpm).
    resp_rate_per_min : breathing rate (breaths per minute).
    resp_amplitude : respiratory amplitude modulation of the pulse (fraction).
    resp_baseline : respiratory baseline wander of the PPG (fraction of a beat's height).
    beat_jitter : per-beat random variation of pulse height and notch depth (fraction).
    """

    SECTION: ClassVar[str] = "physiology"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "hr_bpm": (HR_MIN_BPM, HR_MAX_BPM),
        "hr_change_duration_s": (0.0, 600.0),
        "rsa_bpm": (0.0, 20.0),
        "lf_bpm": (0.0, 20.0),
        "resp_rate_per_min": (4.0, 40.0),
        "resp_amplitude": (0.0, 0.9),
        "resp_baseline": (0.0, 2.0),
        "beat_jitter": (0.0, 0.5),
    }

    hr_bpm: float = 72.0
    hr_trajectory: str = "constant"
    hr_end_bpm: float | None = None
    hr_change_time_s: float | None = None
    hr_change_duration_s: float = 4.0
    rsa_bpm: float = 2.0
    lf_bpm: float = 1.0
    resp_rate_per_min: float = 15.0
    resp_amplitude: float = 0.1
    resp_baseline: float = 0.1
    beat_jitter: float = 0.05

    def _check(self) -> None:
        from facepulse.synth.trajectories import HR_TRAJECTORIES

        if self.hr_trajectory not in HR_TRAJECTORIES:
            raise _fail(
                "physiology.hr_trajectory", self.hr_trajectory,
                f"must be one of {', '.join(HR_TRAJECTORIES.names())}",
            )
        if self.hr_trajectory != "constant":
            if self.hr_end_bpm is None:
                raise _fail(
                    "physiology.hr_end_bpm", None, f"required for a {self.hr_trajectory} trajectory"
                )
            _check_range("physiology.hr_end_bpm", self.hr_end_bpm, HR_MIN_BPM, HR_MAX_BPM)
        elif self.hr_end_bpm is not None:
            _check_range("physiology.hr_end_bpm", self.hr_end_bpm, HR_MIN_BPM, HR_MAX_BPM)
        if self.hr_change_time_s is not None:
            _check_range("physiology.hr_change_time_s", self.hr_change_time_s, 0.0, 1e6)


@dataclass(frozen=True)
class OpticsParams(_Section):
    """Skin reflection (Wang et al. 2017, POS skin reflection model).

    pulse_amplitude : peak-to-peak relative change of the green reflectance over one
        beat on the most perfused skin (forehead, cheeks); real faces give ~0.1-1 %.
    pulse_rgb : relative pulsatile strength per channel (blood volume pulse vector).
    fitzpatrick : skin type 1 (lightest) to 6 (darkest); melanin attenuates the albedo.
    specular_strength : specular reflection on shiny skin (fraction of full scale).
    specular_motion_gain : how much head rotation / scaling modulates the specular term.
    """

    SECTION: ClassVar[str] = "optics"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "pulse_amplitude": (0.0, 0.2),
        "fitzpatrick": (1, 6),
        "specular_strength": (0.0, 1.0),
        "specular_motion_gain": (0.0, 10.0),
    }

    pulse_amplitude: float = 0.004
    pulse_rgb: tuple[float, float, float] = (0.33, 0.77, 0.53)
    fitzpatrick: int = 2
    specular_strength: float = 0.04
    specular_motion_gain: float = 1.0

    def _check(self) -> None:
        if not isinstance(self.fitzpatrick, int) or isinstance(self.fitzpatrick, bool):
            raise _fail("optics.fitzpatrick", self.fitzpatrick, "must be an integer 1-6")
        _check_rgb("optics.pulse_rgb", self.pulse_rgb, 0.0, 10.0)


@dataclass(frozen=True)
class MotionParams(_Section):
    """Rigid head motion: band-limited random translation, in-plane rotation and scale.

    translation_rms_frac : RMS translation as a fraction of the face height.
    rotation_rms_deg : RMS in-plane rotation (degrees).
    scale_rms_frac : RMS relative scale change (moving towards / away from the camera).
    slow_band_hz : frequency band (low, high) of this slow motion.
    talk_rms_deg : RMS of the fast talking-like nodding (rotation about the chin).
    talk_band_hz : frequency band of the talking motion; it overlaps the HR band.
    """

    SECTION: ClassVar[str] = "motion"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "translation_rms_frac": (0.0, 0.5),
        "rotation_rms_deg": (0.0, 30.0),
        "scale_rms_frac": (0.0, 0.3),
        "talk_rms_deg": (0.0, 15.0),
    }

    translation_rms_frac: float = 0.0
    rotation_rms_deg: float = 0.0
    scale_rms_frac: float = 0.0
    slow_band_hz: tuple[float, float] = (0.02, 0.5)
    talk_rms_deg: float = 0.0
    talk_band_hz: tuple[float, float] = (1.0, 4.0)

    def _check(self) -> None:
        for name in ("slow_band_hz", "talk_band_hz"):
            band = getattr(self, name)
            if not isinstance(band, (tuple, list)) or len(band) != 2:
                raise _fail(f"motion.{name}", band, "must be two frequencies (low, high) in Hz")
            for v in band:
                _check_range(f"motion.{name}", v, 0.001, 100.0)
            if band[0] >= band[1]:
                raise _fail(f"motion.{name}", band, "low must be below high")

    @property
    def is_still(self) -> bool:
        return self.translation_rms_frac == 0 and self.rotation_rms_deg == 0 and (
            self.scale_rms_frac == 0 and self.talk_rms_deg == 0
        )


@dataclass(frozen=True)
class LightingParams(_Section):
    """Illumination of the whole scene.

    drift_rms_frac : RMS of the slow (< 0.05 Hz) intensity drift (fraction).
    flicker_amplitude : modulation depth of the lamp's intensity at ``flicker_hz``;
        the camera integrates it over its exposure, so it aliases into the video.
    flicker_hz : lamp flicker frequency (100 Hz for 50 Hz mains, 120 Hz for 60 Hz).
    shadow_depth : darkening inside a soft moving shadow (0 = no shadow, 1 = black).
    shadow_period_s : time the shadow takes to sweep across the frame and back.
    light_rgb : colour of the light (white = (1, 1, 1)).
    """

    SECTION: ClassVar[str] = "lighting"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "drift_rms_frac": (0.0, 0.5),
        "flicker_amplitude": (0.0, 1.0),
        "flicker_hz": (0.0, 1000.0),
        "shadow_depth": (0.0, 1.0),
        "shadow_period_s": (0.5, 1e5),
    }

    drift_rms_frac: float = 0.0
    flicker_amplitude: float = 0.0
    flicker_hz: float = 100.0
    shadow_depth: float = 0.0
    shadow_period_s: float = 20.0
    light_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def _check(self) -> None:
        _check_rgb("lighting.light_rgb", self.light_rgb, 0.0, 2.0)


@dataclass(frozen=True)
class CameraParams(_Section):
    """Camera geometry, timing and sensor.

    width, height : frame size (pixels).
    fps : frame rate (frames per second); frame i is taken at ``i / fps`` seconds.
    exposure_s : integration time of each frame (at most ``1 / fps``).
    brightness : exposure gain; 1 maps the photo's reflectance onto the full 0-255 range.
    dn_per_electron : conversion gain; shot-noise variance is ``dn_per_electron * value``.
    read_noise_dn : standard deviation of the signal-independent read noise (DN).
    face_height_frac : face height (chin to forehead) over the frame height.
    face_offset_frac : (x, y) offset of the face centre from its default place, in
        fractions of the frame width / height.
    """

    SECTION: ClassVar[str] = "camera"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "width": (32, 4096),
        "height": (32, 4096),
        "fps": (1.0, 240.0),
        "exposure_s": (1e-5, 1.0),
        "brightness": (0.01, 4.0),
        "dn_per_electron": (0.0, 10.0),
        "read_noise_dn": (0.0, 50.0),
        "face_height_frac": (0.1, 0.9),
    }

    width: int = 128
    height: int = 128
    fps: float = 30.0
    exposure_s: float = 0.01
    brightness: float = 1.0
    dn_per_electron: float = 0.04
    read_noise_dn: float = 1.0
    face_height_frac: float = 0.45
    face_offset_frac: tuple[float, float] = (0.0, 0.0)

    def _check(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value % 2:
                raise _fail(f"camera.{name}", value, "must be an even integer (pixels)")
        if self.exposure_s > 1.0 / self.fps + 1e-12:
            raise _fail("camera.exposure_s", self.exposure_s, f"must be at most 1/fps = {1 / self.fps:.4g} s")
        off = self.face_offset_frac
        if not isinstance(off, (tuple, list)) or len(off) != 2:
            raise _fail("camera.face_offset_frac", off, "must be two numbers (x, y)")
        for v in off:
            _check_range("camera.face_offset_frac", v, -0.3, 0.3)


@dataclass(frozen=True)
class CodecParams(_Section):
    """How the video file is encoded.

    codec : a name in :data:`facepulse.synth.codecs.CODECS`: "ffv1" (lossless RGB, the
        default) or "h264" (libx264, YUV 4:2:0).
    crf : H.264 constant rate factor, 0 (best) - 51 (worst); ignored for FFV1.
    preset : libx264 speed preset.
    """

    SECTION: ClassVar[str] = "codec"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"crf": (0, 51)}
    PRESETS: ClassVar[tuple[str, ...]] = (
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
    )

    codec: str = "ffv1"
    crf: int = 23
    preset: str = "medium"

    def _check(self) -> None:
        from facepulse.synth.codecs import CODECS

        if self.codec not in CODECS:
            raise _fail("codec.codec", self.codec, f"must be one of {', '.join(CODECS.names())}")
        if not isinstance(self.crf, int) or isinstance(self.crf, bool):
            raise _fail("codec.crf", self.crf, "must be an integer 0-51")
        if self.preset not in self.PRESETS:
            raise _fail("codec.preset", self.preset, f"must be one of {', '.join(self.PRESETS)}")


_SECTIONS: dict[str, type[_Section]] = {
    "camera": CameraParams,
    "physiology": PhysiologyParams,
    "optics": OpticsParams,
    "motion": MotionParams,
    "lighting": LightingParams,
    "codec": CodecParams,
}


@dataclass(frozen=True)
class SynthParams:
    """Everything that defines one synthetic video (with its seed).

    face : the face: None = the built-in photo (scikit-image's astronaut); else an image
        file, or a video whose first frame with a detected face is used
        (:func:`facepulse.synth.scene.face_asset`). Stored as given (``facepulse synth
        --face`` stores an absolute path); left out of :meth:`to_dict` when None.
    """

    duration_s: float = 10.0
    camera: CameraParams = field(default_factory=CameraParams)
    physiology: PhysiologyParams = field(default_factory=PhysiologyParams)
    optics: OpticsParams = field(default_factory=OpticsParams)
    motion: MotionParams = field(default_factory=MotionParams)
    lighting: LightingParams = field(default_factory=LightingParams)
    codec: CodecParams = field(default_factory=CodecParams)
    face: str | None = None

    def __post_init__(self) -> None:
        _normalise_numbers(self)
        _check_range("duration_s", self.duration_s, 1.0, 3600.0)
        if self.face is not None and (not isinstance(self.face, str) or not self.face):
            raise _fail("face", self.face, "must be a path to an image or video file")
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise _fail(name, getattr(self, name), f"must be a {cls.__name__}")
        change = self.physiology.hr_change_time_s
        if change is not None and change > self.duration_s:
            raise _fail("physiology.hr_change_time_s", change, f"must be within the video (0-{self.duration_s:g} s)")

    @property
    def n_frames(self) -> int:
        """Number of frames: every ``i / fps`` in ``[0, duration_s)``."""
        return int(math.ceil(self.duration_s * self.camera.fps - 1e-9))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists); no ``face`` key for the built-in face."""
        data = dataclasses.asdict(self)
        if data["face"] is None:
            del data["face"]  # the files of built-in-face videos stay as they were
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthParams:
        """Inverse of :meth:`to_dict`; unknown or bad fields raise ConfigError."""
        if not isinstance(data, dict):
            raise _fail("params", data, "must be a mapping")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("duration_s", "face"):
                kwargs[key] = value
            elif key in _SECTIONS:
                kwargs[key] = _SECTIONS[key].from_dict(value)
            else:
                known = ", ".join(["duration_s", "face", *_SECTIONS])
                raise ConfigError(f"{key}: unknown parameter section; known: {known}")
        return cls(**kwargs)

    def with_overrides(self, overrides: dict[str, Any]) -> SynthParams:
        """A copy with dotted fields replaced, e.g. ``{"physiology.hr_bpm": 80}``."""
        data = self.to_dict()
        for key, value in overrides.items():
            parts = key.split(".")
            if parts in (["duration_s"], ["face"]):
                data[parts[0]] = value
                continue
            if len(parts) != 2 or parts[0] not in _SECTIONS:
                raise ConfigError(f"{key}: not a parameter; use SECTION.FIELD, e.g. physiology.hr_bpm")
            section, name = parts
            if name not in data[section]:
                known = ", ".join(sorted(data[section]))
                raise ConfigError(f"{key}: unknown field; known in {section}: {known}")
            data[section][name] = value
        return SynthParams.from_dict(data)


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value: number, ``none``, ``a,b[,c]`` tuple, or a plain string."""
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    if "," in text:
        return tuple(parse_value(part) for part in text.split(","))
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text

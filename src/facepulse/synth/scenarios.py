"""Named scenarios: presets that draw a video's parameters from a seed.

A scenario is a function ``(rng, base) -> SynthParams`` registered in ``SCENARIOS``. It
keeps ``base``'s duration, frame size and rate, and person (heart rate and its
trajectory, HRV, breathing, pulse strength), and draws the conditions its name stands
for (skin type, motion, light, camera, codec). :func:`sample_params` draws the person
from its own random stream first, so the same seed gives the same heart in every
scenario. Add a scenario by decorating a function.

>>> from facepulse.synth.scenarios import sample_params
>>> params = sample_params("motion", seed=7)
>>> params.motion.rotation_rms_deg > 0
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from facepulse.registry import Registry
from facepulse.synth.params import (
    HR_MAX_BPM,
    HR_MIN_BPM,
    CodecParams,
    LightingParams,
    MotionParams,
    OpticsParams,
    PhysiologyParams,
    SynthParams,
)
from facepulse.synth.seeds import stream_rng

Scenario = Callable[[np.random.Generator, SynthParams], SynthParams]
SCENARIOS: Registry[Scenario] = Registry("scenario")

#: CRF of ``compressed``: libx264's default, the pulse damaged but still there (on a
#: still 320x240 face the green trace's correlation with the PPG drops from 0.92-0.94
#: at CRF 0 to 0.37-0.48, two seeds measured).
COMPRESSED_CRF = 23
#: CRF of ``hard``: the pulse of a still face is essentially gone (correlation 0.01-0.12).
HARD_CRF = 28
LIGHT_SKIN = (1, 2, 3, 4)
DARK_SKIN = (5, 6)
ALL_SKIN = (1, 2, 3, 4, 5, 6)


# ---------------------------------------------------------------- building blocks


def draw_physiology(rng: np.random.Generator, duration_s: float) -> PhysiologyParams:
    """A resting-to-active adult: HR 50-120 bpm, a third of videos drift or step."""
    hr = float(rng.uniform(50, 120))
    kind = str(rng.choice(["constant", "drift", "step"], p=[0.5, 0.25, 0.25]))
    end = float(np.clip(hr + rng.uniform(-30, 30), HR_MIN_BPM, HR_MAX_BPM))
    change_time = float(rng.uniform(0.3, 0.7) * duration_s)
    return PhysiologyParams(
        hr_bpm=hr,
        hr_trajectory=kind,
        hr_end_bpm=None if kind == "constant" else end,
        hr_change_time_s=change_time if kind == "step" else None,
        hr_change_duration_s=float(rng.uniform(2, 8)),
        rsa_bpm=float(rng.uniform(0.5, 4.0)),
        lf_bpm=float(rng.uniform(0.3, 2.0)),
        resp_rate_per_min=float(rng.uniform(8, 22)),
        resp_amplitude=float(rng.uniform(0.03, 0.2)),
        resp_baseline=float(rng.uniform(0.02, 0.2)),
        beat_jitter=float(rng.uniform(0.02, 0.08)),
    )


def draw_optics(rng: np.random.Generator) -> OpticsParams:
    """Pulse strength log-uniform in 0.25-0.6 % of green, specular 2-8 % (skin type kept)."""
    return OpticsParams(
        pulse_amplitude=float(np.exp(rng.uniform(np.log(0.0025), np.log(0.006)))),
        specular_strength=float(rng.uniform(0.02, 0.08)),
        specular_motion_gain=float(rng.uniform(0.5, 1.5)),
    )


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    # One uniform draw whatever the number of options keeps later draws aligned.
    return options[min(int(rng.uniform() * len(options)), len(options) - 1)]


def draw_motion(rng: np.random.Generator, kind: str) -> MotionParams:
    """``still`` (none), ``moderate`` (slow wander) or ``talking`` (wander + 1-4 Hz nods)."""
    u = rng.uniform(size=4)  # always four draws, whatever the kind
    if kind == "still":
        return MotionParams()
    return MotionParams(
        translation_rms_frac=float(0.03 + 0.05 * u[0]),
        rotation_rms_deg=float(2 + 4 * u[1]),
        scale_rms_frac=float(0.01 + 0.03 * u[2]),
        talk_rms_deg=float(1 + 2 * u[3]) if kind == "talking" else 0.0,
    )


def draw_lighting(rng: np.random.Generator, varying: bool) -> LightingParams:
    """Steady white-ish light, or drift + mains flicker + a moving shadow."""
    u = rng.uniform(size=6)  # always six draws
    warmth = 0.2 * u[0] - 0.1  # colour temperature around neutral
    light_rgb = (1.0, 1.0 - 0.3 * abs(warmth), 1.0 - (2.0 if warmth > 0 else 0.5) * abs(warmth))
    if not varying:
        return LightingParams(light_rgb=light_rgb)
    return LightingParams(
        drift_rms_frac=float(0.05 + 0.1 * u[1]),
        flicker_amplitude=float(0.02 + 0.08 * u[2]),
        flicker_hz=100.0 if u[3] < 0.5 else 120.0,
        shadow_depth=float(0.2 + 0.3 * u[4]),
        shadow_period_s=float(8 + 22 * u[5]),
        light_rgb=light_rgb,
    )


def draw_camera(rng: np.random.Generator, base: SynthParams, dark: bool = False):
    """Framing, exposure and sensor noise of a webcam (keeps size and frame rate)."""
    cam = base.camera
    exposure = float(min(1.0 / cam.fps, rng.uniform(0.005, 0.02)))
    return dataclasses.replace(
        cam,
        exposure_s=exposure,
        brightness=float(rng.uniform(0.35, 0.6) if dark else rng.uniform(0.8, 1.1)),
        dn_per_electron=float(rng.uniform(0.02, 0.06)),
        read_noise_dn=float(rng.uniform(2.0, 4.0) if dark else rng.uniform(0.5, 2.0)),
        face_height_frac=float(rng.uniform(0.35, 0.55)),
        face_offset_frac=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.05, 0.05))),
    )


def _compose(
    rng: np.random.Generator,
    base: SynthParams,
    *,
    skin: Sequence[int] = LIGHT_SKIN,
    motion: Sequence[str] = ("still",),
    varying_light: bool = False,
    crf: int | None = None,
    dark: bool = False,
) -> SynthParams:
    # Fixed draw order whatever the options, so scenarios stay comparable seed by seed.
    fitzpatrick = int(_pick(rng, skin))
    kind = str(_pick(rng, motion))
    camera = draw_camera(rng, base, dark=dark)
    motion_params = draw_motion(rng, kind)
    lighting = draw_lighting(rng, varying_light)
    codec = CodecParams(codec="h264", crf=crf) if crf is not None else CodecParams()
    return dataclasses.replace(
        base, camera=camera, optics=dataclasses.replace(base.optics, fitzpatrick=fitzpatrick),
        motion=motion_params, lighting=lighting, codec=codec,
    )


# ---------------------------------------------------------------- the presets


@SCENARIOS.register("still")
def still(rng: np.random.Generator, base: SynthParams) -> SynthParams:
    """Still head, steady light, skin types I-IV, lossless FFV1: the easy reference case."""
    return _compose(rng, base)


@SCENARIOS.register("motion")
def motion(rng: np.random.Generator, base: SynthParams) -> SynthParams:
    """Moderate head motion, or talking-like nods (1-4 Hz) in half of the videos."""
    return _compose(rng, base, motion=("moderate", "talking"))


@SCENARIOS.register("lighting")
def lighting(rng: np.random.Generator, base: SynthParams) -> SynthParams:
    """Still head under drifting, flickering (100/120 Hz mains) light with a moving shadow."""
    return _compose(rng, base, varying_light=True)


@SCENARIOS.register("dark-skin")
def dark_skin(rng: np.random.Generator, base: SynthParams) -> SynthParams:
    """Still head, steady light, skin types V-VI (less light reflected, same camera)."""
    return _compose(rng, base, skin=DARK_SKIN)


@SCENARIOS.register("compressed")
def compressed(rng: np.random.Generator, base: SynthParams) -> SynthParams:
    """Still head, steady light, H.264 (libx264) at CRF 23, its default."""
    return _compose(rng, base, crf=COMPRESSED_CRF)


@SCENARIOS.register("hard")
def hard(rng: np.random.Generator, base: SynthParams) -> SynthParams:
    """Talking motion + varying light + any skin type + dim, noisy camera + H.264 CRF 28."""
    return _compose(
        rng, base, skin=ALL_SKIN, motion=("talking",), varying_light=True, crf=HARD_CRF, dark=True
    )


@SCENARIOS.register("mixed")
def mixed(rng: np.random.Generator, base: SynthParams) -> SynthParams:
    """Each difficulty (motion, light, skin type, codec, dim camera) on or off at random."""
    on = rng.uniform(size=5) < 0.5
    return _compose(
        rng, base, motion=("moderate", "talking") if on[0] else ("still",), varying_light=bool(on[1]),
        skin=ALL_SKIN if on[2] else LIGHT_SKIN, crf=COMPRESSED_CRF if on[3] else None, dark=bool(on[4]),
    )


def sample_params(
    scenario: str, seed: int, base: SynthParams | None = None, overrides: dict[str, Any] | None = None
) -> SynthParams:
    """Parameters of the video with ``seed`` under ``scenario``.

    Parameters
    ----------
    scenario : a name in ``SCENARIOS``.
    seed : the video's seed (see :func:`facepulse.synth.seeds.video_seed`).
    base : supplies ``duration_s`` and the camera's ``width``, ``height``, ``fps``.
    overrides : dotted fields forced after drawing, e.g. ``{"codec.crf": 35}``.

    Returns
    -------
    SynthParams (validated; a bad override raises ConfigError naming the field).
    """
    draw = SCENARIOS.get(scenario)
    base = base if base is not None else SynthParams()
    person_rng = stream_rng(seed, "person")
    base = dataclasses.replace(
        base, physiology=draw_physiology(person_rng, base.duration_s), optics=draw_optics(person_rng)
    )
    params = draw(stream_rng(seed, "scenario"), base)
    return params.with_overrides(overrides) if overrides else params

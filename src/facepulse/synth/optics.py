"""Skin optics and camera: how the pulse becomes pixel values.

The skin reflection model of Wang et al. 2017 (POS) gives the colour of skin pixel x
at time t as

    C(x, t) = I(x, t) * ( u_skin(x) * (1 - a(x) * p * bvp(t)) + s(x, t) ) + n(x, t)

with I the illumination (intensity and colour, drift, flicker, shadow), u_skin the
skin albedo (RGB), a(x) the local pulsatile strength (0 off skin), p the per-channel
blood volume pulse vector (strongest in green), bvp(t) the blood volume pulse, s the
specular reflection (light-coloured, varies with motion) and n the sensor noise. Skin
gets darker when blood volume rises, which is how real faces behave (the green trace
of UBFC-rPPG is anti-correlated with its contact PPG).

The diffuse and specular parts are linear in bvp(t) and s(t), so they are prepared
once per video as three image planes (:func:`reflection_planes`) and combined per frame
(:func:`reflect`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Relative melanin absorbance per channel (R, G, B): melanin absorbs blue most.
_MELANIN_ABSORBANCE_RGB = np.array([0.83, 1.0, 1.15])
# Melanin optical density added to the source photo (Fitzpatrick ~II) per skin type;
# type VI turns a (225, 180, 160) skin into about (90, 60, 45).
_MELANIN_DENSITY = {1: -0.12, 2: 0.0, 3: 0.25, 4: 0.5, 5: 0.8, 6: 1.1}


def melanin_transmittance(fitzpatrick: int) -> np.ndarray:
    """Per-channel factor that turns the source skin albedo into skin type ``fitzpatrick``.

    Beer-Lambert attenuation by epidermal melanin (Jacques 1998, "Skin optics",
    Oregon Medical Laser Center News), with absorbance decreasing from blue to red.

    Parameters
    ----------
    fitzpatrick : skin type 1-6 (the source photo is type ~2).

    Returns
    -------
    (3,) RGB multipliers (> 1 lightens, < 1 darkens).
    """
    return np.exp(-_MELANIN_DENSITY[int(fitzpatrick)] * _MELANIN_ABSORBANCE_RGB)


def apply_skin_tone(albedo: np.ndarray, tone_mask: np.ndarray, fitzpatrick: int) -> np.ndarray:
    """Recolour the skin of an RGB albedo image to another skin type.

    Melanin attenuation (Jacques 1998) blended in by a soft skin mask.

    Parameters
    ----------
    albedo : (H, W, 3) float reflectance in [0, 1].
    tone_mask : (H, W) float in [0, 1], 1 on skin.
    fitzpatrick : target skin type 1-6.

    Returns
    -------
    (H, W, 3) float32 albedo, clipped to [0, 1].
    """
    factor = 1.0 + tone_mask[..., None] * (melanin_transmittance(fitzpatrick) - 1.0)
    return np.clip(albedo * factor, 0.0, 1.0).astype(np.float32)


@dataclass
class ReflectionPlanes:
    """Per-pixel planes of the skin reflection model, linear in bvp(t) and s(t).

    ``reflect(planes, bvp, s) = diffuse + bvp * pulsatile + s * specular``; all
    (H, W, 3) float32.
    """

    diffuse: np.ndarray
    pulsatile: np.ndarray
    specular: np.ndarray


def reflection_planes(
    albedo: np.ndarray,
    pulse_map: np.ndarray,
    specular_map: np.ndarray,
    pulse_amplitude: float,
    pulse_rgb: tuple[float, float, float] | np.ndarray,
) -> ReflectionPlanes:
    """Split the skin reflection model into planes that are fixed over time.

    Wang et al. 2017, "Algorithmic principles of remote PPG" (IEEE TBME 64:1479).

    Parameters
    ----------
    albedo : (H, W, 3) float skin / scene reflectance in [0, 1].
    pulse_map : (H, W) float pulsatile weight a(x) in [0, 1]; 0 off skin.
    specular_map : (H, W) float specular weight in [0, 1] (shiny skin).
    pulse_amplitude : peak-to-peak relative green change for ``a = 1`` and a
        unit-height beat (e.g. 0.004).
    pulse_rgb : (3,) blood volume pulse vector (de Haan & van Leest 2014 measured
        (0.33, 0.77, 0.53)); scaled so that green is 1.

    Returns
    -------
    ReflectionPlanes with (H, W, 3) float32 planes.
    """
    p = np.asarray(pulse_rgb, dtype=np.float64)
    p = p / p[1] if p[1] > 0 else p
    diffuse = albedo.astype(np.float32)
    pulsatile = (-pulse_amplitude * albedo * pulse_map[..., None] * p).astype(np.float32)
    specular = np.repeat(specular_map[..., None], 3, axis=2).astype(np.float32)
    return ReflectionPlanes(diffuse=diffuse, pulsatile=pulsatile, specular=specular)


def reflect(planes: ReflectionPlanes, bvp: float, specular: float, out: np.ndarray | None = None) -> np.ndarray:
    """Colour of every pixel for one blood-volume value and one specular level.

    Wang et al. 2017 skin reflection model (see :func:`reflection_planes`).

    Parameters
    ----------
    planes : prepared planes, each (H, W, C) float32.
    bvp : blood volume pulse at this instant (dimensionless, centred).
    specular : specular level s(t) at this instant.
    out : optional (H, W, C) float32 buffer.

    Returns
    -------
    (H, W, C) float32 reflected colour (before illumination and camera).
    """
    out = cv2.scaleAdd(planes.pulsatile, float(bvp), planes.diffuse, dst=out)
    return cv2.scaleAdd(planes.specular, float(specular), out, dst=out)


def flicker_gain(
    t_s: np.ndarray, exposure_s: float, flicker_hz: float, amplitude: float, phase_rad: float = 0.0
) -> np.ndarray:
    """Mean intensity of a flickering lamp over each frame's exposure window.

    Exact integral of ``1 + amplitude * sin(2 pi f t + phase)`` over
    ``[t, t + exposure_s]``, a global-shutter version of the AC-light model of Sheinin
    et al. 2017 ("Computational imaging on the electric grid", CVPR): this is how mains
    flicker aliases into a video.

    Parameters
    ----------
    t_s : (N,) exposure start times (s).
    exposure_s : integration time (s).
    flicker_hz : lamp modulation frequency (Hz); 0 disables.
    amplitude : modulation depth (fraction).
    phase_rad : lamp phase at t = 0.

    Returns
    -------
    (N,) intensity gain, mean 1.
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    if flicker_hz <= 0 or amplitude == 0:
        return np.ones_like(t_s)
    w = 2 * np.pi * flicker_hz
    integral = (np.cos(w * t_s + phase_rad) - np.cos(w * (t_s + exposure_s) + phase_rad)) / (w * exposure_s)
    return 1.0 + amplitude * integral


def standard_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance noise, approximately Gaussian, as float32.

    Irwin-Hall approximation (sum of four uniform bytes; Hall 1927, Biometrika 19:240):
    several times cheaper than an exact normal sampler for a whole frame, with tails
    cut at +-3.5 sd, which sensor noise after 8-bit quantisation does not resolve.

    Parameters
    ----------
    rng : random generator (consumes ``4 * prod(shape)`` random bytes).
    shape : output shape.

    Returns
    -------
    float32 array of ``shape``.
    """
    n = int(np.prod(shape))
    planes = np.frombuffer(rng.bytes(4 * n), dtype=np.uint8).reshape(4, n)
    total = planes[0].astype(np.int16)
    total += planes[1]
    total += planes[2]
    total += planes[3]
    out = total.astype(np.float32)
    # Four uniforms on 0..255: mean 510, variance 4 * (256**2 - 1) / 12.
    out -= np.float32(510.0)
    out *= np.float32(1.0 / np.sqrt(4 * (256**2 - 1) / 12))
    return out.reshape(shape)


def expose_dn(signal_dn: np.ndarray, dn_per_electron: float, read_noise_dn: float, noise: np.ndarray) -> np.ndarray:
    """Camera sensor on a signal already in DN: shot + read noise, 8-bit quantisation.

    Photon-transfer model (Janesick 2007, "Photon Transfer", SPIE): noise variance
    ``dn_per_electron * signal_dn + read_noise_dn**2``.

    Parameters
    ----------
    signal_dn : (H, W, 3) float32 mean signal in DN (0-255 = full scale); overwritten.
    dn_per_electron : conversion gain (DN per photo-electron); 0 = no shot noise.
    read_noise_dn : read noise standard deviation (DN).
    noise : (H, W, 3) float32 zero-mean, unit-variance draws for this frame; overwritten.

    Returns
    -------
    (H, W, 3) uint8 frame.
    """
    signal = np.maximum(signal_dn, np.float32(0.0), out=signal_dn)
    sd = signal * np.float32(dn_per_electron)
    sd += np.float32(read_noise_dn**2)
    np.sqrt(sd, out=sd)
    noise *= sd
    signal += noise
    signal += np.float32(0.5)  # round half up when truncating below
    np.clip(signal, 0.0, 255.0, out=signal)
    return signal.astype(np.uint8)

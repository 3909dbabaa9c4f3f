"""Render a synthetic face video with exact ground truth, in memory or frame by frame.

>>> from facepulse.synth import SynthParams, generate_video
>>> video = generate_video(SynthParams(duration_s=5), seed=0)  # doctest: +SKIP
>>> video.frames.shape, video.hr_bpm.shape                      # doctest: +SKIP
((150, 128, 128, 3), (150,))

Everything random comes from the seed, split into independent streams (physiology,
motion, lighting, background, sensor noise) so that changing one part of the
parameters does not reshuffle the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from facepulse.errors import ConfigError
from facepulse.synth import optics, scene
from facepulse.synth.params import SynthParams
from facepulse.synth.physiology import simulate_physiology
from facepulse.synth.seeds import check_seed, stream_rng

# Rest position of the face centre in the frame (fractions of width / height).
_FACE_CENTRE_FRAC = (0.5, 0.5)


@dataclass
class FrameTruth:
    """Per-frame ground truth of a video (all arrays have one row per frame).

    timestamps_s : (T,) frame times, exactly ``i / fps``.
    ppg : (T,) blood volume pulse driving the render (skin is darkest at its peaks).
    hr_bpm : (T,) instantaneous heart rate (bpm).
    mean_hr_bpm : (T,) requested HR trajectory, before HRV (bpm).
    resp : (T,) respiration in [-1, 1].
    beat_times_s : (B,) systolic-peak times (s).
    face_boxes_xyxy : (T, 4) face-oval bounding box in the frame (pixels).
    pose : rigid head pose per frame.
    illumination : (T,) global light gain (drift x flicker), mean ~1.
    specular : (T,) specular level s(t).
    """

    timestamps_s: np.ndarray
    ppg: np.ndarray
    hr_bpm: np.ndarray
    mean_hr_bpm: np.ndarray
    resp: np.ndarray
    beat_times_s: np.ndarray
    face_boxes_xyxy: np.ndarray
    pose: scene.HeadPose
    illumination: np.ndarray
    specular: np.ndarray


@dataclass
class SynthVideo:
    """A rendered video held in memory.

    frames : (T, H, W, 3) uint8 RGB.
    fps : frame rate (Hz).
    timestamps_s : (T,) frame times (s).
    ppg, hr_bpm, resp : (T,) ground truth per frame (see :class:`FrameTruth`).
    beat_times_s : (B,) systolic-peak times (s).
    skin_mask : (T, H, W) bool, pixels of pulsatile skin in each frame.
    truth : the full per-frame ground truth (pose, boxes, illumination...).
    params : the parameters it was rendered from; seed : its seed.
    """

    frames: np.ndarray
    fps: float
    timestamps_s: np.ndarray
    ppg: np.ndarray
    hr_bpm: np.ndarray
    resp: np.ndarray
    beat_times_s: np.ndarray
    skin_mask: np.ndarray
    truth: FrameTruth
    params: SynthParams
    seed: int

    def mean_skin_rgb(self) -> np.ndarray:
        """(T, 3) float64 mean RGB over each frame's true skin mask (an ideal ROI)."""
        return np.stack([cv2.mean(f, m.view(np.uint8))[:3] for f, m in zip(self.frames, self.skin_mask)])


class Renderer:
    """Prepares one video (truth, sprite, background) and renders its frames in order.

    Rendering is streaming: :meth:`frames` yields one frame at a time, so long or large
    videos never sit in memory. The ground truth (:attr:`truth`) is known before the
    first frame is drawn.
    """

    def __init__(self, params: SynthParams, seed: int) -> None:
        if not isinstance(params, SynthParams):
            raise ConfigError(f"params={type(params).__name__}: must be a SynthParams")
        self.params = params
        self.seed = check_seed(seed)
        cam = params.camera
        self.height, self.width = cam.height, cam.width
        n = params.n_frames
        t_s = np.arange(n, dtype=np.float64) / cam.fps

        phys = simulate_physiology(t_s, params.physiology, params.duration_s, stream_rng(seed, "physiology"))

        asset = scene.face_asset(params.face)
        face_h_px = cam.face_height_frac * cam.height
        self._k = face_h_px / asset.face_height_px
        pose = scene.head_motion(n, cam.fps, face_h_px, params.motion, stream_rng(seed, "motion"))
        self._pose = pose
        self._build_sprite(asset)
        self._centre_frame = np.array(
            [(_FACE_CENTRE_FRAC[0] + cam.face_offset_frac[0]) * cam.width,
             (_FACE_CENTRE_FRAC[1] + cam.face_offset_frac[1]) * cam.height]
        )
        self._matrices = np.stack([self._matrix(i) for i in range(n)]) if n else np.zeros((0, 2, 3))
        oval = self._oval_sprite
        boxes = np.empty((n, 4))
        for i, m in enumerate(self._matrices):
            pts = oval @ m[:, :2].T + m[:, 2]
            boxes[i] = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]

        light = params.lighting
        rng_light = stream_rng(seed, "lighting")
        drift = scene.illumination_drift(n, cam.fps, light, rng_light)
        flicker_phase = rng_light.uniform(0, 2 * np.pi)
        flicker = optics.flicker_gain(t_s, cam.exposure_s, light.flicker_hz, light.flicker_amplitude, flicker_phase)
        self._shadow_setup(rng_light, face_h_px, t_s)

        opt = params.optics
        spec = opt.specular_strength * np.clip(
            1 + opt.specular_motion_gain * (pose.angle_deg / 10 + 5 * (pose.scale - 1)), 0.0, 3.0
        )
        self.truth = FrameTruth(
            timestamps_s=t_s, ppg=phys.ppg, hr_bpm=phys.hr_bpm, mean_hr_bpm=phys.mean_hr_bpm,
            resp=phys.resp, beat_times_s=phys.beat_times_s, face_boxes_xyxy=boxes, pose=pose,
            illumination=drift * flicker, specular=spec,
        )
        # The render uses the pulse around its mean, so the mean skin colour is the photo's.
        self._bvp = phys.ppg - (phys.ppg.mean() if n else 0.0)
        self.background = scene.textured_background(cam.height, cam.width, stream_rng(seed, "background"))

    # ------------------------------------------------------------------ preparation

    def _build_sprite(self, asset: scene.FaceAsset) -> None:
        """Scale the face asset to the frame and split it into reflection planes."""
        p = self.params
        k = self._k
        h0, w0 = asset.image.shape[:2]
        size = (max(1, int(round(w0 * k))), max(1, int(round(h0 * k))))
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR

        albedo = optics.apply_skin_tone(asset.image, asset.tone_mask, p.optics.fitzpatrick)

        def rs(img: np.ndarray) -> np.ndarray:
            return cv2.resize(np.ascontiguousarray(img, dtype=np.float32), size, interpolation=interp)

        albedo, alpha = rs(albedo), np.clip(rs(asset.alpha), 0, 1)
        pulse_map, spec_map = rs(asset.pulse_map), rs(asset.specular_map)
        skin = rs(asset.skin_mask.astype(np.float32)) > 0.5
        pulse_map = pulse_map * skin  # exactly zero off skin after resampling

        # The shoulders end at the bottom of the crop: continue them well below the frame.
        centre_sprite = asset.face_centre_xy * k
        below = (1 - _FACE_CENTRE_FRAC[1] - p.camera.face_offset_frac[1]) * p.camera.height
        need = int(np.ceil(max(0.0, below + 0.5 * p.camera.height - (size[1] - centre_sprite[1]))))
        if need:
            def ext(img: np.ndarray) -> np.ndarray:
                return cv2.copyMakeBorder(img, 0, need, 0, 0, cv2.BORDER_REPLICATE)

            albedo, alpha = ext(albedo), ext(alpha)
            pulse_map, spec_map = ext(pulse_map), ext(spec_map)
            skin = ext(skin.astype(np.uint8)).astype(bool)

        planes = optics.reflection_planes(albedo, pulse_map, spec_map, p.optics.pulse_amplitude, p.optics.pulse_rgb)
        # Only the face region changes over time: update just that window each frame.
        active = (pulse_map > 0) | (spec_map > 1e-4)
        ys, xs = np.nonzero(active)
        if ys.size:
            self._window = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        else:
            self._window = (slice(0, 0), slice(0, 0))
        win = self._window
        self._window_planes = optics.ReflectionPlanes(
            diffuse=np.ascontiguousarray(planes.diffuse[win]),
            pulsatile=np.ascontiguousarray(planes.pulsatile[win]),
            specular=np.ascontiguousarray(planes.specular[win]),
        )
        self._sprite = np.ascontiguousarray(planes.diffuse)
        self._alpha_sprite = np.ascontiguousarray(alpha, dtype=np.float32)
        self._skin_sprite = skin.astype(np.uint8)
        self._centre_sprite = centre_sprite
        self._oval_sprite = asset.oval_xy * k

    def _matrix(self, i: int) -> np.ndarray:
        pose = self._pose
        m = cv2.getRotationMatrix2D(
            (float(self._centre_sprite[0]), float(self._centre_sprite[1])),
            float(pose.angle_deg[i]), float(pose.scale[i]),
        )
        m[:, 2] += self._centre_frame + [pose.dx_px[i], pose.dy_px[i]] - self._centre_sprite
        return m

    def _shadow_setup(self, rng: np.random.Generator, face_h_px: float, t_s: np.ndarray) -> None:
        """A soft shadow edge sweeping back and forth across the face."""
        light = self.params.lighting
        angle = rng.uniform(0, 2 * np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        self._shadow_on = light.shadow_depth > 0
        if not self._shadow_on:
            return
        normal = np.array([np.cos(angle), np.sin(angle)])
        length = int(2 * np.hypot(self.width, self.height)) + 4
        self._shadow_len = length
        self._shadow_normal = normal
        softness = 0.15 * face_h_px
        self._shadow_profile = (1 - light.shadow_depth * scene.shadow_profile(length, softness))[None, :]
        centre = float(self._centre_frame @ normal)
        self._shadow_pos = centre + 0.6 * face_h_px * np.sin(2 * np.pi * t_s / light.shadow_period_s + phase)

    def _shadow(self, i: int) -> np.ndarray:
        n = self._shadow_normal
        # dst(x, y) = profile(n . (x, y) - pos + length / 2): one warp draws the edge.
        m = np.array([[n[0], n[1], self._shadow_len / 2 - self._shadow_pos[i]], [0.0, 0.0, 0.0]])
        return cv2.warpAffine(
            self._shadow_profile, m, (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
        )

    # ------------------------------------------------------------------ rendering

    @property
    def n_frames(self) -> int:
        return int(self.truth.timestamps_s.size)

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(frame (H, W, 3) uint8 RGB, skin_mask (H, W) bool)`` for every frame."""
        p = self.params
        cam = p.camera
        size = (self.width, self.height)
        noise_rng = stream_rng(self.seed, "noise")
        light_rgb = np.asarray(p.lighting.light_rgb, dtype=np.float64) * 255.0 * cam.brightness
        window_buf = np.empty_like(self._window_planes.diffuse)
        last_m = None
        for i in range(self.n_frames):
            optics.reflect(self._window_planes, self._bvp[i], self.truth.specular[i], out=window_buf)
            self._sprite[self._window] = window_buf
            m = self._matrices[i]
            face = cv2.warpAffine(self._sprite, m, size, flags=cv2.INTER_LINEAR)  # outside: 0
            if last_m is None or not np.array_equal(m, last_m):  # a still head: warp masks once
                alpha = cv2.warpAffine(self._alpha_sprite, m, size, flags=cv2.INTER_LINEAR)
                skin = cv2.warpAffine(self._skin_sprite, m, size, flags=cv2.INTER_NEAREST)
                one_minus_alpha = np.subtract(np.float32(1.0), alpha)
                skin_bool = skin.astype(bool)
                last_m = m
            # Alpha compositing over the background (Porter & Duff 1984), one OpenCV pass.
            radiance = cv2.blendLinear(face, self.background, alpha, one_minus_alpha)
            if self._shadow_on:
                np.multiply(radiance, self._shadow(i)[..., None], out=radiance)
            # Light colour x intensity x exposure gain (to DN), per channel.
            gain = light_rgb * self.truth.illumination[i]
            radiance = cv2.multiply(radiance, (float(gain[0]), float(gain[1]), float(gain[2]), 0.0))
            noise = optics.standard_noise(noise_rng, radiance.shape)
            frame = optics.expose_dn(radiance, cam.dn_per_electron, cam.read_noise_dn, noise)
            yield frame, skin_bool.copy()


def generate_video(params: SynthParams, seed: int = 0) -> SynthVideo:
    """Render a whole video in memory (frames as the camera delivers them, before any codec).

    Parameters
    ----------
    params : everything about the video (duration, camera, physiology, optics, motion,
        lighting; ``params.codec`` is used only by the writer / :func:`apply_codec`).
    seed : non-negative integer; the same (params, seed) always gives the same video.

    Returns
    -------
    SynthVideo with (T, H, W, 3) uint8 frames and per-frame ground truth.
    """
    renderer = Renderer(params, seed)
    n, h, w = renderer.n_frames, params.camera.height, params.camera.width
    frames = np.empty((n, h, w, 3), np.uint8)
    masks = np.empty((n, h, w), bool)
    for i, (frame, skin) in enumerate(renderer.frames()):
        frames[i] = frame
        masks[i] = skin
    t = renderer.truth
    return SynthVideo(
        frames=frames, fps=float(params.camera.fps), timestamps_s=t.timestamps_s, ppg=t.ppg,
        hr_bpm=t.hr_bpm, resp=t.resp, beat_times_s=t.beat_times_s, skin_mask=masks, truth=t,
        params=params, seed=renderer.seed,
    )

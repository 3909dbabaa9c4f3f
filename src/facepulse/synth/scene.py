"""The synthetic scene: a real face photograph, its skin maps, a background, head motion
and lighting over time.

The face is NASA astronaut Eileen Collins from scikit-image's ``data.astronaut()``
(public domain, shipped inside the scikit-image wheel, so nothing is downloaded), or any
face photo or video frame given as ``SynthParams.face`` (``facepulse synth --face``).
MediaPipe Face Mesh (landmarks) and Selfie Segmentation (person cut-out) run on it
once per process; everything per video is cheap resampling of that asset.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import cv2
import numpy as np

from facepulse.synth.params import LightingParams, MotionParams
from facepulse.synth.physiology import band_limited_noise

# Head-and-shoulders crop of the 512x512 photo: wide enough to keep both arms inside
# (no vertical cut edge), stops above the helmet on her lap.
_CROP_XYXY = (0, 0, 440, 336)
# YCrCb skin-colour box (Chai & Ngan 1999, slightly widened), used to drop hair and eyes from the masks.
_CR_RANGE = (133, 180)
_CB_RANGE = (77, 135)
# Landmarks of MediaPipe's 468-point mesh used to place the pulse and specular maps.
_FOREHEAD, _LEFT_CHEEK, _RIGHT_CHEEK, _NOSE_TIP = 151, 50, 280, 4
_LEFT_CHEEKBONE, _RIGHT_CHEEKBONE = 116, 345


@dataclass(frozen=True)
class FaceAsset:
    """The source photo and its maps, at source resolution (all float32 in [0, 1]).

    image : (H, W, 3) RGB reflectance of the head-and-shoulders crop.
    alpha : (H, W) person opacity (soft edges), 0 on the photo's background.
    skin_mask : (H, W) bool, skin where a pulse is measurable: face oval without eyes,
        eyebrows, lips and hair.
    tone_mask : (H, W) soft mask of all visible facial skin, recoloured by skin type.
    pulse_map : (H, W) pulsatile weight a(x): 1 on forehead and cheeks, ~0.5 elsewhere
        on skin, 0 off skin.
    specular_map : (H, W) shiny-skin weight (forehead, nose, cheekbones).
    landmarks_xy : (468, 2) face-mesh landmarks (pixels, crop coordinates).
    oval_xy : (K, 2) the face-oval landmarks among them.
    face_box_xyxy : (4,) bounding box of the face oval (pixels).
    """

    image: np.ndarray
    alpha: np.ndarray
    skin_mask: np.ndarray
    tone_mask: np.ndarray
    pulse_map: np.ndarray
    specular_map: np.ndarray
    landmarks_xy: np.ndarray
    oval_xy: np.ndarray
    face_box_xyxy: np.ndarray

    @property
    def face_centre_xy(self) -> np.ndarray:
        b = self.face_box_xyxy
        return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])

    @property
    def face_height_px(self) -> float:
        return float(self.face_box_xyxy[3] - self.face_box_xyxy[1])


def _indices(connections) -> np.ndarray:
    return np.array(sorted({i for edge in connections for i in edge}))


def _hull_mask(shape: tuple[int, int], points_xy: np.ndarray, dilate_px: int = 0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(points_xy).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    if dilate_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        mask = cv2.dilate(mask, kernel)
    return mask.astype(bool)


def _gaussian_blob(shape: tuple[int, int], centre_xy: np.ndarray, sigma_px: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    d2 = (xs - centre_xy[0]) ** 2 + (ys - centre_xy[1]) ** 2
    return np.exp(-0.5 * d2 / sigma_px**2).astype(np.float32)


#: Video frames searched for a face by :func:`face_photo` (the first one with a face wins).
MAX_FACE_SEARCH_FRAMES = 300
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def face_photo(source: str) -> np.ndarray:
    """The photo of a face from ``source``: an image file, or the first frame of a video
    (within :data:`MAX_FACE_SEARCH_FRAMES`) in which the project's face detector
    (``facepulse.face.detectors``, MediaPipe) finds a face.

    Returns (H, W, 3) uint8 RGB. Raises InputError (missing / unreadable file) or
    NoFaceError (no face), one line naming the file.
    """
    from pathlib import Path

    from facepulse.errors import InputError, NoFaceError

    path = Path(source)
    if not path.is_file():
        raise InputError(f"--face {source}: file not found")
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"--face {source}: not a readable image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    from facepulse.face.detectors import make_detector
    from facepulse.io.video import open_video

    detector = make_detector("mediapipe", static=True)
    try:
        with_face = None
        for i, (_, frame) in enumerate(open_video(path)):
            if i >= MAX_FACE_SEARCH_FRAMES:
                break
            if detector.detect(frame):
                with_face = frame
                break
    except InputError as err:
        raise InputError(f"--face {source}: {err}") from None
    except Exception as err:  # decoding errors of any kind: the user's file
        raise InputError(f"--face {source}: not a readable image or video ({type(err).__name__})") from None
    if with_face is None:
        raise NoFaceError(f"--face {source}: no face found in the first {MAX_FACE_SEARCH_FRAMES} frames")
    return np.ascontiguousarray(with_face)


def _face_crop(shape: tuple[int, int], oval_xy: np.ndarray) -> tuple[int, int, int, int]:
    """Head-and-shoulders crop around a face oval (the built-in photo's proportions):
    1.7 face heights either side of the face centre, 0.7 above the face, 1.3 below."""
    h, w = shape
    x0, y0 = oval_xy.min(0)
    x1, y1 = oval_xy.max(0)
    fh, cx = y1 - y0, (x0 + x1) / 2
    box = (cx - 1.7 * fh, y0 - 0.7 * fh, cx + 1.7 * fh, y1 + 1.3 * fh)
    return (max(0, int(box[0])), max(0, int(box[1])), min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3]))))


@functools.lru_cache(maxsize=4)
def face_asset(source: str | None = None) -> FaceAsset:
    """The face photo with its landmarks and maps (computed on first use, then cached).

    ``source``: None = the built-in photo (scikit-image's astronaut, fixed crop); else an
    image or video file (:func:`face_photo`), cropped to head and shoulders around the
    face that MediaPipe Face Mesh finds (NoFaceError, one line, when it finds none).
    """
    from skimage import data

    # MediaPipe's native loggers print start-up notices on fd 2 (over progress bars).
    from facepulse.face.detectors import _quiet_native_stderr

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import mediapipe as mp  # heavy: only when a video is first rendered

    photo = data.astronaut() if source is None else face_photo(source)  # (H, W, 3) uint8 RGB
    with _quiet_native_stderr():
        with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
            found = mesh.process(photo).multi_face_landmarks
        with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
            person = seg.process(photo).segmentation_mask.astype(np.float32)
    if not found:
        if source is None:  # a broken MediaPipe install, not a user error
            raise RuntimeError("MediaPipe Face Mesh found no face in skimage.data.astronaut()")
        from facepulse.errors import NoFaceError

        raise NoFaceError(f"--face {source}: no face found (MediaPipe Face Mesh)")
    h0, w0 = photo.shape[:2]
    landmarks = np.array([[p.x * w0, p.y * h0] for p in found[0].landmark], dtype=np.float64)

    oval_all = landmarks[_indices(mp.solutions.face_mesh.FACEMESH_FACE_OVAL)]
    x0, y0, x1, y1 = _CROP_XYXY if source is None else _face_crop((h0, w0), oval_all)
    image = photo[y0:y1, x0:x1].astype(np.float32) / 255.0
    # Sharpen the segmentation's soft edge: its outer fringe carries the photo's backdrop.
    alpha = np.clip((person[y0:y1, x0:x1] - 0.3) / 0.5, 0.0, 1.0)
    landmarks = landmarks - [x0, y0]
    shape = image.shape[:2]

    fm = mp.solutions.face_mesh
    oval_idx = _indices(fm.FACEMESH_FACE_OVAL)
    oval = _hull_mask(shape, landmarks[oval_idx])
    face_h = float(np.ptp(landmarks[oval_idx, 1]))
    margin = max(1, int(round(0.04 * face_h)))
    holes = np.zeros(shape, bool)
    for part in (fm.FACEMESH_LEFT_EYE, fm.FACEMESH_RIGHT_EYE, fm.FACEMESH_LEFT_EYEBROW,
                 fm.FACEMESH_RIGHT_EYEBROW, fm.FACEMESH_LIPS):
        holes |= _hull_mask(shape, landmarks[_indices(part)], dilate_px=margin)
    ycrcb = cv2.cvtColor(photo[y0:y1, x0:x1], cv2.COLOR_RGB2YCrCb)
    skin_colour = (
        (ycrcb[..., 1] >= _CR_RANGE[0]) & (ycrcb[..., 1] <= _CR_RANGE[1])
        & (ycrcb[..., 2] >= _CB_RANGE[0]) & (ycrcb[..., 2] <= _CB_RANGE[1])
    )
    skin_colour = cv2.morphologyEx(skin_colour.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    if source is not None and (skin_colour & oval).sum() < 0.3 * oval.sum():
        skin_colour = np.ones_like(skin_colour)  # skin (or light) outside the YCrCb box: trust the mesh
    skin_mask = oval & ~holes & skin_colour & (alpha > 0.5)

    # Skin type recolours all facial skin (incl. jaw, lips, ears), softly blended.
    region = _hull_mask(shape, landmarks[oval_idx], dilate_px=int(round(0.08 * face_h)))
    tone = (region & skin_colour & (alpha > 0.5)).astype(np.float32)
    tone = cv2.GaussianBlur(tone, (0, 0), sigmaX=0.02 * face_h)

    sigma = 0.17 * face_h
    hot = np.maximum.reduce(
        [_gaussian_blob(shape, landmarks[i], sigma) for i in (_FOREHEAD, _LEFT_CHEEK, _RIGHT_CHEEK)]
    )
    pulse_map = ((0.5 + 0.5 * hot) * skin_mask).astype(np.float32)

    shiny = np.maximum.reduce([
        _gaussian_blob(shape, landmarks[_NOSE_TIP], 0.06 * face_h),
        _gaussian_blob(shape, landmarks[_FOREHEAD], 0.12 * face_h),
        0.6 * _gaussian_blob(shape, landmarks[_LEFT_CHEEKBONE], 0.07 * face_h),
        0.6 * _gaussian_blob(shape, landmarks[_RIGHT_CHEEKBONE], 0.07 * face_h),
    ])
    specular_map = (shiny * cv2.GaussianBlur(oval.astype(np.float32), (0, 0), sigmaX=0.02 * face_h)).astype(np.float32)

    pts = landmarks[oval_idx]
    box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
    oval_xy = landmarks[oval_idx]
    for arr in (image, alpha, skin_mask, tone, pulse_map, specular_map, landmarks, oval_xy, box):
        arr.setflags(write=False)  # shared by every video of the process
    return FaceAsset(
        image=image, alpha=alpha, skin_mask=skin_mask, tone_mask=tone,
        pulse_map=pulse_map, specular_map=specular_map,
        landmarks_xy=landmarks, oval_xy=oval_xy, face_box_xyxy=box,
    )


def textured_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random indoor-like backdrop: colour gradient, blotches, and a few shapes.

    Multi-octave value noise (Perlin 1985, "An image synthesizer", SIGGRAPH) plus
    random rectangles (shelves, frames) and grain, so that the background has edges and
    texture like a real room rather than a flat colour.

    Parameters
    ----------
    height, width : frame size (pixels).
    rng : random generator.

    Returns
    -------
    (height, width, 3) float32 reflectance in [0, 1].
    """
    base = rng.uniform(0.25, 0.75, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height)[..., None]
    img = base + rng.uniform(-0.15, 0.15, size=3) * ramp
    for cells, amp in ((3, 0.12), (8, 0.06), (24, 0.03)):
        coarse = rng.uniform(-1, 1, size=(cells, cells, 3)).astype(np.float32)
        img += amp * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(3, 8))):
        w = int(rng.uniform(0.05, 0.4) * width)
        h = int(rng.uniform(0.05, 0.4) * height)
        x = int(rng.uniform(-0.1, 1.0) * width)
        y = int(rng.uniform(-0.1, 1.0) * height)
        colour = np.clip(base + rng.uniform(-0.3, 0.3, size=3), 0, 1)
        cv2.rectangle(img, (x, y), (x + w, y + h), colour.tolist(), thickness=-1)
    img += 0.015 * rng.standard_normal(img.shape)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigmaX=max(0.5, width / 400))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


@dataclass
class HeadPose:
    """Per-frame rigid head pose relative to the resting position.

    dx_px, dy_px : (T,) translation (pixels, frame coordinates).
    angle_deg : (T,) in-plane rotation about the face centre, counter-clockwise.
    scale : (T,) relative size (1 = resting size).
    """

    dx_px: np.ndarray
    dy_px: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray


def head_motion(
    n_frames: int, fps: float, face_height_px: float, params: MotionParams, rng: np.random.Generator
) -> HeadPose:
    """Random rigid head motion: slow band-limited wander plus fast talking-like nods.

    Band-limited Gaussian processes (SciPy Butterworth filtering of white noise), in
    the spirit of the motion augmentation of SCAMPS (McDuff et al. 2022, NeurIPS D&B).

    Parameters
    ----------
    n_frames : number of frames.
    fps : frame rate (Hz).
    face_height_px : face height in the frame (pixels), the unit of translation.
    params : motion amplitudes and bands.
    rng : random generator (always consumes the same draws for a given ``n_frames``).

    Returns
    -------
    HeadPose with (n_frames,) arrays.
    """
    draws = [band_limited_noise(n_frames, fps, params.slow_band_hz, rng) for _ in range(4)]
    talk = band_limited_noise(n_frames, fps, params.talk_band_hz, rng)
    # Nodding also lifts the face a little (rotation about the chin, not the face centre).
    talk_deg = params.talk_rms_deg * talk
    dy_talk = -np.sin(np.deg2rad(talk_deg)) * 0.5 * face_height_px * 0.3
    trans = params.translation_rms_frac * face_height_px
    return HeadPose(
        dx_px=trans * draws[0],
        dy_px=trans * 0.6 * draws[1] + dy_talk,
        angle_deg=params.rotation_rms_deg * draws[2] + talk_deg,
        scale=np.exp(params.scale_rms_frac * draws[3]),
    )


def illumination_drift(n_frames: int, fps: float, params: LightingParams, rng: np.random.Generator) -> np.ndarray:
    """Slow multiplicative light drift (clouds, auto-exposure), mean 1.

    Band-limited Gaussian process (< 0.05 Hz) through an exponential, so it stays positive.

    Returns
    -------
    (n_frames,) intensity gain.
    """
    noise = band_limited_noise(n_frames, fps, (0.003, 0.05), rng)
    return np.exp(params.drift_rms_frac * noise)


def shadow_profile(length_px: int, softness_px: float) -> np.ndarray:
    """1-D soft shadow edge: 0 (lit) to 1 (shadowed), a logistic ramp centred mid-way.

    Penumbra of an extended light source approximated by a logistic function.

    Returns
    -------
    (length_px,) float32.
    """
    x = (np.arange(length_px, dtype=np.float32) - length_px / 2) / max(softness_px, 1e-3)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)

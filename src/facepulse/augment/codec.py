"""Codec realism: re-encode a training clip the way a real camera and codec would deliver it.

A clip of face crops rendered or cropped from a lossless source looks nothing like the
80-200 kbps H.264 of a webcam file (UBFC-rPPG): block artefacts, smeared chroma, a
quantised pulse. :func:`codec_roundtrip` puts a clip through a random camera and codec in
memory, in this order (the order of a camera's pipeline):

1. **frame rate**: the clip (``fps``) is resampled to a camera rate ``camera_fps``
   (15-60 fps) by linear interpolation between frames;
2. **resolution**: each frame is scaled by ``scale`` (down: fewer pixels reach the
   codec; up: a face crop that was larger in the source video);
3. **sensor noise**: Gaussian, ``noise_dn`` standard deviation (digital numbers, 0-255);
4. **white balance** (per-channel gains ``wb_gains``) and **gamma** (``x' = 255 (x/255)^gamma``);
5. **codec**: H.264 (libx264), H.265 (libx265) or VP9 (libvpx-vp9), YUV 4:2:0, at a
   bitrate ``kbps`` (average bitrate mode) or a constant quality ``crf``, single thread,
   fast presets, encoded and decoded in memory with PyAV (no container, no files);
6. back to the input size, and back onto the input frame times.

**Labels.** Output frame ``i`` is the camera's view of input time ``i / fps``: the number
of frames ``T`` and the frame rate ``fps`` are unchanged, so the per-frame PPG label, the
clip HR and the batch shapes stay as they are, aligned frame by frame. A slower camera
shows as what it is in a real video resampled to the model's rate: frames held or blended
between the camera's samples. Steps 2-4 are constant over the clip, so they do not move
the pulse in time either.

All randomness comes from the generator the augmentation framework passes
(:class:`CodecAugment`), so a seed reproduces the clip bit for bit: the encoders run
single-threaded with explicit timestamps (libx264 with macroblock-tree rate control off,
whose SIMD code was not bit-exact from run to run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch

from facepulse.augment.clip import AUGMENTS, Augment, ClipSample, GeneratorLike, as_generator
from facepulse.errors import ConfigError, InputError

#: Codec name -> (PyAV encoder, PyAV decoder).
CODEC_ENCODERS: dict[str, tuple[str, str]] = {
    "h264": ("libx264", "h264"),
    "h265": ("libx265", "hevc"),
    "vp9": ("libvpx-vp9", "vp9"),
}
#: Bitrates are given for this frame size and scaled by the encoded pixel count.
REFERENCE_PIXELS = 640 * 480
#: Bits every encoded frame costs whatever its size (headers; measured: 120 H.264, 130-160
#: VP9, 280 H.265 at the highest CRF): not scaled with the pixels (:func:`scaled_kbps`).
FRAME_OVERHEAD_BITS = 200.0
#: libx264 / libx265 speed presets accepted by ``preset`` (VP9 maps them to ``cpu-used``).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
_MIN_SIDE_PX = 16
_X265_MIN_SIDE_PX = 64


def check_codec_available(codec: str, field: str = "codec") -> tuple[str, str]:
    """The (encoder, decoder) of ``codec``; ConfigError naming ``field`` if unknown or
    missing from this PyAV / FFmpeg build."""
    import av

    if codec not in CODEC_ENCODERS:
        raise ConfigError(f"{field}={codec!r}: unknown codec; available: {', '.join(CODEC_ENCODERS)}")
    encoder, decoder = CODEC_ENCODERS[codec]
    for name in (encoder, decoder):
        if name not in av.codecs_available:
            raise ConfigError(f"{field}={codec!r}: {name} is missing from this PyAV/FFmpeg build")
    return encoder, decoder


@dataclass(frozen=True)
class CodecSettings:
    """One draw of the camera and codec (see the module docstring for the order).

    codec : "h264", "h265" or "vp9".
    kbps : target bitrate of the encoded stream (kbit/s), or None for ``crf``.
    crf : constant rate factor (0-51 for H.264/H.265, 0-63 for VP9), or None for ``kbps``.
    camera_fps : frame rate the codec sees (Hz); None = the clip's own.
    scale : encoded size / clip size (1 = unchanged).
    noise_dn : sensor noise standard deviation (0-255 scale).
    gamma : exponent on ``x / 255`` (1 = unchanged).
    wb_gains : (3,) white-balance gains of R, G, B.
    preset : encoder speed preset (:data:`PRESETS`).
    """

    codec: str = "h264"
    kbps: float | None = 200.0
    crf: int | None = None
    camera_fps: float | None = None
    scale: float = 1.0
    noise_dn: float = 0.0
    gamma: float = 1.0
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    preset: str = "ultrafast"

    def __post_init__(self) -> None:
        if self.codec not in CODEC_ENCODERS:
            raise ConfigError(f"codec={self.codec!r}: unknown codec; available: {', '.join(CODEC_ENCODERS)}")
        if (self.kbps is None) == (self.crf is None):
            raise ConfigError(f"kbps={self.kbps!r}, crf={self.crf!r}: give exactly one of them")
        if self.kbps is not None and not (math.isfinite(self.kbps) and self.kbps > 0):
            raise ConfigError(f"kbps={self.kbps!r}: must be a positive number")
        top = 63 if self.codec == "vp9" else 51
        if self.crf is not None and not (isinstance(self.crf, int) and 0 <= self.crf <= top):
            raise ConfigError(f"crf={self.crf!r}: must be an integer 0-{top} for {self.codec}")
        if self.camera_fps is not None and not (1 <= self.camera_fps <= 240):
            raise ConfigError(f"camera_fps={self.camera_fps!r}: must be within 1-240")
        if not 0.05 <= self.scale <= 8:
            raise ConfigError(f"scale={self.scale!r}: must be within 0.05-8")
        if not 0 <= self.noise_dn <= 50:
            raise ConfigError(f"noise_dn={self.noise_dn!r}: must be within 0-50")
        if not 0.2 <= self.gamma <= 5:
            raise ConfigError(f"gamma={self.gamma!r}: must be within 0.2-5")
        if len(self.wb_gains) != 3 or not all(0.1 <= g <= 10 for g in self.wb_gains):
            raise ConfigError(f"wb_gains={self.wb_gains!r}: must be three gains within 0.1-10")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset={self.preset!r}: must be one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class CodecResult:
    """What :func:`codec_roundtrip` returns.

    frames : (T, H, W, 3) uint8 RGB, the clip as the camera and codec deliver it.
    n_bits : size of the encoded stream (bits, all packets).
    n_encoded : frames encoded (at ``camera_fps``, the last one possibly early: see
        :func:`camera_positions`).
    camera_fps : frame rate of the encoded stream (Hz).
    encoded_size : (width, height) of the encoded frames (pixels).
    """

    frames: np.ndarray
    n_bits: int
    n_encoded: int
    camera_fps: float
    encoded_size: tuple[int, int]

    @property
    def kbps(self) -> float:
        """Achieved bitrate of the encoded stream (kbit/s): bits over ``n_encoded / camera_fps`` s."""
        return self.n_bits / (self.n_encoded / self.camera_fps) / 1000.0


def interp_frames(frames: np.ndarray, src_pos: np.ndarray, dst_pos: np.ndarray) -> np.ndarray:
    """Frames taken at increasing times ``src_pos`` (any unit), linearly interpolated at
    ``dst_pos`` (same unit; clamped to the first / last frame outside ``src_pos``).

    ``frames`` (N, ...) any dtype with ``src_pos`` (N,); returns (len(dst_pos), ...) float32.
    Exact frames where a ``dst_pos`` equals a ``src_pos``.
    """
    src = np.asarray(src_pos, dtype=np.float64)
    dst = np.clip(np.asarray(dst_pos, dtype=np.float64), src[0], src[-1])
    j = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, len(src) - 1)
    k = np.minimum(j + 1, len(src) - 1)
    span = np.where(k > j, src[k] - src[j], 1.0)
    w = np.where(k > j, (dst - src[j]) / span, 0.0).astype(np.float32).reshape((-1,) + (1,) * (frames.ndim - 1))
    lo = frames[j].astype(np.float32)
    hi = frames[k].astype(np.float32)
    return lo + w * (hi - lo)


def camera_positions(n_frames: int, fps: float, camera_fps: float) -> np.ndarray:
    """Times of a ``camera_fps`` camera's frames over a clip of ``n_frames`` at ``fps``, in
    the clip's frame units: ``0, r, 2 r, ...`` with ``r = fps / camera_fps``, plus one last
    frame exactly at ``n_frames - 1`` when the regular grid stops short of it (a late
    frame, as variable-frame-rate webcams deliver), so every clip frame lies between two
    camera frames and none is extrapolated or held."""
    step = fps / camera_fps
    last = n_frames - 1
    pos = np.arange(int(math.floor(last / step + 1e-9)) + 1, dtype=np.float64) * step
    if pos[-1] < last - 1e-9:
        pos = np.append(pos, float(last))
    return pos


def scaled_kbps(kbps_ref: float, pixels: int, camera_fps: float) -> float:
    """The bitrate that gives ``pixels`` per frame the bits per pixel a 640x480 video gets
    at ``kbps_ref``: the content bits scale with the pixel count, the per-frame overhead
    (:data:`FRAME_OVERHEAD_BITS` at ``camera_fps``) does not. Without that floor a 48 px
    crop at a UBFC-like 100 kbps would get 0.75 kbps, less than its frame headers, and the
    codec would drop every change (the pulse too)."""
    overhead = FRAME_OVERHEAD_BITS * camera_fps / 1000.0
    return max(kbps_ref - overhead, 0.0) * pixels / REFERENCE_PIXELS + overhead


def _even(x: float) -> int:
    return max(_MIN_SIDE_PX, 2 * int(round(x / 2)))


def _resize(frames: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size_wh
    if frames.shape[2] == w and frames.shape[1] == h:
        return frames
    shrink = w * h < frames.shape[1] * frames.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


def _encoder_options(codec: str, settings: CodecSettings) -> dict[str, str]:
    if codec == "h264":
        # mbtree=0: libx264's macroblock-tree SIMD code gave different bytes run to run
        opts = {"preset": settings.preset, "x264-params": "mbtree=0"}
    elif codec == "h265":
        opts = {"preset": settings.preset, "x265-params": "log-level=error:pools=none:frame-threads=1"}
    else:  # vp9: realtime mode, cpu-used 5 (medium) .. 8 (ultrafast)
        cpu_used = 8 - min(3, PRESETS.index(settings.preset))
        opts = {"deadline": "realtime", "cpu-used": str(cpu_used), "lag-in-frames": "0"}
    if settings.crf is not None:
        opts["crf"] = str(settings.crf)
    return opts


def encode_decode(
    frames: np.ndarray, fps: float, settings: CodecSettings, times_s: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB (H, W even) at ``fps`` with the codec of
    ``settings`` and decode them again, in memory. ``times_s`` (T,): frame timestamps
    (default ``i / fps``; millisecond resolution). Returns the decoded (T, H, W, 3) uint8
    frames and the size of the encoded stream in bits."""
    import av

    encoder, decoder = check_codec_available(settings.codec)
    n, h, w = frames.shape[:3]
    if h % 2 or w % 2:
        raise InputError(f"encode_decode: frame size {w}x{h} must be even for YUV 4:2:0")
    if settings.codec == "h265" and min(h, w) < _X265_MIN_SIDE_PX:
        # the libx265 of the PyAV wheel corrupted the heap on frames narrower than ~56 px (an abort
        # a few clips later): encode such frames edge-padded to 64 px, crop after decoding
        ph, pw = max(0, _X265_MIN_SIDE_PX - h), max(0, _X265_MIN_SIDE_PX - w)
        padded = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
        decoded, n_bits = encode_decode(padded, fps, settings, times_s)
        return np.ascontiguousarray(decoded[:, :h, :w]), n_bits
    time_base = Fraction(1, 1000)
    ctx = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height = w, h
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = time_base
    ctx.framerate = Fraction(fps).limit_denominator(1000)
    ctx.thread_count = 1
    ctx.flags |= int(av.codec.context.Flags.bitexact)
    if settings.kbps is not None:
        ctx.bit_rate = int(round(settings.kbps * 1000))
    ctx.options = _encoder_options(settings.codec, settings)
    times = np.arange(n) / fps if times_s is None else np.asarray(times_s, dtype=np.float64)
    pts = [int(v) for v in np.rint(times * 1000)]
    for i in range(1, n):
        pts[i] = max(pts[i], pts[i - 1] + 1)  # strictly increasing at 1 ms resolution
    packets = []
    for i, frame in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p")
        vf.pts = int(pts[i])
        vf.time_base = time_base
        packets.extend(ctx.encode(vf))
    packets.extend(ctx.encode(None))
    n_bits = 8 * sum(p.size for p in packets)
    dec = av.CodecContext.create(decoder, "r")
    dec.thread_count = 1
    out = []
    for packet in packets:
        out.extend(dec.decode(packet))
    out.extend(dec.decode(None))
    if len(out) != n:
        raise InputError(f"encode_decode: {settings.codec} gave back {len(out)} of {n} frames")
    return np.stack([f.to_ndarray(format="rgb24") for f in out]), n_bits


def codec_roundtrip(
    frames: np.ndarray, fps: float, settings: CodecSettings, rng: np.random.Generator | None = None
) -> CodecResult:
    """Put a clip through a camera and codec (module docstring), keeping ``T`` and ``fps``.

    Parameters
    ----------
    frames : (T, H, W, 3) uint8 RGB clip (float values 0..255 are rounded).
    fps : the clip's frame rate (Hz).
    settings : camera and codec.
    rng : draws the sensor noise (needed when ``settings.noise_dn > 0``).

    Returns
    -------
    CodecResult: frames (T, H, W, 3) uint8, aligned with the input frame by frame.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise InputError(f"codec_roundtrip: expected frames (T, H, W, 3), got {frames.shape}")
    if not fps > 0:
        raise InputError(f"codec_roundtrip: fps={fps!r} must be positive")
    n, h, w = frames.shape[:3]
    cam_fps = float(settings.camera_fps or fps)
    # 1. the camera's frame times over the clip (in clip frames)
    pos = camera_positions(n, fps, cam_fps) if cam_fps != fps else np.arange(n, dtype=np.float64)
    n_cam = len(pos)
    cam = interp_frames(frames, np.arange(n), pos) if cam_fps != fps else frames.astype(np.float32)
    # 2. sensor resolution (even sides for YUV 4:2:0)
    size = (_even(w * settings.scale), _even(h * settings.scale))
    cam = _resize(cam, size)
    # 3-4. sensor noise, white balance, gamma
    if settings.noise_dn > 0:
        if rng is None:
            raise InputError("codec_roundtrip: noise_dn > 0 needs an rng")
        cam = cam + rng.standard_normal(cam.shape, dtype=np.float32) * np.float32(settings.noise_dn)
    cam = np.clip(cam * np.asarray(settings.wb_gains, np.float32), 0, 255)
    if settings.gamma != 1.0:
        cam = 255.0 * (cam / 255.0) ** np.float32(settings.gamma)
    cam8 = np.clip(np.rint(cam), 0, 255).astype(np.uint8)
    # 5. codec
    decoded, n_bits = encode_decode(cam8, cam_fps, settings, times_s=pos / fps)
    # 6. back to the clip's size and frame times
    back = _resize(decoded, (w, h))
    if cam_fps != fps:
        back = np.clip(np.rint(interp_frames(back, pos, np.arange(n))), 0, 255).astype(np.uint8)
    return CodecResult(frames=back, n_bits=n_bits, n_encoded=n_cam, camera_fps=cam_fps, encoded_size=size)


def _pair(name: str, value: Sequence[float], lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r}: must be two numbers [low, high]") from None
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
        raise ConfigError(f"{name}={list(value)!r}: must satisfy {lo:g} <= low <= high <= {hi:g}")
    return a, b


@AUGMENTS.register("codec")
class CodecAugment(Augment):
    """With probability ``p``, put the clip through a random camera and codec
    (:func:`codec_roundtrip`); labels, ``T`` and ``fps`` unchanged (frame-aligned).

    Each application draws, from the generator it is given:

    * the codec, uniformly among ``codecs`` ("h264", "h265", "vp9");
    * with probability ``crf_p`` a CRF uniform in ``crf_range``, else a bitrate
      log-uniform in ``kbps_range`` **at 640x480**, scaled to the encoded pixel count
      (:func:`scaled_kbps`): a 72 px crop at 100 kbps gets the bits per pixel of a
      640x480 video at 100 kbps (UBFC-rPPG: 80-200 kbps) plus its frame headers;
    * a scale log-uniform in ``scale_range`` (encode smaller or larger, then back);
    * a camera frame rate uniform in ``fps_range`` (None: the clip's own);
    * sensor noise uniform in ``noise_dn_range``, gamma log-uniform in ``gamma_range``,
      white-balance gains ``1 + U(-white_balance, white_balance)`` per channel.

    Clips are ``(3, T, H, W)`` float, 0..255 (what :class:`ClipSample` holds); the
    output is rounded to uint8 values, as a decoded video is.
    """

    def __init__(
        self,
        p: float = 1.0,
        codecs: Sequence[str] = ("h264",),
        kbps_range: Sequence[float] = (60.0, 1000.0),
        crf_p: float = 0.0,
        crf_range: Sequence[int] = (18, 40),
        scale_range: Sequence[float] = (0.5, 2.0),
        fps_range: Sequence[float] | None = (15.0, 60.0),
        noise_dn_range: Sequence[float] = (0.0, 3.0),
        gamma_range: Sequence[float] = (0.8, 1.25),
        white_balance: float = 0.1,
        preset: str = "ultrafast",
        field: str = "codec",
    ):
        if not 0 <= p <= 1:
            raise ConfigError(f"{field}.p={p!r}: must be within 0-1")
        if not 0 <= crf_p <= 1:
            raise ConfigError(f"{field}.crf_p={crf_p!r}: must be within 0-1")
        if isinstance(codecs, str) or not codecs:
            raise ConfigError(f"{field}.codecs={codecs!r}: must be a non-empty list, e.g. [h264, vp9]")
        for name in codecs:
            check_codec_available(name, f"{field}.codecs")
        self.p, self.crf_p, self.codecs = float(p), float(crf_p), tuple(codecs)
        self.kbps_range = _pair(f"{field}.kbps_range", kbps_range, 1.0, 100_000.0)
        lo, hi = _pair(f"{field}.crf_range", crf_range, 0, 51)
        if lo != int(lo) or hi != int(hi):
            raise ConfigError(f"{field}.crf_range={list(crf_range)!r}: must be integers")
        self.crf_range = (int(lo), int(hi))
        self.scale_range = _pair(f"{field}.scale_range", scale_range, 0.05, 8.0)
        self.fps_range = None if fps_range is None else _pair(f"{field}.fps_range", fps_range, 1.0, 240.0)
        self.noise_dn_range = _pair(f"{field}.noise_dn_range", noise_dn_range, 0.0, 50.0)
        self.gamma_range = _pair(f"{field}.gamma_range", gamma_range, 0.2, 5.0)
        if not 0 <= white_balance < 1:
            raise ConfigError(f"{field}.white_balance={white_balance!r}: must be within 0 (off) and 1")
        self.white_balance = float(white_balance)
        if preset not in PRESETS:
            raise ConfigError(f"{field}.preset={preset!r}: must be one of {', '.join(PRESETS)}")
        self.preset = preset
        self.last: CodecResult | None = None  # what the last applied call did (inspection)
        self.last_settings: CodecSettings | None = None

    def draw(
        self, height: int, width: int, fps: float, generator: GeneratorLike = None
    ) -> tuple[bool, CodecSettings, int]:
        """``(apply, settings, noise_seed)`` for a clip of ``height x width`` pixels at
        ``fps``: the same draws in the same order whether or not the clip is encoded."""
        gen = as_generator(generator)
        u = torch.rand(12, generator=gen, dtype=torch.float64).tolist()
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=gen))

        def log_uniform(lo: float, hi: float, x: float) -> float:
            return math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))

        apply = u[0] < self.p
        codec = self.codecs[min(int(u[1] * len(self.codecs)), len(self.codecs) - 1)]
        scale = log_uniform(*self.scale_range, u[2])
        enc_pixels = _even(width * scale) * _even(height * scale)
        camera_fps = None
        if self.fps_range is not None:
            camera_fps = self.fps_range[0] + u[5] * (self.fps_range[1] - self.fps_range[0])
        kbps: float | None = None
        crf: int | None = None
        if u[3] < self.crf_p:
            lo, hi = self.crf_range
            crf = min(lo + int(u[4] * (hi - lo + 1)), hi)
        else:
            kbps = scaled_kbps(log_uniform(*self.kbps_range, u[4]), enc_pixels, camera_fps or fps)
        noise = self.noise_dn_range[0] + u[6] * (self.noise_dn_range[1] - self.noise_dn_range[0])
        gamma = log_uniform(*self.gamma_range, u[7])
        wb = tuple(1.0 + self.white_balance * (2 * x - 1) for x in u[8:11])
        settings = CodecSettings(
            codec=codec, kbps=kbps, crf=crf, camera_fps=camera_fps, scale=scale, noise_dn=noise,
            gamma=gamma, wb_gains=wb, preset=self.preset,  # type: ignore[arg-type]
        )
        return apply, settings, noise_seed

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        clip = sample.clip
        if clip.ndim != 4 or clip.shape[0] != 3:
            raise InputError(f"codec: expected a clip (3, T, H, W), got {tuple(clip.shape)}")
        apply, settings, noise_seed = self.draw(clip.shape[2], clip.shape[3], sample.fps, generator)
        if not apply:
            return sample
        frames = clip.detach().to("cpu", torch.float32).permute(1, 2, 3, 0).numpy()
        frames8 = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
        result = codec_roundtrip(frames8, sample.fps, settings, np.random.default_rng(noise_seed))
        self.last, self.last_settings = result, settings
        out = torch.from_numpy(np.ascontiguousarray(result.frames.transpose(3, 0, 1, 2))).to(clip.dtype)
        return replace(sample, clip=out.to(clip.device))

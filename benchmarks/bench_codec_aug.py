"""Cost per clip of the codec-realism augmentation and achieved vs requested bitrate.

    python benchmarks/bench_codec_aug.py            # prints a Markdown table (docs/benchmarks.md)

Clips: a synthetic face video (`still` scenario, 30 fps), centre-cropped to the face and
resized to 72 px, 128 frames (4.3 s). One thread (what a training data worker gets).
Part 1: fixed settings per codec (no scaling, no frame-rate change): encoded kbps vs the
requested one, PSNR, ms per clip. Part 2: the default random draws of CodecAugment
(60-1000 kbps at 640x480 scaled to the crop, 15-60 fps camera, 0.5-2x scale, noise,
gamma, white balance): ms per clip, median over the draws.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from facepulse.augment import ClipSample, CodecAugment, CodecSettings, codec_roundtrip  # noqa: E402
from facepulse.synth import CameraParams, SynthParams, generate_video  # noqa: E402


def face_clip(n: int = 128, size: int = 72) -> np.ndarray:
    video = generate_video(SynthParams(duration_s=n / 30 + 0.1, camera=CameraParams(width=320, height=240)), seed=0)
    box = video.truth.face_boxes_xyxy[0]
    cx, cy, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.2 * (box[3] - box[1])
    x0, y0 = int(cx - side / 2), int(cy - side / 2)
    crops = video.frames[:n, y0 : y0 + int(side), x0 : x0 + int(side)]
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in crops])


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def main() -> None:
    torch.set_num_threads(1)
    clip = face_clip()
    print(f"clip {clip.shape} uint8, 30 fps\n")
    print("| codec | requested kbps | achieved kbps | PSNR dB | ms / clip |")
    print("|---|---:|---:|---:|---:|")
    for codec in ("h264", "h265", "vp9"):
        for kbps in (2.0, 5.0, 20.0, 100.0):
            times, result = [], None
            for _ in range(3):
                t0 = time.perf_counter()
                result = codec_roundtrip(clip, 30.0, CodecSettings(codec=codec, kbps=kbps))
                times.append(time.perf_counter() - t0)
            print(f"| {codec} | {kbps:g} | {result.kbps:.1f} | {psnr_db(result.frames, clip):.1f} | "
                  f"{1000 * np.median(times):.0f} |")
    print("\n| random draws (default ranges) | clips | ms / clip (median) | ms / clip (90th pct) | achieved / requested kbps (median) |")
    print("|---|---:|---:|---:|---:|")
    x = torch.from_numpy(clip.transpose(3, 0, 1, 2).copy()).float()
    for codecs in (("h264",), ("h265",), ("vp9",), ("h264", "h265", "vp9")):
        aug = CodecAugment(p=1.0, codecs=codecs)
        times, ratios = [], []
        for seed in range(20):
            t0 = time.perf_counter()
            aug(ClipSample(clip=x, fps=30.0), seed)
            times.append(time.perf_counter() - t0)
            ratios.append(aug.last.kbps / aug.last_settings.kbps)
        print(f"| {'+'.join(codecs)} | {len(times)} | {1000 * np.median(times):.0f} | "
              f"{1000 * np.percentile(times, 90):.0f} | {np.median(ratios):.2f} |")


if __name__ == "__main__":
    main()

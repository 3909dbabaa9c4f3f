"""Training-time augmentations of face clips and their pulse labels.

Two layers:

* tensor functions (``hflip``, ``erase_tubes``, ``temporal_resample``, ``color_gain``,
  ``sample_tubes``), pure: they never modify their input;
* callables on a :class:`ClipSample` (clip + labels), registered in ``AUGMENTS`` and
  chained with :class:`Compose`. Each takes ``generator`` (a ``torch.Generator``, an
  int seed, or None for torch's global RNG), so a seed gives the same result.

Clips are ``(3, T, H, W)`` or a batch ``(B, 3, T, H, W)``, float, raw pixel scale; the
erase/flip/jitter ops draw independent parameters per sample of a batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.utils.data import Dataset

from facepulse.errors import ConfigError, InputError
from facepulse.registry import Registry

GeneratorLike = torch.Generator | int | None

AUGMENTS: Registry[Callable[..., "Augment"]] = Registry("augmentation")


def as_generator(generator: GeneratorLike) -> torch.Generator | None:
    """A ``torch.Generator`` from a generator, a seed, or None (torch's global RNG)."""
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    return generator


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64)


def _batched(clip: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if clip.ndim == 4:
        return clip[None], True
    if clip.ndim == 5:
        return clip, False
    raise InputError(f"{name}: expected a clip (3, T, H, W) or batch (B, 3, T, H, W), got {tuple(clip.shape)}")


# ------------------------------------------------------------------- tensor functions
def hflip(clip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right: flips the last (W) axis of ``(..., T, H, W)``."""
    return clip.flip(-1)


@dataclass(frozen=True)
class Tubes:
    """Erased spatio-temporal boxes, one per sample: (B,) long tensors, half-open ranges.

    Sample ``b`` is erased over frames ``t0[b]:t1[b]``, rows ``y0[b]:y1[b]``, columns
    ``x0[b]:x1[b]`` (an empty range erases nothing).
    """

    t0: torch.Tensor
    t1: torch.Tensor
    y0: torch.Tensor
    y1: torch.Tensor
    x0: torch.Tensor
    x1: torch.Tensor

    def mask(self, n_frames: int, height: int, width: int) -> torch.Tensor:
        """(B, 1, T, H, W) bool mask of the erased voxels."""
        t = torch.arange(n_frames)[None, :, None, None]
        y = torch.arange(height)[None, None, :, None]
        x = torch.arange(width)[None, None, None, :]

        def inside(lo: torch.Tensor, hi: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
            return (axis >= lo.view(-1, 1, 1, 1)) & (axis < hi.view(-1, 1, 1, 1))

        return (inside(self.t0, self.t1, t) & inside(self.y0, self.y1, y) & inside(self.x0, self.x1, x))[:, None]


def sample_tubes(
    batch: int,
    n_frames: int,
    height: int,
    width: int,
    max_area_frac: float = 0.2,
    max_time_frac: float = 0.2,
    generator: GeneratorLike = None,
) -> Tubes:
    """Random tubes: a rectangle of at most ``max_area_frac`` of the frame area over at
    most ``max_time_frac`` of the frames, at a uniform random position.

    Yu et al., AutoHR, IEEE SPL 2020 (spatio-temporal erasing). The rectangle height is
    uniform in ``1..min(H, A)``, its width uniform in ``1..min(W, A // height)`` with
    ``A = floor(max_area_frac * H * W)``; the span is uniform in
    ``1..floor(max_time_frac * T)``. Bounds that round to 0 erase nothing.
    """
    if not (0 <= max_area_frac <= 1 and 0 <= max_time_frac <= 1):
        raise ConfigError(f"erase fractions must be in [0, 1], got area {max_area_frac}, time {max_time_frac}")
    gen = as_generator(generator)
    max_area = math.floor(max_area_frac * height * width)
    max_span = math.floor(max_time_frac * n_frames)
    u = _uniform((6, batch), gen)

    def pick(u_row: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Uniform integer in 1..high (0 when high == 0)."""
        return torch.minimum((u_row * high).floor() + 1, high).to(torch.long)

    h = pick(u[0], torch.full((batch,), float(min(height, max_area)), dtype=torch.float64))
    w_high = torch.minimum(
        torch.full((batch,), float(width), dtype=torch.float64),
        torch.div(float(max_area), h.clamp(min=1).double(), rounding_mode="floor"),
    )
    w = pick(u[1], w_high)
    span = pick(u[2], torch.full((batch,), float(max_span), dtype=torch.float64))
    y0 = (u[3] * (height - h + 1)).floor().long()
    x0 = (u[4] * (width - w + 1)).floor().long()
    t0 = (u[5] * (n_frames - span + 1)).floor().long()
    return Tubes(t0=t0, t1=t0 + span, y0=y0, y1=y0 + h, x0=x0, x1=x0 + w)


#: Fill values of :func:`erase_tubes` (``augment.erase_fill``).
ERASE_FILLS = ("mean", "channel_mean", "zero", "noise")


def erase_tubes(clip: torch.Tensor, tubes: Tubes, fill: str = "mean", generator: GeneratorLike = None) -> torch.Tensor:
    """Fill each sample's tube (Yu et al., AutoHR, IEEE SPL 2020, spatio-temporal erasing).

    ``fill`` (:data:`ERASE_FILLS`):

    * ``"mean"`` (default): each erased voxel gets its pixel's temporal mean over the clip
      (per channel). The tube then holds values of the clip's own range at every pixel, so
      the per-clip normalisation (``standardize``: mean and std over the clip) is nearly
      unchanged and the untouched pixels keep their normalised values and pulse
      amplitude; under ``diff`` normalisation the tube's edges in time give differences
      of the size of the pixel's own temporal variation, not spikes.
    * ``"channel_mean"``: the sample's per-channel mean over the whole clip (also keeps
      the normalisation, but adds spatial edges at the tube's border).
    * ``"noise"``: the pixel's temporal mean plus Gaussian noise with the pixel's temporal
      standard deviation (drawn from ``generator``), clamped at 0.
    * ``"zero"``: 0, the literal reading of the paper (the old default). On raw 0..255
      pixels a tube of zeros far below the clip's values inflates the clip's standard
      deviation, which shrinks the normalised pulse of the untouched pixels many times,
      and makes spikes at the tube's edges under ``diff``.

    ``clip`` (3, T, H, W) or (B, 3, T, H, W), raw pixel scale; same shape out.
    """
    x, single = _batched(clip, "erase")
    if fill not in ERASE_FILLS:
        raise ConfigError(f"erase fill {fill!r} unknown; available: {', '.join(ERASE_FILLS)}")
    mask = tubes.mask(*x.shape[2:]).to(x.device)
    if fill == "zero":
        value = torch.zeros((), dtype=x.dtype, device=x.device)
    elif fill == "channel_mean":
        value = x.mean(dim=(2, 3, 4), keepdim=True)
    else:
        value = x.mean(dim=2, keepdim=True)  # (B, 3, 1, H, W): each pixel's temporal mean
        if fill == "noise":
            std = x.std(dim=2, keepdim=True, correction=0)
            gen = as_generator(generator)
            dev = gen.device if gen is not None else x.device
            noise = torch.randn(x.shape, generator=gen, device=dev, dtype=torch.float64).to(x)
            value = (value + std * noise).clamp(min=0)
    out = torch.where(mask, value.to(x.dtype), x)
    return out[0] if single else out


def color_gain(clip: torch.Tensor, gains: torch.Tensor, max_value: float | None = None) -> torch.Tensor:
    """Multiply each channel by a gain: ``clip`` (3, T, H, W) with ``gains`` (3,), or
    (B, 3, T, H, W) with (B, 3); optionally clamp to ``[0, max_value]`` (e.g. 255)."""
    x, single = _batched(clip, "color_gain")
    g = gains.reshape(x.shape[0], x.shape[1], 1, 1, 1).to(x)
    out = x * g
    if max_value is not None:
        out = out.clamp(0, max_value)
    return out[0] if single else out


def temporal_resample(
    clip: torch.Tensor,
    speed: float,
    n_frames: int,
    ppg: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Play a clip (and its PPG) ``speed`` times faster, keeping the frame rate.

    Yu et al., AutoHR, IEEE SPL 2020 (HR-balancing resampling). Output frame ``i``
    samples the source at position ``i * speed`` (linear interpolation between frames;
    exact frames for integer positions), for ``i < n_frames``. ``speed = 2`` keeps every
    second frame (HR doubles), ``speed = 0.5`` interpolates to twice the frames and
    keeps the first ``n_frames`` (HR halves). Needs ``ceil((n_frames - 1) * speed) + 1``
    source frames (:func:`source_frames_needed`).

    ``clip``: (3, T_src, H, W); ``ppg``: (T_src,) or None. Returns the clip
    (3, n_frames, H, W) and the PPG (n_frames,) or None.
    """
    if clip.ndim != 4:
        raise InputError(f"temporal_resample: expected a clip (3, T, H, W), got {tuple(clip.shape)}")
    if speed <= 0 or n_frames < 1:
        raise ConfigError(f"temporal_resample: need speed > 0 and n_frames >= 1, got {speed}, {n_frames}")
    n_src = clip.shape[1]
    need = source_frames_needed(n_frames, speed)
    if n_src < need:
        raise InputError(
            f"temporal_resample: speed {speed:g} x {n_frames} frames needs {need} source frames, got {n_src}"
        )
    if ppg is not None and ppg.shape != (n_src,):
        raise InputError(f"temporal_resample: ppg shape {tuple(ppg.shape)} does not match {n_src} clip frames")
    pos = torch.arange(n_frames, dtype=torch.float64) * speed
    i0 = pos.floor().long().clamp(max=n_src - 1)
    i1 = (i0 + 1).clamp(max=n_src - 1)
    w = (pos - i0.double()).clamp(0, 1)

    def lerp(a: torch.Tensor, dim: int) -> torch.Tensor:
        shape = [1] * a.ndim
        shape[dim] = n_frames
        wt = w.to(a.dtype if a.is_floating_point() else torch.float32).view(shape)
        lo, hi = a.index_select(dim, i0), a.index_select(dim, i1)
        return lo + wt * (hi - lo)

    return lerp(clip, 1), (lerp(ppg, 0) if ppg is not None else None)


def source_frames_needed(n_frames: int, speed: float) -> int:
    """Source frames :func:`temporal_resample` reads for ``n_frames`` outputs at ``speed``."""
    return math.ceil((n_frames - 1) * speed - 1e-9) + 1


# --------------------------------------------------------------------- sample level
@dataclass(frozen=True)
class ClipSample:
    """One training example.

    Attributes
    ----------
    clip : (3, T, H, W) float, raw pixel scale (0..255) before normalisation.
    fps : frame rate in Hz (augmentations never change it).
    ppg : (T,) reference pulse on the clip's frames, or None.
    hr_bpm : reference heart rate in beats per minute, or None.
    """

    clip: torch.Tensor
    fps: float
    ppg: torch.Tensor | None = None
    hr_bpm: float | None = None


class Augment:
    """An augmentation: ``aug(sample, generator=None) -> ClipSample`` (a new sample)."""

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        raise NotImplementedError

    def source_frames(self, n_frames: int) -> int:
        """Frames the dataset must load so the output has ``n_frames`` (default: same)."""
        return n_frames


@AUGMENTS.register("erase")
class RandomErase(Augment):
    """With probability ``p``, erase one random tube (AutoHR spatio-temporal erasing).

    See :func:`sample_tubes` / :func:`erase_tubes` (``fill``: ``"mean"``, ``"channel_mean"``,
    ``"zero"``, ``"noise"``). Labels unchanged.
    """

    def __init__(self, p: float = 0.5, max_area_frac: float = 0.2, max_time_frac: float = 0.2, fill: str = "mean"):
        if fill not in ERASE_FILLS:
            raise ConfigError(f"erase fill {fill!r} unknown; available: {', '.join(ERASE_FILLS)}")
        self.p, self.max_area_frac, self.max_time_frac, self.fill = p, max_area_frac, max_time_frac, fill
        self.last_tubes: Tubes | None = None  # what the last call erased (for inspection)

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        gen = as_generator(generator)
        apply = bool(_uniform((1,), gen)[0] < self.p)
        tubes = sample_tubes(1, *sample.clip.shape[1:], self.max_area_frac, self.max_time_frac, gen)
        if not apply:
            tubes = replace(tubes, t1=tubes.t0)  # empty tube: nothing erased
        self.last_tubes = tubes
        if not apply:
            return sample
        return replace(sample, clip=erase_tubes(sample.clip[None], tubes, self.fill, gen)[0])


@AUGMENTS.register("hflip")
class RandomHFlip(Augment):
    """With probability ``p``, mirror the clip left-right. Labels unchanged."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        if bool(_uniform((1,), as_generator(generator))[0] < self.p):
            return replace(sample, clip=hflip(sample.clip))
        return sample


@AUGMENTS.register("color_jitter")
class ColorJitter(Augment):
    """Random brightness and per-channel colour gains, constant over the clip.

    Gain of channel c: ``(1 + u_b) * (1 + u_c)`` with ``u_b ~ U(-brightness, brightness)``
    and ``u_c ~ U(-color, color)``; values clamped to ``[0, max_value]``. A gain constant in
    time leaves the pulse frequency unchanged; labels unchanged.
    """

    def __init__(self, brightness: float = 0.2, color: float = 0.05, max_value: float | None = 255.0):
        if not (0 <= brightness < 1 and 0 <= color < 1):
            raise ConfigError(f"color_jitter: brightness and color must be in [0, 1), got {brightness}, {color}")
        self.brightness, self.color, self.max_value = brightness, color, max_value

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        u = _uniform((4,), as_generator(generator)) * 2 - 1
        gains = (1 + self.brightness * u[0]) * (1 + self.color * u[1:])
        return replace(sample, clip=color_gain(sample.clip, gains, self.max_value))


@AUGMENTS.register("hr_balance")
class HRBalance(Augment):
    """AutoHR HR-balancing: halve high HRs, double low HRs by temporal resampling.

    As an augmentation it *replaces* every clip outside ``low_bpm..high_bpm`` by its
    resampled version; training with ``augment.hr_resample`` instead keeps the
    real-speed clips and adds the resampled ones (:class:`HRBalancedClips`).

    Yu et al., AutoHR, IEEE SPL 2020. ``hr_bpm > high_bpm``: speed 0.5 (interpolate to
    twice the frames, keep the first T; HR / 2). ``hr_bpm < low_bpm``: speed 2 (every
    second frame; HR x 2). Otherwise speed 1. ``hr_bpm`` is scaled and ``ppg`` resampled
    with the clip, so labels stay consistent.

    The dataset must load ``source_frames(T) = 2 T`` frames per clip (the doubling case
    reads frames 0, 2, ..., 2T - 2); the output always has ``T = out_frames`` frames,
    or half of the given clip's frames when ``out_frames`` is None.
    """

    def __init__(self, low_bpm: float = 70.0, high_bpm: float = 90.0, out_frames: int | None = None):
        if not 0 < low_bpm <= high_bpm:
            raise ConfigError(f"hr_balance: need 0 < low_bpm <= high_bpm, got {low_bpm}, {high_bpm}")
        self.low_bpm, self.high_bpm, self.out_frames = low_bpm, high_bpm, out_frames

    def speed_for(self, hr_bpm: float) -> float:
        """The playback speed applied to a clip of heart rate ``hr_bpm``."""
        if hr_bpm > self.high_bpm:
            return 0.5
        if hr_bpm < self.low_bpm:
            return 2.0
        return 1.0

    def source_frames(self, n_frames: int) -> int:
        return 2 * n_frames

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        if sample.hr_bpm is None:
            raise InputError("hr_balance: the sample has no hr_bpm label")
        n_out = self.out_frames if self.out_frames is not None else sample.clip.shape[1] // 2
        speed = self.speed_for(sample.hr_bpm)
        clip, ppg = temporal_resample(sample.clip, speed, n_out, sample.ppg)
        return replace(sample, clip=clip, ppg=ppg, hr_bpm=sample.hr_bpm * speed)


@AUGMENTS.register("speed")
class RandomSpeed(Augment):
    """With probability ``p``, play the clip at a speed that moves its HR to a random target.

    The target HR is drawn uniformly in ``hr_range_bpm`` and the speed is ``target / hr``,
    clamped to ``speed_range``; clip and PPG are resampled together by
    :func:`temporal_resample` and ``hr_bpm`` is scaled, so labels stay aligned. A
    continuous version of AutoHR's HR balancing (Yu et al., IEEE SPL 2020) that covers the
    whole HR range whatever the dataset's HR distribution (UBFC-rPPG is mostly 90-120 bpm).
    The dataset must load ``ceil(max speed) * T`` frames; the output has ``T = out_frames``
    (default: the given frames / ceil(max speed)).
    """

    def __init__(
        self,
        p: float = 0.5,
        hr_range_bpm: tuple[float, float] = (45.0, 150.0),
        speed_range: tuple[float, float] = (0.4, 2.0),
        out_frames: int | None = None,
    ):
        lo, hi = hr_range_bpm
        s_lo, s_hi = speed_range
        if not (0 < lo <= hi and 0 < s_lo <= 1 <= s_hi):
            raise ConfigError(
                f"speed: need 0 < hr_range_bpm[0] <= [1] and speed_range around 1, got {hr_range_bpm}, {speed_range}"
            )
        self.p, self.hr_range_bpm, self.speed_range, self.out_frames = p, (lo, hi), (s_lo, s_hi), out_frames
        self._factor = math.ceil(s_hi)

    def source_frames(self, n_frames: int) -> int:
        return self._factor * n_frames

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        if sample.hr_bpm is None or sample.ppg is None:
            raise InputError("speed: the sample has no hr_bpm / ppg label")
        gen = as_generator(generator)
        u = _uniform((2,), gen)
        n_out = self.out_frames if self.out_frames is not None else sample.clip.shape[1] // self._factor
        speed = 1.0
        if bool(u[0] < self.p) and sample.hr_bpm > 0:
            lo, hi = self.hr_range_bpm
            target = lo + float(u[1]) * (hi - lo)
            speed = min(max(target / sample.hr_bpm, self.speed_range[0]), self.speed_range[1])
        clip, ppg = temporal_resample(sample.clip, speed, n_out, sample.ppg)
        return replace(sample, clip=clip, ppg=ppg, hr_bpm=sample.hr_bpm * speed)


class HRBalancedClips(Dataset):
    """AutoHR HR balancing that *adds* resampled copies (Yu et al., IEEE SPL 2020).

    Wraps a dataset of labelled items (dicts with ``clip`` (3, 2T, H, W) of ``2 T``
    source frames, ``ppg`` (2T,), ``hr_bpm``, ``fps``; e.g. the training clips of
    :class:`facepulse.train.data.ClipDataModule` with ``augment.hr_resample``). Items
    ``0 .. n - 1`` are every clip at real speed (its first T frames, labels unchanged);
    items ``n .. n + m - 1`` are one resampled copy of each of the ``m`` clips whose HR is
    above ``balance.high_bpm`` (played at half speed, HR / 2) or below ``balance.low_bpm``
    (double speed, HR x 2). Real-speed clips are therefore always seen, and the HRs
    outside 70-90 bpm gain a copy in the sparse middle of the distribution.

    The HR of each clip is read once when the wrapper is built: ``hr_bpm`` if given, else
    ``base.hr_labels()`` or the array ``base.hr_bpm`` when the dataset has one, else the
    ``hr_bpm`` of every item (reads each clip once).
    """

    def __init__(self, base: Dataset, balance: HRBalance | None = None, hr_bpm: Sequence[float] | None = None):
        self.base = base
        self.balance = HRBalance() if balance is None else balance
        n = len(base)  # type: ignore[arg-type]
        hrs = [float(v) for v in (clip_hr_labels(base) if hr_bpm is None else hr_bpm)]
        if len(hrs) != n:
            raise InputError(f"hr_balance: {len(hrs)} HR labels for {n} clips")
        self.hr_bpm = hrs
        #: source index of every added copy, in order
        self.copies = [i for i, hr in enumerate(hrs) if self.balance.speed_for(hr) != 1.0]

    def __len__(self) -> int:
        return len(self.base) + len(self.copies)  # type: ignore[arg-type]

    def source_index(self, index: int) -> tuple[int, float]:
        """``(index in base, playback speed)`` of item ``index``."""
        n = len(self.base)  # type: ignore[arg-type]
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range ({len(self)} clips)")
        if index < n:
            return index, 1.0
        src = self.copies[index - n]
        return src, self.balance.speed_for(self.hr_bpm[src])

    def __getitem__(self, index: int) -> dict[str, Any]:
        src, speed = self.source_index(int(index))
        item = dict(self.base[src])
        if item.get("hr_bpm") is None:
            raise InputError("hr_balance: the clip has no hr_bpm label")
        clip = item["clip"]
        n_out = self.balance.out_frames if self.balance.out_frames is not None else clip.shape[1] // 2
        ppg = item.get("ppg")
        item["clip"], new_ppg = temporal_resample(clip, speed, n_out, ppg)
        item["clip"] = item["clip"].contiguous()
        if new_ppg is not None:
            item["ppg"] = new_ppg.to(torch.float32)
        item["hr_bpm"] = float(item["hr_bpm"]) * speed
        item["hr_speed"] = speed
        return item


def clip_hr_labels(dataset: Dataset) -> list[float]:
    """The ``hr_bpm`` of every item of a labelled dataset (see :class:`HRBalancedClips`)."""
    labels = getattr(dataset, "hr_labels", None)
    if callable(labels):
        return [float(v) for v in labels()]
    n = len(dataset)  # type: ignore[arg-type]
    array = getattr(dataset, "hr_bpm", None)
    if array is not None and not callable(array) and len(array) == n:
        return [float(v) for v in array]
    out = []
    for i in range(n):
        hr = dataset[i].get("hr_bpm")
        if hr is None:
            raise InputError(f"hr_balance: clip {i} has no hr_bpm label (needs labelled clips)")
        out.append(float(hr))
    return out


class Compose(Augment):
    """Apply augmentations in order with one generator (a seed reproduces the whole chain)."""

    def __init__(self, augments: Sequence[Augment]):
        self.augments = list(augments)

    def __call__(self, sample: ClipSample, generator: GeneratorLike = None) -> ClipSample:
        gen = as_generator(generator)
        for aug in self.augments:
            sample = aug(sample, gen)
        return sample

    def source_frames(self, n_frames: int) -> int:
        for aug in reversed(self.augments):
            n_frames = aug.source_frames(n_frames)
        return n_frames


def build_augment(specs: Sequence[str | Mapping[str, Any]]) -> Compose:
    """A :class:`Compose` from names or ``{"name": ..., **options}`` dicts, in order.

    >>> build_augment(["hr_balance", {"name": "erase", "p": 0.5}, "hflip"])  # doctest: +ELLIPSIS
    <...Compose object at ...>
    """
    augments = []
    for spec in specs:
        if isinstance(spec, str):
            name, options = spec, {}
        else:
            options = dict(spec)
            if "name" not in options:
                raise ConfigError(f"augmentation {options}: missing 'name'")
            name = options.pop("name")
        try:
            augments.append(AUGMENTS.get(name)(**options))
        except TypeError as err:
            raise ConfigError(f"augmentation {name!r}: {err}") from None
    return Compose(augments)

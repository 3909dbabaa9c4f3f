"""Training data: labelled face clips in batches, augmented reproducibly.

:class:`ClipDataModule` serves ``train`` / ``val`` / ``test`` clips of ``config.data``
(any dataset the dataset layer reads, through the preprocessing cache and
:class:`facepulse.datasets.clips.ClipDataset`), or any datasets given to it directly
(e.g. :class:`ArrayClips` of in-memory clips). Every item is a dict::

    clip       (3, T, H, W) float32, pixel values 0..255
    ppg        (T,) float32 reference pulse on the clip's frames
    fps        float, Hz
    hr_bpm     float, reference HR of the clip (beats/min)
    video_id, subject_id : str;  start : int, first frame of the clip in its video

Reproducibility: the order of the training clips and every random augmentation are drawn
from ``(config.seed, epoch, clip index)`` only (see :class:`SeededSampler`), so a run that
is killed and resumed from its last checkpoint sees exactly the batches of an
uninterrupted run, whatever the number of loader workers. The sampler also shards the
clips over DDP processes (the trainer is built with ``use_distributed_sampler=False``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from facepulse.augment import Compose, build_augment
from facepulse.config import AugmentConfig, ExperimentConfig
from facepulse.datasets.clips import apply_augment
from facepulse.errors import ConfigError, InputError

Item = dict[str, Any]


# ------------------------------------------------------------------- augmentations
def augment_specs(augment: AugmentConfig, clip_len: int) -> list[dict[str, Any]]:
    """The :func:`facepulse.augment.build_augment` specs of an :class:`AugmentConfig`.

    ``speed_p > 0`` -> ``speed`` (:class:`facepulse.augment.RandomSpeed`), first: it needs
    2T source frames and returns T. ``hr_resample`` is not in the chain: :class:`ClipDataModule` loads 2T frames per
    training clip and *adds* HR-balanced copies (:class:`facepulse.augment.HRBalancedClips`);
    ``erase_p`` -> ``erase`` (fill ``erase_fill``); ``flip_p`` -> ``hflip``; ``color_jitter = j`` ->
    ``color_jitter`` with brightness ``j`` and per-channel colour gain ``j / 4`` (the
    ratio of the augmentation's own defaults, 0.2 / 0.05); ``codec.p > 0`` -> ``codec``
    (:class:`facepulse.augment.CodecAugment`, camera and codec realism), first in the chain:
    it is how the video reached us, the others are training regularisers.
    """
    specs: list[dict[str, Any]] = []
    if augment.speed_p > 0:
        specs.append(
            {"name": "speed", "p": augment.speed_p, "hr_range_bpm": augment.speed_hr_range_bpm, "out_frames": clip_len}
        )
    if augment.codec.p > 0:
        specs.append({"name": "codec", "field": "augment.codec", **augment.codec.model_dump(mode="python")})
    if augment.erase_p > 0:
        specs.append({"name": "erase", "p": augment.erase_p, "fill": augment.erase_fill})
    if augment.flip_p > 0:
        specs.append({"name": "hflip", "p": augment.flip_p})
    if augment.color_jitter > 0:
        if augment.color_jitter >= 1:
            raise ConfigError(f"augment.color_jitter={augment.color_jitter}: must be below 1")
        specs.append({"name": "color_jitter", "brightness": augment.color_jitter, "color": augment.color_jitter / 4})
    return specs


def build_config_augment(augment: AugmentConfig, clip_len: int) -> Compose | None:
    """The augmentation chain of ``augment`` (None when it does nothing)."""
    specs = augment_specs(augment, clip_len)
    return build_augment(specs) if specs else None


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one clip in one epoch, independent of workers and ranks."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class AugmentedClips(Dataset):
    """Applies an augmentation chain to the items of ``base``.

    Indexed by ``(index, seed)`` pairs (what :class:`SeededSampler` yields): the item's
    random augmentation is drawn from ``torch.Generator().manual_seed(seed)``. A plain int
    index uses torch's global generator.
    """

    def __init__(self, base: Dataset, augment: Compose | None) -> None:
        self.base = base
        self.augment = augment

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Item:
        index, seed = key if isinstance(key, tuple) else (key, None)
        item = dict(self.base[index])
        if self.augment is None:
            return item
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return apply_augment(self.augment, item, gen)


# ------------------------------------------------------------------------- sampling
class SeededSampler(Sampler):
    """Epoch-seeded order over ``n`` items, sharded over ``num_replicas`` processes.

    Yields ``(index, sample_seed)`` pairs. With ``shuffle``, epoch ``e`` visits the items
    in the permutation drawn from ``(seed, e)``; the list is padded by wrapping around to
    a multiple of ``num_replicas`` (as ``DistributedSampler`` does) and rank ``r`` takes
    every ``num_replicas``-th item from position ``r``. Lightning calls :meth:`set_epoch`
    before each epoch.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        if n < 1:
            raise InputError("sampler: the dataset has no clips")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"sampler: rank {rank} outside 0..{num_replicas - 1}")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.n / self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(self.n)
        else:
            order = np.arange(self.n)
        total = len(self) * self.num_replicas
        order = np.resize(order, total)  # wraps around: every rank gets the same count
        for index in order[self.rank :: self.num_replicas]:
            yield int(index), sample_seed(self.seed, self.epoch, int(index))


# ---------------------------------------------------------------- in-memory clips
class ArrayClips(Dataset):
    """Labelled clips held in memory, with the items of :class:`ClipDataModule`.

    Parameters
    ----------
    clips : (N, T, H, W, 3) uint8 RGB face clips (or float pixel values 0..255).
    ppg : (N, T) reference pulse per clip.
    hr_bpm : (N,) reference HR of each clip (beats/min).
    fps : frame rate (Hz).
    video_ids : (N,) video of each clip (str); subject_ids default to the video ids.
    starts : (N,) first frame of each clip in its video (default 0).
    """

    def __init__(
        self,
        clips: np.ndarray,
        ppg: np.ndarray,
        hr_bpm: np.ndarray,
        fps: float,
        video_ids: Sequence[str] | None = None,
        subject_ids: Sequence[str] | None = None,
        starts: Sequence[int] | None = None,
    ) -> None:
        clips = np.asarray(clips)
        if clips.ndim != 5 or clips.shape[-1] != 3:
            raise InputError(f"ArrayClips: expected clips (N, T, H, W, 3), got {clips.shape}")
        n, t = clips.shape[:2]
        ppg = np.asarray(ppg, dtype=np.float32)
        hr_bpm = np.asarray(hr_bpm, dtype=np.float64).reshape(-1)
        if ppg.shape != (n, t) or hr_bpm.shape != (n,):
            raise InputError(f"ArrayClips: ppg {ppg.shape} / hr_bpm {hr_bpm.shape} do not match {n} clips of {t}")
        self.clips = clips
        self.ppg = torch.from_numpy(ppg)
        self.hr_bpm = hr_bpm
        self.fps = float(fps)
        self.video_ids = list(video_ids) if video_ids is not None else [str(i) for i in range(n)]
        self.subject_ids = list(subject_ids) if subject_ids is not None else list(self.video_ids)
        self.starts = list(starts) if starts is not None else [0] * n

    def __len__(self) -> int:
        return self.clips.shape[0]

    def __getitem__(self, i: int) -> Item:
        clip = torch.from_numpy(np.ascontiguousarray(self.clips[i].transpose(3, 0, 1, 2))).to(torch.float32)
        return {
            "clip": clip,
            "ppg": self.ppg[i],
            "fps": self.fps,
            "hr_bpm": float(self.hr_bpm[i]),
            "video_id": str(self.video_ids[i]),
            "subject_id": str(self.subject_ids[i]),
            "start": int(self.starts[i]),
        }


# ----------------------------------------------------------------- dataset clips
def dataset_clips(config: ExperimentConfig, records: list, clip_len: int, *, teacher: bool = False) -> Dataset:
    """Clips of ``records`` (pixel values 0..255) through the preprocessing cache
    (:meth:`facepulse.datasets.clips.ClipDataset.from_config`; missing videos are
    preprocessed first, with a progress bar on a terminal). ``teacher``: labelled by the
    fused classic estimator instead of the reference (:mod:`facepulse.train.teacher`)."""
    import sys

    from facepulse.datasets.clips import ClipDataset

    label_fn = None
    if teacher:
        from facepulse.train.teacher import TeacherLabeller

        label_fn = TeacherLabeller(config.data.teacher_min_confidence)

    return ClipDataset.from_config(
        config.data,
        records,
        clip_len=clip_len,
        workers=max(1, config.data.num_workers),
        progress=sys.stderr.isatty(),
        pixel_scale=1.0,
        label_fn=label_fn,
    )


# ---------------------------------------------------------------------- datamodule
class ClipDataModule(L.LightningDataModule):
    """Train / val / test loaders of an experiment.

    Parameters
    ----------
    config : the experiment (``data``, ``augment``, ``optim.batch_size``, ``seed``).
    train, val, test : datasets to use instead of ``config.data`` (items as in the module
        docstring); when ``train`` is None the splits of ``config.data`` are loaded, the
        training clips labelled by the teacher with ``data.label_source: teacher``
        (validation and test clips keep the reference, to score against).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        train: Dataset | None = None,
        val: Dataset | None = None,
        test: Dataset | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        if config.augment.hr_resample and not config.data.labels:
            raise ConfigError("augment.hr_resample needs labelled clips (data.labels: true)")
        if config.augment.speed_p > 0 and config.augment.hr_resample:
            raise ConfigError("augment.speed_p and augment.hr_resample both resample time: use one of them")
        if config.augment.speed_p > 0 and not config.data.labels:
            raise ConfigError("augment.speed_p rescales the labels: it needs labelled clips (data.labels: true)")
        if config.data.label_source == "teacher" and not config.data.labels:
            raise ConfigError("data.label_source=teacher labels the training clips: it needs data.labels: true")
        self.augment = build_config_augment(config.augment, config.data.clip_len)
        self._given = train is not None
        self.train_set: Dataset | None = train
        self.val_set: Dataset | None = val
        self.test_set: Dataset | None = test
        self._balanced: Dataset | None = None

    @property
    def source_clip_len(self) -> int:
        """Frames per training clip before augmentation (2T with HR resampling)."""
        t = self.config.data.clip_len
        t = 2 * t if self.config.augment.hr_resample else t
        return self.augment.source_frames(t) if self.augment is not None else t

    def train_clips(self) -> Dataset:
        """The training clips as the loader serves them: with ``augment.hr_resample``, every
        clip at real speed plus a resampled copy of each clip outside 70-90 bpm
        (:class:`facepulse.augment.HRBalancedClips`)."""
        if self.train_set is None:
            raise ConfigError("data: no training clips (call setup first, or give train=)")
        if not self.config.augment.hr_resample:
            return self.train_set
        from facepulse.augment import HRBalance, HRBalancedClips

        if self._balanced is None or self._balanced.base is not self.train_set:
            self._balanced = HRBalancedClips(self.train_set, HRBalance(out_frames=self.config.data.clip_len))
        return self._balanced

    def prepare_data(self) -> None:
        """Fill the preprocessing cache once (Lightning calls this on one process per
        machine before ``setup``, so DDP ranks do not all decode the videos)."""
        if self._given:
            return
        import sys

        from facepulse.config import resolve_data_root
        from facepulse.datasets import get_reader
        from facepulse.datasets.cache import PreprocessConfig, preprocess_dataset
        from facepulse.datasets.clips import records_by_split

        d = self.config.data
        reader = get_reader(d.dataset, resolve_data_root(d.root))
        records = [r for part in records_by_split(d, self.config.seed).values() for r in part]
        summary = preprocess_dataset(
            reader, d.cache_dir, PreprocessConfig.create(size=d.size), workers=max(1, d.num_workers),
            progress=sys.stderr.isatty(), records=records,
        )
        if summary.failed:
            vid, msg = next(iter(summary.failed.items()))
            raise InputError(f"preprocessing {vid} failed: {msg} ({len(summary.failed)} videos failed)")

    def setup(self, stage: str | None = None) -> None:
        if self._given or self.train_set is not None:
            return
        from facepulse.datasets.clips import records_by_split

        d = self.config.data
        splits = records_by_split(d, self.config.seed)
        for role in ("train", "val", "test"):
            name = getattr(d, f"{role}_split")
            if name not in splits:
                raise ConfigError(f"data.{role}_split={name!r}: must be one of {', '.join(splits)}")
        if not splits.get(d.train_split):
            raise ConfigError(f"data: split {d.train_split!r} of {d.dataset} has no videos")
        self.train_set = dataset_clips(
            self.config, splits[d.train_split], self.source_clip_len, teacher=d.label_source == "teacher"
        )
        if splits.get(d.val_split):
            self.val_set = dataset_clips(self.config, splits[d.val_split], d.clip_len)
        if splits.get(d.test_split):
            self.test_set = dataset_clips(self.config, splits[d.test_split], d.clip_len)

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def _loader(self, dataset: Dataset, shuffle: bool, augment: Compose | None) -> DataLoader:
        replicas, rank = self._world()
        sampler = SeededSampler(len(dataset), self.config.seed, shuffle, replicas, rank)  # type: ignore[arg-type]
        workers = self.config.data.num_workers
        return DataLoader(
            AugmentedClips(dataset, augment),
            batch_size=self.config.optim.batch_size,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=shuffle and len(sampler) > self.config.optim.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_clips(), True, self.augment)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None and self.config.trainer.limit_val_batches == 0:
            return []  # a fixed-length run without model selection (e.g. leave-one-subject-out)
        if self.val_set is None:
            raise ConfigError(f"data: split {self.config.data.val_split!r} has no videos; model selection needs one")
        return self._loader(self.val_set, False, None)

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise ConfigError(f"data: split {self.config.data.test_split!r} has no videos")
        return self._loader(self.test_set, False, None)

"""One typed schema for every experiment (train, contrastive, search), loaded from YAML.

Relative paths in a config are relative to the current directory (``data.root`` values
starting with ``shared:`` to ``$FACEPULSE_DATA``). A user's own experiment files and
command-line overrides may use absolute paths (``data.root=/datasets/UBFC``); the
experiment files committed to this repository (``configs/*.yaml``) keep to relative ones so
that they work on every machine (a test checks it). Any field can be overridden from the
command line with dotted ``key=value`` pairs, e.g. ``optim.lr=3e-4 data.clip_len=64``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facepulse.errors import ConfigError
from facepulse.paths import default_cache_dir


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where clips come from and how they are cut."""

    dataset: str = "synthetic"  # a facepulse.datasets.DATASETS name
    root: str = "data/synthetic"  # dataset folder; "shared:ubfc_rppg_dev" = $FACEPULSE_DATA/...
    # preprocessing cache (HDF5 per video): by default the one `facepulse preprocess` and
    # `evaluate` use ($FACEPULSE_CACHE_DIR, else the user cache folder)
    cache_dir: str = Field(default_factory=lambda: str(default_cache_dir()))
    train_split: str = "train"  # split names resolved by facepulse.eval.splits
    val_split: str = "val"
    test_split: str = "test"
    split_file: str | None = None  # YAML/JSON with subject lists per split; None = by seed
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    clip_len: int = Field(128, ge=8)  # frames per clip
    clip_stride: int = Field(64, ge=1)  # frames between clip starts
    fps: float = Field(30.0, gt=0)  # clips are resampled to this rate
    size: int = Field(64, ge=8)  # face clips are size x size pixels
    labels: bool = True  # False for self-supervised training
    # where the training clips' labels come from: the dataset's reference PPG, or the fused
    # classic estimator run on each cached video (facepulse.train.teacher; the reference
    # of the training videos is then never read). Validation / test always use the reference.
    label_source: Literal["reference", "teacher"] = "reference"
    # teacher labels: drop frames (and so clips) where the teacher's confidence is below this
    teacher_min_confidence: float = Field(0.0, ge=0, le=1)
    num_workers: int = Field(0, ge=0)


class ModelConfig(_Strict):
    name: str = "physnet"  # a facepulse.models.MODELS name
    params: dict[str, Any] = Field(default_factory=dict)
    normalize: Literal["standardize", "diff", "raw"] = "standardize"
    init_from: str | None = None  # checkpoint whose model weights start this one (fine-tuning)


class LossConfig(_Strict):
    name: str = "hybrid"  # a facepulse.losses.LOSSES name
    params: dict[str, Any] = Field(default_factory=dict)


class CodecAugmentConfig(_Strict):
    """Codec realism (facepulse.augment.codec.CodecAugment): re-encode training clips in
    memory through a random camera and codec; ``p: 0`` (the default) = off."""

    p: float = Field(0.0, ge=0, le=1)  # probability per training clip
    codecs: list[Literal["h264", "h265", "vp9"]] = Field(default_factory=lambda: ["h264"], min_length=1)
    kbps_range: tuple[float, float] = (60.0, 1000.0)  # log-uniform, at 640x480 (scaled by encoded pixels)
    crf_p: float = Field(0.0, ge=0, le=1)  # probability of a CRF instead of a bitrate
    crf_range: tuple[int, int] = (18, 40)
    scale_range: tuple[float, float] = (0.5, 2.0)  # encoded size / crop size, log-uniform
    fps_range: tuple[float, float] | None = (15.0, 60.0)  # camera frame rate (Hz); null = the clip's
    noise_dn_range: tuple[float, float] = (0.0, 3.0)  # sensor noise std (0-255 scale)
    gamma_range: tuple[float, float] = (0.8, 1.25)  # log-uniform
    white_balance: float = Field(0.1, ge=0, lt=1)  # per-channel gain 1 +- this
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "ultrafast"


class AugmentConfig(_Strict):
    erase_p: float = Field(0.0, ge=0, le=1)  # AutoHR spatio-temporal erasing
    # what fills an erased tube (facepulse.augment.erase_tubes): each pixel's temporal mean,
    # the clip's per-channel mean, 0 (the old default: distorts the normalisation), or noise
    erase_fill: Literal["mean", "channel_mean", "zero", "noise"] = "mean"
    hr_resample: bool = False  # AutoHR HR-balancing temporal resampling
    # random playback speed moving each clip's HR to a target drawn in speed_hr_range_bpm
    # (facepulse.augment.RandomSpeed): covers the HR range a dataset lacks; 0 = off
    speed_p: float = Field(0.0, ge=0, le=1)
    speed_hr_range_bpm: tuple[float, float] = (45.0, 150.0)
    flip_p: float = Field(0.0, ge=0, le=1)
    color_jitter: float = Field(0.0, ge=0)
    codec: CodecAugmentConfig = Field(default_factory=CodecAugmentConfig)  # camera + codec realism


class OptimConfig(_Strict):
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(4, ge=1)
    max_epochs: int = Field(10, ge=1)
    max_steps: int = -1  # -1 = no limit
    gradient_clip: float | None = 1.0


class TrainerConfig(_Strict):
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"  # "ddp" for multi-GPU / multi-node (gloo on CPU)
    precision: str = "32-true"  # "bf16-mixed" on hardware that has it
    early_stopping_patience: int | None = 5
    log_every_n_steps: int = 10
    val_check_interval: float | int = 1.0
    limit_val_batches: float | int = 1.0


class SynthClipsConfig(_Strict):
    """In-memory synthetic clips (facepulse.synth, no files), e.g. for a quick search."""

    scenario: str = "still"  # a facepulse.synth SCENARIOS name
    n_train: int = Field(6, ge=1)  # videos per split; each video is its own person
    n_val: int = Field(2, ge=1)
    n_test: int = Field(2, ge=0)
    duration_s: float = Field(10.0, ge=1)
    seed: int = Field(0, ge=0)


class SearchConfig(_Strict):
    """AutoHR differentiable architecture search (facepulse.nas)."""

    n_intermediate: int = Field(3, ge=1)
    n_blocks: int = Field(4, ge=1)
    channels: int = Field(16, ge=4)
    ops: list[str] | None = None  # None = the default op set
    shared_alphas: bool = True
    order: Literal["first", "second"] = "first"
    alpha_lr: float = Field(3e-4, gt=0)
    alpha_weight_decay: float = Field(1e-3, ge=0)
    partial_channels: int = Field(1, ge=1)  # PC-DARTS: 1/k of the channels go through the ops
    # PC-DARTS edge normalisation (learned edge weights); None = on when partial_channels > 1
    edge_normalization: bool | None = None
    # AutoHR pruning, "each node keeps the two strongest operations": "edges" = its two
    # strongest incoming edges with one op each (DARTS); "ops" = its two strongest ops overall
    prune: Literal["edges", "ops"] = "edges"
    warmup_epochs: int = Field(0, ge=0)  # epochs training weights only before alphas move
    clip_len: int | None = Field(None, ge=8)  # search on shorter clips than data.clip_len
    size: int | None = Field(None, ge=8)  # search on smaller frames than data.size
    # latency-aware search (facepulse.nas.cost): the architecture step adds cost_weight x the
    # expected cost of the cells under softmax(alphas), as a fraction of the costliest cells
    cost_weight: float = Field(0.0, ge=0)
    cost_metric: Literal["flops", "latency"] = "flops"  # per-op table: counted FLOPs or measured CPU time
    synth: SynthClipsConfig | None = None  # set: search on in-memory synthetic clips, not data.*


class ContrastiveConfig(_Strict):
    """Self-supervised training (facepulse.contrastive): Gideon & Stent 2021 frequency
    contrast, or the SiNC spectral priors (Speth et al. 2023), ``objective``."""

    # a facepulse.contrastive.objectives.OBJECTIVES name: "frequency_contrast" (Gideon &
    # Stent 2021) or "spectral_prior" (SiNC, Speth et al. 2023: bandwidth, sparsity, variance)
    objective: Literal["frequency_contrast", "spectral_prior"] = "frequency_contrast"
    resample_min: float = Field(1.25, gt=0)
    resample_max: float = Field(1.5, gt=0)
    n_views: int = Field(4, ge=1)
    view_len: int = Field(64, ge=8)  # frames per view
    distance: Literal["psd_mse", "l1", "mcc"] = "psd_mse"
    memory_bank: int = Field(0, ge=0)  # 0 = off; else queue length of negative spectra
    saliency: bool = False
    band_bpm: tuple[float, float] = (40.0, 250.0)
    bank_weight: float = Field(1.0, ge=0)  # weight of the memory-bank negatives
    interpolation: Literal["nearest", "linear"] = "nearest"  # how sped-up clips pick frames
    # "cut": anchor = whole clip, negative shorter (paper); "equal": anchor = a random window
    # of the negative's length, negative sped up from the same frame (issue 14, docs/training.md)
    branches: Literal["cut", "equal"] = "cut"
    common_weight: float = Field(0.0, ge=0)  # weight of the output power common to the batch (issue 14)
    window: Literal["hann"] | None = None  # taper of the views before their spectra
    ipr_weight: float = Field(0.0, ge=0)  # weight of the anchor's irrelevant power ratio
    select: Literal["ipr", "snr"] = "ipr"  # label-free checkpoint choice: val IPR (paper) or peak SNR
    saliency_sparsity: float = Field(0.0, ge=0)  # weight of the saliency entropy loss
    saliency_temporal: float = Field(0.0, ge=0)  # weight of the saliency frame-to-frame loss
    saliency_params: dict[str, Any] = Field(default_factory=dict)  # SaliencySampler options
    # spectral_prior: each clip resampled in time by a factor drawn from this range (its
    # pulse moves to f * c), a window of view_len frames, reversed / flipped left-right.
    # SiNC draws 0.6-1.4 with blended frames; here frames are picked by `interpolation`
    # (nearest: c < 1 repeats frames and linear blends modulate the noise, both periodic
    # cues a network learns instead of the pulse), hence c >= 1 by default
    prior_resample: tuple[float, float] = (1.0, 1.4)
    prior_flip_time: float = Field(0.5, ge=0, le=1)
    prior_flip_h: float = Field(0.5, ge=0, le=1)
    prior_params: dict[str, Any] = Field(default_factory=dict)  # SpectralPriorLoss options (weights, band)
    # EMA teacher (mean teacher): a copy of the model whose weights follow the student's as
    # w_t <- d * w_t + (1 - d) * w_s after every step; null = off. Its spectra of the same
    # input are a target for the student's (teacher_weight, total-variation distance).
    ema_teacher: float | None = Field(None, gt=0, lt=1)
    teacher_weight: float = Field(1.0, ge=0)
    # memory bank: never use queued spectra of the clip's own video as negatives
    bank_exclude_same_video: bool = True


class ExperimentConfig(_Strict):
    """A whole experiment: ``facepulse train --config FILE.yaml [key=value ...]``."""

    name: str = "experiment"
    kind: Literal["supervised", "contrastive", "search"] = "supervised"
    seed: int = 0
    out_dir: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment file (or defaults when ``path`` is None) and apply overrides.

    Overrides are ``dotted.key=value`` strings; values are parsed as YAML scalars/lists.
    Raises ConfigError naming the file and field on any problem.
    """
    tree: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{where}: field {field!r}: {first['msg']}") from None


def save_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write the config as YAML (next to a checkpoint, say)."""
    from facepulse.fileio import write_text

    return write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def resolve_data_root(root: str) -> Path:
    """``shared:NAME`` -> ``$FACEPULSE_DATA/NAME``; anything else relative to the cwd."""
    from facepulse.paths import shared_data_dir

    if root.startswith("shared:"):
        return shared_data_dir() / root.removeprefix("shared:")
    return Path(root)

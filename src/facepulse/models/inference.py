"""Run a trained pulse model over a whole video, in PyTorch or ONNX Runtime.

>>> runner = load_model("runs/physnet_synthetic/best.ckpt")   # or an exported .onnx  # doctest: +SKIP
>>> runner.info.clip_len, runner.info.size, runner.info.fps                          # doctest: +SKIP
(128, 64, 30.0)
>>> pulse = video_pulse(runner, face_frames)   # (N, S, S, 3) uint8 -> (N,)          # doctest: +SKIP

A checkpoint written by ``facepulse train`` holds the experiment config (under the
``"facepulse"`` key), so it alone rebuilds the model: the training kind's builder
(:data:`facepulse.train.tasks.TASKS`) makes the module, its weights are loaded, and its
``model`` is wrapped with the clip normalisation it was trained with
(:class:`PulseModel`: pixel values 0..255 in, pulse out). ``export_onnx`` writes that
same :class:`PulseModel` to ONNX with the :class:`ModelInfo` in the file's metadata, so
an ``.onnx`` file runs without PyTorch or the config.

:func:`video_pulse` cuts the face frames into clips of the model's length, runs them in
batches and overlap-adds the clip outputs with Hann weights into one pulse.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from facepulse.errors import ConfigError, InputError, SignalTooShortError
from facepulse.models.normalize import ClipNormalizer

CHECKPOINT_KEY = "facepulse"  # same key as facepulse.train.runner.CHECKPOINT_KEY
ONNX_METADATA_KEY = "facepulse_model_info"


@dataclass(frozen=True)
class ModelInfo:
    """What a runner needs to know about its model.

    name : MODELS name of the backbone; kind : training kind (``supervised``...).
    clip_len : frames per clip it was trained on; size : face clips are size x size px.
    fps : frame rate of its training clips (video is resampled to it), Hz.
    normalize : clip normalisation (inside the model); output : ``"pulse"``, or
    ``"diff"`` for a model predicting the pulse's derivative (integrated by video_pulse).
    """

    name: str
    kind: str
    clip_len: int
    size: int
    fps: float
    normalize: str
    output: str = "pulse"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> ModelInfo:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as err:
            raise InputError(f"{where}: bad facepulse model metadata ({err})") from None


class PulseModel(nn.Module):
    """Clip normalisation + backbone: clips (B, 3, T, H, W) pixel values 0..255 -> (B, T).

    ``backbone`` takes normalised clips; a tuple output is read as ``(pulse, ...)``.
    """

    def __init__(self, backbone: nn.Module, normalize: str = "standardize") -> None:
        super().__init__()
        self.normalize = ClipNormalizer(normalize)
        self.backbone = backbone

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        out = self.backbone(self.normalize(clips))
        return out[0] if isinstance(out, (tuple, list)) else out


# ---------------------------------------------------------------------- checkpoints
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A facepulse Lightning checkpoint as a dict (tensors on CPU).

    Loaded with ``weights_only=True`` (no arbitrary code runs). Raises InputError for a
    missing, unreadable or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt / foreign files
        raise InputError(f"{path}: not a readable checkpoint ({str(err).splitlines()[0][:120]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InputError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    if CHECKPOINT_KEY not in ckpt:
        raise InputError(f"{path}: not written by facepulse train (no {CHECKPOINT_KEY!r} entry)")
    return ckpt


def model_info(config: Any, output: str = "pulse") -> ModelInfo:
    """The :class:`ModelInfo` of an :class:`~facepulse.config.ExperimentConfig` whose
    network predicts ``output`` (``"pulse"``, or ``"diff"``: the pulse's derivative)."""
    if output not in ("pulse", "diff"):
        raise ConfigError(f"model output {output!r} unknown; expected pulse or diff")
    return ModelInfo(
        name=config.model.name,
        kind=config.kind,
        clip_len=int(config.data.clip_len),
        size=int(config.data.size),
        fps=float(config.data.fps),
        normalize=config.model.normalize,
        output=output,
    )


def load_checkpoint_model(path: str | Path) -> tuple[PulseModel, ModelInfo]:
    """The :class:`PulseModel` (eval mode, CPU) and :class:`ModelInfo` of a checkpoint."""
    from facepulse.config import ExperimentConfig
    from facepulse.train.tasks import get_task

    ckpt = read_checkpoint(path)
    meta = ckpt[CHECKPOINT_KEY]
    try:
        config = ExperimentConfig.model_validate(meta["config"])
    except Exception as err:
        raise InputError(f"{path}: its stored config is not valid here ({str(err).splitlines()[0]})") from None
    # the weights come from this checkpoint: do not load the fine-tuning start point again
    config = config.model_copy(update={"model": config.model.model_copy(update={"init_from": None})})
    config = _inline_old_model_files(config, Path(path))
    state = torch.random.get_rng_state()
    try:
        module = get_task(config.kind)(config)
    finally:
        torch.random.set_rng_state(state)  # builders may seed; inference must not change the RNG
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise InputError(f"{path}: weights do not match model {config.model.name!r} ({str(err).splitlines()[0]})") from None
    backbone = getattr(module, "model", None)
    if not isinstance(backbone, nn.Module):
        raise InputError(f"{path}: training kind {config.kind!r} has no 'model' to run")
    model = PulseModel(backbone, config.model.normalize).eval()
    # what the network predicts (facepulse.train.tasks: ``model_output``); by the project's
    # convention (facepulse.train.module.pulse_from_output) a diff model predicts a derivative
    default = "diff" if config.model.normalize == "diff" else "pulse"
    return model, model_info(config, getattr(module, "model_output", default))


def _inline_old_model_files(config: Any, path: Path) -> Any:
    """Older checkpoints name their genotype by a path relative to the training's working
    directory; newer ones hold the genotype itself. Read such a path from the working
    directory, else from the folder above the checkpoint's ``<out_dir>/<name>/``."""
    from facepulse.errors import FacepulseError
    from facepulse.models import inline_model_params

    try:
        params = inline_model_params(config.model.name, config.model.params)
    except FacepulseError:
        if Path(config.out_dir).is_absolute():
            raise
        train_cwd = path.resolve().parent
        for _ in Path(config.out_dir, config.name).parts:
            train_cwd = train_cwd.parent
        params = inline_model_params(config.model.name, config.model.params, base_dir=train_cwd)
    return config.model_copy(update={"model": config.model.model_copy(update={"params": params})})


# --------------------------------------------------------------------------- runners
class PulseRunner(Protocol):
    """Anything that maps a batch of clips to pulses: ``runner(clips) -> pulses``.

    ``clips``: (B, 3, T, S, S) float32 pixel values 0..255 with T = ``info.clip_len``,
    S = ``info.size``; returns (B, T) float32.
    """

    info: ModelInfo

    def __call__(self, clips: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """Runs a :class:`PulseModel` with PyTorch (``torch.inference_mode``) on ``device``."""

    def __init__(self, model: PulseModel, info: ModelInfo, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.info = info
        self.device = device

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()


class OnnxRunner:
    """Runs an ONNX file written by :func:`export_onnx` with ONNX Runtime (CPU)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnx
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: ONNX model not found")
        try:
            meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception as err:
            raise InputError(f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:120]})") from None
        if ONNX_METADATA_KEY not in meta:
            raise InputError(f"{path}: not exported by facepulse export (no {ONNX_METADATA_KEY!r} metadata)")
        self.info = ModelInfo.from_json(meta[ONNX_METADATA_KEY], str(path))
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(clips, dtype=np.float32)})[0]


def load_model(path: str | Path, device: str = "cpu") -> TorchRunner | OnnxRunner:
    """A runner for a training checkpoint (``.ckpt``), an exported ``.onnx`` file, or the
    name of a model that ships in the package (``"default"``; :mod:`facepulse.models.pretrained`)."""
    from facepulse.models.pretrained import resolve_model

    path = resolve_model(path)
    if path.suffix.lower() == ".onnx":
        return OnnxRunner(path)
    model, info = load_checkpoint_model(path)
    return TorchRunner(model, info, device)


# ---------------------------------------------------------------------------- export
def export_onnx(checkpoint: str | Path, out_path: str | Path, opset: int = 17) -> Path:
    """Write the checkpoint's :class:`PulseModel` to ONNX (dynamic batch size).

    Input ``clip`` (B, 3, clip_len, size, size) float32 pixel values, output ``pulse``
    (B, clip_len); the :class:`ModelInfo` is stored as metadata ``facepulse_model_info``.
    """
    import onnx

    model, info = load_checkpoint_model(checkpoint)
    out_path = Path(out_path)
    dummy = torch.zeros(1, 3, info.clip_len, info.size, info.size)
    from facepulse.fileio import atomic_path

    with atomic_path(out_path, ".onnx") as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter's deprecation notice, and tracer notes on the
            # models' input checks (constant for a fixed input shape)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (dummy,),
                str(tmp),
                input_names=["clip"],
                output_names=["pulse"],
                dynamic_axes={"clip": {0: "batch"}, "pulse": {0: "batch"}},
                opset_version=opset,
                dynamo=False,  # the TorchScript exporter: onnxscript is not a dependency
            )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = ONNX_METADATA_KEY, info.to_json()
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return out_path


def compare_onnx(checkpoint: str | Path, onnx_path: str | Path, batch: int = 2, seed: int = 0) -> float:
    """Max absolute difference between the PyTorch and ONNX Runtime pulses of the same
    random clips (pixel values 0..255), ``batch`` clips of the model's shape."""
    torch_runner = load_model(checkpoint)
    onnx_runner = OnnxRunner(onnx_path)
    info = torch_runner.info
    rng = np.random.default_rng(seed)
    clips = rng.uniform(0, 255, size=(batch, 3, info.clip_len, info.size, info.size)).astype(np.float32)
    return float(np.abs(torch_runner(clips) - onnx_runner(clips)).max())


# ------------------------------------------------------------------- whole videos
def clip_starts(n_frames: int, clip_len: int, stride: int) -> np.ndarray:
    """Start frames of clips covering ``n_frames``: every ``stride``, plus one ending at the
    last frame. Raises SignalTooShortError when the video is shorter than one clip."""
    if clip_len < 1 or stride < 1:
        raise ConfigError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    if n_frames < clip_len:
        raise SignalTooShortError(f"video has {n_frames} frames, fewer than the model's clip of {clip_len}")
    starts = np.arange(0, n_frames - clip_len + 1, stride)
    if starts[-1] != n_frames - clip_len:
        starts = np.append(starts, n_frames - clip_len)
    return starts


def overlap_add(clip_pulses: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """Hann-weighted overlap-add of per-clip pulses into one signal.

    Welch-style weighted overlap-add (Welch, IEEE Trans. Audio Electroacoust. 1967), as
    rPPG methods join windowed pulses (Wang et al. POS, IEEE TBME 2017). Each clip's
    pulse is first standardised (a clip's offset and gain are arbitrary), then weighted
    by a Hann window that is positive on every frame (``hanning(L + 2)[1:-1]``), and the
    weighted sum is divided by the summed weights.

    Parameters
    ----------
    clip_pulses : (K, L) pulses of K clips of L frames; starts : (K,) their first frames.
    n_frames : length of the output.

    Returns
    -------
    (n_frames,) float64; NaN on frames no clip covers.
    """
    clip_pulses = np.asarray(clip_pulses, dtype=np.float64)
    k, length = clip_pulses.shape
    mean = clip_pulses.mean(axis=1, keepdims=True)
    std = clip_pulses.std(axis=1, keepdims=True)
    z = np.divide(clip_pulses - mean, std, out=np.zeros_like(clip_pulses), where=std > 0)
    weight = np.hanning(length + 2)[1:-1]
    idx = (np.asarray(starts)[:, None] + np.arange(length)[None, :]).ravel()
    acc = np.bincount(idx, weights=(z * weight).ravel(), minlength=n_frames)[:n_frames]
    wsum = np.bincount(idx, weights=np.broadcast_to(weight, (k, length)).ravel(), minlength=n_frames)[:n_frames]
    return np.divide(acc, wsum, out=np.full(n_frames, np.nan), where=wsum > 0)


def video_pulse(
    runner: PulseRunner | Callable[[np.ndarray], np.ndarray],
    frames: np.ndarray,
    *,
    info: ModelInfo | None = None,
    stride: int | None = None,
    batch_size: int = 4,
) -> np.ndarray:
    """The model's pulse over a whole video of face frames.

    Parameters
    ----------
    runner : a :class:`PulseRunner` (or a callable with ``info`` given).
    frames : (N, S, S, 3) RGB face frames (uint8, or float pixel values 0..255) at the
        model's frame rate and size.
    stride : frames between clip starts (default half a clip, so every frame is in two
        clips); batch_size : clips per model call.

    Returns
    -------
    (N,) float64 pulse (arbitrary units); a ``diff`` model's output is integrated.
    """
    info = info if info is not None else runner.info  # type: ignore[union-attr]
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != (info.size, info.size, 3):
        raise InputError(f"video_pulse: expected frames (N, {info.size}, {info.size}, 3), got {frames.shape}")
    n = frames.shape[0]
    length = info.clip_len
    starts = clip_starts(n, length, stride if stride is not None else max(1, length // 2))
    outputs = []
    for b in range(0, len(starts), batch_size):
        batch = np.stack([frames[s : s + length] for s in starts[b : b + batch_size]])  # (B, L, S, S, 3)
        clips = batch.transpose(0, 4, 1, 2, 3).astype(np.float32)
        out = np.asarray(runner(clips))
        if out.shape != (len(batch), length):
            raise InputError(f"model returned shape {out.shape}, expected {(len(batch), length)}")
        outputs.append(out)
    pulse = overlap_add(np.concatenate(outputs), starts, n)
    if info.output == "diff":
        # d[t] ~ x[t + 1] - x[t] (facepulse.models.normalize.diff_signal): x[t] = sum of d[:t]
        pulse = np.concatenate([[0.0], np.cumsum(pulse - pulse.mean())[:-1]])
    return pulse

"""Small file helpers shared by the dataset readers (private).

Every helper turns a bad file into a one-line :class:`InputError` naming the file and
what is wrong, so readers stay short and their messages stay uniform.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from facepulse.errors import InputError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm")


def natural_key(text: str) -> list:
    """Sort key that orders ``subject2`` before ``subject10``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", text)]


def require_file(path: Path, what: str = "file") -> Path:
    """``path`` if it is a file, else InputError naming it."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    return path


def finite_1d(values: object, path: Path, field: str, *, min_len: int = 2) -> np.ndarray:
    """``values`` as a 1-D float64 array; InputError if it is empty, ragged or non-finite."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {field} is not numeric") from None
    if arr.size < min_len:
        raise InputError(f"{path}: {field} has {arr.size} samples; need at least {min_len}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(f"{path}: {field} has a non-finite value at sample {int(bad[0])}")
    return arr


def increasing_times(t_s: np.ndarray, path: Path, field: str) -> np.ndarray:
    """``t_s`` unchanged if it never goes back in time and spans > 0 s, else InputError.

    Repeated stamps are allowed: real logs repeat a millisecond stamp now and then (UBFC
    subjects 4, 5, 9 do), and linear interpolation handles them.
    """
    bad = np.flatnonzero(np.diff(t_s) < 0)
    if bad.size:
        raise InputError(f"{path}: {field} goes back in time at sample {int(bad[0]) + 1}")
    if t_s[-1] <= t_s[0]:
        raise InputError(f"{path}: {field} does not advance (all {t_s.size} stamps equal)")
    return t_s


def uniform_times_s(n: int, fs: float) -> np.ndarray:
    """Sample times (s) of ``n`` samples at ``fs`` Hz starting at 0."""
    return np.arange(n, dtype=np.float64) / float(fs)


def read_number_lines(path: Path, field: str, *, header: str | None = None) -> np.ndarray:
    """One number per line (blank lines ignored), optionally under a one-word ``header``.

    Used for UBFC-Phys ``bvp_*.csv``, VIPL-HR ``wave.csv`` / ``gt_HR.csv`` / ``time.txt``
    and MMSE-HR physiology ``*.txt`` files.
    """
    require_file(path)
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if header is not None:
        if not lines or lines[0].strip().strip('"').lower() != header.lower():
            first = lines[0][:30] if lines else "nothing"
            raise InputError(f"{path}: expected header {header!r} on line 1, found {first!r}")
        lines = lines[1:]
    values = np.empty(len(lines), dtype=np.float64)
    offset = 2 if header is not None else 1
    for i, line in enumerate(lines):
        # Some exports keep a trailing comma or a quoted value; take the first field.
        token = line.split(",")[0].strip().strip('"')
        try:
            values[i] = float(token)
        except ValueError:
            raise InputError(f"{path}: line {i + offset}: {token[:30]!r} is not a number") from None
    return finite_1d(values, path, field)


def find_paths(root: Path, pattern: str) -> list[Path]:
    """Paths under ``root`` matching the relative glob ``pattern``, following symlinked folders.

    ``pattern`` is ``/``-separated; each part is an ``fnmatch`` pattern (case-sensitive) and
    a ``**`` part matches zero or more folders. Unlike ``Path.rglob``, folders that are
    symlinks (e.g. subject folders linked in from another disk) are entered; a link back to
    one of its own ancestors (a loop) is not, and under ``**`` each real folder is walked
    once. Sorted; unreadable folders are skipped.
    """
    parts = [p for p in pattern.split("/") if p and p != "."]
    found: list[Path] = []
    walked: set[tuple[int, int]] = set()

    def identity(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def subdirs(folder: Path, ancestors: frozenset) -> list[tuple[Path, tuple[int, int]]]:
        out = []
        for entry in _entries(folder):
            if entry.is_dir():
                key = identity(entry)
                if key is not None and key not in ancestors:
                    out.append((entry, key))
        return out

    def visit(folder: Path, rest: list[str], ancestors: frozenset) -> None:
        head, tail = rest[0], rest[1:]
        if head == "**":
            key = identity(folder)
            if key in walked:
                return
            walked.add(key)
            if tail:
                visit(folder, tail, ancestors)
            for sub, key in subdirs(folder, ancestors):
                visit(sub, rest, ancestors | {key})
            return
        for entry in _entries(folder):
            if not fnmatch.fnmatchcase(entry.name, head):
                continue
            if not tail:
                found.append(entry)
            elif entry.is_dir():
                key = identity(entry)
                if key is not None and key not in ancestors:
                    visit(entry, tail, ancestors | {key})

    root = Path(root)
    if parts and root.is_dir():
        start = identity(root)
        visit(root, parts, frozenset({start}) if start else frozenset())
    return sorted(set(found))


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def one_match(folder: Path, patterns: Sequence[str], what: str) -> Path:
    """The single file in ``folder`` matching the first pattern that matches anything."""
    for pattern in patterns:
        found = find_paths(folder, pattern)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found[:3])
            raise InputError(f"{folder}: several {what} files ({names}); expected one")
    raise InputError(f"{folder}: no {what} file ({' or '.join(patterns)})")


def probe_fps(video: Path) -> float:
    """Frame rate from a video file's header (no decoding)."""
    import av

    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise InputError(f"{video}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except InputError:
        raise
    except Exception as err:  # PyAV raises several error types for unreadable files
        raise InputError(f"{video}: cannot open video ({type(err).__name__})") from None
    if not rate or float(rate) <= 0:
        raise InputError(f"{video}: the video header has no frame rate")
    return float(rate)


# --------------------------------------------------------------------------- MAT files
# MATLAB writes v5/v7 files (read by scipy.io) and, for large variables, v7.3 files,
# which are HDF5 with every array stored in reversed (column-major) axis order.


def _is_hdf5(path: Path) -> bool:
    import h5py

    return bool(h5py.is_hdf5(str(path)))


def mat_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Variable name -> shape (MATLAB axis order) without loading the data."""
    require_file(path)
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                return {
                    k: tuple(reversed(v.shape)) for k, v in f.items() if isinstance(v, h5py.Dataset)
                }
        from scipy.io import whosmat

        return {name: tuple(shape) for name, shape, _ in whosmat(str(path))}
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: not a readable MAT file ({type(err).__name__})") from None


def _h5_value(obj) -> object:
    """A v7.3 dataset as numpy (axes back in MATLAB order) or str for char arrays."""
    data = obj[()]
    if obj.attrs.get("MATLAB_class", b"") in (b"char", "char"):
        return "".join(chr(c) for c in np.asarray(data).reshape(-1))
    return np.asarray(data).T


def mat_vars(path: Path, names: Iterable[str], *, optional: Iterable[str] = ()) -> dict:
    """Load the named variables (others are skipped, not read).

    Char arrays come back as ``str``; numbers as numpy arrays in MATLAB axis order.
    A missing required variable raises InputError naming the file and the variable.
    """
    require_file(path)
    names = list(names)
    optional = list(optional)
    wanted = names + optional
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                out = {k: _h5_value(f[k]) for k in wanted if k in f}
        else:
            from scipy.io import loadmat

            raw = loadmat(str(path), variable_names=wanted)
            out = {}
            for k in wanted:
                if k not in raw:
                    continue
                v = raw[k]
                if isinstance(v, np.ndarray) and v.dtype.kind == "U":
                    v = "".join(v.reshape(-1).tolist())
                out[k] = v
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: not a readable MAT file ({type(err).__name__})") from None
    for k in names:
        if k not in out:
            raise InputError(f"{path}: variable {k!r} not found")
    return out


def _to_thwc(shape: tuple[int, ...], path: Path, name: str) -> tuple[int, ...]:
    """The axis permutation that turns a MATLAB-order video array into (T, H, W, 3)."""
    if len(shape) == 4 and shape[3] == 3:
        return (0, 1, 2, 3)  # (T, H, W, 3): MMPD, SCAMPS (via HDF5 reversal)
    if len(shape) == 4 and shape[2] == 3:
        return (3, 0, 1, 2)  # (H, W, 3, T): MATLAB image-stack convention
    raise InputError(f"{path}: variable {name!r} has shape {shape}; expected (T, H, W, 3)")


def mat_video_frames(path: Path, shape: tuple[int, ...], name: str) -> int:
    """Number of frames of the video variable ``name`` of MATLAB-order ``shape``."""
    perm = _to_thwc(shape, path, name)
    return int(shape[perm[0]])


def _frames_to_uint8(block: np.ndarray, path: Path, name: str) -> np.ndarray:
    if block.dtype == np.uint8:
        return block
    if block.dtype.kind not in "fiu":
        raise InputError(f"{path}: variable {name!r} has dtype {block.dtype}; expected numbers")
    if block.dtype.kind == "f":
        # MMPD and SCAMPS store frames as floats in [0, 1]; anything else is not that layout.
        hi = float(np.nanmax(block)) if block.size else 0.0
        if hi > 1.0 + 1e-6 or not np.isfinite(block).all():
            raise InputError(f"{path}: variable {name!r} is float but not within [0, 1]")
        return np.round(block * 255.0).astype(np.uint8)
    hi = int(block.max()) if block.size else 0
    if hi > 255:
        raise InputError(f"{path}: variable {name!r} has values above 255")
    return block.astype(np.uint8)


def mat_video_uint8(path: Path, name: str, *, chunk_frames: int = 64) -> np.ndarray:
    """The video variable ``name`` as ``(T, H, W, 3)`` uint8 RGB.

    v7.3 files are read ``chunk_frames`` frames at a time so that only the uint8 copy is
    ever held whole; v5 files can only be read whole (a limit of the format).
    """
    require_file(path)
    if _is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as f:
            if name not in f:
                raise InputError(f"{path}: variable {name!r} not found")
            dset = f[name]
            shape = tuple(reversed(dset.shape))
            perm = _to_thwc(shape, path, name)
            # HDF5 axes are reversed: MATLAB axis a is HDF5 axis (ndim - 1 - a).
            t_axis_h5 = 3 - perm[0]
            n = shape[perm[0]]
            blocks = []
            for start in range(0, n, chunk_frames):
                sel = [slice(None)] * 4
                sel[t_axis_h5] = slice(start, min(n, start + chunk_frames))
                block = np.asarray(dset[tuple(sel)]).T.transpose(perm)
                blocks.append(_frames_to_uint8(block, path, name))
            return np.ascontiguousarray(np.concatenate(blocks, axis=0))
    arr = mat_vars(path, [name])[name]
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: variable {name!r} is not an array")
    perm = _to_thwc(arr.shape, path, name)
    return np.ascontiguousarray(_frames_to_uint8(arr.transpose(perm), path, name))

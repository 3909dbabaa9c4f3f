"""Writing output files safely: one atomic-write helper and early output-path checks.

Every writer of the package (prediction reports, evaluation reports, synthetic videos,
ONNX exports, configs) goes through :func:`atomic_path`: the data is written to a
temporary file beside the target, named ``.<name>.<pid>.<token>.fptmp[<suffix>]``, and
renamed onto the target only when the writer finished. So

- an interrupted run never leaves a half-written output, and an existing output survives
  a failed run;
- the finished file gets the permissions of an ordinary new file (``0o666`` minus the
  umask), or the permissions of the file it replaces;
- a temporary file left behind by a killed process (the kill came before the ``finally``
  that removes it) is recognised by its name and removed by the next write into the same
  folder, once its process is gone.

:func:`check_output_file` / :func:`check_output_dir` let a command refuse an output path
it cannot write *before* it does the work (a folder given for a file, a read-only folder),
with a one-line :class:`~facepulse.errors.InputError`.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facepulse.errors import InputError

TMP_TAG = "fptmp"
# .<target name>.<pid>.<8 hex>.fptmp[<suffix>]
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\." + TMP_TAG + r"(?:\.[^/]*)?$")


def temp_name(path: str | Path, suffix: str = "") -> Path:
    """A fresh temporary-file path beside ``path`` in this package's naming."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{TMP_TAG}{suffix}")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`temp_name`'s."""
    return _TMP_RE.match(name) is not None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as gone: it will never write)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OverflowError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`temp_name` in ``folder`` whose process is gone.

    Returns the removed paths. Files of other programs, and those of live processes
    (another run writing right now), are left alone; unreadable folders are skipped.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_RE.match(entry.name)
        if match is None or pid_alive(int(match.group("pid"))):
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _create_parent(path: Path) -> None:
    parent = path.parent
    if parent.is_dir():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{parent}: cannot create the output folder ({_why(err)})") from None


def _new_file_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open()`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The block writes the temporary file (it exists, empty, with its final permissions).
    Missing parent folders are created. On any error the temporary file is removed and
    ``path`` is left as it was. A folder at ``path`` or an unwritable folder raise
    InputError naming the path. ``suffix`` keeps the extension a writer may look at.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    _create_parent(path)
    clean_stale_temps(path.parent)
    tmp = temp_name(path, suffix)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # umask applies
    except OSError as err:
        raise InputError(f"{path}: cannot write ({_why(err)})") from None
    os.close(fd)
    try:
        try:
            os.chmod(tmp, (path.stat().st_mode & 0o7777) if path.is_file() else _new_file_mode())
        except OSError:
            pass  # e.g. a file system without permissions: keep what it gave
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise InputError(f"{path}: cannot write ({_why(err)})") from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        tmp.write_bytes(data)
    return path


# ------------------------------------------------------------------ early path checks


def _label(path: Path, option: str | None) -> str:
    return f"{option} {path}" if option else str(path)


def _existing_ancestor(path: Path) -> Path:
    """The nearest folder above ``path`` that exists (``path`` itself excluded)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _probe_writable(folder: Path, label: str) -> None:
    """InputError unless a file can be created in ``folder`` (tried, then removed)."""
    probe = temp_name(folder / "write-check")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as err:
        reason = "permission denied" if err.errno in (errno.EACCES, errno.EPERM) else _why(err)
        raise InputError(f"{label}: cannot write into {folder} ({reason})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | Path, option: str | None = None) -> Path:
    """Refuse an output *file* path that cannot be written, before any work is done.

    Raises InputError (one line naming ``option`` and the path) when ``path`` is a folder,
    when a component above it is a file, or when the folder that would hold it cannot be
    written. Creates nothing.
    """
    path = Path(path)
    label = _label(path, option)
    if str(path).endswith(("/", os.sep)) or path.is_dir():
        raise InputError(f"{label}: is a folder; give a file name (e.g. {path / 'result'}{_ext(option)})")
    folder = path.parent if path.parent.exists() else _existing_ancestor(path)
    if not folder.is_dir():
        raise InputError(f"{label}: {folder} is a file, not a folder")
    _probe_writable(folder, label)
    return path


def check_output_dir(path: str | Path, option: str | None = None) -> Path:
    """Refuse an output *folder* that cannot be created or written, before any work is done."""
    path = Path(path)
    label = _label(path, option)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{label}: is a file, not a folder")
        _probe_writable(path, label)
        return path
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise InputError(f"{label}: {folder} is a file, not a folder")
    _probe_writable(folder, label)
    return path


def _ext(option: str | None) -> str:
    return {"--json": ".json", "--csv": ".csv", "--plot": ".png", "--onnx": ".onnx"}.get(option or "", "")

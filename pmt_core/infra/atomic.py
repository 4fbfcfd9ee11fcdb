"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same folder so the final ``os.replace`` is
    atomic on POSIX file systems. On an exception the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        # os.replace would fail only after the whole temporary file is written
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write(tmp: Path, data: bytes, fsync: bool) -> None:
    with open(tmp, "wb") as handle:
        handle.write(data)
        if fsync:
            # Data on disk before the rename: after a crash the name holds the old
            # content or the new, never an empty file (file systems may reorder).
            handle.flush()
            os.fsync(handle.fileno())


def write_text_atomic(path: str | os.PathLike, text: str, fsync: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8) and return the path.

    Parameters
    ----------
    path : path-like
    text : str
    fsync : bool
        Flush the data to disk before the rename (default); a cache whose lost
        entries are only misses may skip it.
    """
    with atomic_path(path) as tmp:
        _write(tmp, text.encode("utf-8"), fsync)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and return the path (see :func:`write_text_atomic`)."""
    with atomic_path(path) as tmp:
        _write(tmp, data, fsync)
    return Path(path)


#: Name of the lock file a run holds in its report folder.
LOCK_NAME = ".pmt-run.lock"


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """An exclusive, advisory lock on a folder, held while a run writes into it.

    ``flock`` on ``folder/.pmt-run.lock``: the operating system releases it when the
    process ends, however it ends, so a crashed run never leaves the folder locked.
    Where ``fcntl`` is missing (Windows) the lock is a no-op.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock; raise :class:`FolderBusy` naming the holder if it is taken."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FolderBusy(f"{self.path.parent} is being written by another run (process "
                             f"{holder}); wait for it or choose another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (the lock file stays: removing it would race a waiter)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


#: Name of the folder a run writes into before its outputs replace the earlier run's.
STAGING_NAME = ".pmt-staging"
#: Marker file that says a staging folder is the suite's own (and may be removed).
_STAGING_MARKER = ".pmt-staging-folder"


def fresh_staging(folder: str | os.PathLike, name: str = STAGING_NAME) -> Path:
    """Return an empty staging folder inside ``folder`` (the caller holds its lock).

    A staging folder left by a run that was killed is the suite's own (it holds
    :data:`_STAGING_MARKER`) and is emptied; a folder of that name without the
    marker is someone else's, and is refused.

    Parameters
    ----------
    folder : path-like
    name : str
        The staging folder's name (another name: another folder of the suite's own,
        such as the jobs' folder of :mod:`pmt_core.scale`).

    Raises
    ------
    FileExistsError
        If ``folder/name`` exists and is not a staging folder.
    """
    import shutil

    staging = Path(folder) / name
    if staging.exists() or staging.is_symlink():
        if staging.is_symlink() or not (staging / _STAGING_MARKER).is_file():
            raise FileExistsError(errno.EEXIST, "exists and is not this suite's staging "
                                  "folder; move it away", str(staging))
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / _STAGING_MARKER).touch()
    return staging


def discard_staging(staging: str | os.PathLike) -> None:
    """Remove a staging folder (a run that published nothing leaves no debris)."""
    import shutil

    staging = Path(staging)
    if (staging / _STAGING_MARKER).is_file() and not staging.is_symlink():
        shutil.rmtree(staging, ignore_errors=True)


def publish_staging(staging: str | os.PathLike, target: str | os.PathLike,
                    owned: tuple[str, ...], last: tuple[str, ...] = ()) -> list[Path]:
    """Move a run's outputs from ``staging`` into ``target``, replacing the earlier run's.

    Every file is renamed into place (atomic per file, same file system); an output
    of an earlier run that this run did not write (a file of ``target`` matching one
    of the ``owned`` glob patterns) is removed, so the folder never shows one run's
    report beside another run's split or checkpoints; files matching nothing in
    ``owned`` (a baseline, the user's notes) are left alone. The ``last`` files (the
    report) are moved last: whoever reads a new report finds the new files beside it.

    Parameters
    ----------
    staging, target : path-like
    owned : tuple of str
        Glob patterns, relative to ``target``, of what runs write (``"models/*.pt"``).
    last : tuple of str
        Relative paths moved after everything else.

    Returns
    -------
    list of Path
        The published files, in ``target``.
    """
    staging, target = Path(staging), Path(target)
    files = sorted(p.relative_to(staging) for p in staging.rglob("*")
                   if p.is_file() and p.name != _STAGING_MARKER)
    files.sort(key=lambda rel: str(rel) in last)  # stable: the report last
    new = {str(rel) for rel in files}
    stale = [p for pattern in owned for p in target.glob(pattern)
             if p.is_file() and str(p.relative_to(target)) not in new]
    published = []
    for rel in files:
        if str(rel) in last:
            for old in stale:
                old.unlink(missing_ok=True)
            stale = []
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, destination)
        published.append(destination)
    for old in stale:
        old.unlink(missing_ok=True)
    discard_staging(staging)
    return published

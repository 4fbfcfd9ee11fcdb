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

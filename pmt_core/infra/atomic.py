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

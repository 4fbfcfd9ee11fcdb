"""A content-addressed on-disk cache of per-example scattering features.

One entry per example, keyed by the scattering config, the example's identity
(synthesis parameters, or the audio file's content hash) and the versions of the
libraries that compute it. Entries are written to a temporary file and renamed,
so concurrent writers (pytest-xdist workers, two CI jobs on a shared volume)
never expose a partial entry and at worst both compute the same value; a
corrupt or truncated entry fails to load, is counted and rebuilt.

The location comes from ``--cache-dir``, else ``$PMT_CACHE_DIR``, else
``~/.cache/pmt-validation``; ``PMT_CACHE_DIR=off`` (or ``--no-cache``) disables it;
``python -m pmt_core cache clear`` empties it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from pmt_core.infra.atomic import write_bytes_atomic

ENV_VAR = "PMT_CACHE_DIR"
DISABLED = {"off", "0", "none", "false", ""}


def default_cache_dir() -> Path | None:
    """Return the cache folder from ``$PMT_CACHE_DIR`` (None when disabled)."""
    value = os.environ.get(ENV_VAR)
    if value is None:
        return Path.home() / ".cache" / "pmt-validation"
    if value.strip().lower() in DISABLED:
        return None
    return Path(value)


def library_versions() -> dict:
    """Versions of the libraries whose output the cache stores."""
    import kymatio
    import torch

    return {"kymatio": kymatio.__version__, "torch": torch.__version__.split("+")[0],
            "numpy": np.__version__}


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


class FeatureCache:
    """Per-example feature store under ``root/<config fingerprint>/``.

    Parameters
    ----------
    root : path-like
        Cache folder (created on first write).
    namespace : str
        Usually the scattering config's fingerprint plus the library versions.
    """

    def __init__(self, root: str | Path, namespace: str):
        self.folder = Path(root) / namespace
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0

    @staticmethod
    def namespace_for(config_fingerprint: str) -> str:
        """Namespace combining a config fingerprint and the library versions."""
        versions = json.dumps(library_versions(), sort_keys=True)
        return f"{config_fingerprint}-{hashlib.sha256(versions.encode()).hexdigest()[:8]}"

    @staticmethod
    def key(identity: dict) -> str:
        """Stable key of an example's identity (JSON-able dict).

        numpy scalars key like the equal Python scalars: a row read with ``.iloc``
        holds ``numpy.int64`` and ``numpy.bool_`` where ``iterrows`` gives ``int``
        and ``bool``, and both must find the same entry.
        """
        text = json.dumps(identity, sort_keys=True, default=_json_default)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str, shape: tuple[int, int]) -> tuple[np.ndarray, dict] | None:
        """Return ``(values, descriptors)`` or None when absent or unreadable."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                values = data["values"]
                descriptors = json.loads(str(data["descriptors"]))
            if values.shape != tuple(shape) or not np.all(np.isfinite(values)):
                raise ValueError(f"bad entry shape {values.shape}")
        except FileNotFoundError:
            # Absent, or removed by another process (clear_cache, a rebuild) since:
            # a plain miss, not a corrupt entry.
            self.misses += 1
            return None
        except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt
            self.rebuilt += 1
            self.misses += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return values, descriptors

    def put(self, key: str, values: np.ndarray, descriptors: dict) -> None:
        """Store one example's features atomically."""
        buffer = io.BytesIO()
        np.savez(buffer, values=np.asarray(values, dtype=np.float32),
                 descriptors=np.asarray(json.dumps(descriptors)))
        write_bytes_atomic(self._path(key), buffer.getvalue())

    def stats(self) -> dict:
        """Hit, miss and rebuild counts of this run."""
        return {"hits": self.hits, "misses": self.misses, "rebuilt": self.rebuilt,
                "folder": str(self.folder)}


def clear_cache(root: str | Path | None = None) -> Path | None:
    """Delete the whole cache folder; return it (None when caching is disabled)."""
    root = Path(root) if root is not None else default_cache_dir()
    if root is not None and root.exists():
        shutil.rmtree(root)
    return root

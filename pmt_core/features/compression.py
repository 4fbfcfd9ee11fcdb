"""Log compression of scattering coefficients before the network (method.md section 1).

The authors' code (the paper does not say) feeds the network
``log1p(S / (c * mu + eps))`` with ``c = 0.1`` and ``mu`` the per-path mean of the
time-averaged coefficients over the training split. Relevance maps are therefore
defined in this compressed domain, and the network's first layer is a learnable
batch norm over the paths.

Dividing by a per-path mean also cancels any constant per-path scale of the raw
coefficients, such as kymatio 0.3.0's subsampling normalisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmt_core.infra.atomic import write_text_atomic


@dataclass
class LogCompression:
    """``log1p(S / (c * mu + eps))`` with ``mu`` fitted on the training split only.

    Parameters
    ----------
    c : float
        Multiplier of the per-path mean (0.1 in the authors' code).
    eps : float
        Stabiliser of the denominator (1e-8 in the authors' code).
    mu : numpy.ndarray or None
        Per-path mean of the time-averaged coefficients; ``None`` until fitted.
    """

    c: float = 0.1
    eps: float = 1e-8
    mu: np.ndarray | None = field(default=None, repr=False)

    def fit(self, values: np.ndarray) -> LogCompression:
        """Fit ``mu`` on training coefficients (examples x paths x frames)."""
        values = np.asarray(values)
        if values.ndim != 3 or values.shape[0] == 0:
            raise ValueError(
                f"expected training coefficients of shape (examples, paths, frames), "
                f"got {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError("training coefficients contain NaN or inf")
        self.mu = values.mean(axis=2).mean(axis=0).astype(np.float64)
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Return compressed features (float32, same shape as ``values``)."""
        if self.mu is None:
            raise RuntimeError("LogCompression.transform called before fit")
        values = np.asarray(values)
        if values.ndim != 3 or values.shape[1] != self.mu.shape[0]:
            raise ValueError(
                f"expected coefficients of shape (examples, {self.mu.shape[0]}, frames), "
                f"got {values.shape}"
            )
        scale = self.c * self.mu[None, :, None] + self.eps
        return np.log1p(values / scale).astype(np.float32)

    def subset(self, paths: np.ndarray) -> LogCompression:
        """Return the compression of a subset of paths (e.g. S1 only for the S1 model).

        Parameters
        ----------
        paths : numpy.ndarray
            Boolean mask or indices into the fitted paths.
        """
        if self.mu is None:
            raise RuntimeError("LogCompression.subset called before fit")
        return LogCompression(c=self.c, eps=self.eps, mu=self.mu[paths].copy())

    def to_dict(self) -> dict:
        """Return a JSON-serialisable description (for checkpoints and caches)."""
        return {
            "c": self.c,
            "eps": self.eps,
            "mu": None if self.mu is None else self.mu.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> LogCompression:
        """Rebuild a compression from :meth:`to_dict` output."""
        mu = data.get("mu")
        return cls(
            c=float(data["c"]),
            eps=float(data["eps"]),
            mu=None if mu is None else np.asarray(mu, dtype=np.float64),
        )

    def save(self, path: str | Path) -> Path:
        """Write the fitted statistics as JSON, atomically."""
        return write_text_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> LogCompression:
        """Read statistics written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

"""The network's inputs: scattering features (through the cache) and their compression.

:func:`compress` is a plain function of the features; the ``compute_*`` functions
are the :class:`~pmt_core.run.Run` stages and derived inputs built on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pmt_core.features.compression import LogCompression
from pmt_core.features.scattering import PathTable, ScatteringResult

__all__ = ["FEATURE_MODULES", "CompressionStage", "compress", "compute_compression",
           "compute_features", "feature_cache", "feature_code_digest", "feature_recipe",
           "compute_input_statistics", "compute_test_energy"]


#: Modules whose code decides the cached features (audio, synthesis, descriptors,
#: the transform, the test tones): their source text joins the cache namespace, so
#: an edit to any of them is a cache miss, never a stale hit.
FEATURE_MODULES = (
    "pmt_core.data.audio",
    "pmt_core.data.descriptors",
    "pmt_core.data.sources",
    "pmt_core.data.synth",
    "pmt_core.features.batched",
    "pmt_core.features.extraction",
    "pmt_core.features.scattering",
    "pmt_core.features.theory",
)


def feature_code_digest(modules=FEATURE_MODULES) -> str:
    """SHA-256 (first 16 hex digits) of the source text of ``modules``, in order."""
    from pmt_core.infra.cache import source_digest

    return source_digest(modules)


def feature_recipe(device: torch.device) -> dict:
    """How cached features are computed: the code's digest, engine, device, threads.

    :func:`pmt_core.features.extraction.feature_recipe` says what decides a clip's
    bits (the batch size and the number of workers do not); the digest of
    :data:`FEATURE_MODULES` adds the code that made them.
    """
    from pmt_core.features import extraction

    return {**extraction.feature_recipe(device), "code": feature_code_digest()}


@dataclass
class CompressionStage:
    """The log compression fitted on the training split, and the network inputs.

    Attributes
    ----------
    compression : LogCompression
        Fitted on the training rows' raw coefficients (all kept paths).
    inputs : dict
        ``{"s1": (n, 74, frames), "s1s2": (n, 1200, frames)}`` float32 tensors of
        every row, compressed.
    paths : PathTable
    """

    compression: LogCompression
    inputs: dict
    paths: PathTable

    def for_kind(self, kind: str) -> LogCompression:
        """Return the compression of the paths one input kind reads."""
        return self.compression if kind == "s1s2" else self.compression.subset(
            self.paths.first_order)


def compress(features: ScatteringResult, train_index: np.ndarray, perturb: str = "none",
             seed: int = 0) -> CompressionStage:
    """Fit the compression on ``train_index`` and compress every example."""
    fitted = LogCompression().fit(features.values[train_index])
    compressed = fitted.transform(features.values)
    if perturb == "ulp":
        rng = np.random.default_rng([int(seed), 7])
        compressed = compressed * (1 + rng.integers(-4, 5, compressed.shape) * 2.0**-23
                                   ).astype(np.float32)
    full = torch.from_numpy(np.ascontiguousarray(compressed, dtype=np.float32))
    first = torch.from_numpy(features.paths.first_order)
    return CompressionStage(fitted, {"s1": full[:, first].contiguous(), "s1s2": full},
                            features.paths)


def feature_cache(run):
    """Return the feature cache, or None when disabled."""
    from pmt_core.infra.cache import FeatureCache, resolve_cache_dir

    if not run.settings.use_cache:
        return None
    root = resolve_cache_dir(run.settings.cache_dir)  # "off" disables, ~ expands
    if root is None:
        return None
    return FeatureCache(root, FeatureCache.namespace_for(
        run.scattering_config.fingerprint(), recipe=feature_recipe(run.device)))


def compute_features(run):
    """Raw scattering coefficients and descriptors of every example."""
    from pmt_core.features.extraction import extract_features

    with run.timed("features"):
        return extract_features(run.data.frame, run.scattering_config, run.device,
                                cache=run.cache, progress=run.progress)


def compute_compression(run) -> CompressionStage:
    """Fit the compression on the training split and compress every network input."""
    with run.timed("compression"):
        stage = compress(run.features.result, run.data.index("training"),
                         run.settings.perturb, run.settings.seed)
        stage.compression.save(run.report_dir / "models" / "compression.json")
    return stage


def compute_test_energy(run) -> np.ndarray:
    """(n_test, paths) float64 time-averaged raw coefficients of the test rows."""
    values = run.features.result.values
    test = run.data.index("test")
    return np.concatenate([values[test[i : i + 256]].mean(axis=-1, dtype=np.float64)
                           for i in range(0, len(test), 256)] or [np.zeros((0, 0))])


def compute_input_statistics(run) -> tuple[np.ndarray, np.ndarray]:
    """Per-path mean and sd of the compressed S1+S2 training inputs (examples, frames)."""
    x = run.compression.inputs["s1s2"][run.data.index("training")].double()
    return (x.mean(dim=(0, 2)).numpy(), x.std(dim=(0, 2), unbiased=False).numpy())

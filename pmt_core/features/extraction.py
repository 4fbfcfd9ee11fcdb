"""The stages of a validation run: data -> features -> models -> explanations.

Each stage is a plain function returning a dataclass, so that the pytest fixtures
in ``validation/conftest.py`` and the command line share one implementation.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from pmt_core.data.sources import example_identity
from pmt_core.features.compression import LogCompression
from pmt_core.features.scattering import (
    PathTable,
    ScatteringConfig,
    ScatteringResult,
    path_table,
    scatter,
)
from pmt_core.infra.cache import FeatureCache


@dataclass
class FeatureStage:
    """Raw scattering coefficients and signal descriptors of every example.

    Attributes
    ----------
    result : ScatteringResult
    descriptors : pandas.DataFrame
    seconds : float
        Wall-clock time of the stage.
    cache : dict
        The cache's hit, miss and rebuild counts (``{"disabled": True}`` without one).
    peak_rss_mib : dict
        Peak resident memory (``getrusage`` ``ru_maxrss``, MiB) of this process
        (``"parent"``) and of the largest worker process (``"worker"``, absent when
        none ran); the two add up to a bound on the stage's peak.
    """

    result: ScatteringResult
    descriptors: pd.DataFrame
    seconds: float
    cache: dict = field(default_factory=dict)
    peak_rss_mib: dict = field(default_factory=dict)


#: When ``workers`` is left to :func:`default_workers`, fewer clips than this to compute
#: are scattered in-process: each worker spends ~5 s building its own filter bank (and
#: ~0.4 GiB) before its first clip, more than a few clips cost in this process.
POOL_MIN_CLIPS = 16


def _read_cache(cache, keys, shape, values, descriptors) -> list[int]:
    """Fill ``values``/``descriptors`` from the cache; return the positions still to compute."""
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get(key, shape) if cache is not None else None
        if hit is None:
            todo.append(i)
        else:
            values[i], descriptors[i] = hit
    return todo


def _peak_rss_mib() -> float:
    import resource

    # ru_maxrss is in KiB on Linux (bytes on macOS, where this only overstates).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prepare_rows(rows: pd.DataFrame, config: ScatteringConfig):
    """Return the audio (examples x samples) and descriptors of a block of rows."""
    from pmt_core.data.descriptors import describe
    from pmt_core.data.sources import example_audio

    audio = [example_audio(row, config.sample_rate, config.n_samples)
             for _, row in rows.iterrows()]
    return np.stack(audio), [describe(x, config.sample_rate) for x in audio]


def _prepare_worker(rows: pd.DataFrame, config: ScatteringConfig):
    """Worker side of the accelerator path: audio and descriptors, no scattering."""
    torch.set_num_threads(1)
    audio, descriptors = _prepare_rows(rows, config)
    return audio, descriptors, _peak_rss_mib()


def _scatter_rows(rows: pd.DataFrame, config: ScatteringConfig, device: str, batch_size: int,
                  threads: int | None = None):
    """Scatter and describe a block of rows; runs in a worker process or in-process.

    Returns ``(values, descriptors, peak RSS of this process in MiB)``.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    audio, descriptors = _prepare_rows(rows, config)
    values = scatter(audio, config.sample_rate, config, device, batch_size).values
    return values, descriptors, _peak_rss_mib()


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(device: torch.device) -> int:
    """Return the number of worker processes of :func:`extract_features` on ``device``.

    On the CPU, one single-thread scattering process per core (at most 4: each
    peaks at about 1.3 GiB resident, 0.8 GiB of it its own). Measured on the 2-core
    runner while a validation run and other jobs also ran (load average 5-7),
    filter banks built beforehand, interleaved, 3 rounds of 4 clips, medians: one
    two-thread process 8.9 s per clip (batch 1; 14.7 at batch 4), two one-thread
    processes 2.7 s per clip together, 3.3x faster; the two-thread rounds spread
    from 7.4 to 47 s per clip, the one-thread ones from 1.9 to 3.4. On an idle
    runner the two set-ups are close (0.5 against 0.45 s per clip, method.md
    section 1), so two processes win either way. Reproduce with
    ``pytest tests/benchmarks -k "processes or features_cold" --benchmark-only``.

    On an accelerator the parent process scatters (batches of 16) and the workers
    only synthesise or decode audio and compute descriptors (~0.05 s per clip on
    the CPU, which would otherwise leave the GPU waiting): one per core but one, at
    most 8.
    """
    if device.type != "cpu":
        return max(1, min(8, _cpu_count() - 1))
    return max(1, min(4, _cpu_count()))


def extract_features(
    dataset: pd.DataFrame,
    config: ScatteringConfig,
    device: torch.device,
    cache: FeatureCache | None = None,
    workers: int | None = None,
    block: int = 8,
    progress: bool = True,
) -> FeatureStage:
    """Scatter every example of ``dataset`` (row order kept), using the cache.

    Parameters
    ----------
    dataset : pandas.DataFrame
        Rows from ``pmt_core.data.datasets`` (files) or ``pmt_core.data.synth`` (synthetic).
    config : ScatteringConfig
    device : torch.device
        Where to scatter. On the CPU, the workers scatter (one thread each); on an
        accelerator, this process scatters and the workers prepare the audio.
    cache : FeatureCache, optional
        Hits are read, computed examples are written as soon as their block is done
        (an interrupted run keeps them).
    workers : int, optional
        Worker processes (default :func:`default_workers`). ``1`` computes
        in-process. Left to the default, fewer than :data:`POOL_MIN_CLIPS` clips to
        compute are done in-process too.
    block : int
        Most examples per work item (smaller when needed to give every worker work).
    progress : bool
        Show a progress bar.
    """
    device = torch.device(device)
    return _extract_features(dataset, config, device, cache, workers, block, progress,
                             scatter_in_workers=device.type == "cpu")


def _extract_features(dataset, config, device, cache, workers, block, progress,
                      scatter_in_workers: bool) -> FeatureStage:
    # scatter_in_workers=False is the accelerator path; tests run it on the CPU too.
    start = time.perf_counter()
    paths = path_table(config)
    shape = (len(paths), config.n_frames)
    values = np.zeros((len(dataset),) + shape, dtype=np.float32)
    descriptors: list[dict | None] = [None] * len(dataset)
    keys = [FeatureCache.key(example_identity(row)) for _, row in dataset.iterrows()]
    todo = _read_cache(cache, keys, shape, values, descriptors)
    auto = workers is None
    workers = default_workers(device) if auto else max(1, int(workers))
    if auto and len(todo) < POOL_MIN_CLIPS:
        workers = 1
    # Blocks small enough that every worker gets one (8 clips on 2 workers: 4 + 4).
    block = max(1, min(int(block), -(-len(todo) // workers))) if todo else 1
    blocks = [todo[s : s + block] for s in range(0, len(todo), block)]
    batch = 1 if device.type == "cpu" else 16
    bar = tqdm(total=len(todo), desc="scattering", unit="clip", disable=not progress or not todo)
    peaks = {"parent": 0.0}

    def store(indices, block_values, block_descriptors):
        for j, i in enumerate(indices):
            values[i], descriptors[i] = block_values[j], block_descriptors[j]
            if cache is not None:
                cache.put(keys[i], block_values[j], block_descriptors[j])
        bar.update(len(indices))

    if workers > 1 and len(blocks) > 1:
        import multiprocessing

        # spawn: fork would copy this process's torch threads and CUDA state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(blocks)), mp_context=context) as pool:
            if scatter_in_workers:
                futures = [(b, pool.submit(_scatter_rows, dataset.iloc[b], config,
                                           str(device), batch, 1)) for b in blocks]
            else:
                futures = [(b, pool.submit(_prepare_worker, dataset.iloc[b], config))
                           for b in blocks]
            # Submitted all at once, collected in order: the pool stays busy while this
            # process stores (and, on an accelerator, scatters) the finished blocks.
            for indices, future in futures:
                out, worker_descriptors, worker_peak = future.result()
                peaks["worker"] = max(peaks.get("worker", 0.0), worker_peak)
                if not scatter_in_workers:
                    out = scatter(out, config.sample_rate, config, device, batch).values
                store(indices, out, worker_descriptors)
    else:
        for indices in blocks:
            block_values, block_descriptors, _ = _scatter_rows(
                dataset.iloc[indices], config, str(device), batch)
            store(indices, block_values, block_descriptors)
    bar.close()
    peaks["parent"] = _peak_rss_mib()
    result = ScatteringResult(values=values, paths=paths, config=config)
    return FeatureStage(
        result=result,
        descriptors=pd.DataFrame(descriptors, index=dataset.index),
        seconds=time.perf_counter() - start,
        cache=cache.stats() if cache is not None else {"disabled": True},
        peak_rss_mib=peaks,
    )


def scatter_cached(
    signals: np.ndarray,
    identities: list[dict],
    config: ScatteringConfig,
    device: torch.device,
    cache: FeatureCache | None = None,
) -> ScatteringResult:
    """Scatter signals made in code (test tones), reading and filling the cache.

    Parameters
    ----------
    signals : numpy.ndarray, shape (examples, samples)
    identities : list of dict
        What defines each signal (for example ``{"am_tone": [w1, w2, m]}``): the
        cache key, so equal identities must mean equal signals.
    config, device, cache
        As for :func:`extract_features`.
    """
    paths = path_table(config)
    shape = (len(paths), config.n_frames)
    keys = [FeatureCache.key(identity) for identity in identities]
    values = np.zeros((len(signals),) + shape, dtype=np.float32)
    todo = _read_cache(cache, keys, shape, values, [None] * len(keys))
    if todo:
        batch = 1 if device.type == "cpu" else 16
        computed = scatter(signals[todo], config.sample_rate, config, device, batch).values
        values[todo] = computed
        if cache is not None:
            for i, v in zip(todo, computed, strict=True):
                cache.put(keys[i], v, {})
    return ScatteringResult(values=values, paths=paths, config=config)


def model_inputs(values: np.ndarray, compression: LogCompression, paths: PathTable) -> dict:
    """Compressed network inputs: ``{"s1": S1 paths only, "s1s2": all 1,200 paths}``."""
    compressed = torch.from_numpy(compression.transform(values))
    return {"s1": compressed[:, torch.from_numpy(paths.first_order)].contiguous(),
            "s1s2": compressed}


def subset_index(dataset: pd.DataFrame, subset: str) -> np.ndarray:
    """Positions (0-based) of the rows of one split."""
    return np.flatnonzero(dataset["subset"].to_numpy() == subset)



@dataclass
class TrainedModel:
    """A trained network with its test-split predictions.

    Attributes
    ----------
    input_kind : str
        ``"s1"`` (74 first-order paths) or ``"s1s2"`` (all 1,200 paths).
    result : pmt_core.model.training.TrainResult
    class_names : tuple of str
        Technique of each output unit.
    test_true, test_pred : numpy.ndarray of int
        Labels and predictions for every test example (none dropped).
    test_logits : numpy.ndarray
    seconds : float
        Training time.
    """

    input_kind: str
    result: object
    class_names: tuple
    test_true: np.ndarray
    test_pred: np.ndarray
    test_logits: np.ndarray
    seconds: float

    @property
    def model(self) -> torch.nn.Module:
        """The trained network (eval mode, best validation weights)."""
        return self.result.model

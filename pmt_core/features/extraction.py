"""The stages of a validation run: data -> features -> models -> explanations.

Each stage is a plain function returning a dataclass, so that the pytest fixtures
in ``validation/conftest.py`` and the command line share one implementation.

Feature extraction keeps every core busy and computes every clip the same way:

* On the CPU, ``workers`` threads of this process each take a block of rows,
  synthesise or decode its audio and scatter it, one clip at a time and with one
  torch intra-op thread (a lone two-thread call slowed 3x to 100x on a busy 2-core
  runner, method.md section 1): while one thread prepares audio, the other
  transforms. Threads share this process's filter bank (a worker process would build
  its own, about 5 s and 0.4 GiB each) and torch releases the GIL while it computes.
* On an accelerator, worker processes synthesise or decode the audio and compute the
  descriptors, and this process scatters batches sized to the device's free memory
  (``torch.cuda.mem_get_info``) while the workers prepare the next ones.

A clip's features do not depend on how many clips are computed, nor on the number
of workers: the batched pass gives each clip the same bits at any batch size and at
1 or 2 torch threads (measured on the CPU, ``tests/test_batched.py``), and on the CPU
every call runs with one thread anyway. :attr:`FeatureStage.recipe` says how the
features were computed; :func:`feature_recipe` is the part that decides the bits
(for a cache namespace).
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
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
    _transform,
    path_table,
    scatter,
)
from pmt_core.infra.cache import FeatureCache
from pmt_core.infra.checks import check_positive_int


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
    recipe : dict
        How the features were computed: :func:`feature_recipe` (``engine``,
        ``device``, ``torch_threads`` per scattering call) plus ``workers`` (how many
        ran), ``worker_kind`` (``"threads"`` of this process, ``"processes"``, or
        ``"none"`` when everything ran in the calling thread), ``scattered_by``
        (``"workers"`` or ``"parent"``), ``batch`` (clips per transform call) and
        ``computed`` (clips computed, the rest read from the cache).
    """

    result: ScatteringResult
    descriptors: pd.DataFrame
    seconds: float
    cache: dict = field(default_factory=dict)
    peak_rss_mib: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)


#: Engine name of the batched pass, for recipes (kymatio's filters, this suite's loop).
ENGINE = "pmt-batched-kymatio-0.3.0"

#: Most clips per transform call on an accelerator (beyond it the audio workers,
#: not the device, set the pace).
MAX_DEVICE_BATCH = 64


def feature_recipe(device: torch.device) -> dict:
    """Return what decides the bits of extracted features on ``device``.

    ``{"engine", "device", "torch_threads", "arithmetic"}``: the transform, the device
    kind, the torch threads per scattering call (1 on the CPU; ``None`` on an
    accelerator) and whether the CPU's code paths are pinned
    (:func:`pmt_core.infra.arithmetic.fingerprint`; ``None`` on an accelerator). The
    number of workers and the batch size are not part of it: they do not change a
    clip's bits. Put it in the cache namespace so that CPU and GPU features, or
    another engine's, are never mixed.
    """
    from pmt_core.infra import arithmetic

    device = torch.device(device)
    # The FFT's rounding on the CPU follows MKL's code branch (infra/arithmetic.py).
    return {"engine": ENGINE, "device": device.type,
            "torch_threads": 1 if device.type == "cpu" else None,
            "arithmetic": arithmetic.fingerprint() if device.type == "cpu" else None}


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


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads, then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _prepare_rows(rows: pd.DataFrame, config: ScatteringConfig):
    """Return the audio (examples x samples) and descriptors of a block of rows."""
    from pmt_core.data.descriptors import describe
    from pmt_core.data.sources import example_audio

    audio = [example_audio(row, config.sample_rate, config.n_samples)
             for _, row in rows.iterrows()]
    return np.stack(audio), [describe(x, config.sample_rate) for x in audio]


def _prepare_worker(rows: pd.DataFrame, config: ScatteringConfig):
    """Worker process of the accelerator path: audio and descriptors, no scattering."""
    torch.set_num_threads(1)
    audio, descriptors = _prepare_rows(rows, config)
    return audio, descriptors, _peak_rss_mib()


def _scatter_rows(rows: pd.DataFrame, config: ScatteringConfig, device: torch.device):
    """Prepare and scatter a block of rows, one clip per call (a worker thread's item)."""
    audio, descriptors = _prepare_rows(rows, config)
    return _scatter_signals(audio, config, device), descriptors


def _scatter_signals(signals: np.ndarray, config: ScatteringConfig, device, batch: int = 1):
    return scatter(signals, config.sample_rate, config, device, batch).values


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(device: torch.device) -> int:
    """Return the number of workers of :func:`extract_features` on ``device``.

    On the CPU, one scattering thread per core (at most 8), each with one torch
    thread: threads share one filter bank, so a worker costs only its clip's working
    memory (about 0.12 GiB at the paper's setting). The GIL does not serialise them:
    measured here (2 cores, 8 paper-size clips on 2 threads, ``/proc`` schedstat),
    the threads slept 0.02-0.5 s in 12-20 s, the rest on a core or waiting for one.
    ``pytest tests/benchmarks -k "worker_threads or features_cold" --benchmark-only``
    compares them with one caller thread at two torch threads.

    On an accelerator this process scatters and worker processes only synthesise or
    decode audio and compute descriptors (about 0.1 s per clip on a CPU core, which
    would otherwise leave the device waiting): one per core but one, at most 8.
    """
    if torch.device(device).type != "cpu":
        return max(1, min(8, _cpu_count() - 1))
    return max(1, min(8, _cpu_count()))


def device_batch(device: torch.device, config: ScatteringConfig) -> int:
    """Clips per transform call on ``device``: 1 on the CPU, else what free memory allows.

    On CUDA, half the free device memory (``torch.cuda.mem_get_info``) over the
    batched pass's working memory per clip, between 1 and :data:`MAX_DEVICE_BATCH`.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    return _batch_for_free_memory(free, _transform(config, device).batched.bytes_per_example())


def _batch_for_free_memory(free_bytes: int, bytes_per_clip: int) -> int:
    # Half the free memory: the caching allocator's fragmentation and the other
    # process's allocations need room too.
    return int(max(1, min(MAX_DEVICE_BATCH, free_bytes // 2 // bytes_per_clip)))


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
        Where to scatter. On the CPU, worker threads prepare and scatter (one torch
        thread each); on an accelerator, this process scatters and worker processes
        prepare the audio (module notes).
    cache : FeatureCache, optional
        Hits are read, computed examples are written as soon as their block is done
        (an interrupted run keeps them).
    workers : int, optional
        Workers (default :func:`default_workers`); ``1`` computes everything in the
        calling thread. A clip's features do not depend on it.
    block : int
        Most examples per work item (smaller when needed to give every worker work).
    progress : bool
        Show a progress bar.
    """
    device = torch.device(device)
    return _extract_features(dataset, config, device, cache, workers, block, progress,
                             parent_scatters=device.type != "cpu")


def _extract_features(dataset, config, device, cache, workers, block, progress,
                      parent_scatters: bool) -> FeatureStage:
    # parent_scatters=True is the accelerator path; tests run it on the CPU too.
    start = time.perf_counter()
    paths = path_table(config)
    shape = (len(paths), config.n_frames)
    values = np.zeros((len(dataset),) + shape, dtype=np.float32)
    descriptors: list[dict | None] = [None] * len(dataset)
    keys = [FeatureCache.key(example_identity(row)) for _, row in dataset.iterrows()]
    todo = _read_cache(cache, keys, shape, values, descriptors)
    workers = default_workers(device) if workers is None else check_positive_int(workers, "workers")
    # Blocks small enough that every worker gets one (8 clips on 2 workers: 4 + 4).
    block = max(1, min(check_positive_int(block, "block"), -(-len(todo) // workers))) if todo else 1
    blocks = [todo[s : s + block] for s in range(0, len(todo), block)]
    workers = min(workers, max(1, len(blocks)))
    batch = device_batch(device, config) if todo else 1
    bar = tqdm(total=len(todo), desc="scattering", unit="clip", disable=not progress or not todo)
    peaks = {"parent": 0.0}

    def store(indices, block_values, block_descriptors):
        for j, i in enumerate(indices):
            values[i], descriptors[i] = block_values[j], block_descriptors[j]
            if cache is not None:
                cache.put(keys[i], block_values[j], block_descriptors[j])
        bar.update(len(indices))

    if todo:
        _transform(config, device)  # one filter bank, built before any worker starts
    try:
        if parent_scatters:
            kind = _scatter_in_parent(dataset, config, device, blocks, workers, batch, store,
                                      peaks)
        else:
            kind = _scatter_in_threads(dataset, config, device, blocks, workers, store)
    finally:
        bar.close()
    peaks["parent"] = _peak_rss_mib()
    result = ScatteringResult(values=values, paths=paths, config=config)
    recipe = feature_recipe(device) | {
        "workers": workers if kind != "none" else 1, "worker_kind": kind,
        "scattered_by": "parent" if parent_scatters else "workers",
        "batch": batch, "computed": len(todo)}
    return FeatureStage(
        result=result,
        descriptors=pd.DataFrame(descriptors, index=dataset.index),
        seconds=time.perf_counter() - start,
        cache=cache.stats() if cache is not None else {"disabled": True},
        peak_rss_mib=peaks,
        recipe=recipe,
    )


def _scatter_in_threads(dataset, config, device, blocks, workers, store) -> str:
    """CPU path: ``workers`` threads each prepare and scatter whole blocks, one torch thread."""
    with _torch_threads(1):
        if workers == 1:
            for indices in blocks:
                store(indices, *_scatter_rows(dataset.iloc[indices], config, device))
            return "none"
        pool = ThreadPoolExecutor(workers, thread_name_prefix="scatter")
        try:
            # Submitted at once, collected in order: the threads stay busy while this
            # one stores finished blocks. On an error the blocks not started are dropped.
            futures = [(b, pool.submit(_scatter_rows, dataset.iloc[b], config, device))
                       for b in blocks]
            for indices, future in futures:
                store(indices, *future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return "threads"


def _scatter_in_parent(dataset, config, device, blocks, workers, batch, store, peaks) -> str:
    """Accelerator path: worker processes prepare audio, this process scatters batches.

    Prepared blocks are queued in row order and scattered ``batch`` clips at a time
    as soon as enough are ready, while the workers prepare the next ones.
    """
    pending: list[tuple[list[int], np.ndarray, list[dict]]] = []

    def flush(final: bool):
        while pending and (final or sum(len(p[0]) for p in pending) >= batch):
            indices, audio, described = [], [], []
            while pending and len(indices) < batch:
                i, a, d = pending.pop(0)
                take = min(len(i), batch - len(indices))
                indices += i[:take]
                audio.append(a[:take])
                described += d[:take]
                if take < len(i):
                    pending.insert(0, (i[take:], a[take:], d[take:]))
            store(indices, _scatter_signals(np.concatenate(audio), config, device, batch),
                  described)

    if workers == 1:
        for indices in blocks:
            pending.append((indices, *_prepare_rows(dataset.iloc[indices], config)))
            flush(final=False)
        flush(final=True)
        return "none"
    import multiprocessing

    # spawn: fork would copy this process's torch threads and CUDA state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [(b, pool.submit(_prepare_worker, dataset.iloc[b], config)) for b in blocks]
        try:
            for indices, future in futures:
                audio, described, worker_peak = future.result()
                peaks["worker"] = max(peaks.get("worker", 0.0), worker_peak)
                pending.append((indices, audio, described))
                flush(final=False)
            flush(final=True)
        except BaseException:
            for _, future in futures:
                future.cancel()
            raise
    return "processes"


def scatter_cached(
    signals: np.ndarray,
    identities: list[dict],
    config: ScatteringConfig,
    device: torch.device,
    cache: FeatureCache | None = None,
    workers: int | None = None,
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
    workers : int, optional
        On the CPU, threads that scatter the uncached signals (default
        :func:`default_workers`); on an accelerator this process scatters them in
        batches sized to the free memory. The bits are the same either way.
    """
    device = torch.device(device)
    paths = path_table(config)
    shape = (len(paths), config.n_frames)
    keys = [FeatureCache.key(identity) for identity in identities]
    values = np.zeros((len(signals),) + shape, dtype=np.float32)
    todo = _read_cache(cache, keys, shape, values, [None] * len(keys))
    if todo:
        computed = _scatter_many(np.asarray(signals)[todo], config, device, workers)
        values[todo] = computed
        if cache is not None:
            for i, v in zip(todo, computed, strict=True):
                cache.put(keys[i], v, {})
    return ScatteringResult(values=values, paths=paths, config=config)


def _scatter_many(signals: np.ndarray, config, device, workers=None) -> np.ndarray:
    """Scatter ready signals: CPU threads one clip at a time, or device batches."""
    _transform(config, device)
    if device.type != "cpu":
        return _scatter_signals(signals, config, device, device_batch(device, config))
    workers = min(default_workers(device) if workers is None
                  else check_positive_int(workers, "workers"),
                  len(signals))
    with _torch_threads(1):
        if workers == 1:
            return _scatter_signals(signals, config, device)
        with ThreadPoolExecutor(workers, thread_name_prefix="scatter") as pool:
            parts = pool.map(lambda x: _scatter_signals(x[None], config, device), signals)
            return np.concatenate(list(parts))


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
    result : pmt_core.model.config.TrainResult
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

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

from .cache import FeatureCache, file_digest
from .compression import LogCompression
from .scattering import PathTable, ScatteringConfig, ScatteringResult, path_table, scatter

#: Columns of a synthetic manifest row that define its audio (everything else is
#: bookkeeping such as the split).
_NON_IDENTITY_COLUMNS = {"subset", "path"}


def example_identity(row: pd.Series) -> dict:
    """Return what defines an example's audio: its file content or synthesis parameters."""
    if isinstance(row.get("path"), str) and row["path"]:
        return {"file_sha256": file_digest(row["path"])}
    return {k: row[k] for k in row.index if k not in _NON_IDENTITY_COLUMNS}


@dataclass
class FeatureStage:
    """Raw scattering coefficients and signal descriptors of every example."""

    result: ScatteringResult
    descriptors: pd.DataFrame
    seconds: float
    cache: dict = field(default_factory=dict)


def _scatter_rows(rows: pd.DataFrame, config: ScatteringConfig, device: str, batch_size: int,
                  threads: int | None = None):
    """Scatter and describe a block of rows; runs in a worker process or in-process."""
    from .datasets import example_audio
    from .descriptors import describe

    if threads is not None:
        torch.set_num_threads(threads)
    audio = [example_audio(row, config.sample_rate, config.n_samples)
             for _, row in rows.iterrows()]
    descriptors = [describe(x, config.sample_rate) for x in audio]
    values = scatter(np.stack(audio), config.sample_rate, config, device, batch_size).values
    return values, descriptors


def default_workers(device: torch.device) -> int:
    """Return the number of feature-extraction processes for ``device``.

    One single-thread process per core on the CPU (steadier than one two-thread
    process, method.md section 1); one process on a GPU.
    """
    if device.type != "cpu":
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


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
        Rows from ``pmt_core.datasets`` (files) or ``pmt_core.synth`` (synthetic).
    config : ScatteringConfig
    device : torch.device
    cache : FeatureCache, optional
    workers : int, optional
        Worker processes on the CPU (default :func:`default_workers`).
    block : int
        Examples per work item.
    progress : bool
        Show a progress bar.
    """
    start = time.perf_counter()
    paths = path_table(config)
    shape = (len(paths), config.n_frames)
    values = np.zeros((len(dataset),) + shape, dtype=np.float32)
    descriptors: list[dict | None] = [None] * len(dataset)
    keys = [FeatureCache.key(example_identity(row)) for _, row in dataset.iterrows()]
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get(key, shape) if cache is not None else None
        if hit is None:
            todo.append(i)
        else:
            values[i], descriptors[i] = hit
    workers = workers or default_workers(device)
    blocks = [todo[s : s + block] for s in range(0, len(todo), block)]
    bar = tqdm(total=len(todo), desc="scattering", unit="clip", disable=not progress or not todo)

    def store(indices, out):
        block_values, block_descriptors = out
        for j, i in enumerate(indices):
            values[i], descriptors[i] = block_values[j], block_descriptors[j]
            if cache is not None:
                cache.put(keys[i], block_values[j], block_descriptors[j])
        bar.update(len(indices))

    if workers > 1 and len(blocks) > 1:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [(b, pool.submit(_scatter_rows, dataset.iloc[b], config, "cpu", 1, 1))
                       for b in blocks]
            for indices, future in futures:
                store(indices, future.result())
    else:
        batch = 1 if device.type == "cpu" else 16
        for indices in blocks:
            store(indices, _scatter_rows(dataset.iloc[indices], config, str(device), batch))
    bar.close()
    result = ScatteringResult(values=values, paths=paths, config=config)
    return FeatureStage(
        result=result,
        descriptors=pd.DataFrame(descriptors, index=dataset.index),
        seconds=time.perf_counter() - start,
        cache=cache.stats() if cache is not None else {"disabled": True},
    )


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
    result : pmt_core.training.TrainResult
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

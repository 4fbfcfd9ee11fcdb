"""End-to-end feature stage: 8 synthetic clips with 1 vs 2 worker processes; warm cache."""

import pytest
import torch

from pmt_core.data.synth import synthetic_manifest
from pmt_core.features.extraction import extract_features
from pmt_core.features.scattering import ScatteringConfig, path_table
from pmt_core.infra.cache import FeatureCache

CONFIG = ScatteringConfig()
N_CLIPS = 8


@pytest.fixture(scope="module")
def dataset():
    return synthetic_manifest({"trill": N_CLIPS // 2, "tremolo": N_CLIPS // 2}, seed=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_features_cold(benchmark, dataset, workers):
    # workers=1 scatters in this process (threads from $PMT_BENCH_THREADS); workers=2
    # spawns two one-thread processes, each building its own filter bank (~5 s).
    path_table(CONFIG)  # the parent's filter bank is built once per session anyway
    benchmark.group = "features-8-clips"
    benchmark.pedantic(
        lambda: extract_features(dataset, CONFIG, torch.device("cpu"), cache=None,
                                 workers=workers, progress=False),
        rounds=3, iterations=1)
    benchmark.extra_info.update(workers=workers, clips=N_CLIPS,
                                s_per_clip=benchmark.stats.stats.median / N_CLIPS)


def test_features_warm_cache(benchmark, dataset, tmp_path):
    namespace = FeatureCache.namespace_for(CONFIG.fingerprint())
    extract_features(dataset, CONFIG, torch.device("cpu"), cache=FeatureCache(tmp_path, namespace),
                     progress=False)

    def warm():
        # A fresh cache object per round, so its counters are this round's.
        stage = extract_features(dataset, CONFIG, torch.device("cpu"),
                                 cache=FeatureCache(tmp_path, namespace), progress=False)
        assert stage.cache["misses"] == 0
        return stage

    benchmark.group = "features-warm-cache"
    benchmark.pedantic(warm, rounds=3, iterations=1)
    benchmark.extra_info.update(clips=N_CLIPS,
                                s_per_clip=benchmark.stats.stats.median / N_CLIPS)


def _warm_worker():
    torch.set_num_threads(1)
    path_table(CONFIG)
    from pmt_core.features.scattering import _transform

    _transform(CONFIG, torch.device("cpu"))


def _scatter_one_thread(audio):
    from pmt_core.features.scattering import scatter

    return scatter(audio, CONFIG.sample_rate, CONFIG, "cpu", 1).values


def test_two_thread_process_vs_two_one_thread_processes(benchmark, clips, timed):
    """The measurement behind ``pipeline.default_workers`` (filter banks built first)."""
    import multiprocessing
    import statistics
    from concurrent.futures import ProcessPoolExecutor

    from pmt_core.features.scattering import scatter

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context, initializer=_warm_worker) as pool:
        list(pool.map(_scatter_one_thread, [clips[:1], clips[1:2]]))  # both warm

        def two_processes():
            list(pool.map(_scatter_one_thread, [clips[:2], clips[2:]]))

        def one_process():
            before = torch.get_num_threads()
            torch.set_num_threads(2)
            try:
                for x in clips:
                    scatter(x, CONFIG.sample_rate, CONFIG, "cpu", 1)
            finally:
                torch.set_num_threads(before)

        one_process()  # builds this process's filter bank
        one, two = [], []
        for _ in range(3):  # interleaved: load changes hit both alike
            one.append(timed(one_process) / len(clips))
            two.append(timed(two_processes) / len(clips))
        benchmark.group = "threads-vs-processes"
        benchmark.pedantic(two_processes, rounds=1, iterations=1)
    benchmark.extra_info.update(
        s_per_clip_one_process_two_threads=statistics.median(one),
        s_per_clip_two_processes_one_thread=statistics.median(two),
        ratio=statistics.median(one) / statistics.median(two), rounds=3, clips=len(clips))

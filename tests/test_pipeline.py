"""extract_features: same bits whatever the workers and clip count, order, cache, recipe.

Most tests use short clips (2**14 samples, J=8) so that they run in the default suite;
the paper-size test and the one that spawns worker processes are marked slow.
"""

import numpy as np
import pytest
import torch

from pmt_core.data.descriptors import describe
from pmt_core.data.sources import example_audio, example_identity
from pmt_core.data.synth.manifest import synthetic_manifest
from pmt_core.features import extraction as pipeline
from pmt_core.features.extraction import (
    ENGINE,
    default_workers,
    extract_features,
    feature_recipe,
    scatter_cached,
)
from pmt_core.features.scattering import ScatteringConfig, path_table, scatter
from pmt_core.infra import arithmetic
from pmt_core.infra.cache import FeatureCache

CONFIG = ScatteringConfig(n_samples=2**14, J=8, T=2**9)
SHAPE = (len(path_table(CONFIG)), CONFIG.n_frames)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def dataset():
    return synthetic_manifest({"trill": 2, "tremolo": 2}, seed=0)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


def new_cache(root):
    return FeatureCache(root, FeatureCache.namespace_for(CONFIG.fingerprint(),
                                                         recipe=feature_recipe(CPU)))


@pytest.fixture(scope="module")
def in_process(dataset, cache_root):
    return extract_features(dataset, CONFIG, CPU, cache=new_cache(cache_root), workers=1,
                            progress=False)


@pytest.fixture(scope="module")
def two_threads(dataset):
    return extract_features(dataset, CONFIG, CPU, cache=None, workers=2, progress=False)


def test_shapes_cache_misses_and_recipe(in_process, dataset):
    assert in_process.result.values.shape == (len(dataset),) + SHAPE
    assert in_process.cache["misses"] == len(dataset) and in_process.cache["hits"] == 0
    assert in_process.peak_rss_mib["parent"] > 0 and "worker" not in in_process.peak_rss_mib
    assert in_process.recipe == {
        "engine": ENGINE, "device": "cpu", "torch_threads": 1, "workers": 1,
        "worker_kind": "none", "scattered_by": "workers", "batch": 1, "computed": 4,
        "arithmetic": arithmetic.fingerprint()}


def test_worker_threads_give_the_same_bits(in_process, two_threads):
    # Two blocks of two clips, one per worker thread of this process.
    np.testing.assert_array_equal(two_threads.result.values, in_process.result.values)
    assert two_threads.descriptors.equals(in_process.descriptors)
    assert two_threads.cache == {"disabled": True}
    assert two_threads.recipe["worker_kind"] == "threads"
    assert two_threads.recipe["workers"] == 2


def test_a_clip_alone_gets_the_bits_it_gets_among_many(in_process, dataset):
    # The cold/warm cache mismatch of issue 14: a clip computed alone (few clips to
    # compute, the caller at two torch threads) must equal the same clip computed
    # among others by the workers. The caller's thread count is restored.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        alone = extract_features(dataset.iloc[[2]], CONFIG, CPU, workers=None, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(alone.result.values[0], in_process.result.values[2])


def test_rows_and_descriptors_stay_aligned(in_process, dataset):
    i = 2  # one row checked against a direct computation
    audio = example_audio(dataset.iloc[i], CONFIG.sample_rate, CONFIG.n_samples)
    np.testing.assert_array_equal(in_process.result.values[i],
                                  scatter(audio, CONFIG.sample_rate, CONFIG, CPU, 1).values[0])
    assert in_process.descriptors.index.equals(dataset.index)
    expected = describe(audio, CONFIG.sample_rate)
    assert in_process.descriptors.iloc[i].to_dict() == pytest.approx(expected, nan_ok=True)


def test_second_call_reads_the_cache_in_any_row_order(in_process, dataset, cache_root):
    reordered = dataset.iloc[::-1]
    stage = extract_features(reordered, CONFIG, CPU, cache=new_cache(cache_root),
                             progress=False)
    assert stage.cache["hits"] == len(dataset) and stage.cache["misses"] == 0
    assert stage.recipe["computed"] == 0
    np.testing.assert_array_equal(stage.result.values, in_process.result.values[::-1])
    assert stage.descriptors.index.equals(reordered.index)
    assert stage.descriptors.equals(in_process.descriptors.iloc[::-1])


def test_corrupt_entry_is_recomputed(in_process, dataset, cache_root):
    cache = new_cache(cache_root)
    victim = cache._path(FeatureCache.key(example_identity(dataset.iloc[1])))
    victim.write_bytes(victim.read_bytes()[:100])
    stage = extract_features(dataset, CONFIG, CPU, cache=cache, progress=False)
    assert (stage.cache["hits"], stage.cache["misses"], stage.cache["rebuilt"]) == (3, 1, 1)
    np.testing.assert_array_equal(stage.result.values, in_process.result.values)
    assert new_cache(cache_root).get(victim.stem, SHAPE) is not None


@pytest.mark.slow
def test_accelerator_path_scatters_in_the_parent(in_process, dataset):
    # The GPU path (worker processes prepare audio, this process scatters), on the CPU.
    # Slow: two spawned processes import torch (19 s on the busy 2-core runner).
    stage = pipeline._extract_features(dataset, CONFIG, CPU, None, 2, 8, False,
                                       parent_scatters=True)
    np.testing.assert_array_equal(stage.result.values, in_process.result.values)
    assert stage.descriptors.equals(in_process.descriptors)
    assert stage.recipe["worker_kind"] == "processes"
    assert stage.recipe["scattered_by"] == "parent"
    assert stage.peak_rss_mib["worker"] > 0


def test_accelerator_batches_cross_block_boundaries(in_process, dataset, monkeypatch):
    # Batches of 3 clips over blocks of 2: rows must stay in order.
    monkeypatch.setattr(pipeline, "device_batch", lambda device, config: 3)
    calls = []
    real = pipeline._scatter_signals

    def spy(signals, config, device, batch=1):
        calls.append(len(signals))
        return real(signals, config, device, batch)

    monkeypatch.setattr(pipeline, "_scatter_signals", spy)
    stage = pipeline._extract_features(dataset, CONFIG, CPU, None, 1, 2, False,
                                       parent_scatters=True)
    assert calls == [3, 1]
    assert stage.recipe["batch"] == 3
    np.testing.assert_array_equal(stage.result.values, in_process.result.values)
    assert stage.descriptors.equals(in_process.descriptors)


def test_a_failing_block_raises_and_keeps_what_was_done(dataset, tmp_path, monkeypatch):
    real = pipeline._prepare_rows

    def fail_on_last(rows, config):
        if rows.index[0] == dataset.index[-1]:
            raise RuntimeError("decoder failed")
        return real(rows, config)

    monkeypatch.setattr(pipeline, "_prepare_rows", fail_on_last)
    cache = FeatureCache(tmp_path, "ns")
    with pytest.raises(RuntimeError, match="decoder failed"):
        extract_features(dataset, CONFIG, CPU, cache=cache, workers=2, block=1,
                         progress=False)
    # Blocks are stored in row order: the three rows before the failing one are cached.
    stored = [FeatureCache(tmp_path, "ns").get(FeatureCache.key(example_identity(row)),
                                               SHAPE) for _, row in dataset.iterrows()]
    assert [s is not None for s in stored] == [True, True, True, False]


def test_batch_for_free_memory():
    per_clip = 100 * 2**20
    assert pipeline._batch_for_free_memory(10 * 2**30, per_clip) == 51  # half of 10 GiB
    assert pipeline._batch_for_free_memory(10 * 2**20, per_clip) == 1
    assert pipeline._batch_for_free_memory(1000 * 2**30, per_clip) == pipeline.MAX_DEVICE_BATCH
    assert pipeline.device_batch(CPU, CONFIG) == 1


def test_feature_recipe_and_default_workers():
    assert feature_recipe(CPU) == {"engine": ENGINE, "device": "cpu", "torch_threads": 1,
                                   "arithmetic": arithmetic.fingerprint()}
    cuda = feature_recipe(torch.device("cuda"))
    # the CPU's pinned code paths do not decide a GPU's bits
    assert cuda["device"] == "cuda" and cuda["arithmetic"] is None
    assert default_workers(CPU) == max(1, min(8, pipeline._cpu_count()))
    assert 1 <= default_workers(torch.device("cuda")) <= 8


def test_scatter_cached_reads_back_what_it_wrote(tmp_path):
    config = ScatteringConfig(n_samples=2**12, J=6, T=2**6)
    t = np.arange(config.n_samples) / config.sample_rate
    signals = np.stack([np.cos(2 * np.pi * f * t) for f in (500.0, 2000.0, 6000.0)])
    identities = [{"tone_hz": 500.0}, {"tone_hz": 2000.0}, {"tone_hz": 6000.0}]
    cache = FeatureCache(tmp_path, "ns")
    first = scatter_cached(signals, identities, config, CPU, cache, workers=2)
    assert cache.stats()["misses"] == 3
    # A second call reads the cache: scrambled signals with the same identities
    # come back as the cached values, which shows nothing was recomputed.
    again = scatter_cached(signals[::-1].copy(), identities, config, CPU, cache)
    assert cache.stats()["hits"] == 3
    np.testing.assert_array_equal(first.values, again.values)
    # One worker, no cache: the same bits.
    uncached = scatter_cached(signals, identities, config, CPU, None, workers=1)
    np.testing.assert_array_equal(first.values, uncached.values)


@pytest.mark.slow
def test_paper_size_clips_with_two_threads_match_each_clip_alone():
    paper = ScatteringConfig()
    frame = synthetic_manifest({"vibrato": 1, "flatterzunge": 1}, seed=1)
    stage = extract_features(frame, paper, CPU, workers=2, progress=False)
    assert stage.result.values.shape == (2, 1200, 32)
    for i in range(2):
        audio = example_audio(frame.iloc[i])
        np.testing.assert_array_equal(stage.result.values[i],
                                      scatter(audio, paper.sample_rate, paper, CPU, 1).values[0])

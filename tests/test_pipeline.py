"""extract_features: workers agree, row order and descriptors kept, cache used.

Paper-size clips (2**18 samples) cost about 1 s each to scatter and every process
builds its own filter bank (~5 s), so the whole module shares four clips and is
marked slow.
"""

import numpy as np
import pytest
import torch

from pmt_core.data.descriptors import describe
from pmt_core.data.sources import example_audio, example_identity
from pmt_core.data.synth import synthetic_manifest
from pmt_core.features import extraction as pipeline
from pmt_core.features.extraction import default_workers, extract_features
from pmt_core.features.scattering import ScatteringConfig, scatter
from pmt_core.infra.cache import FeatureCache

pytestmark = pytest.mark.slow

CONFIG = ScatteringConfig()
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def dataset():
    return synthetic_manifest({"trill": 2, "tremolo": 2}, seed=0)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


def new_cache(root):
    return FeatureCache(root, FeatureCache.namespace_for(CONFIG.fingerprint()))


@pytest.fixture(scope="module")
def in_process(dataset, cache_root):
    torch.set_num_threads(1)
    return extract_features(dataset, CONFIG, CPU, cache=new_cache(cache_root), workers=1,
                            progress=False)


@pytest.fixture(scope="module")
def two_workers(dataset):
    return extract_features(dataset, CONFIG, CPU, cache=None, workers=2, progress=False)


def test_shapes_and_cache_misses(in_process, dataset):
    assert in_process.result.values.shape == (len(dataset), 1200, 32)
    assert in_process.cache["misses"] == len(dataset) and in_process.cache["hits"] == 0
    assert in_process.peak_rss_mib["parent"] > 0 and "worker" not in in_process.peak_rss_mib


def test_two_workers_give_the_same_values(in_process, two_workers):
    # Two blocks of two clips, one per spawned one-thread worker.
    np.testing.assert_allclose(two_workers.result.values, in_process.result.values,
                               rtol=1e-5, atol=1e-7)
    assert two_workers.descriptors.equals(in_process.descriptors)
    assert two_workers.cache == {"disabled": True}
    assert two_workers.peak_rss_mib["worker"] > 0


def test_rows_and_descriptors_stay_aligned(in_process, dataset):
    i = 2  # one row checked against a direct computation
    audio = example_audio(dataset.iloc[i])
    np.testing.assert_allclose(in_process.result.values[i],
                               scatter(audio, CONFIG.sample_rate, CONFIG, CPU, 1).values[0],
                               rtol=1e-5, atol=1e-7)
    assert in_process.descriptors.index.equals(dataset.index)
    expected = describe(audio, CONFIG.sample_rate)
    assert in_process.descriptors.iloc[i].to_dict() == pytest.approx(expected, nan_ok=True)


def test_second_call_reads_the_cache_in_any_row_order(in_process, dataset, cache_root):
    reordered = dataset.iloc[::-1]
    stage = extract_features(reordered, CONFIG, CPU, cache=new_cache(cache_root),
                             progress=False)
    assert stage.cache["hits"] == len(dataset) and stage.cache["misses"] == 0
    np.testing.assert_array_equal(stage.result.values, in_process.result.values[::-1])
    assert stage.descriptors.index.equals(reordered.index)
    assert stage.descriptors.equals(in_process.descriptors.iloc[::-1])


def test_corrupt_entry_is_recomputed(in_process, dataset, cache_root):
    cache = new_cache(cache_root)
    victim = cache._path(FeatureCache.key(example_identity(dataset.iloc[1])))
    victim.write_bytes(victim.read_bytes()[:100])
    stage = extract_features(dataset, CONFIG, CPU, cache=cache, progress=False)
    assert (stage.cache["hits"], stage.cache["misses"], stage.cache["rebuilt"]) == (3, 1, 1)
    np.testing.assert_allclose(stage.result.values, in_process.result.values,
                               rtol=1e-5, atol=1e-7)
    assert new_cache(cache_root).get(victim.stem, (1200, 32)) is not None


def test_accelerator_path_scatters_in_the_parent(in_process, dataset):
    # The GPU path (workers prepare audio, this process scatters), run on the CPU.
    stage = pipeline._extract_features(dataset, CONFIG, CPU, None, 2, 8, False,
                                       scatter_in_workers=False)
    np.testing.assert_allclose(stage.result.values, in_process.result.values,
                               rtol=1e-5, atol=1e-7)
    assert stage.descriptors.equals(in_process.descriptors)


def test_default_workers():
    assert default_workers(CPU) == max(1, min(4, pipeline._cpu_count()))
    assert 1 <= default_workers(torch.device("cuda")) <= 8


def test_scatter_cached_reads_back_what_it_wrote(tmp_path):
    from pmt_core.features.extraction import scatter_cached

    config = ScatteringConfig(n_samples=2**12, J=6, T=2**6)
    t = np.arange(config.n_samples) / config.sample_rate
    signals = np.stack([np.cos(2 * np.pi * f * t) for f in (500.0, 2000.0)])
    identities = [{"tone_hz": 500.0}, {"tone_hz": 2000.0}]
    cache = FeatureCache(tmp_path, "ns")
    first = scatter_cached(signals, identities, config, torch.device("cpu"), cache)
    assert cache.stats()["misses"] == 2
    # A second call reads the cache: scrambled signals with the same identities
    # come back as the cached values, which shows nothing was recomputed.
    again = scatter_cached(signals[::-1].copy(), identities, config, torch.device("cpu"), cache)
    assert cache.stats()["hits"] == 2
    np.testing.assert_array_equal(first.values, again.values)
    uncached = scatter_cached(signals, identities, config, torch.device("cpu"), None)
    np.testing.assert_allclose(first.values, uncached.values)

"""The feature cache: round trip, rebuilds, concurrent writers, keys and switches."""

import json
import multiprocessing
import random

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pmt_core.data.sources import example_identity
from pmt_core.features.scattering import ScatteringConfig
from pmt_core.infra import cache as cache_module
from pmt_core.infra.cache import (
    ENV_VAR,
    MARKER,
    FeatureCache,
    clear_cache,
    default_cache_dir,
    inspect_cache,
)

SHAPE = (6, 4)


def entry(seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(SHAPE, dtype=np.float32), {"f0_hz": 440.0 + seed, "rate_hz": float(seed)}


@pytest.fixture
def cache(tmp_path):
    return FeatureCache(tmp_path, "ns")


def entry_files(cache):
    return sorted(p for p in cache.folder.rglob("*") if p.is_file())


def test_round_trip(cache):
    values, descriptors = entry()
    key = FeatureCache.key({"seed": 1})
    assert cache.get(key, SHAPE) is None
    cache.put(key, values, descriptors)
    got_values, got_descriptors = cache.get(key, SHAPE)
    np.testing.assert_array_equal(got_values, values)
    assert got_values.dtype == np.float32
    assert got_descriptors == descriptors
    assert cache.stats() == {"hits": 1, "misses": 1, "rebuilt": 0, "folder": str(cache.folder)}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_entry_is_counted_and_rebuilt(cache, damage):
    values, descriptors = entry()
    key = FeatureCache.key({"seed": 2})
    cache.put(key, values, descriptors)
    (path,) = entry_files(cache)
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not an npz" * 10, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    assert cache.get(key, SHAPE) is None
    assert (cache.rebuilt, cache.misses, cache.hits) == (1, 1, 0)
    assert not path.exists()  # dropped, so the next run does not trip on it again
    cache.put(key, values, descriptors)  # what the pipeline does after a miss
    np.testing.assert_array_equal(cache.get(key, SHAPE)[0], values)


def test_wrong_shape_or_non_finite_entry_is_rebuilt(cache):
    values, descriptors = entry()
    cache.put("a" * 32, values, descriptors)
    assert cache.get("a" * 32, (SHAPE[0], SHAPE[1] + 1)) is None
    bad = values.copy()
    bad[0, 0] = np.nan
    cache.put("b" * 32, bad, descriptors)
    assert cache.get("b" * 32, SHAPE) is None
    assert cache.rebuilt == 2
    assert entry_files(cache) == []


def test_entry_deleted_between_check_and_load_is_a_plain_miss(cache, monkeypatch):
    # Another process clearing the cache mid-run: a miss, not a corrupt entry.
    cache.put("c" * 32, *entry())
    monkeypatch.setattr(np, "load", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError()))
    assert cache.get("c" * 32, SHAPE) is None
    assert (cache.misses, cache.rebuilt) == (1, 0)


def test_concurrent_writers_neither_corrupt_nor_duplicate(tmp_path):
    cache = FeatureCache(tmp_path, "ns")
    n_keys, n_writers = 24, 4
    jobs = []
    for writer in range(n_writers):
        order = list(range(n_keys))
        random.Random(writer).shuffle(order)  # writers race on different keys at a time
        jobs += [(FeatureCache.key({"k": k}), *entry(k)) for k in order]
    # spawn, like the pipeline: every process writes every key into one folder.
    with multiprocessing.get_context("spawn").Pool(n_writers) as pool:
        pool.starmap(cache.put, jobs, chunksize=1)
    files = entry_files(cache)
    assert [p.suffix for p in files] == [".npz"] * n_keys  # no duplicate, no temp file left
    assert {p.stem for p in files} == {FeatureCache.key({"k": k}) for k in range(n_keys)}
    reader = FeatureCache(tmp_path, "ns")
    for k in range(n_keys):
        values, descriptors = reader.get(FeatureCache.key({"k": k}), SHAPE)
        np.testing.assert_array_equal(values, entry(k)[0])
        assert descriptors == entry(k)[1]
    assert reader.stats()["hits"] == n_keys and reader.rebuilt == 0


def test_env_var_switches_cache_off_and_on(monkeypatch, tmp_path):
    for value in ("off", "OFF", "0", "none", "false", "", "disabled", "No", " off "):
        monkeypatch.setenv(ENV_VAR, value)
        assert default_cache_dir() is None
        assert clear_cache() is None
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(ENV_VAR)
    assert default_cache_dir().parts[-2:] == (".cache", "pmt-validation")


def test_clear_cache_removes_the_folder(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    FeatureCache(root, "ns").put("d" * 32, *entry())
    assert clear_cache(root) == root
    assert not root.exists()
    assert clear_cache(root) == root  # clearing twice is fine
    FeatureCache(root, "ns").put("d" * 32, *entry())
    monkeypatch.setenv(ENV_VAR, str(root))
    assert clear_cache() == root and not root.exists()


def test_keys_follow_identity_config_and_library_versions(tmp_path, monkeypatch):
    assert FeatureCache.key({"a": 1, "b": 2}) == FeatureCache.key({"b": 2, "a": 1})
    assert FeatureCache.key({"a": 1}) != FeatureCache.key({"a": 2})
    paper = ScatteringConfig()
    other = ScatteringConfig(min_carrier_hz=16.0)
    ns = FeatureCache.namespace_for(paper.fingerprint())
    assert ns == FeatureCache.namespace_for(paper.fingerprint())
    assert ns != FeatureCache.namespace_for(other.fingerprint())
    versions = cache_module.library_versions()
    monkeypatch.setattr(cache_module, "library_versions",
                        lambda: {**versions, "kymatio": "9.9.9"})
    upgraded = FeatureCache.namespace_for(paper.fingerprint())
    assert upgraded != ns
    # Another namespace is another folder: an upgrade never reads stale features.
    FeatureCache(tmp_path, ns).put("e" * 32, *entry())
    assert FeatureCache(tmp_path, upgraded).get("e" * 32, SHAPE) is None


def test_numpy_and_python_scalars_give_the_same_key():
    python = {"seed": 815020182, "mute": False, "f0_hz": 440.5, "technique": "trill"}
    numpy = {"seed": np.int64(815020182), "mute": np.bool_(False),
             "f0_hz": np.float64(440.5), "technique": np.str_("trill")}
    assert FeatureCache.key(numpy) == FeatureCache.key(python)
    frame = pd.DataFrame([{"path": "", "seed": 7, "mute": True, "f0_hz": 220.0,
                           "subset": "test"}])
    by_iloc = FeatureCache.key(example_identity(frame.iloc[0]))
    assert by_iloc == FeatureCache.key(example_identity(next(frame.iterrows())[1]))


def test_synthetic_identity_ignores_split_and_path():
    row = pd.Series({"path": "", "technique": "trill", "f0_hz": 440.0, "seed": 3,
                     "subset": "training"})
    moved = row.copy()
    moved["subset"] = "test"
    assert FeatureCache.key(example_identity(row)) == FeatureCache.key(example_identity(moved))
    reseeded = row.copy()
    reseeded["seed"] = 4
    assert FeatureCache.key(example_identity(row)) != FeatureCache.key(
        example_identity(reseeded))


def test_file_identity_is_its_content(tmp_path):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 4410)
    first = tmp_path / "a.wav"
    sf.write(first, audio, 44100)

    def key(path):
        return FeatureCache.key(example_identity(pd.Series({"path": str(path),
                                                            "subset": "test"})))

    before = key(first)
    renamed = first.rename(tmp_path / "renamed.wav")
    assert key(renamed) == before  # a rename keeps the entry
    sf.write(renamed, audio * 0.5, 44100)
    assert key(renamed) != before  # an edit does not


def test_a_new_cache_folder_is_marked_as_the_caches_own(tmp_path):
    root = tmp_path / "new" / "cache"
    cache = FeatureCache(root, "ns")
    assert cache.get("f" * 32, SHAPE) is None and not root.exists()  # a read creates nothing
    cache.put("f" * 32, *entry())
    marker = json.loads((root / MARKER).read_text())
    assert marker["format"] == "pmt-feature-cache" and marker["created_folder"] is True
    found = inspect_cache(root)
    assert found.marked and found.entries == 1 and found.foreign == []
    assert found.namespaces == {"ns": (1, (root / "ns" / "ff" / f"{'f' * 32}.npz").stat().st_size)}


def test_an_existing_empty_folder_is_adopted_not_claimed(tmp_path):
    FeatureCache(tmp_path, "ns").put("f" * 32, *entry())
    assert json.loads((tmp_path / MARKER).read_text())["created_folder"] is False
    clear_cache(tmp_path)
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []


def test_source_digest_of_a_package_covers_every_module_in_it(tmp_path, monkeypatch):
    # pmt_core.data.synth is a package: FEATURE_MODULES names it once, and an edit
    # to any of its modules (not only __init__) must be a cache miss
    import sys

    package = tmp_path / "digest_pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("from digest_pkg.part import X\n")
    (package / "part.py").write_text("X = 1\n")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "deep.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("digest_pkg", "digest_pkg.part"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    before = cache_module.source_digest(["digest_pkg"])
    assert cache_module.source_digest(["digest_pkg"]) == before
    (package / "part.py").write_text("X = 2\n")
    after_part = cache_module.source_digest(["digest_pkg"])
    (package / "inner" / "deep.py").write_text("Y = 3\n")
    after_deep = cache_module.source_digest(["digest_pkg"])
    assert len({before, after_part, after_deep}) == 3
    # the real package: its digest changes with any of its modules' text
    from pmt_core.data import synth

    assert cache_module.source_digest(["pmt_core.data.synth"]) != cache_module.source_digest(
        ["pmt_core.data.synth.render"])
    assert synth.__path__

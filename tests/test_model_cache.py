"""The trained-model cache: what its key covers, hits that equal training, damaged entries."""

import numpy as np
import pytest
import torch

from pmt_core.infra.cache import FeatureCache
from pmt_core.model import cache as model_cache
from pmt_core.model import replicates
from pmt_core.model.config import TrainingConfig

CONFIG = TrainingConfig(max_epochs=2, patience=2, batch_size=8, warmup_epochs=0)
CLASSES = ("trill", "vibrato")


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((32, 16, 32)).astype(np.float32))
    y = np.tile([0, 1], 16)
    return x[:24], y[:24], x[24:], y[24:]


def _store(tmp_path):
    return FeatureCache(tmp_path / "cache", model_cache.model_namespace(torch.device("cpu")))


def test_the_key_covers_what_decides_the_weights():
    x, y, xv, yv = _data()
    key = model_cache.training_key(x, y, xv, yv, CLASSES, CONFIG, [0, 1])
    assert key == model_cache.training_key(x.clone(), y.copy(), xv, yv, CLASSES, CONFIG, [0, 1])
    x2 = x.clone()
    x2[0, 0, 0] += 1e-6  # one input value
    y2 = y.copy()
    y2[:2] = y2[1::-1]  # two labels swapped
    changed = [
        model_cache.training_key(x2, y, xv, yv, CLASSES, CONFIG, [0, 1]),
        model_cache.training_key(x, y2, xv, yv, CLASSES, CONFIG, [0, 1]),
        model_cache.training_key(x, y, xv, yv, CLASSES[::-1], CONFIG, [0, 1]),
        model_cache.training_key(x, y, xv, yv, CLASSES, TrainingConfig(max_epochs=3), [0, 1]),
        model_cache.training_key(x, y, xv, yv, CLASSES, CONFIG, [0, 2]),
        model_cache.training_key(x, y, xv, yv, CLASSES, CONFIG, [0, 1], perturb="ulp"),
    ]
    assert key not in changed and len(set(changed)) == len(changed)


def test_a_hit_gives_what_training_gave_and_trains_nothing(tmp_path, monkeypatch):
    x, y, xv, yv = _data()
    store = _store(tmp_path)
    cold = model_cache.train_cached(store, x, y, xv, yv, CLASSES, config=CONFIG, seeds=[3, 4],
                                    device="cpu", progress=False)
    assert store.stats()["misses"] == 1

    def no_training(*args, **kwargs):
        raise AssertionError("trained on a hit")

    monkeypatch.setattr(model_cache, "train_replicates", no_training)
    warm = model_cache.train_cached(_store(tmp_path), x, y, xv, yv, CLASSES, config=CONFIG,
                                    seeds=[3, 4], device="cpu", progress=False)
    for a, b in zip(cold, warm, strict=True):
        assert a.history == b.history and a.best_epoch == b.best_epoch
        assert a.config == b.config and a.class_names == b.class_names
        for (name, va), (_, vb) in zip(a.model.state_dict().items(),
                                       b.model.state_dict().items(), strict=True):
            assert torch.equal(va, vb), name
        assert not b.model.training
        assert torch.equal(a.model(xv), b.model(xv))


def test_a_damaged_entry_is_retrained(tmp_path):
    x, y, xv, yv = _data()
    store = _store(tmp_path)
    model_cache.train_cached(store, x, y, xv, yv, CLASSES, config=CONFIG, seeds=[0],
                             device="cpu", progress=False)
    (entry,) = store.folder.rglob("*.npz")
    entry.write_bytes(b"not an archive")
    again = _store(tmp_path)
    (result,) = model_cache.train_cached(again, x, y, xv, yv, CLASSES, config=CONFIG,
                                         seeds=[0], device="cpu", progress=False)
    assert again.stats()["rebuilt"] == 1 and result.epochs_run >= 1
    assert np.load(entry, allow_pickle=False)["__meta__"]  # rewritten whole


def test_no_cache_trains(monkeypatch):
    x, y, xv, yv = _data()
    calls = []
    real = replicates.train_replicates

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_cache, "train_replicates", counted)
    model_cache.train_cached(None, x, y, xv, yv, CLASSES, config=CONFIG, seeds=[0],
                             device="cpu", progress=False)
    assert calls == [1]


@pytest.mark.slow
def test_a_second_run_loads_every_model_and_gives_the_same_figures(tmp_path, monkeypatch):
    from pmt_core.claims.catalogue import all_cases
    from pmt_core.claims.core import evaluate
    from pmt_core.run import run_stages

    cache = str(tmp_path / "cache")
    wanted = [case for case in all_cases() if case.id in {
        "accuracy.s2_gain", "relevance.localisation.epsilon_zplus",
        "sanity.data_randomisation.epsilon_zplus"}]
    first = run_stages(profile="smoke", seed=0, cache_dir=cache,
                       report_dir=str(tmp_path / "a"), eager=True)
    before = [evaluate(case, first) for case in wanted]  # trains the shuffled-label models

    def no_training(*args, **kwargs):
        raise AssertionError("a second run trained")

    monkeypatch.setattr(model_cache, "train_replicates", no_training)
    second = run_stages(profile="smoke", seed=0, cache_dir=cache,
                        report_dir=str(tmp_path / "b"), eager=True)
    for kind in ("s1", "s1s2"):
        for a, b in zip(first.models.replicates[kind], second.models.replicates[kind],
                        strict=True):
            assert np.array_equal(a.test_logits, b.test_logits)
    for case, a in zip(wanted, before, strict=True):
        b = evaluate(case, second)
        assert a.verdict == b.verdict, case.id
        assert repr(a.measurement.figures) == repr(b.measurement.figures), case.id
    assert second.model_cache.stats()["hits"] >= 3  # s1, s1s2, shuffled labels

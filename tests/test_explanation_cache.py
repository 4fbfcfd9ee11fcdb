"""The explanation cache: what its key covers, hits equal to computing, damaged entries."""

import copy
import dataclasses
import sys

import numpy as np
import pytest
import torch

from pmt_core.explain import cache as explanation_cache
from pmt_core.explain.explainers import EXPLAINERS, ExplainerInputs, fit_class_profiles
from pmt_core.features.scattering import path_table
from pmt_core.infra.cache import FeatureCache
from pmt_core.model.network import PMTConvNet

PATHS = path_table()


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    model = PMTConvNet(len(PATHS), 3).eval()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((4, len(PATHS), 8)).astype(np.float32))
    energy = rng.random((4, len(PATHS)))
    profiles = fit_class_profiles(np.array([0, 1, 2, 0]), 3, PATHS,
                                  rates_hz=np.array([5.0, 10.0, 30.0, 6.0]))
    return ExplainerInputs(model=model, x=x, target=np.array([0, 1, 2, 0]), energy=energy,
                           reference_mean=energy.mean(0) + 0.1, class_profiles=profiles,
                           paths=PATHS, seed=3, device=torch.device("cpu"))


def _store(tmp_path):
    return FeatureCache(tmp_path / "cache",
                        explanation_cache.explanation_namespace(torch.device("cpu")))


def _counting(name):
    """The registered explainer ``name``, counting its computations."""
    calls = []
    base = EXPLAINERS[name]

    def compute(inputs):
        calls.append(1)
        return base.compute(inputs)

    return dataclasses.replace(base, compute=compute), calls


def _with(inputs, **changes):
    out = copy.copy(inputs)
    for name, value in changes.items():
        setattr(out, name, value)
    return out


@pytest.mark.parametrize("name", ["epsilon_zplus", "integrated_gradients", "lrp_randomised"])
def test_a_hit_gives_the_arrays_computing_gives_and_computes_nothing(tmp_path, inputs, name):
    explainer, calls = _counting(name)
    cold = explanation_cache.explain_cached(_store(tmp_path), explainer, inputs)
    warm_store = _store(tmp_path)
    warm = explanation_cache.explain_cached(warm_store, explainer, inputs)
    assert len(calls) == 1 and warm_store.stats()["hits"] == 1
    for a, b in ((cold.maps, warm.maps), (cold.input_sums, warm.input_sums)):
        if a is None:
            assert b is None
            continue
        assert a.dtype == b.dtype  # LRP's input sums stay in the pass's dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(warm.maps, EXPLAINERS[name](inputs).maps)


def test_the_key_covers_what_decides_the_maps(inputs):
    explainer = EXPLAINERS["epsilon_zplus"]
    key = explanation_cache.explanation_key(explainer, inputs)
    assert key == explanation_cache.explanation_key(explainer, _with(inputs, x=inputs.x.clone()))
    one_weight = copy.deepcopy(inputs.model)
    with torch.no_grad():
        next(one_weight.parameters()).view(-1)[0] += 1e-6
    running = copy.deepcopy(inputs.model)
    next(b for n, b in running.named_buffers() if "running_mean" in n).view(-1)[0] += 1e-3
    x = inputs.x.clone()
    x[0, 0, 0] += 1e-6
    changed = [
        explanation_cache.explanation_key(EXPLAINERS["epsilon"], inputs),
        explanation_cache.explanation_key(explainer, _with(inputs, model=one_weight)),
        explanation_cache.explanation_key(explainer, _with(inputs, model=running)),
        explanation_cache.explanation_key(explainer, _with(inputs, x=x)),
        explanation_cache.explanation_key(explainer, _with(inputs, target=inputs.target[::-1])),
        explanation_cache.explanation_key(explainer, _with(inputs, seed=4)),
        explanation_cache.explanation_key(explainer, _with(inputs, energy=inputs.energy * 2)),
        explanation_cache.explanation_key(explainer, inputs, perturb="ulp"),
    ]
    assert key not in changed and len(set(changed)) == len(changed)


def test_editing_the_code_an_explainer_declares_is_a_miss(tmp_path, inputs, monkeypatch):
    module = tmp_path / "pkg" / "pmt_scratch_rule.py"
    module.parent.mkdir()
    module.write_text("EPSILON = 1e-6\n")
    monkeypatch.syspath_prepend(str(module.parent))
    base, calls = _counting("epsilon")
    explainer = dataclasses.replace(base, cache_code=("pmt_scratch_rule",))
    store = _store(tmp_path)
    explanation_cache.explain_cached(store, explainer, inputs)
    explanation_cache.explain_cached(store, explainer, inputs)
    assert len(calls) == 1
    module.write_text("EPSILON = 1e-2\n")  # the constant an LRP reading reads
    explanation_cache.explain_cached(store, explainer, inputs)
    assert len(calls) == 2
    gradient, gradient_calls = _counting("gradient")  # code not edited: still a hit
    explanation_cache.explain_cached(store, gradient, inputs)
    explanation_cache.explain_cached(_store(tmp_path), gradient, inputs)
    assert len(gradient_calls) == 1
    sys.modules.pop("pmt_scratch_rule", None)


def test_explainers_without_declared_code_are_never_stored(tmp_path, inputs):
    explainer, calls = _counting("random")
    assert explainer.cache_code is None
    store = _store(tmp_path)
    for _ in range(2):
        explanation_cache.explain_cached(store, explainer, inputs)
    assert len(calls) == 2 and not list((tmp_path / "cache").rglob("*.npz"))
    uncached, uncached_calls = _counting("epsilon")
    for _ in range(2):
        explanation_cache.explain_cached(None, uncached, inputs)
    assert len(uncached_calls) == 2


def test_a_damaged_or_ill_shaped_entry_is_recomputed(tmp_path, inputs):
    explainer, calls = _counting("gradient")
    store = _store(tmp_path)
    first = explanation_cache.explain_cached(store, explainer, inputs)
    (entry,) = store.folder.rglob("*.npz")
    entry.write_bytes(b"not an archive")
    again = _store(tmp_path)
    out = explanation_cache.explain_cached(again, explainer, inputs)
    assert len(calls) == 2 and again.stats()["rebuilt"] == 1
    np.testing.assert_array_equal(out.maps, first.maps)
    key = explanation_cache.explanation_key(explainer, inputs)
    again.put_arrays(key, {"maps": np.zeros((3, len(PATHS)))}, {})  # one row short
    out = explanation_cache.explain_cached(_store(tmp_path), explainer, inputs)
    assert len(calls) == 3
    np.testing.assert_array_equal(out.maps, first.maps)


# --------------------------------------------------- other stored computations --
def test_content_key_counts_modules_arrays_and_settings_by_content():
    from pmt_core.infra.cache import content_key

    torch.manual_seed(1)
    model = PMTConvNet(len(PATHS), 3).eval()
    x = np.arange(6.0).reshape(2, 3)
    key = content_key({"steps": 10}, model, x, None)
    assert key == content_key({"steps": 10}, copy.deepcopy(model), x.copy(), None)
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-6
    changed = [content_key({"steps": 11}, model, x, None),
               content_key({"steps": 10}, other, x, None),
               content_key({"steps": 10}, model, x.astype(np.float32), None),
               content_key({"steps": 10}, model, x.reshape(3, 2), None),
               content_key({"steps": 10}, model, x, 0)]
    assert key not in changed and len(set(changed)) == len(changed)


def test_stored_arrays_computes_once_and_rejects_invalid_entries(tmp_path):
    from pmt_core.infra.cache import stored_arrays

    calls = []

    def compute():
        calls.append(1)
        return {"curve": np.linspace(0, 1, 5, dtype=np.float32)}

    first = stored_arrays(_store(tmp_path), "a" * 32, compute)
    again = stored_arrays(_store(tmp_path), "a" * 32, compute)
    assert len(calls) == 1 and again["curve"].dtype == np.float32
    np.testing.assert_array_equal(first["curve"], again["curve"])
    stored_arrays(_store(tmp_path), "a" * 32, compute, valid=lambda a: a["curve"].size == 6)
    assert len(calls) == 2
    stored_arrays(None, "a" * 32, compute)
    assert len(calls) == 3

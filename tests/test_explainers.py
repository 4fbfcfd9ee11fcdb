"""Every explainer on a tiny network; nulls ignore what they claim to ignore."""

import copy

import numpy as np
import pytest
import torch

from pmt_core.explain.explainers import (
    EXPLAINERS,
    ExplainerInputs,
    fit_class_profiles,
    lrp_explainer_names,
    null_explainer_names,
    randomised_copy,
)
from pmt_core.explain.perturbation import aopc_per_example, deletion_logits
from pmt_core.features.scattering import path_table
from pmt_core.model.network import PMTConvNet

PATHS = path_table()
N_PATHS = len(PATHS)


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    model = PMTConvNet(N_PATHS, 3).eval()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((4, N_PATHS, 8)).astype(np.float32))
    energy = rng.random((4, N_PATHS))
    profiles = fit_class_profiles(np.array([0, 1, 2, 0]), 3, PATHS,
                                  rates_hz=np.array([5.0, 10.0, 30.0, 6.0]))
    return ExplainerInputs(model=model, x=x, target=np.array([0, 1, 2, 0]), energy=energy,
                           reference_mean=energy.mean(0) + 0.1, class_profiles=profiles,
                           paths=PATHS, seed=3, device=torch.device("cpu"))


def test_registry_holds_the_readings_attributions_and_nulls():
    assert {"epsilon", "epsilon_zplus", "zplus_epsilon"} <= set(lrp_explainer_names())
    assert {"gradient", "gradient_x_input", "integrated_gradients", "smoothgrad"} <= set(
        EXPLAINERS)
    assert set(null_explainer_names()) == {"random", "class_constant", "input", "energy_raw",
                                           "energy_norm", "lrp_randomised"}


@pytest.mark.parametrize("name", list(EXPLAINERS))
def test_every_explainer_gives_finite_maps(name, inputs):
    out = EXPLAINERS[name](inputs)
    assert out.maps.shape == (4, N_PATHS) and np.all(np.isfinite(out.maps))
    again = EXPLAINERS[name](inputs)
    np.testing.assert_array_equal(out.maps, again.maps)  # seeded: same inputs, same maps


@pytest.mark.parametrize("name", ["random", "class_constant", "energy_raw", "energy_norm"])
def test_model_free_nulls_ignore_the_weights(name, inputs):
    other = copy.copy(inputs)
    other.model = randomised_copy(inputs.model, 9)
    np.testing.assert_array_equal(EXPLAINERS[name](inputs).maps, EXPLAINERS[name](other).maps)


def test_class_constant_ignores_the_example(inputs):
    maps = EXPLAINERS["class_constant"](inputs).maps
    np.testing.assert_array_equal(maps[0], maps[3])  # same class, different inputs
    s2 = PATHS.second_order
    peak = PATHS.modulation_hz[np.argmax(np.where(s2, maps[2], -np.inf))]
    assert abs(np.log2(peak / 30.0)) <= 0.5  # the class's training rate


def test_model_based_explainers_follow_the_weights(inputs):
    other = copy.copy(inputs)
    other.model = randomised_copy(inputs.model, 9)
    for name in ("gradient", "epsilon"):
        assert not np.allclose(EXPLAINERS[name](inputs).maps, EXPLAINERS[name](other).maps)


def test_fit_class_profiles_without_rates_uses_energy():
    energy = np.random.default_rng(1).random((6, N_PATHS))
    profiles = fit_class_profiles(np.array([0, 0, 1, 1, 1, 0]), 2, PATHS, energy_norm=energy)
    np.testing.assert_allclose(profiles[1], energy[[2, 3, 4]].mean(0))


def test_incremental_deletion_equals_removing_and_rerunning(inputs):
    model = copy.deepcopy(inputs.model)
    with torch.no_grad():  # a non-trivial input norm, so the removed value matters
        model.input_norm.running_mean.uniform_(0, 1)
        model.input_norm.bias.uniform_(-0.3, 0.3)
    maps = np.random.default_rng(2).normal(size=(4, N_PATHS))
    fast = deletion_logits(model, inputs.x, maps, steps=3, per_step=7)
    order = np.argsort(-maps, axis=1, kind="stable")
    target = model(inputs.x).argmax(1)
    x = inputs.x.clone()
    for s in range(4):
        if s:
            for i in range(4):
                idx = order[i, (s - 1) * 7 : s * 7]
                x[i, idx] = model.input_norm.running_mean[idx, None]
        with torch.no_grad():
            slow = model(x).gather(1, target[:, None]).squeeze(1).double().numpy()
        np.testing.assert_allclose(fast[:, s], slow, atol=1e-5)
    lerf = deletion_logits(model, inputs.x, maps, order="lerf", steps=3, per_step=7)
    np.testing.assert_array_equal(lerf[:, 0], fast[:, 0])
    assert aopc_per_example(np.array([[1.0, 0.0, -1.0]])) == pytest.approx([1.0])


def test_a_registered_null_joins_the_families_by_what_it_ignores(inputs):
    from pmt_core.claims.families import ALL_NULLS, INPUT_NULLS, MODEL_FREE_NULLS, Nulls
    from pmt_core.explain.explainers import Explainer, register_explainer

    assert MODEL_FREE_NULLS.names() == ("class_constant", "input", "energy_raw", "energy_norm")
    assert INPUT_NULLS.names() == ("input", "energy_raw", "energy_norm")
    assert "lrp_randomised" in ALL_NULLS.names()
    assert "lrp_randomised" not in Nulls(("everything", "example", "model")).names()
    register_explainer(Explainer("shuffled_paths", "shuffled paths (null)", "null", True,
                                 "the input with its paths permuted",
                                 EXPLAINERS["input"].compute, ignores="model"))
    try:
        for nulls in (ALL_NULLS, MODEL_FREE_NULLS, INPUT_NULLS):
            assert "shuffled_paths" in nulls.names()
        assert "shuffled_paths" not in Nulls(("training",)).names()
    finally:
        del EXPLAINERS["shuffled_paths"]
    with pytest.raises(ValueError, match="ignores must be one of"):
        Explainer("x", "x", "null", True, "", EXPLAINERS["input"].compute, ignores="pitch")

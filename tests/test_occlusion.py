"""Band occlusion: bands, drops of planted models, and the within-class rate lift."""

import numpy as np
import pytest
import torch

from pmt_core.explain import occlusion as occ
from pmt_core.features.scattering import path_table
from pmt_core.stats.correlation import model_specific_agreement


@pytest.fixture(scope="module")
def paths():
    return path_table()


class BandModel(torch.nn.Module):
    """Logit of every class = sum of the time-averaged inputs over chosen paths."""

    def __init__(self, weights):
        super().__init__()
        self.weights = torch.as_tensor(weights, dtype=torch.float32)  # (classes, paths)
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # a parameter, for the device

    def forward(self, x):
        return x.mean(dim=-1) @ self.weights.T + 0 * self.dummy


def test_bands_partition_the_second_order_paths(paths):
    bands = occ.s2_bands(paths)
    members = np.concatenate(bands.members)
    assert sorted(members) == sorted(np.flatnonzero(paths.second_order))
    assert np.all(np.diff(bands.hz) > 0)
    for hz, idx in zip(bands.hz, bands.members, strict=True):
        assert np.all(paths.modulation_hz[idx] == hz)
    near = bands.near(np.array([bands.hz[2], np.nan, -1.0]), 0.01)
    assert near[0].sum() == 1 and near[0, 2] and not near[1:].any()
    # nearest in octaves: just above band 3 (geometric mean with band 4 excluded)
    target = np.array([bands.hz[3] * 1.01, np.nan, 0.0, 1e9])
    assert bands.nearest(target).tolist() == [3, -1, -1, len(bands.hz) - 1]


def _inputs_with_rate(paths, bands, band_of_example, n_frames=4, seed=0):
    """Inputs at the training mean (0) except a bump at each example's band."""
    rng = np.random.default_rng(seed)
    x = 0.01 * rng.standard_normal((len(band_of_example), len(paths), n_frames))
    for i, b in enumerate(band_of_example):
        x[i, bands.members[b], :] += 1.0
    return torch.from_numpy(x.astype(np.float32))


def test_a_model_that_reads_every_band_loses_most_at_the_examples_band(paths):
    bands = occ.s2_bands(paths)
    n_bands = len(bands.hz)
    band_of_example = np.arange(40) % n_bands
    x = _inputs_with_rate(paths, bands, band_of_example)
    model = BandModel(np.ones((2, len(paths))))
    drops = occ.band_occlusion_drops(model, x, np.zeros(40, int), bands, np.zeros(len(paths)))
    assert np.all(np.argmax(drops, axis=1) == band_of_example)
    # an occluded band the model never reads costs nothing
    s1_only = BandModel(np.where(paths.second_order, 0.0, 1.0)[None, :].repeat(2, 0))
    none = occ.band_occlusion_drops(s1_only, x, np.zeros(40, int), bands,
                                    np.zeros(len(paths)))
    assert np.allclose(none, 0.0)
    assert np.isnan(occ.band_shares(none)).all()


def test_rate_lift_accepts_the_examples_rate_and_rejects_the_classes():
    rng = np.random.default_rng(1)
    n, n_bands = 60, 8
    classes = np.repeat([0, 1], n // 2)
    # rates spread over four bands per class
    band = np.where(classes == 0, rng.integers(0, 4, n), rng.integers(4, 8, n))
    near = np.zeros((n, n_bands), bool)
    near[np.arange(n), band] = True
    oracle = np.full((n, n_bands), 0.01)
    oracle[np.arange(n), band] = 1.0
    lift, at_rate, expected = occ.rate_lift(oracle, near, classes)
    assert np.all(lift > 0.5) and np.allclose(at_rate, 1.0)
    # knows the class only: peaks at the class's first band whatever the example's rate
    class_only = np.full((n, n_bands), 0.01)
    class_only[np.arange(n), np.where(classes == 0, 0, 4)] = 1.0
    lift_class, _, _ = occ.rate_lift(class_only, near, classes)
    assert abs(np.mean(lift_class)) < 1e-12
    # another example's band of the same class: right class, wrong example
    other = np.roll(band.reshape(2, -1), 1, axis=1).ravel()
    permuted = np.full((n, n_bands), 0.01)
    permuted[np.arange(n), other] = 1.0
    assert np.mean(occ.rate_lift(permuted, near, classes)[0]) < 0.1
    # a class with a single rate has nothing to permute
    lone = occ.rate_lift(oracle[:3], near[:3], np.array([0, 1, 1]))[0]
    assert np.isnan(lone[0]) and np.all(np.isfinite(lone[1:]))


def test_model_specific_agreement_in_both_directions():
    rng = np.random.default_rng(2)
    n_rep, n, n_bands = 5, 80, 10
    shared = rng.standard_normal((n, n_bands))  # what every replicate uses (the input)
    drops = [shared + 0.7 * rng.standard_normal((n, n_bands)) for _ in range(n_rep)]
    # a map that ignores which model it explains: lift sums to 0 over replicates
    model_free = [shared] * n_rep
    lift, own = model_specific_agreement(model_free, drops)
    assert abs(lift.sum(axis=0)).max() < 1e-12 and own.mean() > 0.5
    # planted oracle: its own model's drops, noisy; adversary: another model's
    oracle = [d + 0.3 * rng.standard_normal(d.shape) for d in drops]
    assert model_specific_agreement(oracle, drops)[0].mean() > 0.2
    # another model's drops agree with that model (rho 1) more than with its own:
    # lift (rho_shared - 1) / (R - 1), about -0.1 here
    other = [drops[(r + 1) % n_rep] for r in range(n_rep)]
    assert model_specific_agreement(other, drops)[0].mean() < -0.05
    with pytest.raises(ValueError, match="two replicates"):
        model_specific_agreement(drops[:1], drops[:1])


# ------------------------------------------------------------------ distractor --
def test_distractor_scoring_keeps_distractors_apart_from_the_rate_and_near_a_band(paths):
    from pmt_core.explain.relevance import DISTRACTOR_RANDOM_RATES, distractor_scoring

    lam2 = occ.s2_bands(paths).hz
    rate = np.array([5.0, 5.0, 5.0, np.nan, 5.0])
    distractor = np.array([30.0, 8.0, 0.01, 30.0, np.nan])
    scored, random_rates = distractor_scoring(distractor, rate, lam2, 0.25, seed=0)
    # apart by over an octave and near a band / within an octave / no band near / unknown
    assert scored.tolist() == [True, False, False, False, False]
    assert random_rates.shape == (5, DISTRACTOR_RANDOM_RATES)
    drawn = np.unique(np.round(random_rates, 9))
    assert set(drawn) <= {30.0, 8.0, 0.01}
    again, same = distractor_scoring(distractor, rate, lam2, 0.25, seed=0)
    np.testing.assert_array_equal(random_rates, same)


def _fake_occlusion(paths, seed=0, n=120):
    """An Occlusion-shaped object: bands, classes, rates, all predictions right."""
    from types import SimpleNamespace

    from pmt_core.claims.evidence import Evidence

    rng = np.random.default_rng(seed)
    bands = occ.s2_bands(paths)
    true = np.repeat([0, 1], n // 2)
    rate = np.where(true == 0, np.exp(rng.uniform(np.log(3), np.log(8), n)),
                    np.exp(rng.uniform(np.log(10), np.log(25), n)))
    distractor = np.exp(rng.uniform(np.log(2), np.log(60), n))
    o = SimpleNamespace(bands=bands, true=true, rate=rate,
                        correct=np.ones((3, n), bool), drops=np.zeros((3, n, len(bands.hz))))
    run = Evidence(seed=seed, data=SimpleNamespace(column=lambda name, subset: distractor))
    return o, run, distractor


def test_ignores_distractor_accepts_a_rate_mechanism_and_rejects_a_distractor_one(paths):
    from pmt_core.claims import model as mc
    from pmt_core.claims import thresholds as th

    o, run, distractor = _fake_occlusion(paths)
    scoring = mc._distractor_scoring(run, o)
    assert scoring is not None and scoring[0].sum() > 30
    at_rate = mc._distractor_lift(o, mc.planted_drops(o, o.rate), scoring)
    at_distractor = mc._distractor_lift(o, mc.planted_drops(o, distractor), scoring)
    assert np.nanmean(at_rate) < 0.5 < th.DISTRACTOR_MAX_LIFT
    assert np.nanmean(at_distractor) > 2 * th.DISTRACTOR_MAX_LIFT
    # a model whose drops ignore which band is which: lift about 1
    flat = np.broadcast_to(1.0 + 0.01 * np.random.default_rng(2).random(o.drops.shape[1:]),
                           o.drops.shape)
    assert abs(np.nanmean(mc._distractor_lift(o, flat, scoring)) - 1.0) < 0.1

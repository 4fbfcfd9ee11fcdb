"""Captum's LRP as a second implementation: agreement with zennit where it must agree,
disagreement where the rules or the network differ (the check can fail)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_lrp_reference import inputs, make_net, per_example_rel_err

from pmt_core.claims.lrp import MERGE_INVARIANT
from pmt_core.explain import lrp
from pmt_core.explain import lrp_captum as cap

VANISHING = {"epsilon": lrp.VANISHING_EPSILON, "stabilizer": lrp.VANISHING_EPSILON}


def _pair(net, x, composite, *, canonize, params=None):
    with torch.no_grad():
        target = net(x).argmax(1).numpy()
    z = lrp.explain(net, x, composite, target=target, dtype=torch.float64,
                    params=params).relevance
    c = cap.captum_lrp(net, x, composite, target, canonize=canonize, params=params)
    return z, c


def test_captum_covers_the_composites_of_epsilon_and_zplus_only():
    assert set(cap.CAPTUM_COMPOSITES) == {"epsilon", "epsilon_zplus", "zplus_epsilon"}
    assert set(MERGE_INVARIANT) == {"epsilon", "epsilon_zplus"}


@pytest.mark.parametrize("composite", cap.CAPTUM_COMPOSITES)
@pytest.mark.parametrize("seed", [0, 1])
def test_canonized_network_agrees_to_rounding(composite, seed):
    z, c = _pair(make_net(seed), inputs(6, seed=seed + 3), composite, canonize=True)
    assert per_example_rel_err(c, z).max() < 1e-12


@pytest.mark.parametrize("composite", MERGE_INVARIANT)
@pytest.mark.parametrize("seed", [0, 1])
def test_network_as_trained_agrees_to_rounding_with_the_kept_eps_modelled(composite, seed):
    z, c = _pair(make_net(seed), inputs(6, seed=seed + 3), composite, canonize=False,
                 params=VANISHING)
    assert per_example_rel_err(c, z).max() < 1e-10


def test_without_the_kept_eps_the_maps_differ_by_it(monkeypatch):
    # what the modelling removes: three merged norms, each (1 + 1e-5)^-1/2
    monkeypatch.setattr(cap, "_keep_merge_eps", lambda model: None)
    z, c = _pair(make_net(), inputs(6), "epsilon", canonize=False, params=VANISHING)
    assert 5e-6 < per_example_rel_err(c, z).max() < 1e-3


def test_zplus_on_unmerged_convolutions_is_another_map():
    # the reason zplus_epsilon has no as-trained claim: the check sees the difference
    z, c = _pair(make_net(), inputs(6), "zplus_epsilon", canonize=False, params=VANISHING)
    assert per_example_rel_err(c, z).max() > 1e-2


def test_a_different_epsilon_is_caught():
    net, x = make_net(), inputs(6)
    with torch.no_grad():
        target = net(x).argmax(1).numpy()
    z = lrp.explain(net, x, "epsilon", target=target, dtype=torch.float64).relevance
    c = cap.captum_lrp(net, x, "epsilon", target, params={"epsilon": 1e-1})
    assert per_example_rel_err(c, z).max() > 1e-6


def test_model_is_left_as_it_was():
    net = make_net()
    before = copy.deepcopy(net.state_dict())
    cap.captum_lrp(net, inputs(2), "epsilon_zplus", [0, 1])
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(net.parameters()).dtype == torch.float32
    assert not any(hasattr(m, "rule") for m in net.modules())


def test_refuses_what_captum_cannot_express():
    net, x = make_net(), inputs(2)
    with pytest.raises(ValueError, match="not 'zbox_zplus_epsilon'"):
        cap.captum_lrp(net, x, "zbox_zplus_epsilon", [0, 1])
    with pytest.raises(ValueError, match="negative"):
        cap.captum_lrp(net, x - 1.0, "epsilon", [0, 1])


def test_relevance_shape_and_dtype():
    x = inputs(3)
    rel = cap.captum_lrp(make_net(), x, "epsilon", np.array([0, 1, 2]))
    assert rel.shape == tuple(x.shape) and rel.dtype == np.float64 and np.isfinite(rel).all()

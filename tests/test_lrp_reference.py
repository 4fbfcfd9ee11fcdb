"""The matrix-form float64 reference against zennit, and conservation with absorption."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zennit.canonizers import SequentialMergeBatchNorm

from pmt_core.explain import lrp
from pmt_core.explain import lrp_reference as ref
from pmt_core.model.network import PMTConvNet

torch.set_num_threads(1)


def make_net(seed=0, n_paths=40, bias_free=False):
    torch.manual_seed(seed)
    net = PMTConvNet(n_paths)
    with torch.no_grad():
        for bn in (net.input_norm, net.bn1, net.bn2, net.bn3):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.2, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.3)
            if bias_free and bn is not net.input_norm:
                bn.running_mean.zero_()
                bn.bias.zero_()
        if bias_free:
            net.fc1.bias.zero_()
            net.fc2.bias.zero_()
        else:
            net.fc1.bias.normal_(0, 0.3)
    return net.eval()


def inputs(n, n_paths=40, frames=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_paths, frames, generator=g)


def per_example_rel_err(a, b):
    axes = tuple(range(1, a.ndim))
    return np.abs(a - b).max(axes) / np.abs(b).max(axes)


def test_reference_tables_agree_with_the_registry():
    assert set(ref.RULE_LAYERS) == set(lrp.RULES)
    for name, spec in lrp.RULES.items():
        assert ref.RULE_LAYERS[name] == (spec.conv_rule, spec.dense_rule)
    assert (ref.REF_EPSILON, ref.REF_ZPLUS_STABILIZER, ref.REF_POOL_STABILIZER) == (
        lrp.EPSILON,
        lrp.ZPLUS_STABILIZER,
        lrp.POOL_STABILIZER,
    )


def test_patches_and_fold_are_adjoint_and_match_conv1d():
    rng = np.random.default_rng(0)
    for k in (3, 5, 7):
        a = rng.normal(size=(2, 4, 9))
        r = rng.normal(size=(2, 9, 4 * k))
        p = ref._patches(a, k)
        np.testing.assert_allclose((p * r).sum(), (a * ref._fold(r, 4, k)).sum(), rtol=1e-13)
        w = rng.normal(size=(3, 4, k))
        z = (p @ w.reshape(3, -1).T).transpose(0, 2, 1)
        conv = torch.nn.functional.conv1d(torch.from_numpy(a), torch.from_numpy(w), padding="same")
        np.testing.assert_allclose(z, conv.numpy(), rtol=1e-12, atol=1e-13)


def test_linear_rules_by_hand():
    # a = (1, -2), w = [[1, 1], [2, -1]], b = (0.5, -1): z = (-0.5, 3).
    a = np.array([[1.0, -2.0]])
    w = np.array([[1.0, 1.0], [2.0, -1.0]])
    b = np.array([0.5, -1.0])
    r = np.array([[1.0, 2.0]])
    r_in, ab, ast, _ = ref._linear_rule(a, w, b, r, "epsilon", 0.0)
    s = r / np.array([-0.5, 3.0])
    np.testing.assert_allclose(r_in, a * (s @ w))
    np.testing.assert_allclose(ab, [(s * b).sum()])
    assert ast == 0.0
    # z+ (zennit's ZPlus: a+ w+ + a- w- + b+): z+_1 = 1*1 + 0.5 = 1.5, z+_2 = 2 + (-2)(-1) = 4.
    r_in, ab, ast, _ = ref._linear_rule(a, w, b, r, "zplus", 0.0)
    np.testing.assert_allclose(r_in, [[1 * 1 / 1.5 * 1 + 2 * 2 / 4, (-2) * (-1) * 2 / 4]])
    np.testing.assert_allclose(ab, [0.5 / 1.5])
    np.testing.assert_allclose(r_in.sum() + ab, r.sum())


def test_pool_rule_is_proportional_to_activations():
    a = np.array([[[1.0, 3.0, 0.0, 2.0, 5.0]]])  # odd length: the last frame is dropped
    r = np.array([[[4.0, 2.0]]])
    r_in, ab, ast, _ = ref._pool_rule(a, r, 2, 0.0)
    np.testing.assert_allclose(r_in, [[[1.0, 3.0, 0.0, 2.0, 0.0]]])  # dead frame: none
    assert ab == 0 and ast == 0
    r_in, _, ast, _ = ref._pool_rule(a, r, 2, 1e-6)
    np.testing.assert_allclose(r_in.sum() + ast, r.sum(), rtol=1e-15)


def test_merged_parameters_match_zennit_merge():
    net = make_net().double()
    params = ref.merged_parameters(net)
    work = copy.deepcopy(net)
    handles = SequentialMergeBatchNorm().apply(work)
    assert len(handles) == 3
    for k in (1, 2, 3):
        w, b, c = params[f"conv{k}"]
        conv, bn = getattr(work, f"conv{k}"), getattr(work, f"bn{k}")
        np.testing.assert_allclose(w, conv.weight.detach().numpy(), rtol=1e-15, atol=0)
        np.testing.assert_allclose(b, conv.bias.detach().numpy(), rtol=1e-14, atol=1e-16)
        # zennit resets the batch norm but keeps its eps: it still scales by c.
        assert bn.eps == 1e-5 and c == 1 / np.sqrt(1 + 1e-5)
        assert torch.all(bn.running_var == 1) and torch.all(bn.running_mean == 0)


def test_reference_forward_is_the_canonized_network():
    net = make_net()
    x = inputs(4)
    act = ref.reference_forward(ref.merged_parameters(net), x.double().numpy())
    work = copy.deepcopy(net).double()
    SequentialMergeBatchNorm().apply(work)
    with torch.no_grad():
        merged = work(x.double()).numpy()
        original = net.double()(x.double()).numpy()
    np.testing.assert_allclose(act["out"], merged, rtol=1e-12, atol=1e-12)
    assert 0 < np.abs(act["out"] - original).max() < 1e-5  # the kept-eps shift


@pytest.mark.parametrize("rule", sorted(lrp.RULES))
@pytest.mark.parametrize("top", ["logit", "onehot"])
def test_reference_matches_zennit_float64(rule, top):
    net = make_net(seed=3)
    x = inputs(6, seed=4)
    e = lrp.explain(net, x, rule, dtype=torch.float64, top=top)
    r = ref.reference_lrp(net, x, rule, target=e.target, top=top, batch_size=4)
    assert per_example_rel_err(e.relevance, r.relevance).max() < 1e-10
    np.testing.assert_allclose(e.top_relevance, r.top_relevance, rtol=1e-12)
    np.testing.assert_array_equal(r.target, e.target)


def test_reference_default_target_is_its_argmax():
    net = make_net()
    x = inputs(5)
    r = ref.reference_lrp(net, x, "epsilon")
    np.testing.assert_array_equal(r.target, r.logits.argmax(1))
    r2 = ref.reference_lrp(net, x, "epsilon", target=1)
    np.testing.assert_array_equal(r2.target, 1)


def test_layer_names_in_backward_order():
    r = ref.reference_lrp(make_net(), inputs(1), "epsilon")
    names = [b.name for b in r.budgets]
    assert names[:5] == ["fc2", "relu4", "fc1", "dropout", "time_mean"]
    assert names[-1] == "input_norm (Pass)"
    assert [n for n in names if n.startswith("conv")] == ["conv3+bn3", "conv2+bn2", "conv1+bn1"]


def _check_budget_chain(r):
    for b in r.budgets:
        assert b.relative_residual.max() < 1e-12, b.name
    # Consecutive layers hand relevance on: out of layer k+1 == in of layer k.
    for upper, lower in zip(r.budgets[:-1], r.budgets[1:], strict=True):
        np.testing.assert_allclose(lower.relevance_out, upper.relevance_in, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.budgets[0].relevance_out, r.top_relevance, rtol=1e-14)
    total_absorbed = sum(b.absorbed for b in r.budgets)
    scale = sum(b.abs_scale for b in r.budgets)
    resid = r.relevance.sum((1, 2)) + total_absorbed - r.top_relevance
    assert (np.abs(resid) / scale).max() < 1e-12


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    seed=st.integers(0, 2**16),
    n_paths=st.sampled_from([32, 40, 56]),
    frames=st.sampled_from([16, 30, 32]),
    n=st.integers(1, 3),
    rule=st.sampled_from(sorted(lrp.RULES)),
    top=st.sampled_from(["logit", "onehot"]),
)
def test_conservation_with_absorbed_share_on_random_networks(seed, n_paths, frames, n, rule, top):
    net = make_net(seed=seed, n_paths=n_paths)
    x = inputs(n, n_paths=n_paths, frames=frames, seed=seed + 1) * 2
    r = ref.reference_lrp(net, x, rule, top=top)
    _check_budget_chain(r)
    # zennit's input relevance + the reference's analytic absorption == top relevance.
    e = lrp.explain(net, x, rule, target=r.target, dtype=torch.float64, top=top)
    total_absorbed = sum(b.absorbed for b in r.budgets)
    scale = sum(b.abs_scale for b in r.budgets)
    resid = e.relevance.sum((1, 2)) + total_absorbed - e.top_relevance
    assert (np.abs(resid) / scale).max() < 1e-10


@pytest.mark.parametrize("rule", sorted(lrp.RULES))
def test_bias_free_network_conserves_up_to_the_stabiliser(rule):
    net = make_net(bias_free=True)
    x = inputs(3)
    r = ref.reference_lrp(net, x, rule)
    for b in r.budgets:
        np.testing.assert_array_equal(b.absorbed_bias, 0.0)
    share = r.relevance.sum((1, 2)) / r.top_relevance
    # Only the 1e-6 stabilisers absorb: input sum == top to ~1e-5 relative.
    np.testing.assert_allclose(share, 1.0, atol=1e-4)
    e = lrp.explain(net, x, rule, dtype=torch.float64)
    np.testing.assert_allclose(e.input_share, share, rtol=1e-9)

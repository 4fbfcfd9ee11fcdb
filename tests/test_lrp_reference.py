"""The matrix-form float64 reference: per-layer rules against zennit (model-agnostic, in the
style of zennit's tests/unit/test_rules.py), and the whole-network oracle against explain()."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.rules import Epsilon, ZBox, ZPlus

from pmt_core.explain import lrp
from pmt_core.explain import lrp_reference as ref
from pmt_core.model.network import PMTConvNet

torch.set_num_threads(1)

COMPOSITES = sorted(lrp.COMPOSITES)
MODES = lrp.INPUT_NORM_MODES


def make_net(seed=0, n_paths=48):
    torch.manual_seed(seed)
    net = PMTConvNet(n_paths)
    with torch.no_grad():
        for bn in (net.input_norm, net.bn1, net.bn2, net.bn3):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.2, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.3)
        net.fc1.bias.normal_(0, 0.3)
    return net.eval()


def inputs(n, n_paths=48, frames=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.log1p(torch.rand(n, n_paths, frames, generator=g) * 20)


def per_example_rel_err(a, b):
    axes = tuple(range(1, a.ndim))
    return np.abs(a - b).max(axes) / np.abs(b).max(axes)


def test_reference_tables_agree_with_the_registry():
    assert set(ref.COMPOSITE_RULES) == set(lrp.COMPOSITES)
    for name, spec in lrp.COMPOSITES.items():
        assert ref.COMPOSITE_RULES[name] == (spec.first_layer_rule, spec.conv_rule, spec.dense_rule)
        for key, value in spec.defaults.items():
            assert ref.REF_DEFAULTS[key] == value, (name, key)
    assert set(ref.LAYER_RULES) == set(lrp.LAYER_RULES)
    assert (ref.REF_EPSILON, ref.REF_ZPLUS_STABILIZER, ref.REF_POOL_STABILIZER) == (
        lrp.EPSILON,
        lrp.ZPLUS_STABILIZER,
        lrp.POOL_STABILIZER,
    )
    assert (ref.REF_ZBOX_LOW, ref.REF_ZBOX_HIGH) == (lrp.ZBOX_LOW, lrp.ZBOX_HIGH)
    with pytest.raises(ValueError, match="already"):
        ref.replicates("epsilon")(lambda *a, **k: None)


# --- per layer, model-agnostic (zennit's tests/unit/test_rules.py style) ---------------

ZENNIT_RULES = {
    "epsilon": lambda eps, low, high: Epsilon(epsilon=eps),
    "zplus": lambda eps, low, high: ZPlus(stabilizer=eps),
    "zbox": lambda eps, low, high: ZBox(low=low, high=high, stabilizer=eps),
}


def _zennit_layer(module, rule, x, r_out, eps, low=None, high=None):
    hook = ZENNIT_RULES[rule](eps, low, high)
    handles = hook.register(module)
    try:
        xg = x.clone().requires_grad_(True)
        out = module(xg)
        (r_in,) = torch.autograd.grad(out, xg, grad_outputs=r_out)
    finally:
        handles.remove()
    return out.detach(), r_in.numpy()


def _layer_case(kind, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "linear":
        module = nn.Linear(6, 4).double()
        x = torch.randn(3, 6, generator=g, dtype=torch.float64)
        r_shape = (3, 4)
    else:
        k = {"conv3": 3, "conv5": 5}[kind]
        module = nn.Conv1d(3, 4, k, padding="same").double()
        x = torch.randn(2, 3, 9, generator=g, dtype=torch.float64)
        r_shape = (2, 4, 9)
    with torch.no_grad():
        module.bias.normal_(0, 0.5, generator=g)
    r_out = torch.randn(r_shape, generator=g, dtype=torch.float64)
    return module, x, r_out


@pytest.mark.parametrize("rule", sorted(ref.LAYER_RULES))
@pytest.mark.parametrize("kind", ["linear", "conv3", "conv5"])
@pytest.mark.parametrize("eps", [1e-6, 0.3])
@pytest.mark.parametrize("seed", [0, 1])
def test_each_layer_rule_matches_zennit_on_a_random_layer(rule, kind, eps, seed):
    module, x, r_out = _layer_case(kind, seed)
    box = {}
    if rule == "zbox":
        # A box around the inputs, per input channel (zennit broadcasts it).
        lo = x.amin(dim=tuple(d for d in range(x.ndim) if d != 1), keepdim=True)[:1] - 0.1
        hi = x.amax(dim=tuple(d for d in range(x.ndim) if d != 1), keepdim=True)[:1] + 0.2
        box = {"low": lo, "high": hi}
    z, r_zennit = _zennit_layer(module, rule, x, r_out, eps, **box)
    w, b = module.weight.detach().numpy(), module.bias.detach().numpy()
    fn = ref.LAYER_RULES[rule]
    if kind == "linear":
        kw = {k: np.broadcast_to(v.numpy(), x.shape) for k, v in box.items()}
        r_ref, ab, ast, _ = fn(x.numpy(), w, b, r_out.numpy(), eps=eps, **kw)
        r_ref_in = r_ref
    else:
        k = w.shape[2]
        patches = ref.conv_patches(x.numpy(), k)
        kw = {n: ref.conv_patches(np.broadcast_to(v.numpy(), x.shape), k) for n, v in box.items()}
        rp, ab, ast, _ = fn(
            patches, w.reshape(4, -1), b, r_out.numpy().transpose(0, 2, 1), eps=eps, **kw
        )
        r_ref_in = ref._fold(rp, x.shape[1], k)
    np.testing.assert_allclose(r_zennit, r_ref_in, rtol=1e-12, atol=1e-13)
    # The reference's budget: what reaches the input + what it absorbs = what came in.
    axes = tuple(range(1, r_out.ndim))
    np.testing.assert_allclose(
        r_ref_in.reshape(len(x), -1).sum(1) + ab + ast,
        r_out.numpy().sum(axes),
        rtol=1e-11,
        atol=1e-12,
    )
    assert z.shape == r_out.shape


def test_patches_and_fold_are_adjoint_and_match_conv1d():
    rng = np.random.default_rng(0)
    for k in (3, 5, 7):
        a = rng.normal(size=(2, 4, 9))
        r = rng.normal(size=(2, 9, 4 * k))
        p = ref.conv_patches(a, k)
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
    r_in, ab, ast, _ = ref.LAYER_RULES["epsilon"](a, w, b, r, eps=0.0)
    s = r / np.array([-0.5, 3.0])
    np.testing.assert_allclose(r_in, a * (s @ w))
    np.testing.assert_allclose(ab, [(s * b).sum()])
    assert ast == 0.0
    # z+ (zennit's ZPlus: a+ w+ + a- w- + b+): z+_1 = 1*1 + 0.5 = 1.5, z+_2 = 2 + (-2)(-1) = 4.
    r_in, ab, ast, _ = ref.LAYER_RULES["zplus"](a, w, b, r, eps=0.0)
    np.testing.assert_allclose(r_in, [[1 * 1 / 1.5 * 1 + 2 * 2 / 4, (-2) * (-1) * 2 / 4]])
    np.testing.assert_allclose(ab, [0.5 / 1.5])
    np.testing.assert_allclose(r_in.sum() + ab, r.sum())
    # z-box on [l, h] = [-3, 2]: d_1 = (1 + -2) - (-3)(1 + 1) - 0 = 5,
    # d_2 = (2 + 2) - (-3)(2) - 2(-1) = 12; the bias cancels.
    r_in, ab, ast, _ = ref.LAYER_RULES["zbox"](a, w, b, r, eps=0.0, low=-3.0, high=2.0)
    s = r / np.array([5.0, 12.0])
    want = a * (s @ w) + 3.0 * (s @ np.clip(w, 0, None)) - 2.0 * (s @ np.clip(w, None, 0))
    np.testing.assert_allclose(r_in, want)
    np.testing.assert_allclose(r_in.sum(), r.sum())  # nothing absorbed
    assert ab == 0.0 and ast == 0.0


def test_pool_rule_is_proportional_to_activations():
    a = np.array([[[1.0, 3.0, 0.0, 2.0, 5.0]]])  # odd length: the last frame is dropped
    r = np.array([[[4.0, 2.0]]])
    r_in, ab, ast, _ = ref._pool_rule(a, r, 2, 0.0)
    np.testing.assert_allclose(r_in, [[[1.0, 3.0, 0.0, 2.0, 0.0]]])  # dead frame: none
    assert ab == 0 and ast == 0
    r_in, _, ast, _ = ref._pool_rule(a, r, 2, 1e-6)
    np.testing.assert_allclose(r_in.sum() + ast, r.sum(), rtol=1e-15)


# --- the network oracle --------------------------------------------------------------


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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("frames", [6, 13, 32])
def test_reference_forward_is_the_canonized_network(mode, frames):
    net = make_net()
    x = inputs(4, frames=frames)
    act = ref.reference_forward(ref.merged_parameters(net), x.double().numpy(), mode)
    work = copy.deepcopy(net).double()
    canonizers = [lrp.InputNormFold()] if mode == "fold" else []
    for c in canonizers + [SequentialMergeBatchNorm()]:
        c.apply(work)
    with torch.no_grad():
        merged = work(x.double()).numpy()
        original = net.double()(x.double()).numpy()
    np.testing.assert_allclose(act["out"], merged, rtol=1e-12, atol=1e-12)
    assert 0 < np.abs(act["out"] - original).max() < 1e-5  # the kept-eps shift
    if mode == "fold":  # conv1 reads x itself, with a border-aware bias
        np.testing.assert_array_equal(act["x1"], x.double().numpy())
        b1 = act["b1"][0]  # (frames, out)
        assert np.abs(b1[0] - b1[frames // 2]).max() > 1e-6


@pytest.mark.parametrize("name", COMPOSITES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("top", lrp.TOPS)
def test_reference_matches_zennit_float64(name, mode, top):
    net = make_net(seed=3)
    x = inputs(6, seed=4)
    e = lrp.explain(net, x, name, dtype=torch.float64, top=top, input_norm=mode)
    r = ref.reference_lrp(net, x, name, target=e.target, top=top, batch_size=4, input_norm=mode)
    assert per_example_rel_err(e.relevance, r.relevance).max() < 1e-12
    np.testing.assert_allclose(e.top_relevance, r.top_relevance, rtol=1e-12)
    np.testing.assert_array_equal(r.target, e.target)


@pytest.mark.parametrize("name", COMPOSITES)
def test_reference_follows_the_composite_parameters(name):
    net, x = make_net(seed=3), inputs(3, seed=4)
    params = {"epsilon": 1e-2, "stabilizer": 1e-3}
    if "high" in lrp.COMPOSITES[name].defaults:
        params["high"] = 12.0
    e = lrp.explain(net, x, name, dtype=torch.float64, params=params)
    r = ref.reference_lrp(net, x, name, target=e.target, params=params)
    r0 = ref.reference_lrp(net, x, name, target=e.target)
    assert per_example_rel_err(e.relevance, r.relevance).max() < 1e-12
    assert per_example_rel_err(r0.relevance, r.relevance).max() > 1e-6


def test_reference_default_target_is_its_argmax():
    net = make_net()
    x = inputs(5)
    r = ref.reference_lrp(net, x, "epsilon")
    np.testing.assert_array_equal(r.target, r.logits.argmax(1))
    r2 = ref.reference_lrp(net, x, "epsilon", target=1)
    np.testing.assert_array_equal(r2.target, 1)
    with pytest.raises(KeyError):
        ref.reference_lrp(net, x, "gamma")
    with pytest.raises(TypeError):
        ref.reference_lrp(net, x, "epsilon", params={"gamma": 0.25})


@pytest.mark.parametrize("mode", MODES)
def test_layer_names_in_backward_order(mode):
    r = ref.reference_lrp(make_net(), inputs(1), "epsilon", input_norm=mode)
    names = [b.name for b in r.budgets]
    assert names[:5] == ["fc2", "relu4", "fc1", "dropout", "time_pool"]
    first = "input_norm+conv1+bn1" if mode == "fold" else "conv1+bn1"
    assert [n for n in names if "conv" in n] == ["conv3+bn3", "conv2+bn2", first]
    assert names[-1] == ("input_norm (Pass)" if mode == "pass" else first)


def _check_budget_chain(r):
    # The reference's own bookkeeping (an identity of its algebra, not a test of zennit).
    for b in r.budgets:
        assert b.relative_residual.max() < 1e-12, b.name
    for upper, lower in zip(r.budgets[:-1], r.budgets[1:], strict=True):
        np.testing.assert_allclose(lower.relevance_out, upper.relevance_in, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.budgets[0].relevance_out, r.top_relevance, rtol=1e-14)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    seed=st.integers(0, 2**16),
    n_paths=st.sampled_from([32, 40, 56]),
    frames=st.sampled_from([16, 30, 32]),
    n=st.integers(1, 3),
    name=st.sampled_from(COMPOSITES),
    mode=st.sampled_from(MODES),
)
def test_reference_and_zennit_budgets_agree_on_random_networks(
    seed, n_paths, frames, n, name, mode
):
    net = make_net(seed=seed, n_paths=n_paths)
    x = inputs(n, n_paths=n_paths, frames=frames, seed=seed + 1)
    r = ref.reference_lrp(net, x, name, input_norm=mode)
    _check_budget_chain(r)
    # zennit's own budgets (lrp.conservation) close too, and absorb what the reference does.
    c = lrp.conservation(net, x, name, target=r.target, input_norm=mode)
    assert c.worst_relative_residual < 1e-12
    scale = sum(b.abs_scale for b in r.budgets)
    np.testing.assert_allclose(
        c.absorbed, sum(b.absorbed for b in r.budgets), atol=1e-11 * scale.max()
    )
    assert per_example_rel_err(c.relevance, r.relevance).max() < 1e-11


@pytest.mark.parametrize("name", COMPOSITES)
def test_reference_bias_free_network_absorbs_no_bias(name):
    net = lrp.bias_free_copy(make_net())
    x = inputs(3)
    r = ref.reference_lrp(net, x, name)
    for b in r.budgets:
        np.testing.assert_array_equal(b.absorbed_bias, 0.0)
    exact = {"epsilon": lrp.VANISHING_EPSILON, "stabilizer": lrp.VANISHING_EPSILON}
    r0 = ref.reference_lrp(net, x, name, params=exact)
    np.testing.assert_allclose(r0.relevance.sum((1, 2)), r0.top_relevance, rtol=1e-13)

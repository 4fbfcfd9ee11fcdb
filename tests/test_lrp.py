"""Unit tests of pmt_core.explain.lrp: composites, input-norm fold, canonizers, explain(),
conservation on zennit's own relevances."""

from __future__ import annotations

import dataclasses
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonPlus, EpsilonPlusFlat, LayerMapComposite
from zennit.core import Composite
from zennit.rules import Epsilon, Pass
from zennit.types import Activation, AvgPool, BatchNorm, Convolution

from pmt_core.explain import lrp
from pmt_core.model.network import PMTConvNet

torch.set_num_threads(1)

N_PATHS, FRAMES = 48, 32
FORWARD = list(PMTConvNet.FORWARD)
BATCH_NORMS = ["input_norm", "bn1", "bn2", "bn3"]
BN_FIRST = BATCH_NORMS + [k for k in FORWARD if k not in BATCH_NORMS]
CONVS_FIRST = ["conv1", "conv2", "conv3"] + [k for k in FORWARD if not k.startswith("conv")]
COMPOSITES = sorted(lrp.COMPOSITES)
MODES = lrp.INPUT_NORM_MODES


def make_net(seed=0, n_paths=N_PATHS, order=None, dtype=torch.float32):
    """PMTConvNet with random batch-norm statistics; ``order`` re-assigns its modules."""
    torch.manual_seed(seed)
    net = PMTConvNet(n_paths)
    with torch.no_grad():
        for bn in (net.input_norm, net.bn1, net.bn2, net.bn3):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.2, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.3)
        net.fc1.bias.normal_(0, 0.3)
    if order is not None:
        # Same as assigning the modules in this order in __init__.
        net._modules = OrderedDict((k, net._modules[k]) for k in order)
    return net.to(dtype).eval()


def inputs(n=4, seed=1, n_paths=N_PATHS, frames=FRAMES, dtype=torch.float32):
    """Compressed-feature-like inputs: log1p of non-negative values, inside the z-box."""
    g = torch.Generator().manual_seed(seed)
    return torch.log1p(torch.rand(n, n_paths, frames, generator=g, dtype=dtype) * 20)


# --- the registry ------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSITES)
def test_registry_entry_is_complete(name):
    spec = lrp.COMPOSITES[name]
    assert spec.name == name and spec.label and spec.provenance
    assert spec.reading in lrp.READINGS
    for rule in (spec.first_layer_rule, spec.conv_rule, spec.dense_rule):
        assert rule in lrp.LAYER_RULES
    assert {"epsilon", "stabilizer"} <= set(spec.defaults)
    assert isinstance(spec.composite(), Composite)
    with pytest.raises(TypeError, match="takes"):
        spec.composite(gamma=0.25)
    with pytest.raises(TypeError):
        spec.defaults["epsilon"] = 1.0  # read-only


def test_registry_holds_the_three_readings_and_unique_labels():
    # Not an exact set: adding a composite must not break this test.
    want = {
        "epsilon": ("authors' code", "epsilon", "epsilon", "epsilon"),
        "epsilon_zplus": ("paper text", "epsilon", "epsilon", "zplus"),
        "zplus_epsilon": ("authors' code", "zplus", "zplus", "epsilon"),
    }
    for name, declared in want.items():
        s = lrp.COMPOSITES[name]
        assert (s.reading, s.first_layer_rule, s.conv_rule, s.dense_rule) == declared
    # The authors' code reading IS zennit's EpsilonPlus.
    assert isinstance(lrp.COMPOSITES["zplus_epsilon"].composite(), EpsilonPlus)
    labels = [s.label for s in lrp.COMPOSITES.values()]
    assert len(set(labels)) == len(labels)
    assert any(s.first_layer_rule == "zbox" for s in lrp.COMPOSITES.values())
    assert lrp.RULES is lrp.COMPOSITES  # former name, kept for its callers
    assert lrp.EPSILON == lrp.ZPLUS_STABILIZER == lrp.POOL_STABILIZER == 1e-6


def test_register_composite_refuses_duplicates_and_unknown_vocabulary():
    kw = dict(
        label="x",
        reading="variant",
        first_layer_rule="epsilon",
        conv_rule="epsilon",
        dense_rule="epsilon",
        provenance="x",
        defaults={},
    )
    with pytest.raises(ValueError, match="already"):
        lrp.register_composite("epsilon", **kw)(lambda **_: None)
    with pytest.raises(ValueError, match="layer rule"):
        lrp.register_composite("new", **{**kw, "conv_rule": "gamma"})
    with pytest.raises(ValueError, match="reading"):
        lrp.register_composite("new", **{**kw, "reading": "folklore"})
    with pytest.raises(ValueError, match="first layer"):
        lrp.register_composite("new", **{**kw, "dense_rule": "zbox"})
    assert "new" not in lrp.COMPOSITES


def _two_layer(name, **params):
    """Hand example: x = (1, 2); z1 = W1 x + b1 = (-0.5, 3); a1 = (0, 3); f = 6."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([0.5, -1.0]))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0]]))
        net[2].bias.zero_()
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    with lrp.COMPOSITES[name].composite(input_norm="pass", **params).context(net) as m:
        out = m(x)
        (rel,) = torch.autograd.grad(out, x, grad_outputs=out.detach())  # top = logit
    return out.item(), rel[0].numpy()


@pytest.mark.parametrize(
    ("name", "eps"), [("epsilon", 1e-6), ("zplus_epsilon", 1e-6), ("epsilon", 0.5)]
)
def test_epsilon_on_dense_layers_by_hand(name, eps):
    f, rel = _two_layer(name, epsilon=eps)
    assert f == 6.0
    r_a1 = 3 * 2 * f / (6 + eps)  # fc2: a1_2 w_2 R / (z + eps); a1_1 = 0
    s = r_a1 / (3 + eps)  # fc1, unit 2 (unit 1 has no relevance)
    np.testing.assert_allclose(rel, [1 * 2 * s, 2 * 1 * s], rtol=1e-14)
    if eps == 1e-6:  # ~ (4, 4): the bias -1 of unit 2 absorbs about -2 of the 6.
        np.testing.assert_allclose(rel, [4.0, 4.0], rtol=1e-5)


def test_zplus_on_dense_layers_by_hand():
    eps = lrp.ZPLUS_STABILIZER
    f, rel = _two_layer("epsilon_zplus")
    r_a1 = 3 * 2 * f / (6 + eps)  # fc2: all positive, z+ = z
    # fc1 unit 2: w+ = (2, 1), b+ = 0, z+ = 2 + 2 = 4 (the negative bias is dropped).
    s = r_a1 / (4 + eps)
    np.testing.assert_allclose(rel, [1 * 2 * s, 2 * 1 * s], rtol=1e-14)
    np.testing.assert_allclose(rel.sum(), f, rtol=1e-5)  # z+ with b+ = 0 conserves


def test_parameters_reach_the_rules_and_are_recorded():
    net, x = make_net(), inputs(3)
    base = lrp.explain(net, x, "epsilon", dtype=torch.float64)
    big = lrp.explain(net, x, "epsilon", dtype=torch.float64, params={"epsilon": 1e-2})
    assert base.params == {"epsilon": 1e-6, "stabilizer": 1e-6}
    assert big.params["epsilon"] == 1e-2
    assert not np.allclose(base.relevance, big.relevance, rtol=1e-6)
    with pytest.raises(TypeError):
        lrp.explain(net, x, "epsilon", params={"alpha": 2.0})


# --- the input-norm fold --------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("frames", [None, 9, 16])
@pytest.mark.parametrize("bias", [False, True])
def test_folded_conv_is_the_conv_of_the_affine_input(k, frames, bias):
    frames = frames or k - 1  # the shortest input the fold accepts
    g = torch.Generator().manual_seed(k + frames)
    conv = nn.Conv1d(5, 4, k, padding="same", bias=bias).double()
    scale = torch.rand(5, generator=g, dtype=torch.float64) * 2 - 0.5  # one negative
    shift = torch.randn(5, generator=g, dtype=torch.float64)
    x = torch.randn(3, 5, frames, generator=g, dtype=torch.float64)
    folded = lrp.FoldedConv1d(conv, scale, shift)
    with torch.no_grad():
        want = conv(x * scale[:, None] + shift[:, None])
        torch.testing.assert_close(folded(x), want, rtol=1e-13, atol=1e-13)
        # A naive fold (the interior bias on every frame) is wrong on the borders.
        naive = nn.functional.conv1d(x, folded.weight, None, padding="same")
        naive = naive + folded.bias[(k - 1) // 2][None, :, None]
        border = (k - 1) // 2
        inner = slice(border, frames - border)
        torch.testing.assert_close(naive[..., inner], want[..., inner], rtol=1e-13, atol=1e-13)
        assert (naive[..., :border] - want[..., :border]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="frames"):
        folded(x[..., : k - 2])
    with pytest.raises(ValueError):
        lrp.FoldedConv1d(nn.Conv1d(5, 4, k, stride=2), scale, shift)


@pytest.mark.parametrize("frames", [6, 7, 32])
def test_fold_keeps_the_logits(frames):
    net = make_net()
    x = inputs(6, frames=frames)
    shift64 = lrp.fold_logit_shift(net, x, dtype=torch.float64, relative=True)
    shift32 = lrp.fold_logit_shift(net, x, relative=True)
    assert shift64 < 1e-13
    assert shift32 < 2e-6
    # Only the kept batch-norm eps moves the fully canonized logits; the fold adds nothing.
    fold = lrp.merged_logit_shift(net, x, dtype=torch.float64)
    passed = lrp.merged_logit_shift(net, x, dtype=torch.float64, input_norm="pass")
    assert 0 < fold < 1e-5
    assert abs(fold - passed) < 1e-12


def test_fold_canonizer_restores_the_model():
    net = make_net()
    modules = dict(net.named_modules())
    state = {k: v.clone() for k, v in net.state_dict().items()}
    handles = lrp.InputNormFold().apply(net)
    assert len(handles) == 1
    assert isinstance(net.input_norm, nn.Identity) and isinstance(net.conv1, lrp.FoldedConv1d)
    assert tuple(net._modules) == PMTConvNet.FORWARD  # same slots: zennit's order unchanged
    for h in handles:
        h.remove()
    assert dict(net.named_modules()) == modules
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert lrp.InputNormFold().apply(nn.Sequential(nn.Linear(2, 2))) == []


@pytest.mark.parametrize("name", COMPOSITES)
def test_fold_puts_relevance_on_the_compressed_features(name):
    # R = x * (...) on the folded conv1: a path-frame cell whose compressed value is
    # exactly 0 (no energy) gets no relevance. Under Pass it is the relevance of
    # x0 = s * 0 + t, which is not 0.
    net, x = make_net(), inputs(3, dtype=torch.float64)
    x[:, ::3, 4:20] = 0.0
    zero = (x == 0).numpy()
    fold = lrp.explain(net, x, name, dtype=torch.float64)
    passed = lrp.explain(net, x, name, dtype=torch.float64, input_norm="pass")
    assert fold.input_norm == "fold" and passed.input_norm == "pass"
    if lrp.COMPOSITES[name].first_layer_rule == "zbox":
        # The z-box term -h w^- R / d credits x = 0 for being below the box's top.
        assert np.abs(fold.relevance[zero]).max() > 0
    else:
        np.testing.assert_array_equal(fold.relevance[zero], 0.0)
        assert np.abs(passed.relevance[zero]).max() > 1e-6 * np.abs(passed.relevance).max()
    np.testing.assert_array_equal(fold.logits, passed.logits)


def test_zbox_is_the_same_on_either_side_of_the_input_norm():
    # DTD's z-box is equivariant to the per-path affine map once the box is mapped
    # through it: fold and Pass give the same map. z+ is not (signed x0 under Pass).
    net, x = make_net(), inputs(3, dtype=torch.float64)
    z = {
        m: lrp.explain(net, x, "zbox_zplus_epsilon", dtype=torch.float64, input_norm=m)
        for m in MODES
    }
    np.testing.assert_allclose(
        z["fold"].relevance,
        z["pass"].relevance,
        rtol=1e-9,
        atol=1e-12 * np.abs(z["fold"].relevance).max(),
    )
    p = {m: lrp.explain(net, x, "zplus_epsilon", dtype=torch.float64, input_norm=m) for m in MODES}
    assert not np.allclose(p["fold"].relevance, p["pass"].relevance, rtol=1e-3)


def test_zbox_under_pass_needs_the_model_to_map_its_box():
    spec = lrp.COMPOSITES["zbox_zplus_epsilon"]
    with pytest.raises(ValueError, match="needs the model"):
        spec.composite(input_norm="pass")
    net = make_net(dtype=torch.float64)
    p = spec.rule_parameters(net, "pass")
    s = net.input_norm.weight / torch.sqrt(net.input_norm.running_var + net.input_norm.eps)
    t = net.input_norm.bias - net.input_norm.running_mean * s
    torch.testing.assert_close(p["low"][0, :, 0], torch.minimum(t, t + s * lrp.ZBOX_HIGH))
    torch.testing.assert_close(p["high"][0, :, 0], torch.maximum(t, t + s * lrp.ZBOX_HIGH))
    fold = spec.rule_parameters(net, "fold")
    assert fold["high"].dtype == torch.float64 and float(fold["high"]) == lrp.ZBOX_HIGH


def test_zbox_warns_outside_its_box():
    net, x = make_net(), inputs(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrp.explain(net, x, "zbox_zplus_epsilon")
    with pytest.warns(UserWarning, match="outside the z-box"):
        lrp.explain(net, x - 1.0, "zbox_zplus_epsilon")
    with pytest.warns(UserWarning, match="outside the z-box"):
        lrp.explain(net, x, "zbox_zplus_epsilon", params={"high": 1.0})


def test_flat_first_layer_would_erase_the_path_axis():
    # Why the z+ variant uses the z-box, not zennit's flat rule: flat spreads each
    # conv1 unit's relevance evenly over its inputs, and conv1's inputs are the paths,
    # so every path gets the same relevance in each frame.
    net, x = make_net(dtype=torch.float64), inputs(2, dtype=torch.float64)
    comp = EpsilonPlusFlat(canonizers=[lrp.InputNormFold(), SequentialMergeBatchNorm()])
    xg = x.clone().requires_grad_(True)
    with comp.context(net) as m:
        out = m(xg)
        (rel,) = torch.autograd.grad(out, xg, grad_outputs=torch.eye(5)[out.argmax(1)].double())
    rel = rel.numpy()
    assert np.abs(rel.std(axis=1)).max() < 1e-12 * np.abs(rel).max()
    zb = lrp.explain(net, x, "zbox_zplus_epsilon", top="onehot").relevance
    assert zb.std(axis=1).max() > 1e-3 * np.abs(zb).max()


# --- canonizer ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_forward_order_merges_three_batch_norms(mode):
    net = make_net()
    assert lrp.count_conv_bn_pairs(net) == 3
    e = lrp.explain(net, inputs(), "epsilon", input_norm=mode)
    assert (e.n_merged_batchnorms, e.n_conv_bn_pairs) == (3, 3)


@pytest.mark.parametrize("mode", MODES)
def test_batch_norms_first_merges_nothing_and_raises(mode):
    net = make_net(order=BN_FIRST)
    assert lrp.count_conv_bn_pairs(net) == 3  # traced in forward order, not assignment
    # Pin zennit: pairing by assignment order finds no conv followed by a batch norm.
    instances = SequentialMergeBatchNorm().apply(net)
    assert instances == []
    for name in COMPOSITES:
        with pytest.raises(lrp.CanonizerError, match="merged 0 batch norm"):
            lrp.explain(net, inputs(), name, input_norm=mode)


@pytest.mark.parametrize("mode", MODES)
def test_convs_first_is_reported(mode):
    net = make_net(order=CONVS_FIRST)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    # Pin zennit: conv3 is paired with the input batch norm (C channels) and the
    # broadcast fails half-way (after adding a bias to conv3). After the fold the
    # input norm is an identity: nothing merges.
    probe = make_net(order=CONVS_FIRST)
    with pytest.raises(RuntimeError):
        SequentialMergeBatchNorm().apply(probe)
    assert probe.conv3.bias is not None  # zennit leaves that copy modified
    with pytest.raises(lrp.CanonizerError, match="forward order"):
        lrp.explain(net, inputs(), "zplus_epsilon", input_norm=mode)
    assert net.conv3.bias is None  # explain works on a copy
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fold_needs_a_foldable_first_layer():
    net = make_net()
    net.input_norm = nn.Identity()  # nothing to fold
    with pytest.raises(lrp.CanonizerError, match="fold"):
        lrp.explain(net, inputs(), "epsilon")
    lrp.explain(net, inputs(), "epsilon", input_norm="pass")  # Pass needs nothing


def test_merged_logit_shift_is_small_but_not_zero():
    net = make_net()
    x = inputs(8)
    shift64 = lrp.merged_logit_shift(net, x, dtype=torch.float64)
    assert 0 < shift64 < 1e-5  # eps kept by the reset batch norms
    assert lrp.merged_logit_shift(net, x) < 1e-4


# --- explain() contract ------------------------------------------------------------------


def _snapshot(net):
    return (
        {k: v.detach().clone() for k, v in net.state_dict().items()},
        net.training,
        [m.training for m in net.modules()],
        {n: p.requires_grad for n, p in net.named_parameters()},
        next(net.parameters()).dtype,
        next(net.parameters()).device,
        [type(m) for m in net.modules()],
    )


def _no_hooks(net):
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in net.modules()
    )


@pytest.mark.parametrize("name", COMPOSITES)
@pytest.mark.parametrize("fn", ["explain", "conservation"])
def test_model_left_exactly_as_it_was(name, fn):
    net = make_net().train()  # train mode must be restored
    before = _snapshot(net)
    e = getattr(lrp, fn)(net, inputs(), name, dtype=torch.float64)
    after = _snapshot(net)
    assert before[0].keys() == after[0].keys()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]
    assert _no_hooks(net)
    assert net.conv1.bias is None
    # Dropout off during the pass: same answer as from an eval-mode model.
    e_eval = lrp.explain(make_net(), inputs(), name, dtype=torch.float64)
    np.testing.assert_array_equal(e.relevance, e_eval.relevance)


def test_explanation_fields_and_default_target():
    net = make_net()
    x = inputs(5)
    e = lrp.explain(net, x, "epsilon")
    with torch.no_grad():
        logits = net(x).numpy()
    assert e.relevance.shape == (5, N_PATHS, FRAMES) and e.relevance.dtype == np.float32
    np.testing.assert_array_equal(e.logits, logits)
    np.testing.assert_array_equal(e.target, logits.argmax(1))
    assert (e.composite, e.rule, e.top, e.input_norm) == ("epsilon", "epsilon", "logit", "fold")
    np.testing.assert_allclose(e.top_relevance, logits[np.arange(5), e.target], rtol=1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.top = "x"
    sub = e.take([3, 1])
    np.testing.assert_array_equal(sub.relevance, e.relevance[[3, 1]])
    np.testing.assert_array_equal(sub.target, e.target[[3, 1]])
    np.testing.assert_allclose(sub.input_share, e.input_share[[3, 1]])


def test_rule_is_the_former_name_of_composite():
    net, x = make_net(), inputs(2)
    a = lrp.explain(net, x, "epsilon_zplus", dtype=torch.float64)
    b = lrp.explain(net, x, rule="epsilon_zplus", dtype=torch.float64)
    c = lrp.explain(net, x, composite="epsilon_zplus", dtype=torch.float64)
    np.testing.assert_array_equal(a.relevance, b.relevance)
    np.testing.assert_array_equal(a.relevance, c.relevance)
    with pytest.raises(TypeError):
        lrp.explain(net, x, "epsilon", rule="epsilon")
    with pytest.raises(TypeError):
        lrp.explain(net, x)


def test_target_int_array_and_validation():
    net = make_net()
    x = inputs(3)
    e_int = lrp.explain(net, x, "epsilon", target=2, dtype=torch.float64)
    np.testing.assert_array_equal(e_int.target, [2, 2, 2])
    e_arr = lrp.explain(net, x, "epsilon", target=np.array([0, 4, 2]), dtype=torch.float64)
    np.testing.assert_array_equal(e_arr.target, [0, 4, 2])
    np.testing.assert_array_equal(e_arr.relevance[2], e_int.relevance[2])
    assert not np.allclose(e_arr.relevance[0], e_int.relevance[0])
    with pytest.raises(ValueError):
        lrp.explain(net, x, "epsilon", target=5)
    with pytest.raises(ValueError):
        lrp.explain(net, x, "epsilon", target=[0, 1])
    with pytest.raises(KeyError):
        lrp.explain(net, x, "gamma")
    with pytest.raises(ValueError):
        lrp.explain(net, x, "epsilon", top="softmax")
    with pytest.raises(ValueError):
        lrp.explain(net, x, "epsilon", input_norm="merge")


@pytest.mark.parametrize("name", COMPOSITES)
def test_tops_differ_by_the_logit_and_logit_flips_negative_ones(name):
    net = make_net()
    x = inputs(4)
    with torch.no_grad():
        logits = net(x.double().to(torch.float32)).double()
    # Explain the least likely class: a negative logit for these random networks.
    target = logits.argmin(1).numpy()
    e = {t: lrp.explain(net, x, name, target=target, dtype=torch.float64, top=t) for t in lrp.TOPS}
    np.testing.assert_array_equal(e["onehot"].top_relevance, 1.0)
    f = e["logit"].top_relevance
    assert np.all(f < 0)
    np.testing.assert_allclose(e["abs_logit"].top_relevance, np.abs(f))
    one = e["onehot"].relevance
    tol = dict(rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(e["logit"].relevance, one * f[:, None, None], **tol)
    np.testing.assert_allclose(e["abs_logit"].relevance, one * np.abs(f)[:, None, None], **tol)
    # A negative winning logit reverses the ranking of "logit" maps, not of "abs_logit".
    flat = {t: e[t].relevance.reshape(4, -1) for t in lrp.TOPS}
    np.testing.assert_array_equal(flat["abs_logit"].argmax(1), flat["onehot"].argmax(1))
    np.testing.assert_array_equal(flat["logit"].argmax(1), flat["onehot"].argmin(1))


def test_numpy_and_torch_inputs_and_batching_agree():
    net = make_net()
    x = inputs(7)
    e_t = lrp.explain(net, x, "zplus_epsilon", dtype=torch.float64)
    e_n = lrp.explain(net, x.numpy(), "zplus_epsilon", dtype=torch.float64, batch_size=3)
    assert e_t.relevance.dtype == np.float64
    np.testing.assert_allclose(e_t.relevance, e_n.relevance, rtol=1e-12, atol=1e-15)
    e_32 = lrp.explain(net, x, "zplus_epsilon", device="cpu")
    assert e_32.relevance.dtype == np.float32
    scale = np.abs(e_t.relevance).max()
    assert np.abs(e_32.relevance - e_t.relevance).max() < 1e-4 * scale


def test_empty_batch_and_bad_shapes():
    net = make_net()
    with pytest.raises(ValueError):
        lrp.explain(net, inputs(0), "epsilon")
    with pytest.raises(ValueError):
        lrp.explain(net, torch.zeros(N_PATHS, FRAMES), "epsilon")


def test_time_pool_gives_dead_frames_no_relevance():
    # The time average is the model's own AdaptiveAvgPool1d: every composite gives it
    # an epsilon-type rule (relevance in proportion to each frame's activation), not
    # the gradient of a mean (R / T to every frame, dead ReLU frames included).
    a = torch.tensor([[[0.0, 2.0, 0.0, 6.0]]], dtype=torch.float64, requires_grad=True)
    head = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(1)).double()
    for name in COMPOSITES:
        # (No input norm to fold on this head: the fold canonizer leaves it alone.)
        with lrp.COMPOSITES[name].composite().context(head) as m:
            out = m(a)
            (rel,) = torch.autograd.grad(out, a, grad_outputs=torch.ones_like(out))
        np.testing.assert_allclose(rel[0, 0].numpy(), [0.0, 0.25, 0.0, 0.75], rtol=1e-5)


# --- conservation on zennit's relevances -----------------------------------------------


@pytest.mark.parametrize("name", COMPOSITES)
@pytest.mark.parametrize("mode", MODES)
def test_conservation_budgets_close_at_every_layer(name, mode):
    net, x = make_net(seed=2), inputs(5, seed=3)
    c = lrp.conservation(net, x, name, input_norm=mode, top="onehot")
    e = lrp.explain(net, x, name, input_norm=mode, top="onehot", dtype=torch.float64)
    np.testing.assert_array_equal(c.relevance, e.relevance)  # the same pass as explain
    np.testing.assert_array_equal(c.target, e.target)
    # One budget per leaf, output first, and every layer's books close.
    n_leaves = sum(1 for m in net.modules() if next(m.children(), None) is None)
    assert len(c.budgets) == n_leaves
    assert c.budgets[0].name == "fc2" and c.budgets[-1].name == "input_norm"
    assert c.worst_relative_residual < 1e-13
    assert c.relative_total_residual.max() < 1e-13
    np.testing.assert_allclose(c.budgets[0].relevance_out, c.top_relevance, rtol=1e-15)
    np.testing.assert_allclose(c.budgets[-1].relevance_in, c.relevance_input, rtol=1e-12)
    rules = {b.name: b.rule for b in c.budgets}
    spec = lrp.COMPOSITES[name]
    assert (rules["conv1"], rules["conv2"], rules["fc1"]) == (
        spec.first_layer_rule,
        spec.conv_rule,
        spec.dense_rule,
    )
    assert rules["time_pool"] == "pool" and rules["bn1"] == "pass"
    # The merged batch norms (and the fold) make conv biases: they absorb relevance.
    assert np.abs(c.budget("conv2").absorbed_bias).max() > 1e-3
    np.testing.assert_allclose(c.input_share, e.input_share, rtol=1e-12)
    np.testing.assert_array_equal(c.sign_inverted, c.input_share < 0)
    assert c.sign_inverted_fraction == np.mean(c.input_share < 0)


def test_conservation_accounts_for_the_fold_bias():
    # Under the fold conv1 carries the input norm's shift as its (border-aware) bias,
    # so it absorbs relevance that under Pass it does not (no bias of its own there
    # but bn1's): the two bias shares differ, and both budgets close.
    net, x = make_net(seed=2), inputs(3, seed=3)
    c = {m: lrp.conservation(net, x, "epsilon", input_norm=m) for m in MODES}
    fold, passed = (c[m].budget("conv1") for m in MODES)
    assert np.abs(fold.absorbed_bias - passed.absorbed_bias).max() > 1e-3
    assert max(fold.relative_residual.max(), passed.relative_residual.max()) < 1e-13


class _ScaledEpsilon(Epsilon):
    """A broken rule: the right relevance times 1.1."""

    def __init__(self, epsilon=1e-6):
        super().__init__(epsilon=epsilon)
        reducer = self.reducer
        self.reducer = lambda inputs, gradients: 1.1 * reducer(inputs, gradients)


class _ShiftedEpsilon(Epsilon):
    """A broken rule: the right formula on the wrong activations (shifted by a frame)."""

    def __init__(self, epsilon=1e-6):
        super().__init__(epsilon=epsilon)
        self.input_modifiers = [lambda a: a.roll(1, -1)]


def _broken(conv_rule, declared="epsilon"):
    def factory(*, canonizers, epsilon, stabilizer):
        return LayerMapComposite(
            [
                (Activation, Pass()),
                (BatchNorm, Pass()),
                (AvgPool, Epsilon(stabilizer)),
                (Convolution, conv_rule(epsilon)),
                (nn.Linear, Epsilon(epsilon)),
            ],
            canonizers=canonizers,
        )

    return dataclasses.replace(
        lrp.COMPOSITES["epsilon"],
        name="broken",
        factory=factory,
        first_layer_rule=declared,
        conv_rule=declared,
    )


@pytest.mark.parametrize(
    ("rule", "declared"),
    [(_ScaledEpsilon, "epsilon"), (_ShiftedEpsilon, "epsilon"), (Epsilon, "zplus")],
    ids=["scaled", "wrong-activations", "not-the-declared-rule"],
)
def test_conservation_catches_a_wrong_backward_pass(rule, declared):
    net, x = make_net(seed=2), inputs(4, seed=3)
    good = lrp.conservation(net, x, "epsilon")
    bad = lrp.conservation(net, x, _broken(rule, declared))
    assert good.worst_relative_residual < 1e-13
    assert bad.worst_relative_residual > 1e-3
    worst = {b.name for b in bad.budgets if b.relative_residual.max() > 1e-6}
    assert worst and worst <= {"conv1", "conv2", "conv3"}  # located where it is wrong


def test_bias_free_copy_zeroes_shifts_and_keeps_scales():
    net = make_net()
    free = lrp.bias_free_copy(net)
    for name in ("input_norm", "bn1", "bn2", "bn3"):
        a, b = getattr(net, name), getattr(free, name)
        assert torch.equal(a.weight, b.weight) and torch.equal(a.running_var, b.running_var)
        assert not b.bias.any() and not b.running_mean.any()
    assert not free.fc1.bias.any() and not free.fc2.bias.any()
    assert net.fc1.bias.abs().min() > 0  # the original keeps its biases
    # Positively homogeneous: no constant term anywhere.
    x = inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(free(3 * x), 3 * free(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", COMPOSITES)
@pytest.mark.parametrize("mode", MODES)
def test_bias_free_network_conserves_exactly_as_epsilon_vanishes(name, mode):
    free, x = lrp.bias_free_copy(make_net(seed=4)), inputs(4, seed=5)
    exact = {"epsilon": lrp.VANISHING_EPSILON, "stabilizer": lrp.VANISHING_EPSILON}
    c = lrp.conservation(free, x, name, params=exact, input_norm=mode)
    np.testing.assert_allclose(c.relevance_input, c.top_relevance, rtol=1e-13)
    assert np.abs(c.absorbed).max() < 1e-250
    # With the default epsilon only the 1e-6 stabilisers absorb: close, not exact.
    d = lrp.conservation(free, x, name, input_norm=mode)
    gap = np.abs(d.input_share - 1)
    assert 1e-13 < gap.max() < 1e-3
    np.testing.assert_array_equal([np.abs(b.absorbed_bias).max() for b in d.budgets], 0.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", COMPOSITES)
def test_cuda_matches_cpu(name):
    net = make_net()
    x = inputs(4)
    e_cpu = lrp.explain(net, x, name, dtype=torch.float64)
    e_gpu = lrp.explain(net, x, name, dtype=torch.float64, device="cuda")
    np.testing.assert_allclose(e_gpu.relevance, e_cpu.relevance, rtol=1e-9, atol=1e-12)
    assert next(net.parameters()).device.type == "cpu"
    c = lrp.conservation(net, x, name, device="cuda")
    assert c.worst_relative_residual < 1e-12

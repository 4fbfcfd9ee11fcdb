"""Unit tests of pmt_core.explain.lrp: rule registry, canonizer checks, explain() contract."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from zennit.canonizers import SequentialMergeBatchNorm

from pmt_core.explain import lrp
from pmt_core.model.network import PMTConvNet

torch.set_num_threads(1)

N_PATHS, FRAMES = 40, 32
FORWARD = [
    "input_norm", "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2",
    "conv3", "bn3", "relu3", "dropout", "fc1", "relu4", "fc2",
]  # fmt: skip
BATCH_NORMS = ["input_norm", "bn1", "bn2", "bn3"]
BN_FIRST = BATCH_NORMS + [k for k in FORWARD if k not in BATCH_NORMS]
CONVS_FIRST = ["conv1", "conv2", "conv3"] + [k for k in FORWARD if not k.startswith("conv")]


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
    if order is not None:
        # Same as assigning the modules in this order in __init__.
        net._modules = OrderedDict((k, net._modules[k]) for k in order)
    return net.to(dtype).eval()


def inputs(n=4, seed=1, n_paths=N_PATHS, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_paths, FRAMES, generator=g, dtype=dtype)


# --- registry and hand-computed rules ------------------------------------------------


def test_registry_declares_three_rule_sets_with_provenance():
    assert set(lrp.RULES) == {"epsilon", "epsilon_zplus", "zplus_epsilon"}
    assert (lrp.RULES["epsilon"].conv_rule, lrp.RULES["epsilon"].dense_rule) == (
        "epsilon",
        "epsilon",
    )
    assert lrp.RULES["epsilon_zplus"].dense_rule == "zplus"  # paper's text
    assert lrp.RULES["zplus_epsilon"].conv_rule == "zplus"  # authors' code
    for spec in lrp.RULES.values():
        assert spec.provenance
    assert lrp.EPSILON == lrp.ZPLUS_STABILIZER == lrp.POOL_STABILIZER == 1e-6


def test_register_rule_refuses_duplicates_and_unknown_layer_rules():
    with pytest.raises(ValueError):
        lrp.register_rule("epsilon", conv_rule="epsilon", dense_rule="epsilon", provenance="x")(
            lambda: None
        )
    with pytest.raises(ValueError):
        lrp.register_rule("new", conv_rule="gamma", dense_rule="epsilon", provenance="x")


def _two_layer(rule):
    """Hand example: x = (1, 2); z1 = W1 x + b1 = (-0.5, 3); a1 = (0, 3); f = 6."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([0.5, -1.0]))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0]]))
        net[2].bias.zero_()
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    with lrp.RULES[rule].composite().context(net) as m:
        out = m(x)
        (rel,) = torch.autograd.grad(out, x, grad_outputs=out.detach())  # top = logit
    return out.item(), rel[0].numpy()


@pytest.mark.parametrize("rule", ["epsilon", "zplus_epsilon"])
def test_epsilon_on_dense_layers_by_hand(rule):
    eps = lrp.EPSILON
    f, rel = _two_layer(rule)
    assert f == 6.0
    r_a1 = 3 * 2 * f / (6 + eps)  # fc2: a1_2 w_2 R / (z + eps); a1_1 = 0
    s = r_a1 / (3 + eps)  # fc1, unit 2 (unit 1 has no relevance)
    np.testing.assert_allclose(rel, [1 * 2 * s, 2 * 1 * s], rtol=1e-14)
    # ~ (4, 4): the bias -1 of unit 2 absorbs about -2 of the 6.
    np.testing.assert_allclose(rel, [4.0, 4.0], rtol=1e-5)


def test_zplus_on_dense_layers_by_hand():
    eps = lrp.ZPLUS_STABILIZER
    f, rel = _two_layer("epsilon_zplus")
    r_a1 = 3 * 2 * f / (6 + eps)  # fc2: all positive, z+ = z
    # fc1 unit 2: w+ = (2, 1), b+ = 0, z+ = 2 + 2 = 4 (the negative bias is dropped).
    s = r_a1 / (4 + eps)
    np.testing.assert_allclose(rel, [1 * 2 * s, 2 * 1 * s], rtol=1e-14)
    np.testing.assert_allclose(rel.sum(), f, rtol=1e-5)  # z+ with b+ = 0 conserves


# --- canonizer -------------------------------------------------------------------------


def test_forward_order_merges_three_batch_norms():
    net = make_net()
    assert lrp.count_conv_bn_pairs(net) == 3
    e = lrp.explain(net, inputs(), "epsilon")
    assert (e.n_merged_batchnorms, e.n_conv_bn_pairs) == (3, 3)


def test_batch_norms_first_merges_nothing_and_raises():
    net = make_net(order=BN_FIRST)
    assert lrp.count_conv_bn_pairs(net) == 3  # traced in forward order, not assignment
    # Pin zennit: pairing by assignment order finds no conv followed by a batch norm.
    instances = SequentialMergeBatchNorm().apply(net)
    assert instances == []
    for rule in lrp.RULES:
        with pytest.raises(lrp.CanonizerError, match="merged 0 batch norm"):
            lrp.explain(net, inputs(), rule)


def test_convs_first_zennit_raises_and_explain_reports_it():
    net = make_net(order=CONVS_FIRST)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    # Pin zennit: conv3 is paired with the input batch norm (C channels) and the
    # broadcast fails half-way (after adding a bias to conv3).
    probe = make_net(order=CONVS_FIRST)
    with pytest.raises(RuntimeError):
        SequentialMergeBatchNorm().apply(probe)
    assert probe.conv3.bias is not None  # zennit leaves that copy modified
    with pytest.raises(lrp.CanonizerError, match="forward order"):
        lrp.explain(net, inputs(), "zplus_epsilon")
    assert net.conv3.bias is None  # explain works on a copy
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_merged_logit_shift_is_small_but_not_zero():
    net = make_net()
    x = inputs(8)
    shift64 = lrp.merged_logit_shift(net, x, dtype=torch.float64)
    assert 0 < shift64 < 1e-5  # eps kept by the reset batch norms
    assert lrp.merged_logit_shift(net, x) < 1e-4


# --- explain() contract ----------------------------------------------------------------


def _snapshot(net):
    return (
        {k: v.detach().clone() for k, v in net.state_dict().items()},
        net.training,
        [m.training for m in net.modules()],
        {n: p.requires_grad for n, p in net.named_parameters()},
        next(net.parameters()).dtype,
        next(net.parameters()).device,
    )


def _no_hooks(net):
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in net.modules()
    )


@pytest.mark.parametrize("rule", sorted(lrp.RULES))
def test_model_left_exactly_as_it_was(rule):
    net = make_net().train()  # train mode must be restored
    state, training, flags, req, dtype, device = _snapshot(net)
    e = lrp.explain(net, inputs(), rule, dtype=torch.float64)
    state2, training2, flags2, req2, dtype2, device2 = _snapshot(net)
    assert state.keys() == state2.keys()
    assert all(torch.equal(state[k], state2[k]) for k in state)
    assert (training2, flags2, req2, dtype2, device2) == (training, flags, req, dtype, device)
    assert _no_hooks(net)
    assert net.conv1.bias is None
    # Dropout off during the pass: same answer as from an eval-mode model.
    e_eval = lrp.explain(make_net(), inputs(), rule, dtype=torch.float64)
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
    assert (e.rule, e.top) == ("epsilon", "logit")
    np.testing.assert_allclose(e.top_relevance, logits[np.arange(5), e.target], rtol=1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.rule = "x"


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


@pytest.mark.parametrize("rule", sorted(lrp.RULES))
def test_onehot_and_logit_tops_differ_exactly_by_the_logit(rule):
    net = make_net()
    x = inputs(4)
    e_logit = lrp.explain(net, x, rule, dtype=torch.float64)
    e_one = lrp.explain(net, x, rule, dtype=torch.float64, top="onehot")
    np.testing.assert_array_equal(e_one.top_relevance, 1.0)
    expected = e_one.relevance * e_logit.top_relevance[:, None, None]
    np.testing.assert_allclose(e_logit.relevance, expected, rtol=1e-10, atol=1e-14)


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


def test_lrp_view_reproduces_the_model_logits():
    """explain() swaps x.mean(-1) for an AdaptiveAvgPool1d; logits must not move."""
    net = make_net(dtype=torch.float64)
    x = inputs(3, dtype=torch.float64)
    e = lrp.explain(net, x, "epsilon")
    with torch.no_grad():
        np.testing.assert_allclose(e.logits, net(x).numpy(), rtol=0, atol=0)
        view = lrp._LRPView(net)
        np.testing.assert_allclose(view(x).numpy(), e.logits, rtol=1e-13, atol=1e-13)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    net = make_net()
    x = inputs(4)
    e_cpu = lrp.explain(net, x, "zplus_epsilon", dtype=torch.float64)
    e_gpu = lrp.explain(net, x, "zplus_epsilon", dtype=torch.float64, device="cuda")
    np.testing.assert_allclose(e_gpu.relevance, e_cpu.relevance, rtol=1e-9, atol=1e-12)
    assert next(net.parameters()).device.type == "cpu"

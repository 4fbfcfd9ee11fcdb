"""PMTConvNet: shapes, parameter counts (method.md section 2), its layer declaration."""

import pytest
import torch
from torch import nn

from pmt_core.model.network import PMTConvNet, count_trainable_parameters


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("n_paths", "expected"),
    [(1200, 2_068_289), (74, 10_383)],
    ids=["s1s2", "s1"],
)
def test_trainable_parameters_match_paper(n_paths, expected):
    # The paper's "2.1 M" and "10.3 K"; exact values from the authors' architecture.
    assert count_trainable_parameters(PMTConvNet(n_paths, 5)) == expected


def test_state_dict_names_are_the_checkpoint_contract():
    # Checkpoints store model.state_dict(): these names must never change (the time
    # pool and the flatten module have no parameters or buffers).
    per_bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = (
        [f"input_norm.{k}" for k in per_bn]
        + [f"{layer}.{k}" for i in (1, 2, 3) for layer, keys in
           ((f"conv{i}", ("weight",)), (f"bn{i}", per_bn)) for k in keys]
        + ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    )  # fmt: skip
    assert list(PMTConvNet(48).state_dict()) == expected


def test_forward_order_is_declared_once_and_checked():
    net = PMTConvNet(48)
    # Assigned in declared order (zennit's canonizer pairs by assignment order).
    assert tuple(net._modules) == PMTConvNet.FORWARD
    with_params = tuple(
        n for n in PMTConvNet.FORWARD if any(True for _ in getattr(net, n).parameters())
    )
    assert with_params == PMTConvNet.PARAMETER_LAYERS
    assert PMTConvNet.PARAMETER_LAYERS[0] == "input_norm"
    # The global time average is a module zennit can hook, right after relu3.
    i = PMTConvNet.FORWARD.index("time_pool")
    assert PMTConvNet.FORWARD[i - 1] == "relu3"
    assert isinstance(net.time_pool, nn.AdaptiveAvgPool1d) and net.time_pool.output_size == 1

    class Undeclared(PMTConvNet):
        FORWARD = tuple(n for n in PMTConvNet.FORWARD if n != "dropout")

    with pytest.raises(RuntimeError, match="FORWARD"):
        Undeclared(48)

    class Misdeclared(PMTConvNet):
        PARAMETER_LAYERS = tuple(n for n in PMTConvNet.PARAMETER_LAYERS if n != "bn2")

    with pytest.raises(RuntimeError, match="PARAMETER_LAYERS"):
        Misdeclared(48)


def test_forward_is_the_authors_network():
    # Written out by hand, with the functional time mean of the earlier code: the
    # module version must give the same logits.
    torch.manual_seed(0)
    m = PMTConvNet(48).double().eval()
    with torch.no_grad():
        for bn in (m.input_norm, m.bn1, m.bn2, m.bn3):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.2, 2.0)
    x = torch.randn(3, 48, 32, dtype=torch.float64)
    with torch.no_grad():
        h = m.input_norm(x)
        h = m.pool1(m.relu1(m.bn1(m.conv1(h))))
        h = m.pool2(m.relu2(m.bn2(m.conv2(h))))
        h = m.relu3(m.bn3(m.conv3(h))).mean(dim=-1)
        torch.testing.assert_close(m.features(x), h, rtol=1e-14, atol=1e-14)
        expected = m.fc2(m.relu4(m.fc1(h)))
        torch.testing.assert_close(m(x), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(("n_paths", "n_classes", "frames"), [(74, 5, 32), (40, 2, 32), (40, 3, 7)])
def test_logit_and_feature_shapes(n_paths, n_classes, frames):
    torch.manual_seed(0)
    model = PMTConvNet(n_paths, n_classes).eval()
    x = torch.randn(4, n_paths, frames)
    assert model(x).shape == (4, n_classes)
    r = n_paths // 4
    assert model.features(x).shape == (4, 2 * r)


@pytest.mark.parametrize("shape", [(4, 74), (4, 73, 32), (74, 32), (1, 4, 74, 32)])
def test_bad_input_shapes_raise(shape):
    model = PMTConvNet(74, 5).eval()
    with pytest.raises(ValueError, match="expected input of shape"):
        model(torch.randn(*shape))


@pytest.mark.parametrize(("n_paths", "n_classes"), [(7, 5), (74, 1)])
def test_bad_constructor_arguments_raise(n_paths, n_classes):
    with pytest.raises(ValueError):
        PMTConvNet(n_paths, n_classes)


def test_predict_proba_sums_to_one():
    torch.manual_seed(0)
    model = PMTConvNet(74, 5).eval()
    x = 3 * torch.randn(6, 74, 32)
    proba = model.predict_proba(x)
    assert proba.shape == (6, 5)
    assert torch.all(proba >= 0)
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(6))
    # Probabilities rank like the logits: softmax lives outside the forward pass.
    assert torch.equal(proba.argmax(1), model(x).argmax(1))


def test_eval_mode_is_deterministic_and_batch_independent():
    # Eval mode (running batch-norm statistics, no dropout) scores each example alone.
    torch.manual_seed(0)
    model = PMTConvNet(74, 5).eval()
    x = torch.randn(5, 74, 32)
    torch.testing.assert_close(model(x)[:2], model(x[:2]), rtol=1e-5, atol=1e-6)

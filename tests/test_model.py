"""PMTConvNet: shapes, parameter counts (method.md section 2), input checks."""

import pytest
import torch

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

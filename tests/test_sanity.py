"""pmt_core.explain.sanity on a tiny PMTConvNet with a local gradient x input explainer.

The explainer is passed in as ``explain_fn`` so that these tests do not depend on
pmt_core.explain.lrp (zennit); one test runs the real LRP when it is importable.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from pmt_core.explain import sanity
from pmt_core.model import randomisation
from pmt_core.model.network import PMTConvNet

N_PATHS, N_FRAMES, N_CLASSES = 32, 32, 3


@pytest.fixture(scope="module")
def features() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    # log1p-compressed features are non-negative, a few units at most
    return torch.log1p(torch.rand(24, N_PATHS, N_FRAMES, generator=gen) * 5)


@pytest.fixture(scope="module")
def model(features) -> PMTConvNet:
    torch.manual_seed(0)
    net = PMTConvNet(N_PATHS, N_CLASSES)
    net.train()
    with torch.no_grad():  # populate batch-norm running statistics
        for _ in range(5):
            net(features)
    return net.eval()


def grad_x_input(model, features, rule, target=None, **_):
    """Gradient x input of the target logit (Shrikumar et al. 2016); ignores ``rule``."""
    x = torch.as_tensor(features, dtype=torch.float32).clone().requires_grad_(True)
    out = model.eval()(x)
    tgt = out.argmax(1) if target is None else torch.as_tensor(np.asarray(target))
    (grad,) = torch.autograd.grad(out.gather(1, tgt[:, None]).sum(), x)
    return (grad * x).detach().numpy()


def input_only(model, features, rule, target=None, **_):
    """An "explanation" that ignores the model: the failure Adebayo et al. test for."""
    return torch.as_tensor(features).numpy().copy()


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_reinitialise_is_seeded_and_in_default_range():
    a, b = nn.Linear(10, 4), nn.Linear(10, 4)
    randomisation.reinitialise(a, 3)
    randomisation.reinitialise(b, 3)
    torch.testing.assert_close(a.weight, b.weight)
    torch.testing.assert_close(a.bias, b.bias)
    assert a.weight.abs().max() <= 1 / np.sqrt(10)
    c = nn.Conv1d(4, 6, 5, bias=False)
    before = c.weight.clone()
    randomisation.reinitialise(c, 4)
    assert not torch.equal(before, c.weight)
    assert c.weight.abs().max() <= 1 / np.sqrt(4 * 5)
    with pytest.raises(TypeError):
        randomisation.reinitialise(nn.ReLU(), 0)


def test_reinitialise_batch_norm_redraws_affine_and_resets_statistics():
    bn, twin = nn.BatchNorm1d(50), nn.BatchNorm1d(50)
    for m in (bn, twin):
        m.train()
        m(torch.randn(8, 50) * 3 + 2)  # learn some running statistics
    randomisation.reinitialise(bn, 7)
    randomisation.reinitialise(twin, 7)
    torch.testing.assert_close(bn.weight, twin.weight)
    # Re-drawn from U(-1, 1) (fan_in 1), not left at, or reset to, the constant (1, 0).
    for p in (bn.weight, bn.bias):
        assert p.abs().max() <= 1 and p.std() > 0.3
    torch.testing.assert_close(bn.running_mean, torch.zeros(50))
    torch.testing.assert_close(bn.running_var, torch.ones(50))
    assert int(bn.num_batches_tracked) == 0
    other = nn.BatchNorm1d(50)
    randomisation.reinitialise(other, 8)
    assert not torch.equal(other.weight, bn.weight)


def test_cascade_covers_every_learned_layer_output_side_first(model):
    layers = randomisation.CASCADE_LAYERS
    assert layers == tuple(reversed(PMTConvNet.PARAMETER_LAYERS))
    assert layers == randomisation.cascade_layers(model)
    learned = {n for n, m in model.named_modules()
               if n and any(True for _ in m.parameters(recurse=False))}
    assert set(layers) == learned
    assert (layers[0], layers[-1]) == ("fc2", "input_norm")
    assert layers.index("bn3") < layers.index("conv3")  # output side first
    with pytest.raises(ValueError, match="PARAMETER_LAYERS"):
        randomisation.cascade_layers(nn.Linear(2, 2))


def test_predicted_target(model, features):
    np.testing.assert_array_equal(
        sanity.predicted_target(model, features), model(features).argmax(1).numpy()
    )


def test_cascade_model_untouched_and_targets_fixed(model, features):
    before = _state(model)
    seen = []

    def recording(m, x, rule, target=None, **kw):
        seen.append(np.asarray(target).copy())
        return grad_x_input(m, x, rule, target)

    result = sanity.cascading_randomisation(model, features, "any", seed=1, explain_fn=recording)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    stages = len(randomisation.CASCADE_LAYERS)
    assert stages == 9  # 3 conv, 4 batch norms, 2 dense layers, each its own stage
    assert result.rank_correlation.shape == (stages, len(features))
    assert result.layers == randomisation.CASCADE_LAYERS
    assert result.stage_names[:3] == ("fc2", "+fc1", "+bn3")
    predicted = sanity.predicted_target(model, features)
    assert len(seen) == 1 + stages  # reference + stages, all with the ORIGINAL prediction
    for t in seen:
        np.testing.assert_array_equal(t, predicted)
    np.testing.assert_array_equal(result.target, predicted)


def test_cascade_randomises_the_input_norm_last(model, features):
    # At the final stage no learned layer survives, the input batch norm included:
    # its running statistics are back to their initial values (audit m5).
    states = []

    def recording(m, x, rule, target=None, **kw):
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return grad_x_input(m, x, rule, target)

    sanity.cascading_randomisation(model, features, "any", seed=1, explain_fn=recording)
    trained, final = states[0], states[-1]
    for name in PMTConvNet.PARAMETER_LAYERS:
        assert not torch.equal(trained[f"{name}.weight"], final[f"{name}.weight"]), name
    torch.testing.assert_close(final["input_norm.running_mean"], torch.zeros(N_PATHS))
    # Before the last stage the input norm is still the trained one.
    torch.testing.assert_close(states[-2]["input_norm.weight"], trained["input_norm.weight"])


def test_cascade_detects_model_independent_maps(model, features):
    result = sanity.cascading_randomisation(model, features, "x", explain_fn=input_only)
    np.testing.assert_allclose(result.mean, 1.0)
    np.testing.assert_allclose(result.abs_mean, 1.0)


def test_cascade_mirrored_maps_read_as_unchanged_in_magnitude(model, features):
    # A map whose sign flips at every stage but whose magnitudes ignore the weights:
    # a signed rho of -1 alone would look "changed"; |rho| and the |map| rho do not.
    calls = []

    def flipping(model, features, rule, target=None, **_):
        calls.append(None)
        sign = -1.0 if len(calls) > 1 else 1.0  # the first call is the trained reference
        return sign * torch.as_tensor(features).numpy()

    result = sanity.cascading_randomisation(model, features, "x", explain_fn=flipping)
    np.testing.assert_allclose(result.mean, -1.0)
    np.testing.assert_allclose(result.abs_mean, 1.0)


def test_cascade_gradient_x_input_decorrelates(model, features):
    result = sanity.cascading_randomisation(model, features, "x", seed=0, explain_fn=grad_x_input)
    assert np.all(np.abs(result.rank_correlation) <= 1 + 1e-12)
    assert result.mean[-1] < 0.9
    assert np.all(result.n_undefined == 0)


def test_cascade_is_seeded(model, features):
    a = sanity.cascading_randomisation(model, features, "x", seed=5, explain_fn=grad_x_input)
    b = sanity.cascading_randomisation(model, features, "x", seed=5, explain_fn=grad_x_input)
    np.testing.assert_array_equal(a.rank_correlation, b.rank_correlation)


def test_cascade_rejects_mismatched_reference(model, features):
    class Ref:
        relevance = np.zeros((len(features), N_PATHS, N_FRAMES))
        target = np.full(len(features), 99)

    with pytest.raises(ValueError, match="other targets"):
        sanity.cascading_randomisation(model, features, "x", explain_fn=grad_x_input,
                                       reference=Ref())
    with pytest.raises(ValueError, match="no layer"):
        sanity.cascading_randomisation(model, features, "x", explain_fn=grad_x_input,
                                       layers=("fc9",))


def test_real_lrp_if_present(model, features):
    lrp = pytest.importorskip("pmt_core.explain.lrp", reason="zennit not importable")
    rule = next(iter(lrp.COMPOSITES))
    result = sanity.cascading_randomisation(copy.deepcopy(model), features[:6], rule, seed=0,
                                            explain_fn=lrp.explain)
    assert result.rank_correlation.shape == (len(randomisation.CASCADE_LAYERS), 6)
    assert np.all(np.isfinite(result.mean) | (result.n_undefined == 6))

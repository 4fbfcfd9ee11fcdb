"""Replicates trained together (ReplicateEnsemble, train_replicates) vs one by one.

What is pinned, and why no more: training amplifies rounding, and the batched
(grouped) kernels of the ensemble round differently from the plain ones, so after
many epochs an ensemble replicate and ``train_model`` with the same seed are two
draws of one training, not equal weights. What is attainable and pinned here:

* forward passes agree to float32 rounding (<= 1e-6 relative);
* one epoch (3 steps here) of the ensemble equals ``train_model`` per seed, dropout
  on or off (on the CPU the ensemble draws ``train_model``'s dropout masks), to
  ``EPOCH_RTOL``. Measured on the 2-core CPU runner over 32-64 paths, 3-11 steps,
  dropout 0 / 0.5, clipping at 3 / 0.01: per-tensor ||delta|| / ||w|| <= 1.3e-5
  and max |delta| / max |w| <= 3.7e-5, float32. A wrong seed gives ~1 (checked);
* clipping, early stopping and randomness are per replicate;
* the same seeds give bit-identical weights; "sequential" is ``train_model`` exactly.
"""

import functools

import numpy as np
import pytest
import torch

from pmt_core.model import replicates, training
from pmt_core.model.config import TrainingConfig
from pmt_core.model.ensemble import ReplicateEnsemble
from pmt_core.model.metrics import macro_accuracy
from pmt_core.model.network import PMTConvNet
from pmt_core.model.replicates import AUTO_ENSEMBLE_MAX_PATHS, choose_strategy, train_replicates
from pmt_core.model.training import predict_logits, train_model

N_PATHS, N_FRAMES, N_CLASSES = 32, 32, 5
#: Ensemble vs train_model after one epoch: relative to each tensor's norm and to
#: its largest entry. About 3x the largest value measured (see the module docstring).
EPOCH_RTOL = 1e-4
#: Forward passes of the same weights: float32 rounding of reordered sums.
FORWARD_RTOL = 1e-6
#: Three steps per epoch at the authors' batch of 32.
FAST = TrainingConfig(max_epochs=1, patience=5, warmup_epochs=1)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def separable(n_per_class, seed, bump=2.0, n_paths=N_PATHS, n_classes=N_CLASSES):
    """Noise where class k has a bump on its own band of paths."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_per_class * n_classes, n_paths, N_FRAMES)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    band = n_paths // n_classes
    for k in range(n_classes):
        x[y == k, k * band : (k + 1) * band] += bump
    return x, y


NAMES = tuple(f"class{k}" for k in range(N_CLASSES))


@pytest.fixture(scope="module")
def data():
    x, y = separable(20, seed=0)  # 100 examples: 3 steps of 32
    xv, yv = separable(8, seed=1)
    return x, y, xv, yv


def replicate_models(seeds, n_paths=N_PATHS):
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(PMTConvNet(n_paths, N_CLASSES))
    return models


def relative_differences(a: dict, b: dict) -> tuple[float, float]:
    """Worst per-tensor ||a - b|| / ||b|| and max |a - b| / max |b| over float tensors."""
    by_norm, by_max = 0.0, 0.0
    for key, reference in b.items():
        if not reference.is_floating_point():
            assert torch.equal(a[key], reference), key
            continue
        delta = (a[key] - reference).abs()
        by_norm = max(by_norm, float(delta.norm() / reference.norm().clamp_min(1e-30)))
        by_max = max(by_max, float(delta.max() / reference.abs().max().clamp_min(1e-30)))
    return by_norm, by_max


# --- the batched model --------------------------------------------------------------


def test_eval_forward_equals_each_replicate():
    models = replicate_models([0, 1, 2])
    generator = torch.Generator().manual_seed(5)
    for model in models:  # non-trivial running statistics, different per replicate
        for buffer in model.buffers():
            if buffer.is_floating_point():
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
        model.eval()
    x = torch.randn(40, N_PATHS, N_FRAMES, generator=generator)
    ensemble = ReplicateEnsemble(models, x[:2])
    logits = ensemble.forward_eval(x, batch_size=16)  # chunks, as predict_logits does
    assert logits.shape == (3, 40, N_CLASSES)
    for r, model in enumerate(models):
        with torch.no_grad():
            expected = model(x)
        torch.testing.assert_close(logits[r], expected, rtol=FORWARD_RTOL, atol=FORWARD_RTOL)


def test_train_forward_uses_per_replicate_batches_statistics_and_masks():
    models = replicate_models([0, 1])
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, N_PATHS, N_FRAMES, generator=generator)
    x[1] = 3 * x[1] + 1  # replicate 1's batch has other statistics
    ensemble = ReplicateEnsemble(models, x[0, :2])
    # Each replicate's dropout generator holds the global state its model will draw from.
    states = [torch.Generator().manual_seed(10 + r).get_state() for r in range(2)]
    dropout_generators = []
    for state in states:
        g = torch.Generator()
        g.set_state(state)
        dropout_generators.append(g)
    masks = ensemble.draw_dropout_masks(dropout_generators, 16, torch.device("cpu"))
    logits = ensemble.forward_train(x, masks)
    for r, model in enumerate(models):
        model.train()
        torch.set_rng_state(states[r])  # train mode: nn.Dropout draws from here
        expected = model(x[r])
        torch.testing.assert_close(logits[r], expected, rtol=FORWARD_RTOL, atol=FORWARD_RTOL)
        # Running statistics: updated from replicate r's own batch, slice r only.
        for name, buffer in model.named_buffers():
            torch.testing.assert_close(ensemble.buffers[name][r], buffer, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(ensemble.buffers["input_norm.running_mean"][0],
                              ensemble.buffers["input_norm.running_mean"][1])


def test_clipping_is_per_replicate():
    models = replicate_models([0, 1])
    ensemble = ReplicateEnsemble(models, torch.zeros(2, N_PATHS, N_FRAMES))
    generator = torch.Generator().manual_seed(0)
    for p in ensemble.params.values():
        p.grad = torch.randn(p.shape, generator=generator)
        p.grad[0] *= 1e4  # replicate 0: a huge gradient
    # Replicate 1: scaled to a total norm of 2, under the bound: clipping must leave it.
    norm_1 = torch.linalg.vector_norm(torch.stack([p.grad[1].norm()
                                                   for p in ensemble.params.values()]))
    for p in ensemble.params.values():
        p.grad[1] *= 2.0 / norm_1
    raw = {n: p.grad.clone() for n, p in ensemble.params.items()}
    norms = ensemble.clip_grad_norm_(3.0)
    assert norms[0] > 1e4 and norms[1] == pytest.approx(2.0, rel=1e-5)
    after = [torch.linalg.vector_norm(torch.stack([p.grad[r].norm() for p in
                                                   ensemble.params.values()]))
             for r in range(2)]
    assert float(after[0]) == pytest.approx(3.0, rel=1e-5)
    for name, p in ensemble.params.items():
        assert torch.equal(p.grad[1], raw[name][1]), name  # exactly unscaled
    # And each slice equals clip_grad_norm_ on that replicate alone.
    for r, model in enumerate(models):
        for name, p in model.named_parameters():
            p.grad = raw[name][r].clone()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        for name, p in model.named_parameters():
            torch.testing.assert_close(ensemble.params[name].grad[r], p.grad, rtol=1e-6, atol=0)


def test_keep_narrows_parameters_buffers_and_optimizer_state():
    models = replicate_models([0, 1, 2])
    ensemble = ReplicateEnsemble(models, torch.zeros(2, N_PATHS, N_FRAMES))
    optimizer = torch.optim.AdamW(list(ensemble.params.values()))
    for p in ensemble.params.values():
        p.grad = torch.ones_like(p)
    # A graph still alive across the narrowing must not break the next backward.
    stale = ensemble.forward_train(torch.randn(3, 4, N_PATHS, N_FRAMES))
    optimizer.step()
    before = {n: p.detach().clone() for n, p in ensemble.params.items()}
    moments = {n: optimizer.state[p]["exp_avg_sq"].clone() for n, p in ensemble.params.items()}
    with pytest.raises(RuntimeError, match="zero_grad"):
        ensemble.keep([2, 0], optimizer)
    optimizer.zero_grad(set_to_none=True)
    ensemble.keep([2, 0], optimizer)
    assert ensemble.size == 2
    assert [id(p) for p in optimizer.param_groups[0]["params"]] == [
        id(p) for p in ensemble.params.values()]
    for name, p in ensemble.params.items():
        assert torch.equal(p, before[name][[2, 0]])
        assert torch.equal(optimizer.state[p]["exp_avg_sq"], moments[name][[2, 0]])
    assert len(optimizer.state) == len(ensemble.params)
    assert ensemble.buffers["bn1.running_var"].shape[0] == 2
    # The optimiser steps the narrowed tensors, whose gradients come from a new graph.
    ensemble.forward_train(torch.randn(2, 4, N_PATHS, N_FRAMES)).sum().backward()
    optimizer.step()
    assert all(p.grad.shape[0] == 2 for p in ensemble.params.values())
    del stale
    state = ensemble.state_dict_of(0)
    assert set(state) == set(models[0].state_dict())


def test_ensemble_refuses_replicates_of_different_architectures():
    with pytest.raises(ValueError, match="replicate 1 has another architecture"):
        ReplicateEnsemble([PMTConvNet(32, 5), PMTConvNet(40, 5)], torch.zeros(2, 32, 8))


# --- training: equivalence with train_model -------------------------------------------


@pytest.mark.parametrize("dropout", [0.0, 0.5], ids=["dropout-off", "dropout-on"])
@pytest.mark.parametrize("clip", [3.0, 0.01], ids=["clip-3", "clip-always"])
def test_one_epoch_equals_train_model_per_seed(data, monkeypatch, dropout, clip):
    # The sequential strategy builds its networks through training.PMTConvNet, the
    # ensemble through replicates.PMTConvNet: both get the same dropout.
    for module in (training, replicates):
        monkeypatch.setattr(module, "PMTConvNet", functools.partial(PMTConvNet, dropout=dropout))
    config = TrainingConfig(**{**FAST.to_dict(), "grad_clip_norm": clip})
    seeds = [0, 1, 2]
    together = train_replicates(*data, NAMES, config, seeds, device="cpu", progress=False,
                                strategy="ensemble")
    for seed, result in zip(seeds, together, strict=True):
        alone = train_model(*data, NAMES, TrainingConfig(**{**config.to_dict(), "seed": seed}),
                            device="cpu", progress=False)
        by_norm, by_max = relative_differences(result.model.state_dict(),
                                               alone.model.state_dict())
        assert by_norm <= EPOCH_RTOL and by_max <= EPOCH_RTOL, (seed, by_norm, by_max)
        (mine,), (theirs,) = result.history, alone.history
        assert mine["lr"] == theirs["lr"]  # one schedule, the same floats
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert mine["val_macro_accuracy"] == theirs["val_macro_accuracy"]
    # The tolerance discriminates: another seed's weights are nowhere near.
    other = train_model(*data, NAMES, TrainingConfig(**{**config.to_dict(), "seed": 1}),
                        device="cpu", progress=False)
    assert relative_differences(together[0].model.state_dict(),
                                other.model.state_dict())[0] > 0.1


def test_sequential_is_train_model_exactly(data):
    seeds = [3, 7]
    results = train_replicates(*data, NAMES, FAST, seeds, device="cpu", progress=False,
                               strategy="sequential")
    for seed, result in zip(seeds, results, strict=True):
        alone = train_model(*data, NAMES, TrainingConfig(**{**FAST.to_dict(), "seed": seed}),
                            device="cpu", progress=False)
        a, b = result.model.state_dict(), alone.model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b)
        assert result.history == alone.history
        assert result.config.seed == seed


# --- training: per-replicate bookkeeping ----------------------------------------------


def test_results_are_ordinary_train_results(data):
    x, y, xv, yv = data
    config = TrainingConfig(max_epochs=3, patience=5, warmup_epochs=1)
    results = train_replicates(x, y, xv, yv, NAMES, config, [4, 9], device="cpu",
                               progress=False, strategy="ensemble")
    for seed, result in zip([4, 9], results, strict=True):
        assert type(result.model) is PMTConvNet and not result.model.training
        assert result.config == TrainingConfig(**{**config.to_dict(), "seed": seed})
        assert result.class_names == NAMES
        assert result.epochs_run == len(result.history) == 3
        assert [h["epoch"] for h in result.history] == [1, 2, 3]
        assert set(result.history[0]) == {"epoch", "loss", "val_macro_accuracy", "lr"}
        best = max(h["val_macro_accuracy"] for h in result.history)
        assert result.best_val_macro_accuracy == best
        # The kept weights score the best validation accuracy again, as ordinary models.
        pred = predict_logits(result.model, xv).argmax(1)
        assert macro_accuracy(yv, pred, NAMES) == pytest.approx(best)
        assert result.seconds > 0
        # The fed dropout stays inside the ensemble: the result has the network's own.
        assert not any(type(m).__name__ == "_FedDropout" for m in result.model.modules())


def test_each_replicate_stops_on_its_own_and_keeps_its_best_epoch(data, monkeypatch):
    # Scripted validation scores. Seed 0 peaks at epoch 1 and stops after patience 2
    # (epoch 3); seeds 1 and 2 improve every epoch and run all 6. The ensemble scores
    # the replicates still training in seed order, once per epoch.
    patience, max_epochs = 2, 6
    scores = {0: [0.5, 0.4, 0.4], 1: [0.1 * k for k in range(1, 7)],
              2: [0.1 * k for k in range(1, 7)]}
    order = iter([0, 1, 2] * 3 + [1, 2] * 3)  # one more call raises StopIteration
    seen = dict.fromkeys(scores, 0)
    calls = []

    def scripted(_y_true, _y_pred, _names):
        r = next(order)
        calls.append(r)
        seen[r] += 1
        return scores[r][seen[r] - 1]

    monkeypatch.setattr(replicates, "macro_accuracy", scripted)
    config = TrainingConfig(max_epochs=max_epochs, patience=patience, warmup_epochs=1)
    seeds = [0, 1, 2]
    kept = []
    original_keep = ReplicateEnsemble.keep

    def spy(self, indices, optimizer=None):
        kept.append((self.size, list(indices)))
        return original_keep(self, indices, optimizer)

    monkeypatch.setattr(ReplicateEnsemble, "keep", spy)
    results = train_replicates(*data, NAMES, config, seeds, device="cpu", progress=False,
                               strategy="ensemble")
    assert [r.epochs_run for r in results] == [3, 6, 6]
    assert [r.best_epoch for r in results] == [1, 6, 6]
    assert results[0].best_val_macro_accuracy == 0.5
    assert kept == [(3, [1, 2])]  # seed 0 left the stack after epoch 3, the others went on
    assert len(calls) == 3 * 3 + 2 * 3  # nobody scored after stopping
    # Seed 0 kept its epoch-1 weights: those of one epoch of train_model with seed 0.
    monkeypatch.undo()
    alone = train_model(*data, NAMES, TrainingConfig(**{**config.to_dict(), "max_epochs": 1}),
                        device="cpu", progress=False)
    by_norm, by_max = relative_differences(results[0].model.state_dict(),
                                           alone.model.state_dict())
    assert by_norm <= EPOCH_RTOL and by_max <= EPOCH_RTOL


# --- seeds and determinism ------------------------------------------------------------


def test_seeds_give_different_initialisations_and_batch_orders():
    inits = [replicates._init_replicate(s, N_PATHS, N_CLASSES, torch.device("cpu")) for s in (0, 1)]
    (model_0, dropout_0, shuffle_0), (model_1, dropout_1, shuffle_1) = inits
    a, b = model_0.state_dict(), model_1.state_dict()
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"])
    assert not torch.equal(torch.randperm(100, generator=shuffle_0),
                           torch.randperm(100, generator=shuffle_1))
    assert not torch.equal(torch.rand(50, generator=dropout_0), torch.rand(50, generator=dropout_1))
    # And each is train_model's: the constructor under manual_seed(seed), a shuffle
    # generator seeded with seed, and the global stream right after initialisation.
    torch.manual_seed(1)
    reference = PMTConvNet(N_PATHS, N_CLASSES)
    assert all(torch.equal(reference.state_dict()[k], b[k]) for k in b)
    assert torch.equal(torch.rand(50), torch.rand(50, generator=replicates._init_replicate(
        1, N_PATHS, N_CLASSES, torch.device("cpu"))[1]))


def test_same_seeds_give_identical_weights_and_leave_the_global_state(data):
    state_before = torch.get_rng_state()
    config = TrainingConfig(max_epochs=2, patience=5, warmup_epochs=1)
    runs = [train_replicates(*data, NAMES, config, [0, 1], device="cpu", progress=False,
                             strategy="ensemble") for _ in range(2)]
    for first, second in zip(*runs, strict=True):
        a, b = first.model.state_dict(), second.model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert first.history == second.history
    a, b = (r.model.state_dict() for r in runs[0])
    assert not torch.equal(a["fc1.weight"], b["fc1.weight"])
    assert torch.equal(torch.get_rng_state(), state_before)


# --- strategy and arguments -------------------------------------------------------------


def test_auto_picks_the_recorded_strategy_for_the_device_and_size(data, monkeypatch):
    limit = AUTO_ENSEMBLE_MAX_PATHS["cpu"]
    assert choose_strategy("cpu", limit) == "ensemble"
    assert choose_strategy("cpu", limit + 1) == "sequential"
    assert choose_strategy("cpu", 1200) == "sequential"  # measured slower there
    assert choose_strategy("cpu") == "sequential"
    assert AUTO_ENSEMBLE_MAX_PATHS["cuda"] is None
    used = []
    monkeypatch.setattr(replicates, "_train_ensemble", lambda *a, **k: used.append("ensemble"))
    monkeypatch.setattr(replicates, "train_model", lambda *a, **k: used.append("sequential"))
    for n_paths in (limit, 2 * limit):
        x, y, xv, yv = (np.resize(a, (len(a), n_paths, N_FRAMES)) if a.ndim == 3 else a
                        for a in data)
        train_replicates(x, y, xv, yv, NAMES, FAST, [0], device="cpu", progress=False)
    assert used == ["ensemble", "sequential"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": []}, r"seeds=\[\]\): pass at least one seed"),
        ({"seeds": [1, 1]}, "must be distinct"),
        ({"seeds": [0, -1]}, r"seeds\[1\]=-1\): outside 0 <= seed < 2\*\*32"),
        ({"seeds": [2**32]}, r"outside 0 <= seed < 2\*\*32"),
        ({"seeds": [0.5]}, "not an integer"),
        ({"strategy": "parallel"}, "strategy='parallel'.*pass one of"),
    ],
    ids=["empty", "duplicate", "negative", "too-large", "float", "strategy"],
)
def test_bad_arguments_name_the_argument(data, kwargs, message):
    arguments = {"seeds": [0], "strategy": "ensemble", **kwargs}
    with pytest.raises(ValueError, match=message):
        train_replicates(*data, NAMES, FAST, device="cpu", progress=False, **arguments)


def test_bad_inputs_are_checked_as_by_train_model(data):
    x, y, xv, yv = data
    with pytest.raises(ValueError, match="labels outside"):
        train_replicates(x, y + 5, xv, yv, NAMES, FAST, [0], device="cpu", progress=False,
                         strategy="ensemble")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_ensemble_forward_and_one_epoch(data):
    models = [m.cuda().eval() for m in replicate_models([0, 1])]
    x = torch.randn(40, N_PATHS, N_FRAMES, device="cuda")
    ensemble = ReplicateEnsemble(models, x[:2])
    logits = ensemble.forward_eval(x)
    for r, model in enumerate(models):
        with torch.no_grad():
            torch.testing.assert_close(logits[r], model(x), rtol=1e-5, atol=1e-5)
    # Dropout masks differ on CUDA (train_model's fused dropout): only the schedule and
    # a finite, learning run are comparable.
    results = train_replicates(*data, NAMES, FAST, [0, 1], device="cuda", progress=False,
                               strategy="ensemble")
    assert all(next(r.model.parameters()).is_cuda for r in results)
    assert all(np.isfinite(r.history[0]["loss"]) for r in results)

"""Training recipe (method.md section 2), scoring and metrics, on tiny inputs."""

import math

import numpy as np
import pytest
import torch

from pmt_core.model import training
from pmt_core.model.config import TrainingConfig
from pmt_core.model.metrics import confusion, macro_accuracy, per_class_accuracy
from pmt_core.model.training import build_lr_scheduler, class_weights, predict_logits, train_model

N_PATHS, N_FRAMES = 16, 8


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def separable(n_per_class, n_classes, seed, bump=2.0, n_paths=N_PATHS):
    """Noise where class k has a bump on its own band of paths."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_per_class * n_classes, n_paths, N_FRAMES)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    band = n_paths // n_classes
    for k in range(n_classes):
        x[y == k, k * band : (k + 1) * band] += bump
    return x, y


def names(n):
    return tuple(f"class{k}" for k in range(n))


FAST = TrainingConfig(batch_size=8, max_epochs=3, patience=10, warmup_epochs=1)


# --- determinism and the returned model -----------------------------------------


def test_same_seed_gives_identical_weights_and_other_seed_differs():
    x, y = separable(8, 3, seed=0)
    xv, yv = separable(4, 3, seed=1)
    state_before = torch.get_rng_state()
    runs = [
        train_model(x, y, xv, yv, names(3), FAST, device="cpu", progress=False) for _ in range(2)
    ]
    other = train_model(
        x,
        y,
        xv,
        yv,
        names(3),
        TrainingConfig(**{**FAST.to_dict(), "seed": 1}),
        device="cpu",
        progress=False,
    )
    a, b, c = (r.model.state_dict() for r in (*runs, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0].history == runs[1].history
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    # The caller's global random state is left alone.
    assert torch.equal(torch.get_rng_state(), state_before)


def test_result_fields_and_best_weights_are_kept():
    x, y = separable(8, 3, seed=0, bump=0.7)
    xv, yv = separable(6, 3, seed=1, bump=0.7)
    config = TrainingConfig(batch_size=8, max_epochs=6, patience=10, warmup_epochs=1)
    result = train_model(x, y, xv, yv, names(3), config, device="cpu", progress=False)
    assert not result.model.training
    assert result.class_names == names(3)
    assert result.epochs_run == len(result.history) == 6
    assert [h["epoch"] for h in result.history] == list(range(1, 7))
    assert set(result.history[0]) == {"epoch", "loss", "val_macro_accuracy", "lr"}
    best = max(h["val_macro_accuracy"] for h in result.history)
    assert result.best_val_macro_accuracy == best
    # The first epoch reaching the best score is kept, and the model scores it again.
    first_best = next(h["epoch"] for h in result.history if h["val_macro_accuracy"] == best)
    assert result.best_epoch == first_best
    pred = predict_logits(result.model, xv).argmax(1)
    assert macro_accuracy(yv, pred, names(3)) == pytest.approx(best)
    assert result.seconds > 0
    # what checkpoints and the report keep: 24 examples in batches of 8, no patience stop
    summary = result.summary()
    assert (summary["steps_per_epoch"], summary["steps"]) == (3, 18)
    assert summary["stopped_by"] == "budget" and len(summary["history"]) == 6


@pytest.mark.parametrize("n_classes", [2, 3])
def test_learns_a_separable_problem_with_few_classes(n_classes):
    # 32 paths: the narrowest network that learns this reliably in a few epochs.
    x, y = separable(16, n_classes, seed=0, n_paths=32)
    xv, yv = separable(8, n_classes, seed=1, n_paths=32)
    xt, yt = separable(8, n_classes, seed=2, n_paths=32)
    config = TrainingConfig(batch_size=8, lr=3e-3, max_epochs=25, patience=25, warmup_epochs=1)
    result = train_model(x, y, xv, yv, names(n_classes), config, device="cpu", progress=False)
    logits = predict_logits(result.model, xt)
    assert logits.shape == (len(xt), n_classes)
    assert result.best_val_macro_accuracy == 1.0
    assert macro_accuracy(yt, logits.argmax(1), names(n_classes)) >= 0.9


def test_accepts_torch_tensors_and_shows_progress(capsys):
    x, y = separable(6, 2, seed=0)
    xv, yv = separable(3, 2, seed=1)
    config = TrainingConfig(batch_size=4, max_epochs=2, warmup_epochs=0)
    result = train_model(
        torch.from_numpy(x),
        torch.from_numpy(y),
        torch.from_numpy(xv),
        yv,
        ("a", "b"),
        config,
        device="cpu",
        progress=True,
        desc="toy",
    )
    assert result.epochs_run == 2
    assert "toy" in capsys.readouterr().err


# --- early stopping ---------------------------------------------------------------


def test_early_stopping_stops_after_patience_without_improvement():
    # Identical inputs give one prediction for all: macro accuracy stays at 1/3.
    x = np.zeros((12, N_PATHS, N_FRAMES), dtype=np.float32)
    y = np.arange(12) % 3
    config = TrainingConfig(batch_size=4, max_epochs=50, patience=3, warmup_epochs=0)
    result = train_model(x, y, x[:6], y[:6], names(3), config, device="cpu", progress=False)
    assert result.best_epoch == 1
    assert result.best_val_macro_accuracy == pytest.approx(1 / 3)
    assert result.epochs_run == 1 + config.patience
    assert result.stopped_by == "patience"


# --- loss weights, schedule, clipping ---------------------------------------------


def test_class_weights_are_max_count_over_count():
    weights = class_weights(np.array([0, 0, 0, 0, 1, 1, 2]), 3)
    torch.testing.assert_close(weights, torch.tensor([1.0, 2.0, 4.0]))


def test_class_weights_refuse_a_class_without_training_examples():
    with pytest.raises(ValueError, match=r"classes \[1\] have no training example"):
        class_weights(np.array([0, 0, 2]), 3)


def test_training_loss_uses_training_split_weights(monkeypatch):
    seen = []
    original = torch.nn.CrossEntropyLoss.__init__

    def spy(self, *args, weight=None, **kwargs):
        seen.append(None if weight is None else weight.clone())
        original(self, *args, weight=weight, **kwargs)

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "__init__", spy)
    x, _ = separable(4, 3, seed=0)
    y = np.array([0] * 6 + [1] * 3 + [2] * 3)
    config = TrainingConfig(batch_size=4, max_epochs=1, warmup_epochs=0)
    train_model(x, y, x[:3], y[:3], names(3), config, device="cpu", progress=False)
    torch.testing.assert_close(seen[0], torch.tensor([1.0, 2.0, 2.0]))


def test_lr_linear_warmup_then_cosine_restarting_every_epoch():
    steps, warmup_epochs, lr, min_lr = 4, 3, 1e-3, 1e-8
    config = TrainingConfig(lr=lr, warmup_epochs=warmup_epochs, min_lr=min_lr)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_lr_scheduler(optimizer, config, steps_per_epoch=steps)
    lrs = []
    for _ in range(7 * steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    warmup_steps = warmup_epochs * steps
    warmup = np.array(lrs[:warmup_steps])
    np.testing.assert_allclose(warmup, lr * np.arange(1, warmup_steps + 1) / warmup_steps)
    expected_cycle = min_lr + (lr - min_lr) * (1 + np.cos(np.pi * np.arange(steps) / steps)) / 2
    for epoch in range(4):
        start = warmup_steps + epoch * steps
        np.testing.assert_allclose(lrs[start : start + steps], expected_cycle, rtol=1e-9)


def test_training_history_lr_follows_the_schedule():
    x, y = separable(8, 2, seed=0)  # 16 examples, batch 4: 4 steps per epoch
    config = TrainingConfig(batch_size=4, max_epochs=4, warmup_epochs=2, patience=10)
    result = train_model(x, y, x[:4], y[:4], names(2), config, device="cpu", progress=False)
    mean_lrs = [h["lr"] for h in result.history]
    assert mean_lrs[0] < mean_lrs[1] < config.lr
    cycle = config.min_lr + (config.lr - config.min_lr) * (1 + np.cos(np.pi * np.arange(4) / 4)) / 2
    assert mean_lrs[2] == pytest.approx(cycle.mean())
    assert mean_lrs[3] == pytest.approx(cycle.mean())


def test_gradient_clipping_is_applied_every_step(monkeypatch):
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        total = original(parameters, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(
            torch.stack(
                [torch.linalg.vector_norm(p.grad) for p in parameters if p.grad is not None]
            )
        )
        calls.append((max_norm, float(total), float(after)))
        return total

    monkeypatch.setattr(training.nn.utils, "clip_grad_norm_", spy)
    x, y = separable(8, 2, seed=0)  # 16 examples, batch 4: 4 steps per epoch
    config = TrainingConfig(batch_size=4, max_epochs=2, warmup_epochs=0, grad_clip_norm=0.01)
    train_model(x, y, x[:4], y[:4], names(2), config, device="cpu", progress=False)
    assert len(calls) == 2 * 4
    assert all(max_norm == 0.01 for max_norm, _, _ in calls)
    # The raw gradient exceeded the bound and was scaled down to it.
    assert all(before > 0.01 and after <= 0.01 * 1.001 for _, before, after in calls)


def test_default_config_is_the_authors_recipe():
    config = TrainingConfig()
    assert (config.lr, config.weight_decay, config.warmup_epochs, config.grad_clip_norm) == (
        1e-3,
        0.1,
        3,
        3.0,
    )
    assert (config.batch_size, config.patience, config.max_epochs, config.seed) == (32, 20, 500, 0)
    assert config.weighted_loss
    assert TrainingConfig.from_dict(config.to_dict()) == config


# --- scoring ------------------------------------------------------------------------


@pytest.mark.parametrize("as_tensor", [False, True])
def test_predict_logits_scores_every_example_including_the_last_partial_batch(as_tensor):
    torch.manual_seed(0)
    from pmt_core.model.network import PMTConvNet

    model = PMTConvNet(N_PATHS, 3)
    model.train()
    x = np.random.default_rng(0).normal(size=(37, N_PATHS, N_FRAMES)).astype(np.float32)
    logits = predict_logits(model, torch.from_numpy(x) if as_tensor else x, batch_size=8)
    assert logits.shape == (37, 3)
    assert logits.dtype == np.float32
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert predict_logits(model, x[:0]).shape == (0, 3)


# --- metrics ------------------------------------------------------------------------


def test_per_class_accuracy_is_recall_and_nan_for_a_missing_class():
    y_true = np.array([0, 0, 0, 0, 1, 1, 3])
    y_pred = np.array([0, 0, 1, 2, 1, 0, 3])
    accuracy = per_class_accuracy(y_true, y_pred, names(4))
    assert list(accuracy) == list(names(4))
    assert accuracy["class0"] == 0.5
    assert accuracy["class1"] == 0.5
    assert math.isnan(accuracy["class2"])  # no true example: undefined, not 0
    assert accuracy["class3"] == 1.0
    assert macro_accuracy(y_true, y_pred, names(4)) == pytest.approx(2 / 3)


def test_confusion_counts_rows_true_columns_predicted():
    matrix = confusion([0, 0, 1, 2], [0, 1, 1, 1], 4)
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)


def test_metrics_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        per_class_accuracy([0, 1, 1], [0, 1], names(2))


# --- input checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "y_train": a["y_train"] + 5}, "labels outside"),
        (lambda a: {**a, "y_val": a["y_val"][:-1]}, "differ in length"),
        (lambda a: {**a, "x_train": a["x_train"][:, :, 0]}, "shape"),
        (lambda a: {**a, "x_val": a["x_val"][:, :-1]}, "validation features"),
        (lambda a: {**a, "class_names": ("only",)}, "at least 2 classes"),
        (lambda a: {**a, "class_names": names(3)}, "no training example"),
    ],
    ids=["label-range", "lengths", "ndim", "val-shape", "one-class", "absent-class"],
)
def test_bad_inputs_raise(change, message):
    x, y = separable(4, 2, seed=0)
    arguments = {"x_train": x, "y_train": y, "x_val": x, "y_val": y, "class_names": names(2)}
    with pytest.raises(ValueError, match=message):
        train_model(**change(arguments), config=FAST, device="cpu", progress=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 1, r"TrainingConfig\(batch_size=1\): .* pass batch_size >= 2"),
        ("max_epochs", 0, r"TrainingConfig\(max_epochs=0\): .* pass max_epochs >= 1"),
        ("patience", 0, r"TrainingConfig\(patience=0\): pass patience >= 1"),
        ("warmup_epochs", -1, r"TrainingConfig\(warmup_epochs=-1\): pass warmup_epochs >= 0"),
        ("lr", 0.0, r"TrainingConfig\(lr=0.0\): .* positive .* pass e.g. lr=1e-3"),
        ("lr", -1e-3, r"TrainingConfig\(lr=-0.001\): .* pass e.g. lr=1e-3"),
        ("lr", math.nan, r"TrainingConfig\(lr=nan\): .* finite"),
        ("min_lr", 1.0, r"TrainingConfig\(min_lr=1.0\): .* \[0, lr=0.001\)"),
        ("weight_decay", -0.1, r"TrainingConfig\(weight_decay=-0.1\): pass weight_decay >= 0"),
        ("grad_clip_norm", 0.0, r"TrainingConfig\(grad_clip_norm=0.0\): .* positive"),
        ("seed", -1, r"TrainingConfig\(seed=-1\): outside 0 <= seed < 2\*\*32; pass e.g. seed=0"),
        ("seed", 2**32, r"TrainingConfig\(seed=4294967296\): outside 0 <= seed < 2\*\*32"),
        ("seed", 1.5, r"TrainingConfig\(seed=1.5\): not an integer"),
        ("seed", True, r"TrainingConfig\(seed=True\): not an integer"),
    ],
)
def test_config_checks_name_the_argument_and_the_fix(field, value, message):
    with pytest.raises(ValueError, match=message) as raised:
        TrainingConfig(**{field: value})
    assert "\n" not in str(raised.value)  # one line each


def test_config_accepts_the_seed_range_ends():
    assert TrainingConfig(seed=0).seed == 0
    assert TrainingConfig(seed=2**32 - 1).seed == 2**32 - 1
    seed = TrainingConfig(seed=np.int64(7)).seed
    assert seed == 7 and type(seed) is int


def test_the_budget_in_steps_lets_a_small_data_set_train_as_long_as_the_profile_own():
    from pmt_core.profiles import get_profile, training_budget

    ci = get_profile("ci")
    # the ci profile's own synthetic split (600 training clips): its epochs unchanged
    assert training_budget(ci, 600, 32) == (ci.max_epochs, ci.patience)
    # a 180-clip folder (5 steps per epoch) trains as many steps, with as long a patience
    epochs, patience = training_budget(ci, 180, 32)
    assert epochs * 5 >= ci.min_steps and patience * 5 >= ci.min_patience_steps
    assert (epochs, patience) == (216, 54)
    # a large set never trains fewer epochs than the profile names
    assert training_budget(ci, 100_000, 32) == (ci.max_epochs, ci.patience)
    # the paper's recipe is in epochs only; a set smaller than a batch is one step
    paper = get_profile("paper")
    assert training_budget(paper, 180, 32) == (paper.max_epochs, paper.patience)
    assert training_budget(ci, 10, 32) == (ci.min_steps, ci.min_patience_steps)

"""Training and scoring of :class:`~pmt_core.model.network.PMTConvNet` (method.md section 2).

The recipe is the authors': AdamW (lr 1e-3, weight decay 0.1), 3 warm-up epochs
then a cosine schedule restarting every epoch (stepped per batch), gradient-norm
clipping at 3, batch 32, cross-entropy weighted by ``max(n) / n_class``, early
stopping on validation macro accuracy with patience 20, at most 500 epochs, seed 0;
the best-validation weights are kept.

Known departures from the authors' code, all deliberate:

* Their warm-up is the first cosine cycle run backwards over 3 epochs (a cosine
  ramp); ours is linear (``LinearLR``) from ``lr / warmup_steps`` to ``lr``.
* Their class weights count the whole data set (all splits); ours count the
  training split only, so no test statistic leaks into training.
* Their test loader dropped the last partial batch (1,120 of 1,151 test files
  scored); :func:`predict_logits` scores every example.

Like their loader, training drops the last partial batch of each epoch (a batch of
one example would break the batch norms); shuffling changes which examples are
left out from one epoch to the next.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, recall_score
from torch import nn
from tqdm.auto import tqdm

from pmt_core.infra.device import select_device
from pmt_core.model.network import PMTConvNet


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of training; defaults are the authors' (method.md section 2).

    Parameters
    ----------
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW's decoupled weight decay.
    warmup_epochs : int
        Epochs of linear warm-up before the cosine restarts (0 disables it).
    min_lr : float
        Floor of the cosine schedule (``eta_min``; 1e-8 in the authors' code).
    grad_clip_norm : float
        Maximum total gradient norm (``clip_grad_norm_``).
    batch_size : int
        Training examples per step.
    weighted_loss : bool
        Weight the cross-entropy by ``max(n) / n_class`` (counts on the training split).
    patience : int
        Stop after this many epochs without a strictly better validation macro
        accuracy.
    max_epochs : int
        Upper bound on the number of epochs.
    seed : int
        Seed of weight initialisation, dropout and shuffling.
    """

    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_epochs: int = 3
    min_lr: float = 1e-8
    grad_clip_norm: float = 3.0
    batch_size: int = 32
    weighted_loss: bool = True
    patience: int = 20
    max_epochs: int = 500
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 2:
            # Batch norm needs at least two examples per training batch.
            raise ValueError(f"batch_size must be at least 2, got {self.batch_size}")
        if self.max_epochs < 1 or self.patience < 1 or self.warmup_epochs < 0:
            raise ValueError(
                "max_epochs and patience must be >= 1 and warmup_epochs >= 0, got "
                f"{self.max_epochs}, {self.patience}, {self.warmup_epochs}"
            )
        if not (self.lr > 0 and self.grad_clip_norm > 0):
            raise ValueError("lr and grad_clip_norm must be positive")

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict (for checkpoints and reports)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        return cls(**data)


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`.

    Attributes
    ----------
    model : PMTConvNet
        The network with its best-validation weights, in eval mode, on the
        training device.
    class_names : tuple of str
        Names of the output classes, in logit order.
    history : list of dict
        One entry per epoch: ``epoch`` (1-based), ``loss`` (mean weighted training
        cross-entropy), ``val_macro_accuracy`` and ``lr`` (mean learning rate over
        the epoch's steps).
    best_epoch : int
        1-based epoch whose weights were kept.
    best_val_macro_accuracy : float
        Validation macro accuracy of the kept weights.
    epochs_run : int
        Number of epochs trained (early stopping included).
    seconds : float
        Wall-clock training time.
    config : TrainingConfig
        The settings used.
    """

    model: PMTConvNet
    class_names: tuple[str, ...]
    history: list[dict]
    best_epoch: int
    best_val_macro_accuracy: float
    epochs_run: int
    seconds: float
    config: TrainingConfig = field(default_factory=TrainingConfig)


# --- metrics ------------------------------------------------------------------


def _labels(y) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def per_class_accuracy(y_true, y_pred, class_names: Sequence[str]) -> dict[str, float]:
    """Return the accuracy (recall) of each class, in [0, 1].

    Parameters
    ----------
    y_true, y_pred : array-like of int
        True and predicted class indices into ``class_names``.
    class_names : sequence of str

    Returns
    -------
    dict
        ``{name: recall}`` in ``class_names`` order; NaN for a class with no true
        example (its accuracy is undefined, not zero).
    """
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    recalls = recall_score(
        y_true,
        y_pred,
        labels=np.arange(len(class_names)),
        average=None,
        zero_division=np.nan,
    )
    return {name: float(r) for name, r in zip(class_names, recalls, strict=True)}


def macro_accuracy(y_true, y_pred, class_names: Sequence[str]) -> float:
    """Return the mean of per-class recalls over the classes present in ``y_true``.

    This is the authors' "macro accuracy" (torchmetrics ``average='macro'``) and
    the validation criterion of early stopping. NaN when ``y_true`` is empty.
    """
    recalls = np.array(list(per_class_accuracy(y_true, y_pred, class_names).values()))
    if np.all(np.isnan(recalls)):
        return math.nan
    return float(np.nanmean(recalls))


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Return the confusion matrix (rows: true class, columns: predicted), int counts."""
    return confusion_matrix(_labels(y_true), _labels(y_pred), labels=np.arange(n_classes))


def class_weights(y_train, n_classes: int) -> torch.Tensor:
    """Return the loss weights ``max(n) / n_class`` from training-split counts.

    Raises
    ------
    ValueError
        If a class has no training example (its weight would be infinite).
    """
    counts = np.bincount(_labels(y_train), minlength=n_classes)
    if len(counts) > n_classes:
        raise ValueError(f"labels go up to {len(counts) - 1} but there are {n_classes} classes")
    if np.any(counts == 0):
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(
            f"classes {missing} have no training example; train on the classes present"
        )
    return torch.as_tensor(counts.max() / counts, dtype=torch.float32)


# --- schedule -----------------------------------------------------------------


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Return the per-batch schedule: linear warm-up, then cosine restarting every epoch.

    Call ``scheduler.step()`` after every optimiser step. Warm-up rises linearly
    from ``lr / warmup_steps`` to ``lr`` over ``config.warmup_epochs`` epochs (step
    k at ``lr * (k + 1) / warmup_steps``); each later epoch is one cosine cycle from
    ``lr`` down towards ``config.min_lr``, restarting at the epoch's first step.
    """
    cosine = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=steps_per_epoch, eta_min=config.min_lr
    )
    warmup_steps = config.warmup_epochs * steps_per_epoch
    if warmup_steps == 0:
        return cosine
    # Step k of the warm-up runs at lr * (k + 1) / warmup_steps: the last one at lr.
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer,
        start_factor=1.0 / warmup_steps,
        end_factor=1.0,
        total_iters=max(warmup_steps - 1, 1),
    )
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer, [warmup, cosine], milestones=[warmup_steps]
    )


# --- scoring --------------------------------------------------------------------


def _features(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (examples, paths, frames), got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
    return x.to(torch.float32)


@torch.no_grad()
def predict_logits(
    model: nn.Module, x, batch_size: int = 256, device: str | torch.device | None = None
) -> np.ndarray:
    """Return the logits of every example, in eval mode.

    Unlike the authors' test loader, the last partial batch is scored too.

    Parameters
    ----------
    model : nn.Module
        The network; its training/eval mode is restored afterwards.
    x : numpy.ndarray or torch.Tensor
        Compressed features (examples x paths x frames).
    batch_size : int
        Examples per forward pass.
    device : str or torch.device, optional
        Where to compute. ``None`` keeps the model where it is; otherwise the
        model is moved there (in place).

    Returns
    -------
    numpy.ndarray, float32, shape (examples, n_classes)
    """
    if device is None:
        device = next(model.parameters()).device
    else:
        device = select_device(device)
        model.to(device)
    x = _features(x, "x")
    was_training = model.training
    model.eval()
    try:
        chunks = [
            model(x[start : start + batch_size].to(device)).float().cpu()
            for start in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    if not chunks:
        n_classes = getattr(model, "n_classes", 0)
        return np.zeros((0, n_classes), dtype=np.float32)
    return torch.cat(chunks).numpy()


# --- training -------------------------------------------------------------------


def _check_inputs(x_train, y_train, x_val, y_val, n_classes):
    x_train, x_val = _features(x_train, "x_train"), _features(x_val, "x_val")
    y_train, y_val = _labels(y_train), _labels(y_val)
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise ValueError(
            f"features and labels differ in length: train {len(x_train)} vs "
            f"{len(y_train)}, validation {len(x_val)} vs {len(y_val)}"
        )
    if len(x_train) < 2 or len(x_val) < 1:
        raise ValueError("need at least 2 training and 1 validation example")
    if x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"validation features have shape {tuple(x_val.shape[1:])} per example, "
            f"training features {tuple(x_train.shape[1:])}"
        )
    for name, y in (("y_train", y_train), ("y_val", y_val)):
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"{name} holds labels outside [0, {n_classes})")
    return x_train, y_train, x_val, y_val


def train_model(
    x_train,
    y_train,
    x_val,
    y_val,
    class_names: Sequence[str],
    config: TrainingConfig = TrainingConfig(),  # noqa: B008 - frozen, so a safe default
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "",
) -> TrainResult:
    """Train a :class:`PMTConvNet` with the authors' recipe and keep the best epoch.

    Parameters
    ----------
    x_train, x_val : numpy.ndarray or torch.Tensor, float
        Compressed features, examples x paths x frames.
    y_train, y_val : array-like of int
        Class indices into ``class_names``.
    class_names : sequence of str
        Output classes (at least 2); every one needs a training example.
    config : TrainingConfig
        Hyper-parameters (defaults: the authors').
    device : str or torch.device, optional
        Default: CUDA when available, else the CPU. The data are moved there once
        and batches are drawn on the device.
    progress : bool
        Show a progress bar over epochs.
    desc : str
        Label of the progress bar.

    Returns
    -------
    TrainResult

    Notes
    -----
    On the CPU, the same seed gives bit-identical weights: initialisation and
    dropout draw from the seeded global generator (inside ``torch.random.fork_rng``,
    so the caller's random state is left untouched) and shuffling from its own
    seeded generator. CUDA kernels are not guaranteed deterministic.
    """
    class_names = tuple(class_names)
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes, got {class_names}")
    x_train, y_train, x_val, y_val = _check_inputs(x_train, y_train, x_val, y_val, n_classes)
    device = select_device(device)
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        return _train(x_train, y_train, x_val, y_val, class_names, config, device, progress, desc)


def _train(x_train, y_train, x_val, y_val, class_names, config, device, progress, desc):
    start_time = time.perf_counter()
    torch.manual_seed(config.seed)
    shuffle_generator = torch.Generator().manual_seed(config.seed)
    n_classes = len(class_names)

    model = PMTConvNet(n_paths=x_train.shape[1], n_classes=n_classes).to(device)
    weights = class_weights(y_train, n_classes) if config.weighted_loss else None
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )

    # Moved once: every batch is then a gather on the device, no host copies.
    x_train, x_val = x_train.to(device), x_val.to(device)
    y_train_device = torch.as_tensor(y_train, device=device)
    n_train = len(x_train)
    batch_size = min(config.batch_size, n_train)
    steps_per_epoch = n_train // batch_size  # the last partial batch is dropped
    scheduler = build_lr_scheduler(optimizer, config, steps_per_epoch)

    history: list[dict] = []
    best_accuracy, best_epoch, best_state = -math.inf, 0, None
    epochs = tqdm(
        range(1, config.max_epochs + 1),
        desc=desc or "training",
        unit="epoch",
        disable=not progress,
    )
    for epoch in epochs:
        model.train()
        order = torch.randperm(n_train, generator=shuffle_generator).to(device)
        losses, lrs = [], []
        for step in range(steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[batch]), y_train_device[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optimizer.step()
            scheduler.step()
            losses.append(loss.detach())
        epoch_loss = float(torch.stack(losses).mean())
        if not math.isfinite(epoch_loss):
            raise RuntimeError(f"training loss became {epoch_loss} at epoch {epoch}")

        val_pred = predict_logits(model, x_val).argmax(axis=1)
        val_accuracy = macro_accuracy(y_val, val_pred, class_names)
        history.append(
            {
                "epoch": epoch,
                "loss": epoch_loss,
                "val_macro_accuracy": val_accuracy,
                "lr": float(np.mean(lrs)),
            }
        )
        epochs.set_postfix(loss=f"{epoch_loss:.4f}", val_macro=f"{val_accuracy:.3f}")
        if val_accuracy > best_accuracy:
            best_accuracy, best_epoch = val_accuracy, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    epochs.close()

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        class_names=class_names,
        history=history,
        best_epoch=best_epoch,
        best_val_macro_accuracy=float(best_accuracy),
        epochs_run=len(history),
        seconds=time.perf_counter() - start_time,
        config=config,
    )

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

Replicates of one training on one split (one after another, or batched as one
ensemble) are :mod:`pmt_core.model.replicates`; the settings and the result
:mod:`pmt_core.model.config`; the accuracy measures :mod:`pmt_core.model.metrics`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pmt_core.infra.device import select_device
from pmt_core.model.config import TrainingConfig, TrainResult
from pmt_core.model.metrics import as_labels, macro_accuracy
from pmt_core.model.network import PMTConvNet


def class_weights(y_train, n_classes: int) -> torch.Tensor:
    """Return the loss weights ``max(n) / n_class`` from training-split counts.

    Raises
    ------
    ValueError
        If a class has no training example (its weight would be infinite).
    """
    counts = np.bincount(as_labels(y_train), minlength=n_classes)
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


def check_inputs(x_train, y_train, x_val, y_val, n_classes):
    """Return the training and validation data as float32 features and int labels.

    Raises a ValueError naming what is wrong: lengths, too few examples, shapes
    that differ between the splits, labels outside ``[0, n_classes)``.
    """
    x_train, x_val = _features(x_train, "x_train"), _features(x_val, "x_val")
    y_train, y_val = as_labels(y_train), as_labels(y_val)
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


def check_training_call(x_train, y_train, x_val, y_val, class_names, device):
    """Check and convert what :func:`train_model` and ``train_replicates`` both take.

    Parameters
    ----------
    x_train, y_train, x_val, y_val, class_names, device
        As in :func:`train_model`.

    Returns
    -------
    x_train, y_train, x_val, y_val
        As :func:`check_inputs` returns them.
    class_names : tuple of str
    device : torch.device
        The device :func:`~pmt_core.infra.device.select_device` picks.

    Raises
    ------
    ValueError
        Fewer than 2 classes, or data :func:`check_inputs` refuses.
    """
    class_names = tuple(class_names)
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes, got {class_names}")
    x_train, y_train, x_val, y_val = check_inputs(x_train, y_train, x_val, y_val, n_classes)
    return x_train, y_train, x_val, y_val, class_names, select_device(device)


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
    x_train, y_train, x_val, y_val, class_names, device = check_training_call(
        x_train, y_train, x_val, y_val, class_names, device
    )
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
        steps_per_epoch=steps_per_epoch,
    )

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

Replicates: :func:`train_replicates` trains one network per seed on one split,
either one after another (:func:`train_model` per seed) or all at once as one
batched model (:class:`~pmt_core.model.ensemble.ReplicateEnsemble`: per-replicate
batches, batch-norm statistics, dropout masks, gradient clipping and early
stopping; one shared learning-rate schedule). :data:`AUTO_ENSEMBLE_MAX_PATHS`
records which is faster where.
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
from pmt_core.model.ensemble import ReplicateEnsemble
from pmt_core.model.network import PMTConvNet

#: Seeds are 32-bit so that every seeding API (torch, numpy's SeedSequence, the
#: suite's own seed lists) accepts them unchanged.
SEED_LIMIT = 2**32


def check_seed(seed, where: str = "seed") -> int:
    """Return ``seed`` as an int, or raise naming the argument and the valid range.

    Parameters
    ----------
    seed : int
        Candidate seed; bools and non-integers are refused.
    where : str
        The argument as the caller names it, e.g. ``"TrainingConfig(seed"`` or
        ``"train_replicates(seeds[2]"``; the message reads ``{where}={seed})``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``seed`` is not an integer with ``0 <= seed < 2**32``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{where}={seed!r}): not an integer; pass one with 0 <= seed < 2**32")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{where}={seed}): outside 0 <= seed < 2**32; pass e.g. seed=0")
    return int(seed)


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
        # One check per argument, each naming the argument, the value and the fix:
        # a bad profile or CLI flag should be fixable from the message alone.
        if self.batch_size < 2:
            raise ValueError(
                f"TrainingConfig(batch_size={self.batch_size}): batch norm needs at least 2 "
                "examples per training batch; pass batch_size >= 2 (the authors': 32)"
            )
        if self.max_epochs < 1:
            raise ValueError(
                f"TrainingConfig(max_epochs={self.max_epochs}): at least one epoch must run; "
                "pass max_epochs >= 1 (the authors': 500)"
            )
        if self.patience < 1:
            raise ValueError(
                f"TrainingConfig(patience={self.patience}): pass patience >= 1 (the authors': 20)"
            )
        if self.warmup_epochs < 0:
            raise ValueError(
                f"TrainingConfig(warmup_epochs={self.warmup_epochs}): pass warmup_epochs >= 0 "
                "(0 disables the warm-up; the authors': 3)"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(
                f"TrainingConfig(lr={self.lr}): the learning rate must be positive and finite; "
                "pass e.g. lr=1e-3 (the authors')"
            )
        if not (0 <= self.min_lr < self.lr):
            raise ValueError(
                f"TrainingConfig(min_lr={self.min_lr}): the cosine floor must lie in [0, lr="
                f"{self.lr}); pass e.g. min_lr=1e-8 (the authors')"
            )
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(
                f"TrainingConfig(weight_decay={self.weight_decay}): pass weight_decay >= 0 "
                "(the authors': 0.1)"
            )
        if not (math.isfinite(self.grad_clip_norm) and self.grad_clip_norm > 0):
            raise ValueError(
                f"TrainingConfig(grad_clip_norm={self.grad_clip_norm}): the clipping bound "
                "must be positive and finite; pass e.g. grad_clip_norm=3.0 (the authors')"
            )
        # Stored as a plain int: a numpy seed would not survive to_dict -> JSON.
        object.__setattr__(self, "seed", check_seed(self.seed, "TrainingConfig(seed"))

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict (for checkpoints and reports)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        return cls(**data)


@dataclass
class TrainResult:
    """Outcome of :func:`train_model` (and of each replicate of :func:`train_replicates`).

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
    steps_per_epoch : int
        Optimiser steps per epoch (the last partial batch dropped).
    """

    model: PMTConvNet
    class_names: tuple[str, ...]
    history: list[dict]
    best_epoch: int
    best_val_macro_accuracy: float
    epochs_run: int
    seconds: float
    config: TrainingConfig = field(default_factory=TrainingConfig)
    steps_per_epoch: int = 0

    @property
    def stopped_by(self) -> str:
        """``"patience"`` (validation accuracy flat over the patience window) or ``"budget"``."""
        return "patience" if self.epochs_run < self.config.max_epochs else "budget"

    def summary(self) -> dict:
        """Return what a checkpoint and the report keep of training: steps, stop, curves."""
        return {"steps_per_epoch": self.steps_per_epoch,
                "steps": self.steps_per_epoch * self.epochs_run,
                "epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "max_epochs": self.config.max_epochs, "patience": self.config.patience,
                "stopped_by": self.stopped_by,
                "best_val_macro_accuracy": self.best_val_macro_accuracy,
                "history": [dict(h) for h in self.history]}


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
        steps_per_epoch=steps_per_epoch,
    )


# --- replicates -------------------------------------------------------------------

#: What strategy ``"auto"`` resolves to: the one place the choice lives. Per device
#: type, the largest number of input paths for which the replicates train as one
#: ensemble (``None``: any); above it they train one after another.
#:
#: Measured with tests/benchmarks/test_bench_training.py at the ci size (357
#: training and 119 validation examples x 32 frames, 5 replicates), ensemble and
#: sequential side by side on the shared 2-core CPU runner, seconds per replicate-
#: epoch (ensemble / sequential):
#:
#: ===========  =======  ==========  ========  =====
#: input        threads  sequential  ensemble  ratio
#: ===========  =======  ==========  ========  =====
#: S1+S2 1,200  1        4.69 s      5.14 s    1.10
#: S1+S2 1,200  2        7.25 s      8.78 s    1.21
#: S1 74        1        0.248 s     0.188 s   0.76
#: S1 74        2        2.05 s      0.564 s   0.28
#: ===========  =======  ==========  ========  =====
#:
#: (absolute times under heavy load from other jobs, 2 threads oversubscribed
#: most; the ratios, measured in one process with the strategies alternating, are
#: what counts).
#: On the CPU the S1+S2 network is bound by convolution arithmetic, which batching
#: cannot reduce, and vmap's grouped convolutions (backward especially) run slower
#: than the plain ones; the small S1 network is bound by per-step overhead, which
#: batching shares out. Between 74 and 1,200 paths nothing was measured, so the
#: ensemble is only chosen where it was measured faster. On CUDA a batch of 32
#: leaves the GPU launch-bound, which batching removes; no GPU was available when
#: this was set, so the CUDA entry rests on that argument until the benchmark's
#: CUDA case is run.
AUTO_ENSEMBLE_MAX_PATHS: dict[str, int | None] = {"cpu": 74, "cuda": None}

STRATEGIES = ("auto", "sequential", "ensemble")


def choose_strategy(device: str | torch.device | None = None, n_paths: int | None = None) -> str:
    """Return the strategy ``"auto"`` means on ``device`` for inputs of ``n_paths`` paths.

    Parameters
    ----------
    device : str or torch.device, optional
        As for :func:`train_model` (``None``: CUDA when available, else the CPU).
    n_paths : int, optional
        Input paths per example (1,200 for S1+S2, 74 for S1); ``None`` counts as
        more than any limit.

    Returns
    -------
    str
        ``"ensemble"`` where :data:`AUTO_ENSEMBLE_MAX_PATHS` allows it, else
        ``"sequential"``.
    """
    limit = AUTO_ENSEMBLE_MAX_PATHS[select_device(device).type]
    if limit is None or (n_paths is not None and n_paths <= limit):
        return "ensemble"
    return "sequential"


def train_replicates(
    x_train,
    y_train,
    x_val,
    y_val,
    class_names: Sequence[str],
    config: TrainingConfig = TrainingConfig(),  # noqa: B008 - frozen, so a safe default
    seeds: Sequence[int] = (0,),
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "",
    strategy: str = "auto",
) -> list[TrainResult]:
    """Train one replicate per seed on the same split; each is what ``train_model`` returns.

    Replicate k uses ``seeds[k]`` (in place of ``config.seed``) for its
    initialisation, dropout and batch order, stops early on its own and keeps its
    own best-validation weights.

    Parameters
    ----------
    x_train, y_train, x_val, y_val, class_names, config, device, progress, desc
        As for :func:`train_model`.
    seeds : sequence of int
        One distinct seed per replicate, each with ``0 <= seed < 2**32``.
    strategy : {"auto", "sequential", "ensemble"}
        ``"sequential"`` calls :func:`train_model` once per seed (its results
        exactly). ``"ensemble"`` trains all replicates at once as one batched model
        (:class:`~pmt_core.model.ensemble.ReplicateEnsemble`), the loop of
        :func:`train_model` with every step batched over replicates. ``"auto"`` is
        :func:`choose_strategy` of the device and the number of paths.

    Returns
    -------
    list of TrainResult
        In ``seeds`` order. Each holds an ordinary :class:`PMTConvNet` (eval mode,
        best weights, on ``device``) and ``config`` with that replicate's seed. Under
        ``"ensemble"``, ``seconds`` is the ensemble's wall-clock time divided by the
        number of replicates (they ran together).

    Notes
    -----
    What ``"ensemble"`` shares with :func:`train_model` for a given seed: the
    initial weights, the batch order, the learning-rate schedule and, on the CPU,
    the dropout masks (on CUDA they come from a CUDA generator seeded with the
    replicate's seed, not from ``train_model``'s fused dropout). What differs is
    the kernels: the batched convolutions round differently, and training
    amplifies rounding, so after many epochs an ensemble replicate is another
    draw of the same training, not ``train_model``'s weights. For a few steps the
    two agree to float32 rounding (tests/test_ensemble.py states the tolerance).
    The same seeds on the same machine give the same weights under either
    strategy (on the CPU; CUDA kernels are not guaranteed deterministic).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"train_replicates(strategy={strategy!r}): pass one of {STRATEGIES}")
    seeds = [check_seed(s, f"train_replicates(seeds[{k}]") for k, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("train_replicates(seeds=[]): pass at least one seed")
    if len(set(seeds)) != len(seeds):
        # Equal seeds give identical replicates: pooling them would overstate the evidence.
        raise ValueError(f"train_replicates(seeds={seeds}): the seeds must be distinct")
    class_names = tuple(class_names)
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes, got {class_names}")
    # Checked once for both strategies; train_model's own check is then a no-op.
    x_train, y_train, x_val, y_val = _check_inputs(x_train, y_train, x_val, y_val, n_classes)
    device = select_device(device)
    if strategy == "auto":
        strategy = choose_strategy(device, n_paths=x_train.shape[1])
    configs = [dataclasses.replace(config, seed=s) for s in seeds]
    label = desc or "training"
    if strategy == "sequential":
        return [
            train_model(
                x_train,
                y_train,
                x_val,
                y_val,
                class_names,
                c,
                device,
                progress,
                f"{label} seed {c.seed}",
            )
            for c in configs
        ]
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        return _train_ensemble(
            x_train, y_train, x_val, y_val, class_names, configs, device, progress, label
        )


def _init_replicate(seed: int, n_paths: int, n_classes: int, device: torch.device):
    """Return replicate ``seed``'s model, dropout generator and shuffle generator.

    The model and the shuffle generator are those of :func:`_train` with this
    seed; the dropout generator continues the global stream where ``_train``'s
    dropout would start drawing from it (on the CPU).
    """
    torch.manual_seed(seed)
    model = PMTConvNet(n_paths=n_paths, n_classes=n_classes)
    if device.type == "cpu":
        dropout_generator = torch.Generator()
        dropout_generator.set_state(torch.get_rng_state())
    else:
        dropout_generator = torch.Generator(device=device).manual_seed(seed)
    return model.to(device), dropout_generator, torch.Generator().manual_seed(seed)


def _train_ensemble(x_train, y_train, x_val, y_val, class_names, configs, device, progress, desc):
    start_time = time.perf_counter()
    config = configs[0]  # all equal but for the seed
    n_classes, n_replicates = len(class_names), len(configs)
    replicates = [_init_replicate(c.seed, x_train.shape[1], n_classes, device) for c in configs]
    models = [model for model, _, _ in replicates]
    dropout_generators = [g for _, g, _ in replicates]
    shuffle_generators = [g for _, _, g in replicates]

    x_train, x_val = x_train.to(device), x_val.to(device)
    y_train_device = torch.as_tensor(y_train, device=device)
    ensemble = ReplicateEnsemble(models, x_train[:2])
    weights = class_weights(y_train, n_classes).to(device) if config.weighted_loss else None
    optimizer = torch.optim.AdamW(
        list(ensemble.params.values()), lr=config.lr, weight_decay=config.weight_decay
    )
    n_train = len(x_train)
    batch_size = min(config.batch_size, n_train)
    steps_per_epoch = n_train // batch_size  # the last partial batch is dropped
    # One schedule for all: every replicate takes the same steps at the same rates.
    scheduler = build_lr_scheduler(optimizer, config, steps_per_epoch)

    active = list(range(n_replicates))  # replicate ids, in stacked order
    histories: list[list[dict]] = [[] for _ in range(n_replicates)]
    best_accuracy = [-math.inf] * n_replicates
    best_epoch = [0] * n_replicates
    best_state: list[dict | None] = [None] * n_replicates
    epochs = tqdm(
        range(1, config.max_epochs + 1),
        desc=f"{desc} x{n_replicates}",
        unit="epoch",
        disable=not progress,
    )
    for epoch in epochs:
        # Each replicate draws its permutation from its own generator, as _train does.
        order = torch.stack(
            [torch.randperm(n_train, generator=shuffle_generators[r]) for r in active]
        ).to(device)
        losses, lrs = [], []
        for step in range(steps_per_epoch):
            batch = order[:, step * batch_size : (step + 1) * batch_size]  # R x B
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad(set_to_none=True)
            masks = ensemble.draw_dropout_masks(
                [dropout_generators[r] for r in active], batch_size, device
            )
            logits = ensemble.forward_train(x_train[batch], masks)  # R x B x classes
            targets = y_train_device[batch]
            per_example = nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), weight=weights, reduction="none"
            ).view(targets.shape)
            # CrossEntropyLoss's weighted mean, one per replicate.
            denominator = batch_size if weights is None else weights[targets].sum(dim=1)
            replicate_losses = per_example.sum(dim=1) / denominator
            # The sum: replicate r's parameters get replicate r's gradient alone.
            replicate_losses.sum().backward()
            ensemble.clip_grad_norm_(config.grad_clip_norm)
            optimizer.step()
            scheduler.step()
            losses.append(replicate_losses.detach())
        epoch_losses = torch.stack(losses).mean(dim=0).tolist()
        val_pred = ensemble.forward_eval(x_val).argmax(dim=-1).cpu().numpy()
        mean_lr = float(np.mean(lrs))

        stopped = []
        for position, r in enumerate(active):
            if not math.isfinite(epoch_losses[position]):
                raise RuntimeError(
                    f"training loss of replicate {r} (seed {configs[r].seed}) became "
                    f"{epoch_losses[position]} at epoch {epoch}"
                )
            accuracy = macro_accuracy(y_val, val_pred[position], class_names)
            histories[r].append(
                {
                    "epoch": epoch,
                    "loss": epoch_losses[position],
                    "val_macro_accuracy": accuracy,
                    "lr": mean_lr,
                }
            )
            if accuracy > best_accuracy[r]:
                best_accuracy[r], best_epoch[r] = accuracy, epoch
                best_state[r] = ensemble.state_dict_of(position)
            elif epoch - best_epoch[r] >= config.patience:
                stopped.append(r)
        if stopped:
            # Stopped replicates leave the stack, so they cost nothing from now on.
            optimizer.zero_grad(set_to_none=True)
            kept = [p for p, r in enumerate(active) if r not in stopped]
            ensemble.keep(kept, optimizer)
            active = [active[p] for p in kept]
        epochs.set_postfix(active=len(active), val_macro=f"{max(best_accuracy):.3f}")
        if not active:
            break
    epochs.close()

    seconds = (time.perf_counter() - start_time) / n_replicates
    results = []
    for r, model in enumerate(models):
        model.load_state_dict(best_state[r])
        model.eval()
        results.append(
            TrainResult(
                model=model,
                class_names=class_names,
                history=histories[r],
                best_epoch=best_epoch[r],
                best_val_macro_accuracy=float(best_accuracy[r]),
                epochs_run=len(histories[r]),
                seconds=seconds,
                config=configs[r],
                steps_per_epoch=steps_per_epoch,
            )
        )
    return results

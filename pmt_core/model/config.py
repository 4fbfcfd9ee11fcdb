"""What a training run is given and what it returns: its settings and its result.

:class:`TrainingConfig` holds the authors' hyper-parameters (method.md section 2)
with one check per argument; :class:`TrainResult` is one trained network with
its curves and where it stopped; :func:`check_seed` is the one seed check of
training (32-bit seeds). The loop is :mod:`pmt_core.model.training`, the
replicates :mod:`pmt_core.model.replicates`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

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
    """Outcome of :func:`~pmt_core.model.training.train_model` (or one replicate).

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

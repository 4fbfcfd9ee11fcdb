"""Replicates: one network per seed on one split, sequential or as one ensemble.

:func:`train_replicates` trains one network per seed on one split, either one
after another (:func:`~pmt_core.model.training.train_model` per seed) or all at
once as one batched model (:class:`~pmt_core.model.ensemble.ReplicateEnsemble`:
per-replicate batches, batch-norm statistics, dropout masks, gradient clipping
and early stopping; one shared learning-rate schedule).
:data:`AUTO_ENSEMBLE_MAX_PATHS` records which is faster where.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pmt_core.infra.device import select_device
from pmt_core.model.config import TrainingConfig, TrainResult, check_seed
from pmt_core.model.ensemble import ReplicateEnsemble
from pmt_core.model.metrics import macro_accuracy
from pmt_core.model.network import PMTConvNet
from pmt_core.model.training import (
    build_lr_scheduler,
    check_training_call,
    class_weights,
    train_model,
)

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
        As for :func:`~pmt_core.model.training.train_model` (``None``: CUDA when
        available, else the CPU).
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
        As for :func:`~pmt_core.model.training.train_model`.
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
    # Checked once for both strategies; train_model's own check is then a no-op.
    x_train, y_train, x_val, y_val, class_names, device = check_training_call(
        x_train, y_train, x_val, y_val, class_names, device
    )
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

    The model and the shuffle generator are those of ``training._train`` with this
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

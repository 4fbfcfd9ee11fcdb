"""Training time: one epoch at the paper's input size, and replicates ensemble vs sequential.

The replicate benchmark times both strategies of ``train_replicates`` side by side in
one process, alternating them round by round so that load on a shared runner hits
both alike; ``extra_info`` holds seconds per replicate for each and their ratio. It
asserts nothing about time (a shared runner would make that flaky): the figures are
what ``AUTO_ENSEMBLE_MAX_PATHS`` in pmt_core/model/replicates.py was chosen from.
"""

import numpy as np
import pytest
import torch

from pmt_core.model.config import TrainingConfig
from pmt_core.model.replicates import train_replicates
from pmt_core.model.training import train_model

N_TRAIN, N_VAL, CLASSES = 320, 32, ("a", "b", "c", "d", "e")

#: The ci profile's split (about 357 training and 119 validation examples) and
#: replicate count; 32 frames per example.
CI_TRAIN, CI_VAL, CI_REPLICATES, FRAMES = 357, 119, 5, 32
#: Paths per input kind: S1+S2 and S1 alone.
PATHS = {"s1s2": 1200, "s1": 74}
#: Epochs per timed run: enough for a per-epoch figure. Patience above it, so both
#: strategies run exactly this many epochs (no early stop to differ between them).
EPOCHS = 2


def test_training_epoch(benchmark, device, timed):
    rng = np.random.default_rng(0)
    x_train = rng.standard_normal((N_TRAIN, 1200, 32)).astype(np.float32)
    x_val = rng.standard_normal((N_VAL, 1200, 32)).astype(np.float32)
    y_train, y_val = np.arange(N_TRAIN) % 5, np.arange(N_VAL) % 5
    config = TrainingConfig(max_epochs=1, patience=1)

    def epoch():
        return train_model(x_train, y_train, x_val, y_val, CLASSES, config, device,
                           progress=False)

    benchmark.group = "training"
    benchmark.pedantic(lambda: timed(epoch, device), rounds=3, iterations=1)
    benchmark.extra_info.update(device=device, threads=torch.get_num_threads(),
                                examples=N_TRAIN, steps=N_TRAIN // config.batch_size)


@pytest.mark.parametrize("kind", list(PATHS))
def test_replicates_ensemble_vs_sequential(benchmark, device, kind, timed):
    rng = np.random.default_rng(0)
    n_paths = PATHS[kind]
    x_train = rng.standard_normal((CI_TRAIN, n_paths, FRAMES)).astype(np.float32)
    x_val = rng.standard_normal((CI_VAL, n_paths, FRAMES)).astype(np.float32)
    y_train, y_val = np.arange(CI_TRAIN) % 5, np.arange(CI_VAL) % 5
    config = TrainingConfig(max_epochs=EPOCHS, patience=EPOCHS + 1)
    seeds = list(range(CI_REPLICATES))

    def run(strategy):
        return train_replicates(x_train, y_train, x_val, y_val, CLASSES, config, seeds,
                                device=device, progress=False, strategy=strategy)

    # Warm-up outside the timing: first-call costs (allocator, vmap set-up, kernels).
    warm = TrainingConfig(max_epochs=1, patience=2)
    for strategy in ("ensemble", "sequential"):
        train_replicates(x_train, y_train, x_val, y_val, CLASSES, warm, seeds[:2],
                         device=device, progress=False, strategy=strategy)

    seconds = {"sequential": [], "ensemble": []}
    rounds = iter(range(1_000))

    def both():
        # Alternate which goes first, so a load spike does not favour one strategy.
        order = ("sequential", "ensemble") if next(rounds) % 2 == 0 else (
            "ensemble", "sequential")
        for strategy in order:
            seconds[strategy].append(timed(lambda s=strategy: run(s), device))

    benchmark.group = f"replicates-{kind}"
    benchmark.pedantic(both, rounds=2, iterations=1)
    # The minimum over rounds: the run least disturbed by other processes.
    per_replicate = {s: min(t) / CI_REPLICATES for s, t in seconds.items()}
    benchmark.extra_info.update(
        device=device,
        threads=torch.get_num_threads(),
        kind=kind,
        paths=n_paths,
        examples=CI_TRAIN,
        replicates=CI_REPLICATES,
        epochs=EPOCHS,
        seconds_per_replicate_sequential=per_replicate["sequential"],
        seconds_per_replicate_ensemble=per_replicate["ensemble"],
        seconds_per_replicate_epoch_sequential=per_replicate["sequential"] / EPOCHS,
        seconds_per_replicate_epoch_ensemble=per_replicate["ensemble"] / EPOCHS,
        ensemble_over_sequential=per_replicate["ensemble"] / per_replicate["sequential"],
    )

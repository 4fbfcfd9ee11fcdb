"""Training time of one epoch at the paper's input size (1,200 paths x 32 frames)."""

import numpy as np
import torch

from pmt_core.model.training import TrainingConfig, train_model

N_TRAIN, N_VAL, CLASSES = 320, 32, ("a", "b", "c", "d", "e")


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

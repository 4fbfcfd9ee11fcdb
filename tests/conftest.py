import numpy as np
import pytest
import torch


@pytest.fixture
def rng():
    """A seeded generator: tests must pass for any seed, this one is reproducible."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Unit tests use small tensors; one intra-op thread avoids oversubscribing the
    # 2-core runners when pytest-xdist runs one worker per core.
    torch.set_num_threads(1)

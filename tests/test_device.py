"""Device selection: one place, nothing assumes CUDA."""

import pytest
import torch

from pmt_core.infra.device import select_device

HAS_CUDA = torch.cuda.is_available()


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if HAS_CUDA else "cpu"
    assert select_device().type == expected
    assert select_device("auto").type == expected


def test_cpu_always_works():
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA; the error path needs none")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        select_device("cuda")


def test_unknown_device_is_refused():
    with pytest.raises(RuntimeError, match="unsupported"):
        select_device("meta")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine")
def test_cuda_is_selected_on_gpu_runners():
    assert select_device("cuda").type == "cuda"

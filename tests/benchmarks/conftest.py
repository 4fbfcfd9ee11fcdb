"""On-demand performance benchmarks (pytest-benchmark); skipped by a plain ``pytest tests``.

Run them with::

    pytest tests/benchmarks --benchmark-only            # or --benchmark-enable
    PMT_BENCHMARKS=1 pytest tests/benchmarks            # same, via the environment

Every benchmark is cheap (``benchmark.pedantic(..., rounds=3, iterations=1)``) because a
paper-size clip costs about 1 s to scatter; timings on a shared 2-core runner are noisy,
so compare the ratios reported in ``extra_info`` rather than absolute figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH_DIR = Path(__file__).parent
ENV_VAR = "PMT_BENCHMARKS"
#: One-line results of benchmarks, printed in pytest's terminal summary.
SUMMARY_KEY = pytest.StashKey[list]()


def _benchmarks_requested(config) -> bool:
    if os.environ.get(ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    return bool(config.getoption("benchmark_enable", False)
                or config.getoption("benchmark_only", False))


def pytest_collection_modifyitems(config, items):
    # Hooks of a sub-folder conftest see every collected item: touch only ours.
    if _benchmarks_requested(config):
        return
    skip = pytest.mark.skip(
        reason=f"benchmark: run with --benchmark-only / --benchmark-enable or {ENV_VAR}=1")
    for item in items:
        if BENCH_DIR in Path(str(item.fspath)).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(SUMMARY_KEY, [])
    if lines:
        terminalreporter.section("benchmark summary")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_generate_tests(metafunc):
    # Every benchmark taking ``device`` runs on the CPU and on CUDA; CUDA is skipped
    # with its reason where absent, so the same command measures a GPU runner.
    ours = BENCH_DIR in Path(str(metafunc.definition.fspath)).parents
    if ours and "device" in metafunc.fixturenames:
        metafunc.parametrize("device", [
            pytest.param("cpu", id="cpu"),
            pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(
                not torch.cuda.is_available(), reason="no CUDA device on this machine")),
        ])


@pytest.fixture(scope="session")
def clips():
    """Four paper-length synthetic clips (44.1 kHz, 2**18 samples), float32."""
    from pmt_core.data.sources import example_audio
    from pmt_core.data.synth.manifest import synthetic_manifest

    frame = synthetic_manifest({"trill": 2, "tremolo": 2}, seed=0)
    return np.stack([example_audio(row) for _, row in frame.iterrows()]).astype(np.float32)


@pytest.fixture(autouse=True)
def torch_threads():
    """Intra-op threads of the benchmark process: ``$PMT_BENCH_THREADS``, default 1.

    One thread is what each feature-extraction worker uses (steadier under load,
    method.md section 1); set 2 to measure a lone two-thread process. Restored after.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("PMT_BENCH_THREADS", "1")))
    yield torch.get_num_threads()
    torch.set_num_threads(before)


@pytest.fixture
def timed():
    """Return ``timed(fn, device)``: wall seconds of one call, GPU work included."""
    import time

    def run(fn, device="cpu"):
        start = time.perf_counter()
        fn()
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return run


@pytest.fixture
def summary(request):
    """Return ``summary(line)``: print ``line`` at the end of the session (captured
    output would hide a plain ``print`` without ``-s``)."""
    lines = request.config.stash.setdefault(SUMMARY_KEY, [])
    return lines.append

"""Every explainer per clip, and the claim stage of a smoke run, side by side.

``extra_info`` holds ``s_per_clip`` and ``ratio_over_gradient``: the explainer's
time over a plain gradient's on the same batch, measured interleaved (a ratio
survives a busy runner better than a time).
"""

import statistics

import numpy as np
import pytest
import torch

from pmt_core.explain.explainers import EXPLAINERS, ExplainerInputs, fit_class_profiles
from pmt_core.features.scattering import path_table
from pmt_core.model.network import PMTConvNet

PATHS = path_table()
BATCH = 32


@pytest.fixture(scope="module")
def inputs_on():
    def make(device):
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model = PMTConvNet(len(PATHS), 5).to(device).eval()
        x = torch.from_numpy(rng.random((BATCH, len(PATHS), 32)).astype(np.float32))
        energy = rng.random((BATCH, len(PATHS)))
        labels = rng.integers(0, 5, BATCH)
        return ExplainerInputs(model=model, x=x, target=labels, energy=energy,
                               reference_mean=energy.mean(0) + 0.1,
                               class_profiles=fit_class_profiles(labels, 5, PATHS,
                                                                 energy_norm=energy),
                               paths=PATHS, seed=0, device=torch.device(device))

    return make


@pytest.mark.parametrize("name", list(EXPLAINERS))
def test_explainer(benchmark, device, name, inputs_on, timed):
    inputs = inputs_on(device)
    ours, ref = (lambda: EXPLAINERS[name](inputs)), (lambda: EXPLAINERS["gradient"](inputs))
    timed(ours, device), timed(ref, device)
    mine, base = [], []
    for _ in range(3):
        mine.append(timed(ours, device))
        base.append(timed(ref, device))
    benchmark.group = f"explainers-{device}"
    benchmark.pedantic(lambda: timed(ours, device), rounds=3, iterations=1)
    benchmark.extra_info.update(device=device, explainer=name, batch=BATCH,
                                threads=torch.get_num_threads(),
                                s_per_clip=statistics.median(mine) / BATCH,
                                ratio_over_gradient=statistics.median(mine)
                                / statistics.median(base))


def test_claim_stage_smoke(benchmark, tmp_path):
    """Every claim of a smoke run, its stages computed beforehand (the claims' own cost)."""
    from pmt_core.claims.catalogue import all_cases
    from pmt_core.claims.core import evaluate
    from pmt_core.run import run_stages

    def claims():
        run = run_stages(profile="smoke", use_cache=False, report_dir=str(tmp_path), eager=True)
        _ = run.explanations, run.theory, run.twins, run.shuffled_label_models
        import time

        start = time.perf_counter()
        for case in all_cases():
            evaluate(case, run)
        return time.perf_counter() - start, sum(run.timings.values())

    seconds, stages = benchmark.pedantic(claims, rounds=1, iterations=1)
    benchmark.extra_info.update(claims_s=seconds, stages_s=stages,
                                ratio_claims_over_stages=seconds / stages)

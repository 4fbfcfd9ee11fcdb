"""Scattering throughput by batch size and device, and against stock kymatio.

``extra_info`` holds ``s_per_example`` (median round / batch) and, for the
comparison, the ratio pmt_core.scatter / stock ``ScatteringTorch1D`` measured
interleaved in the same test (a ratio survives a busy runner better than a time).
"""

import statistics

import pytest
import torch

from pmt_core.features.scattering import ScatteringConfig, _scattering_frontend, _transform, scatter

CONFIG = ScatteringConfig()


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_scatter_throughput(benchmark, clips, device, batch, timed):
    x = clips[:batch]
    timed(lambda: scatter(x, CONFIG.sample_rate, CONFIG, device, batch), device)  # build, warm
    benchmark.group = f"scatter-{device}"
    benchmark.pedantic(
        lambda: timed(lambda: scatter(x, CONFIG.sample_rate, CONFIG, device, batch), device),
        rounds=3, iterations=1)
    benchmark.extra_info.update(
        device=device, batch=batch, threads=torch.get_num_threads(),
        s_per_example=benchmark.stats.stats.median / batch)


def test_scatter_vs_stock_kymatio(benchmark, clips, device, timed):
    from pmt_core.features.scattering import prepare_audio

    x = clips[:1]
    stock = _scattering_frontend()(J=CONFIG.J, shape=CONFIG.n_samples, Q=CONFIG.Q, T=CONFIG.T)
    stock.to(device)
    # Stock kymatio gets the same normalised input, so both do the same transform work.
    prepared = torch.from_numpy(prepare_audio(x, CONFIG.sample_rate, CONFIG)).to(device)
    _transform(CONFIG, torch.device(device))  # build ours outside the timing too

    def ours():
        return scatter(x, CONFIG.sample_rate, CONFIG, device, 1)

    def theirs():
        with torch.no_grad():
            return stock(prepared).cpu()

    timed(ours, device), timed(theirs, device)  # warm both
    ours_s, theirs_s = [], []
    for _ in range(3):  # interleaved, so load changes hit both alike
        ours_s.append(timed(ours, device))
        theirs_s.append(timed(theirs, device))
    ratio = statistics.median(ours_s) / statistics.median(theirs_s)
    benchmark.group = f"scatter-vs-kymatio-{device}"
    benchmark.pedantic(lambda: timed(ours, device), rounds=3, iterations=1)
    benchmark.extra_info.update(
        device=device, threads=torch.get_num_threads(),
        pmt_s=statistics.median(ours_s), kymatio_s=statistics.median(theirs_s),
        ratio_pmt_over_kymatio=ratio)
    # pmt_core adds input checks, a path selection and a scale on top of kymatio, and
    # a faster product by real filters (about 0.6x the time, same bits): it must never
    # be slower than stock kymatio beyond noise (issue 8); 1.3 leaves room for a busy
    # runner.
    assert ratio < 1.3, f"pmt_core.scatter {ratio:.2f}x stock kymatio"

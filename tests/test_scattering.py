"""The scattering API: paper shape, Hz metadata, input handling, kymatio scale fix."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pmt_core.features.scattering import (
    ScatteringConfig,
    _transform,
    path_table,
    prepare_audio,
    scatter,
)

PAPER = ScatteringConfig()
SR = PAPER.sample_rate


def tone(freq, n=PAPER.n_samples, sr=SR):
    return np.cos(2 * np.pi * freq * np.arange(n) / sr)


def test_paper_path_counts_and_ranges():
    paths = path_table()
    assert len(paths) == 1200
    assert paths.first_order.sum() == 74
    assert paths.second_order.sum() == 1126
    assert PAPER.n_frames == 32
    # method.md section 1: carriers 34.4 Hz - 19.2 kHz, modulations 1.33 Hz - 3.86 kHz.
    assert paths.carrier_hz.min() == pytest.approx(34.4, abs=0.1)
    assert paths.carrier_hz.max() == pytest.approx(19200, rel=1e-3)
    assert np.nanmin(paths.modulation_hz) == pytest.approx(1.33, abs=0.01)
    assert np.nanmax(paths.modulation_hz) == pytest.approx(3858.75, rel=1e-3)
    assert np.all(np.isnan(paths.modulation_hz[paths.first_order]))
    assert np.all(paths.modulation_hz[paths.second_order] < paths.carrier_hz[paths.second_order])


def test_metadata_comes_from_kymatio_meta():
    module = _transform(PAPER, torch.device("cpu")).module
    meta = module.meta()
    paths = path_table()
    np.testing.assert_allclose(paths.carrier_hz, meta["xi"][paths.kymatio_index, 0] * SR)
    np.testing.assert_array_equal(paths.order, meta["order"][paths.kymatio_index])


def test_scatter_returns_values_with_metadata():
    result = scatter(tone(1000.0))
    assert result.values.shape == (1, 1200, 32)
    assert result.values.dtype == np.float32
    assert result.config == PAPER
    assert len(result.carrier_hz) == len(result.modulation_hz) == len(result.order) == 1200
    s1 = result.time_averaged()[0][result.paths.first_order]
    peak = result.carrier_hz[result.paths.first_order][np.argmax(s1)]
    assert abs(np.log2(peak / 1000.0)) < 1 / 8


def test_torch_and_numpy_and_batch_inputs_agree():
    x = tone(440.0)
    from_numpy = scatter(x).values
    from_torch = scatter(torch.from_numpy(x)).values
    batch = scatter(np.stack([x, 0.5 * x])).values
    np.testing.assert_allclose(from_numpy, from_torch, rtol=1e-5)
    # Per-signal standard-deviation normalisation: a scaled copy gives the same features.
    np.testing.assert_allclose(batch[0], batch[1], rtol=1e-4, atol=1e-7)


def _direct_scattering(x, n1, n2=None):
    """|x * psi1| (then |. * psi2|) * phi with kymatio's own filters, full resolution."""
    module = _transform(PAPER, torch.device("cpu")).module
    pad = module.pad_left
    padded = np.pad(prepare_audio(x, SR, PAPER)[0].astype(np.float64), (pad, module.pad_right),
                    mode="reflect")

    def filt(signal, bank_entry):
        response = np.asarray(bank_entry["levels"][0]).ravel()
        return np.fft.ifft(np.fft.fft(signal) * response)

    u = np.abs(filt(padded, module.psi1_f[n1]))
    if n2 is not None:
        u = np.abs(filt(u, module.psi2_f[n2]))
    smooth = filt(u, module.phi_f).real
    return smooth[pad : pad + PAPER.n_samples : PAPER.T]


def test_kymatio_pr736_scale_is_undone_at_order_1():
    """Regression test for kymatio 0.3.0's double normalisation (kymatio PR #736)."""
    paths = path_table()
    x = tone(1000.0)
    fixed = scatter(x).values[0]
    raw = scatter(x, config=ScatteringConfig(undo_kymatio_scaling=False)).values[0]
    s1 = np.flatnonzero(paths.first_order)
    path = s1[np.argmax(fixed[s1].mean(axis=1))]
    direct = _direct_scattering(x, int(paths.n[path, 0]))
    middle = slice(8, 24)
    np.testing.assert_allclose(fixed[path, middle], direct[middle], rtol=1e-2)
    # Raw kymatio output is off by 2**j1 (16 at 1 kHz, method.md section 1).
    assert paths.j[path, 0] == 4
    np.testing.assert_allclose(raw[path, middle] * 2 ** paths.j[path, 0], direct[middle],
                               rtol=1e-2)


def test_kymatio_pr736_scale_is_undone_at_order_2():
    paths = path_table()
    t = np.arange(PAPER.n_samples) / SR
    x = (1 + 0.5 * np.cos(2 * np.pi * 8 * t)) * np.cos(2 * np.pi * 1000 * t)
    fixed = scatter(x).values[0]
    s2 = np.flatnonzero(paths.second_order)
    path = s2[np.argmax(fixed[s2].mean(axis=1))]
    n1, n2 = (int(v) for v in paths.n[path])
    direct = _direct_scattering(x, n1, n2)
    middle = slice(8, 24)
    assert np.median(np.abs(fixed[path, middle] / direct[middle] - 1)) < 0.05
    assert paths.kymatio_scale()[path] == 2 ** (paths.j[path, 0] + paths.j[path, 1])


@pytest.mark.parametrize("config", [ScatteringConfig(n_samples=2**14, J=8, T=2**9), PAPER],
                         ids=["small", "paper"])
def test_fast_real_filter_product_is_bit_identical_to_stock_kymatio(config):
    # The faster backend (pmt_core.features.scattering._scattering_backend) of kymatio's
    # own loop (scatter_with_kymatio, the reference of tests/test_batched.py) must change
    # the speed only: the same input through stock kymatio gives the same bits.
    from pmt_core.features.scattering import _scattering_frontend

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2, config.n_samples)).astype(np.float32))
    ours = _transform(config, torch.device("cpu"))
    stock = _scattering_frontend()(J=config.J, shape=config.n_samples, Q=config.Q, T=config.T)
    assert ours.module.backend is not stock.backend
    with torch.no_grad():
        expected = stock(x).index_select(-2, ours.index) * ours.scale
        got = ours.kymatio(x)
    assert torch.equal(got, expected)


def test_scattering_import_avoids_broken_kymatio_torch():
    """kymatio.torch imports the 3-D transform, broken by scipy >= 1.17 (sph_harm)."""
    code = (
        "import sys, scipy.special as sp, pmt_core.features.scattering as s\n"
        "sp.__dict__.pop('sph_harm', None)  # as in scipy >= 1.17\n"
        "s._scattering_frontend()\n"
        "bad = [m for m in sys.modules\n"
        "       if m == 'kymatio.torch' or m.endswith('3d.frontend.torch_frontend')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("audio", "sr", "message"),
    [
        (np.zeros(100), 22050, "sample rate"),
        (np.array([]), SR, "empty"),
        (np.zeros((2, 0)), SR, "empty"),
        (np.array([0.0, np.nan, 1.0]), SR, "NaN"),
        (np.array([0.0, np.inf, 1.0]), SR, "NaN or inf"),
        (np.zeros((1, 2, 100)), SR, "multi-channel"),
    ],
)
def test_bad_audio_is_refused_with_a_clear_error(audio, sr, message):
    with pytest.raises(ValueError, match=message):
        prepare_audio(audio, sr, PAPER)


def test_silence_gives_zeros_not_nan():
    result = scatter(np.zeros(SR))
    assert np.all(np.isfinite(result.values))
    assert np.all(result.values == 0)


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(min_value=1, max_value=3 * 2**10),
    scale=st.floats(min_value=1e-3, max_value=1e3),
    seed=st.integers(0, 2**16),
)
def test_prepare_audio_normalises_and_fixes_length(length, scale, seed):
    config = ScatteringConfig(n_samples=2**10, T=2**5)
    x = np.random.default_rng(seed).standard_normal(length) * scale
    out = prepare_audio(x, SR, config)
    assert out.shape == (1, 2**10)
    kept = min(length, 2**10)
    if length > 1:
        np.testing.assert_allclose(out[0, :kept], (x / x.std())[:kept], rtol=1e-4, atol=1e-5)
    assert np.all(out[0, kept:] == 0)


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="power of two"):
        ScatteringConfig(n_samples=1000)
    with pytest.raises(ValueError, match="divide"):
        ScatteringConfig(n_samples=2**10, T=2**11)
    assert ScatteringConfig.from_dict(PAPER.to_dict()) == PAPER
    assert PAPER.fingerprint() == ScatteringConfig().fingerprint()
    assert PAPER.fingerprint() != ScatteringConfig(J=12).fingerprint()

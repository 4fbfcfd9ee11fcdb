"""Log compression fitted on the training split (method.md section 1)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmt_core.features.compression import LogCompression


def test_formula_matches_the_authors(rng):
    train = rng.random((10, 6, 4))
    fitted = LogCompression().fit(train)
    mu = train.mean(axis=2).mean(axis=0)
    np.testing.assert_allclose(fitted.mu, mu)
    x = rng.random((3, 6, 4))
    expected = np.log1p(x / (0.1 * mu[None, :, None] + 1e-8))
    np.testing.assert_allclose(fitted.transform(x), expected, rtol=1e-6)
    assert fitted.transform(x).dtype == np.float32


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(1e-2, 1e4), seed=st.integers(0, 1000))
def test_a_constant_per_path_scale_cancels(scale, seed):
    # Why kymatio's per-path scale does not matter to the network, as long as
    # c * mu stays well above eps = 1e-8 (at scale 1e-4 the eps term shows at 1e-3).
    rng = np.random.default_rng(seed)
    train, x = rng.random((8, 5, 4)) + 0.1, rng.random((2, 5, 4))
    per_path = scale * np.exp2(np.arange(5))[None, :, None]
    plain = LogCompression().fit(train).transform(x)
    scaled = LogCompression().fit(train * per_path).transform(x * per_path)
    np.testing.assert_allclose(plain, scaled, rtol=1e-4, atol=1e-5)


def test_silence_compresses_to_zero_not_nan(rng):
    fitted = LogCompression().fit(rng.random((4, 3, 2)))
    out = fitted.transform(np.zeros((1, 3, 2)))
    assert np.all(out == 0)
    # A path that is silent in all training data must not give NaN either.
    fitted = LogCompression().fit(np.zeros((4, 3, 2)))
    assert np.all(np.isfinite(fitted.transform(rng.random((1, 3, 2)))))


def test_round_trip_and_errors(tmp_path, rng):
    fitted = LogCompression().fit(rng.random((4, 3, 2)))
    path = fitted.save(tmp_path / "c.json")
    again = LogCompression.load(path)
    np.testing.assert_array_equal(again.mu, fitted.mu)
    with pytest.raises(RuntimeError, match="before fit"):
        LogCompression().transform(np.ones((1, 3, 2)))
    with pytest.raises(ValueError, match=r"\(examples, 3, frames\)"):
        fitted.transform(np.ones((1, 4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        LogCompression().fit(np.full((2, 3, 2), np.nan))
    with pytest.raises(ValueError, match="examples"):
        LogCompression().fit(np.ones((0, 3, 2)))


def test_subset_matches_slicing_the_full_transform(rng):
    fitted = LogCompression().fit(rng.random((4, 6, 2)))
    mask = np.array([True, False, True, False, False, True])
    x = rng.random((2, 6, 2))
    np.testing.assert_array_equal(fitted.subset(mask).transform(x[:, mask]),
                                  fitted.transform(x)[:, mask])
